"""The versions a role defaults to are its own copy of sre_tools/data/versions.yml.

versions.yml is the one place a version changes: the Salt formulas read it directly
(salt/sre_versions.yaml is a link to it), and each role carries the values it needs in its
defaults/ or vars/, so a role installed from Galaxy or a collection, without this repository
around it, still works. These tests fail when a copy differs from versions.yml, or when a role
reads a file outside itself for them again.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import ROLES, ROLES_DIR, ROOT

VERSIONS_FILE = ROOT / "sre_tools" / "data" / "versions.yml"
VERSIONS = yaml.safe_load(VERSIONS_FILE.read_text(encoding="utf-8"))
# (role, file in the role, variable) -> key in versions.yml
COPIES: dict[tuple[str, str, str], tuple[str, str]] = {
    ("nvidia_driver", "defaults/main.yml", "nvidia_driver_branch"): ("nvidia_driver", "branch"),
    ("nvidia_driver", "defaults/main.yml", "nvidia_driver_version"): ("nvidia_driver", "version"),
    ("nvidia_fabricmanager", "defaults/main.yml", "nvidia_fabricmanager_branch"): (
        "nvidia_driver",
        "branch",
    ),
    ("nvidia_fabricmanager", "defaults/main.yml", "nvidia_fabricmanager_version"): (
        "nvidia_driver",
        "version",
    ),
    ("nvidia_fabricmanager", "vars/main.yml", "_nvidia_fabricmanager_rename_branch"): (
        "nvidia_fabricmanager",
        "rename_branch",
    ),
    ("cuda_toolkit", "defaults/main.yml", "cuda_toolkit_versions"): ("cuda_toolkit", "versions"),
    (
        "container_runtime",
        "defaults/main.yml",
        "container_runtime_nvidia_container_toolkit_version",
    ): (
        "container_runtime",
        "nvidia_container_toolkit_version",
    ),
    ("nvidia_mig", "defaults/main.yml", "nvidia_mig_manager_version"): (
        "nvidia_mig",
        "mig_manager_version",
    ),
    ("infiniband", "defaults/main.yml", "infiniband_doca_ofed_version"): (
        "infiniband",
        "doca_ofed_version",
    ),
    ("gpu_monitoring", "defaults/main.yml", "gpu_monitoring_node_exporter_version"): (
        "gpu_monitoring",
        "node_exporter_version",
    ),
    ("gpu_monitoring", "defaults/main.yml", "gpu_monitoring_node_exporter_package_version"): (
        "gpu_monitoring",
        "node_exporter_package_version",
    ),
    ("gpu_monitoring", "vars/main.yml", "_gpu_monitoring_dcgm_major"): (
        "gpu_monitoring",
        "dcgm_major",
    ),
    ("gpu_monitoring", "defaults/main.yml", "gpu_monitoring_dcgm_version"): (
        "gpu_monitoring",
        "dcgm_version",
    ),
    ("gpu_monitoring", "defaults/main.yml", "gpu_monitoring_dcgm_exporter_version"): (
        "gpu_monitoring",
        "dcgm_exporter_version",
    ),
}
# nvidia_fabricmanager follows the driver role's variables when they are set:
# "{{ nvidia_driver_branch | default('535') }}" carries its own copy in the default() filter.
FALLBACK = re.compile(r"^\{\{ nvidia_driver_\w+ \| default\('(?P<value>[^']*)'\) \}\}$")


def role_value(role: str, relative: str, name: str) -> Any:
    data = yaml.safe_load((ROLES_DIR / role / relative).read_text(encoding="utf-8"))
    value = data[name]
    if isinstance(value, str) and (m := FALLBACK.match(value)):
        return m.group("value")
    return value


@pytest.mark.parametrize(
    ("role", "relative", "name"), sorted(COPIES), ids=[name for _, _, name in sorted(COPIES)]
)
def test_role_copy_equals_versions_file(role: str, relative: str, name: str) -> None:
    section, key = COPIES[(role, relative, name)]
    expected = VERSIONS[section][key]
    assert role_value(role, relative, name) == expected, (
        f"roles/{role}/{relative}: {name} differs from {section}.{key} in versions.yml; "
        "change both (versions.yml is what the Salt formulas read)"
    )


def test_every_version_in_the_file_has_a_role_copy() -> None:
    keys = {
        (section, key)
        for section, values in VERSIONS.items()
        if isinstance(values, dict)
        for key in values
    }
    assert keys == set(COPIES.values())


@pytest.mark.parametrize("role", ROLES)
def test_role_reads_no_versions_file(role: str) -> None:
    """No lookup of ``role_path ~ '/../../sre_tools/...'``: a role from Galaxy has no repository
    around it."""
    for path in sorted((ROLES_DIR / role).rglob("*.yml")):
        if "molecule" in path.relative_to(ROLES_DIR / role).parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert "versions.yml')" not in text and 'sre_tools/data/versions.yml"' not in text, path


def test_salt_reads_the_same_file() -> None:
    link = ROOT / "salt" / "sre_versions.yaml"
    assert link.is_symlink()
    assert link.resolve() == VERSIONS_FILE.resolve()
