"""ansible-lint (production profile), yamllint and ansible-playbook --syntax-check are clean.

Needs the ``ansible`` pip extra; a missing tool fails these tests (see conftest.py).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.ansible.conftest import PLAYBOOKS_DIR, ROOT, tool, tool_env

LINT_PATHS = ["roles/", "playbooks/", "molecule/", "inventory/"]
PLAYBOOKS = sorted(p.name for p in PLAYBOOKS_DIR.glob("*.yml"))
EXAMPLE_INVENTORY = ROOT / "inventory" / "example" / "hosts.yml"


def run(argv: list[str], timeout: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, cwd=ROOT, env=tool_env(), capture_output=True, text=True, timeout=timeout
    )


def test_ansible_lint_production_profile() -> None:
    result = run([tool("ansible-lint"), "--nocolor", *LINT_PATHS], timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint() -> None:
    result = run([tool("yamllint"), "--strict", ".ansible-lint", *LINT_PATHS], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_there_are_playbooks() -> None:
    assert {"site.yml", "gpu_nodes.yml"} <= set(PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS)
def test_playbook_syntax(playbook: str) -> None:
    argv = [tool("ansible-playbook"), "--syntax-check", "-i", str(EXAMPLE_INVENTORY)]
    result = run([*argv, f"playbooks/{playbook}"], timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_inventory_groups() -> None:
    """Every host of the example inventory is a GPU node of exactly one SKU group."""
    result = run([tool("ansible-inventory"), "-i", str(EXAMPLE_INVENTORY), "--list"], timeout=120)
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    skus = list(inventory["gpu_nodes"]["children"])
    nodes = {h for sku in skus for h in inventory[sku]["hosts"]}
    assert nodes
    for node in nodes:
        assert sum(node in inventory[sku]["hosts"] for sku in skus) == 1, node
        assert "nvidia_driver_branch" in inventory["_meta"]["hostvars"][node], node
