"""sre_tools/data/versions.yml is the one place for version defaults (its header promises this).

Every role and formula named in it takes its keys from it: the role reads the file in
``vars/main.yml`` and uses ``_<role>_versions.<section>.<key>``; the formula's ``map.jinja``
imports ``sre_versions.yaml`` (a link to the file) and uses ``sre_versions.<section>.<key>``.
Neither repeats one of its versions as a literal in its defaults (roles/*/defaults/main.yml,
salt/*/parameters/defaults.yaml). Platform facts, such as the branches a distribution
publishes (roles/nvidia_driver/vars/Ubuntu.yml), are not defaults and may name versions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = ROOT / "sre_tools" / "data" / "versions.yml"
VERSIONS: dict[str, Any] = yaml.safe_load(VERSIONS_FILE.read_text(encoding="utf-8"))
SECTIONS = sorted(k for k in VERSIONS if k != "schema")
KEYS = [(section, key) for section in SECTIONS for key in VERSIONS[section]]
LOOKUP = "lookup('ansible.builtin.file', role_path ~ '/../../sre_tools/data/versions.yml')"


def _scalars(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for value in node.values():
            yield from _scalars(value)
    elif isinstance(node, list):
        for value in node:
            yield from _scalars(value)
    elif node is not None:
        yield str(node)


def _literal_versions(section: str) -> set[str]:
    """The non-empty values of ``section`` (lists flattened); nvidia_fabricmanager follows the
    driver, so its set includes nvidia_driver's."""
    sections = [section, "nvidia_driver"] if section == "nvidia_fabricmanager" else [section]
    return {v for name in sections for v in _scalars(VERSIONS[name]) if v}


def test_salt_reads_the_same_file() -> None:
    link = ROOT / "salt" / "sre_versions.yaml"
    assert link.is_symlink(), "salt/sre_versions.yaml must be a link to sre_tools/data/versions.yml"
    assert link.resolve() == VERSIONS_FILE.resolve()


def test_schema_and_sections() -> None:
    assert VERSIONS["schema"] == 1
    for section in SECTIONS:
        assert (ROOT / "roles" / section).is_dir(), f"{section}: no role of that name"
        assert (ROOT / "salt" / section).is_dir(), f"{section}: no formula of that name"


@pytest.mark.parametrize("section", SECTIONS)
def test_role_and_formula_load_the_file(section: str) -> None:
    role_vars = (ROOT / "roles" / section / "vars" / "main.yml").read_text(encoding="utf-8")
    assert f'_{section}_versions: "{{{{ {LOOKUP} | ansible.builtin.from_yaml }}}}"' in role_vars
    map_jinja = (ROOT / "salt" / section / "map.jinja").read_text(encoding="utf-8")
    assert '{%- import_yaml "sre_versions.yaml" as sre_versions %}' in map_jinja


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_role_and_formula_take_the_key_from_the_file(section: str, key: str) -> None:
    role = ROOT / "roles" / section
    role_text = "".join(
        (role / sub / "main.yml").read_text(encoding="utf-8") for sub in ("defaults", "vars")
    )
    assert f"_{section}_versions.{section}.{key}" in role_text, f"roles/{section} ignores {key}"
    map_jinja = (ROOT / "salt" / section / "map.jinja").read_text(encoding="utf-8")
    assert f"sre_versions.{section}.{key}" in map_jinja, f"salt/{section} ignores {key}"


@pytest.mark.parametrize("section", SECTIONS)
def test_no_default_repeats_a_version(section: str) -> None:
    literals = _literal_versions(section)
    for path in (
        ROOT / "roles" / section / "defaults" / "main.yml",
        ROOT / "salt" / section / "parameters" / "defaults.yaml",
    ):
        if not path.exists():
            continue
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        repeated = sorted(set(_scalars(data)) & literals)
        assert not repeated, (
            f"{path.relative_to(ROOT)} repeats {repeated}: take it from versions.yml"
        )
