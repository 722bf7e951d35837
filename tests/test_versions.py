"""sre_tools/data/versions.yml is the one place a version changes (its header says so).

Its sections name a role and a formula each; every formula takes each of its section's keys from
the file (``salt/<formula>/map.jinja`` imports ``sre_versions.yaml``, a link to it). The roles
carry checked copies of the values instead of reading the file:
tests/ansible/test_role_versions.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
VERSIONS_FILE = ROOT / "sre_tools" / "data" / "versions.yml"
VERSIONS: dict[str, Any] = yaml.safe_load(VERSIONS_FILE.read_text(encoding="utf-8"))
SECTIONS = sorted(k for k in VERSIONS if k != "schema")
KEYS = [(section, key) for section in SECTIONS for key in VERSIONS[section]]


def test_schema_and_sections() -> None:
    assert VERSIONS["schema"] == 1
    for section in SECTIONS:
        assert (ROOT / "roles" / section).is_dir(), f"{section}: no role of that name"
        assert (ROOT / "salt" / section).is_dir(), f"{section}: no formula of that name"


@pytest.mark.parametrize(("section", "key"), KEYS, ids=[f"{s}.{k}" for s, k in KEYS])
def test_formula_takes_the_key_from_the_file(section: str, key: str) -> None:
    map_jinja = (ROOT / "salt" / section / "map.jinja").read_text(encoding="utf-8")
    assert '{%- import_yaml "sre_versions.yaml" as sre_versions %}' in map_jinja
    assert f"sre_versions.{section}.{key}" in map_jinja, f"salt/{section} ignores {key}"
