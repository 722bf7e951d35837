"""Every role's meta/argument_specs.yml matches its defaults/main.yml, key for key.

No containers and no Ansible needed: this reads the YAML only. Also checks the conventions that
make the specs useful (type, description, role-prefixed names, matching default values) and the
layout every role shares (preflight, README, default and alternative molecule scenarios that
differ only in variables).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import ROLES, ROLES_DIR

PYTHON_TYPES = {
    "str": str,
    "bool": bool,
    "int": int,
    "float": (int, float),
    "list": list,
    "dict": dict,
    "path": str,
    "raw": object,
}


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def defaults(role: str) -> dict[str, Any]:
    return load(ROLES_DIR / role / "defaults" / "main.yml") or {}


def spec_options(role: str) -> dict[str, dict[str, Any]]:
    specs = load(ROLES_DIR / role / "meta" / "argument_specs.yml")
    return specs["argument_specs"]["main"]["options"]


def test_there_are_roles() -> None:
    assert {"gpu_base", "nvidia_driver"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_options_match_defaults_key_for_key(role: str) -> None:
    options, values = spec_options(role), defaults(role)
    assert sorted(set(values) - set(options)) == [], "in defaults/main.yml, not in the specs"
    assert sorted(set(options) - set(values)) == [], "in the specs, not in defaults/main.yml"


@pytest.mark.parametrize("role", ROLES)
def test_every_option_has_a_type_and_a_description(role: str) -> None:
    for name, option in spec_options(role).items():
        assert option.get("type") in PYTHON_TYPES, f"{name}: type {option.get('type')!r}"
        description = option.get("description")
        if isinstance(description, list):
            description = " ".join(description)
        assert description and description.strip(), f"{name}: no description"
        if option["type"] in {"list"}:
            assert "elements" in option, f"{name}: a list needs elements"


@pytest.mark.parametrize("role", ROLES)
def test_option_names_carry_the_role_prefix(role: str) -> None:
    wrong = [name for name in spec_options(role) if not name.startswith(f"{role}_")]
    assert wrong == []


@pytest.mark.parametrize("role", ROLES)
def test_spec_defaults_and_choices_agree_with_defaults(role: str) -> None:
    values = defaults(role)
    for name, option in spec_options(role).items():
        value = values[name]
        expected_type = PYTHON_TYPES[option["type"]]
        assert isinstance(value, expected_type), f"{name}: {value!r} is not {option['type']}"
        if option["type"] == "int":
            assert not isinstance(value, bool), f"{name}: a bool where an int belongs"
        if "default" in option:
            assert option["default"] == value, f"{name}: specs say {option['default']!r}"
        if "choices" in option:
            # For a list, as ansible-core validates it: every element is one of the choices.
            chosen = value if option["type"] == "list" else [value]
            for item in chosen:
                assert item in option["choices"], f"{name}: {item!r} not in {option['choices']}"


@pytest.mark.parametrize("role", ROLES)
def test_internal_variables_are_prefixed(role: str) -> None:
    """vars/ holds internal constants only: _<role>_ names, never a public default."""
    for path in sorted((ROLES_DIR / role / "vars").glob("*.yml")):
        wrong = [key for key in (load(path) or {}) if not key.startswith(f"_{role}_")]
        assert wrong == [], path.name


@pytest.mark.parametrize("role", ROLES)
def test_role_layout(role: str) -> None:
    base = ROLES_DIR / role
    meta = load(base / "meta" / "main.yml")
    assert meta["galaxy_info"]["role_name"] == role
    for relative in ("README.md", "tasks/preflight.yml", "handlers/main.yml"):
        assert (base / relative).is_file(), relative
    main = load(base / "tasks" / "main.yml")
    tags = {tag for task in main for tag in task.get("tags", [])}
    for phase in ("preflight", "install", "configure"):
        assert f"{role}_{phase}" in tags, f"tasks/main.yml has no {role}_{phase} tag"


@pytest.mark.parametrize("role", ROLES)
def test_scenarios_differ_only_in_variables(role: str) -> None:
    """Shared settings live in molecule/base.yml; a scenario sets inventory variables only."""
    for scenario in ("default", "alternative"):
        config = load(ROLES_DIR / role / "molecule" / scenario / "molecule.yml")
        assert set(config) == {"provisioner"}, scenario
        assert set(config["provisioner"]) <= {"name", "inventory"}, scenario
        assert set(config["provisioner"]["inventory"]) == {"group_vars"}, scenario
    assert (ROLES_DIR / role / "molecule" / "tests" / f"test_{role}.py").is_file()
