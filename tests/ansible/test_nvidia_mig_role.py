"""Parts of the nvidia_mig role that need no container, run for real.

* ``mig_assert`` (roles/nvidia_mig/library): the module as Ansible runs it (a JSON args file),
  against recorded NVML fixtures, with this virtualenv as the node's sre-tools.
* nvidia_mig's apply step refuses an undrained node, asking a real Slurm controller
  (tests/helpers/slurm.py), and applies on a drained one (mig-parted is a recording stand-in).
* nvidia_mig's layout validation (the sre_tools filter) stops the play with the field named.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import ROLES_DIR, play_role_tasks
from tests.helpers.slurm import SlurmCluster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
MIG_ASSERT = ROLES_DIR / "nvidia_mig" / "library" / "mig_assert.py"
VENV = Path(sys.executable).parent.parent
LAYOUTS = {
    "version": "v1",
    "mig-configs": {
        "all-disabled": [{"devices": "all", "mig-enabled": False}],
        "all-1g.10gb": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.10gb": 7}}],
    },
}


# --- mig_assert --------------------------------------------------------------------------------


def run_module(
    tmp_path: Path, layouts: Path, config_name: str, replay: str = "h100-capture.json", **args: Any
) -> tuple[int, dict[str, Any]]:
    """mig_assert with ``layouts``' ``config_name``, a recording (``replay``, under
    tests/fixtures/gpu) as the GPUs, this virtualenv as the node's sre-tools unless ``venv``."""
    args = {
        "config_file": str(layouts),
        "config_name": config_name,
        "venv": str(VENV),
        "replay": str(FIXTURES / replay),
        **args,
    }
    args_file = tmp_path / "args.json"
    args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}), encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, str(MIG_ASSERT), str(args_file)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture
def layouts(tmp_path: Path) -> Path:
    path = tmp_path / "layouts.yaml"
    path.write_text(yaml.safe_dump(LAYOUTS), encoding="utf-8")
    return path


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_mig_assert_in_sync(tmp_path: Path, layouts: Path, check_mode: bool) -> None:
    rc, result = run_module(
        tmp_path, layouts, "all-disabled", fail_on_drift=True, _ansible_check_mode=check_mode
    )
    assert rc == 0, result
    assert result["changed"] is False and result["in_sync"] is True and result["drift"] == []
    assert {f["check"] for f in result["findings"]} == {"mig.layout", "mig.pending"}
    assert result["source"].startswith("replay:")


def test_mig_assert_reports_drift_without_changing(tmp_path: Path, layouts: Path) -> None:
    rc, result = run_module(tmp_path, layouts, "all-1g.10gb")
    assert rc == 0 and result["changed"] is False and result["in_sync"] is False
    assert [f["check"] for f in result["drift"]] == ["mig.layout"]
    assert "want {'1g.10gb': 7}, have MIG off" in result["drift"][0]["summary"]


def test_mig_assert_reports_a_pending_mode_change(tmp_path: Path, layouts: Path) -> None:
    rc, result = run_module(tmp_path, layouts, "all-disabled", "faults/mig-pending.json")
    assert rc == 0 and result["in_sync"] is False
    assert [f["check"] for f in result["drift"]] == ["mig.pending"]


def test_mig_assert_fail_on_drift_fails_unchanged(tmp_path: Path, layouts: Path) -> None:
    rc, result = run_module(tmp_path, layouts, "all-1g.10gb", fail_on_drift=True)
    assert rc == 1 and result["failed"] is True and result["changed"] is False
    assert result["msg"].startswith("mig_assert: MIG layout drift: MIG layout differs")


@pytest.mark.parametrize(
    ("name", "venv", "message"),
    [
        ("nope", None, "no config named 'nope' (known: all-1g.10gb, all-disabled)"),
        ("all-disabled", "/nonexistent/venv", "/nonexistent/venv/bin/python not found"),
    ],
    ids=["unknown-config", "no-venv"],
)
def test_mig_assert_errors_are_one_line(
    tmp_path: Path, layouts: Path, name: str, venv: str | None, message: str
) -> None:
    rc, result = run_module(tmp_path, layouts, name, venv=venv or str(VENV))
    assert rc == 1 and result["changed"] is False
    assert message in result["msg"] and "\n" not in result["msg"]


# --- playbooks on localhost --------------------------------------------------------------------


def _parted_stub(tmp_path: Path) -> tuple[Path, Path]:
    """A mig-parted that says the layout differs (assert: 1) and records an apply's argv."""
    record = tmp_path / "applied"
    stub = tmp_path / "nvidia-mig-parted"
    stub.write_text(
        f'#!/bin/sh\n[ "$1" = assert ] && exit 1\necho "$@" > {record}\n', encoding="utf-8"
    )
    stub.chmod(0o755)
    return stub, record


def test_mig_apply_refuses_an_undrained_node_then_applies_once_drained(
    tmp_path: Path, cluster: SlurmCluster, layouts: Path
) -> None:
    stub, record = _parted_stub(tmp_path)
    extra = {
        "nvidia_mig_config_file": str(layouts),
        "nvidia_mig_hooks_file": str(tmp_path / "hooks.yaml"),
        "nvidia_mig_selected_config": "all-1g.10gb",
        "nvidia_mig_drain_check": "slurm",
        "nvidia_mig_slurm_node_name": "gpu01",
        "nvidia_mig_scontrol": cluster.bin["scontrol"],
        "_nvidia_mig_parted": str(stub),
    }
    refused = play_role_tasks(tmp_path, "nvidia_mig", "apply.yml", extra, env=cluster.env)
    assert refused.returncode != 0
    assert (
        "Refusing to apply MIG layout all-1g.10gb: node gpu01 is not drained (Slurm state IDLE)"
        in refused.stdout
    ), refused.stdout[-3000:]
    assert not record.exists()

    cluster.scontrol("update", "nodename=gpu01", "state=drain", "reason=MIG reconfiguration")
    try:
        applied = play_role_tasks(tmp_path, "nvidia_mig", "apply.yml", extra, env=cluster.env)
        assert applied.returncode == 0, applied.stdout[-3000:]
        assert "changed=1" in applied.stdout
        assert record.read_text().split() == [
            "apply", "-f", str(layouts), "-c", "all-1g.10gb", "-k", str(tmp_path / "hooks.yaml")
        ]  # fmt: skip
    finally:
        cluster.scontrol("update", "nodename=gpu01", "state=resume")


def test_mig_layouts_are_validated_on_the_controller(tmp_path: Path) -> None:
    extra = {
        "nvidia_mig_install_manager": False,
        "nvidia_mig_gpu_memory": "80gb",
        "nvidia_mig_configs": {
            "bad": [{"devices": "all", "mig-enabled": True, "mig-devices": {"1g.5gb": 7}}]
        },
        "nvidia_mig_selected_config": "bad",
        "ansible_facts": {"os_family": "Debian", "architecture": "x86_64"},
    }
    result = play_role_tasks(tmp_path, "nvidia_mig", "preflight.yml", extra)
    assert result.returncode != 0
    assert (
        "nvidia_mig: nvidia_mig_configs: mig-configs.bad[0].mig-devices.1g.5gb: not a profile of a "
        "80gb GPU" in result.stdout
    ), result.stdout[-3000:]
