"""The nvidia_driver steps that need a GPU, run on localhost against recorded kernel files.

Molecule's containers cannot load a module, reboot or answer nvidia-smi, so the reboot decision
(tasks/module.yml) and the verification (tasks/verify.yml) run here with ansible-playbook on
localhost: /proc/driver/nvidia/version and /sys/module/nouveau become files under tmp_path,
modinfo and nvidia-smi become small scripts first on PATH. Nothing on the machine changes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import ROLES_DIR, tool, tool_env

PROPRIETARY_535 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  {v}  Wed Jun 25 12:00:00 UTC 2025\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)
OPEN_580 = (
    "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  {v}  Release Build  "
    "(dvs-builder@U22-I3-AM02-24-3)  Wed Sep 10 00:00:00 UTC 2025\n"
    "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n"
)


def fake_command(bin_dir: Path, name: str, stdout: str, rc: int = 0) -> None:
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{stdout}EOF\nexit {rc}\n", encoding="utf-8")
    path.chmod(0o755)


def run_tasks(tmp_path: Path, tasks_from: str, extra_vars: dict, pre_tasks: list | None = None):
    """Run one task file of nvidia_driver on localhost; (returncode, output, results file)."""
    result_file = tmp_path / "result.json"
    play = [
        {
            "name": "Run nvidia_driver tasks on localhost",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": True,
            "gather_subset": ["!all", "min"],
            "tasks": [
                *(pre_tasks or []),
                {
                    "name": "Run the task file",
                    "ansible.builtin.include_role": {
                        "name": "nvidia_driver",
                        "tasks_from": tasks_from,
                    },
                },
                {
                    "name": "Record the outcome",
                    "ansible.builtin.copy": {
                        "dest": str(result_file),
                        "mode": "0644",
                        "content": "{{ {'reasons': __nvidia_driver_reboot_reasons | default(None),"
                        " 'gpus': __nvidia_driver_gpus | default(None)} | to_json }}",
                    },
                },
            ],
        }
    ]
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play), encoding="utf-8")
    vars_file = tmp_path / "vars.json"
    # localhost runs modules with this interpreter: no discovery, no second Python needed.
    extra_vars = {"ansible_python_interpreter": sys.executable, **extra_vars}
    vars_file.write_text(json.dumps(extra_vars), encoding="utf-8")
    env = tool_env()
    env["PATH"] = os.pathsep.join([str(tmp_path / "bin"), env["PATH"]])
    env["ANSIBLE_ROLES_PATH"] = str(ROLES_DIR)
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    proc = subprocess.run(
        [tool("ansible-playbook"), "-i", "localhost,", "-e", f"@{vars_file}", str(playbook)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcome = json.loads(result_file.read_text()) if result_file.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, outcome


@pytest.fixture
def kernel(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "bin").mkdir()
    return {"proc": tmp_path / "proc-version", "nouveau": tmp_path / "sys-module-nouveau"}


def module_vars(kernel: dict[str, Path]) -> dict:
    return {
        "_nvidia_driver_proc_version": str(kernel["proc"]),
        "_nvidia_driver_nouveau_sysfs": str(kernel["nouveau"]),
        "_nvidia_driver_kernel_module": "nvidia-current",
        "nvidia_driver_load_module": False,
        "nvidia_driver_reboot": False,
    }


CASES = {
    "nothing-loaded-module-built": (None, False, "535.261.03", 0, []),
    "nouveau-bound": (None, True, "535.261.03", 0, ["nouveau is loaded"]),
    "older-module-loaded": (
        PROPRIETARY_535.format(v="535.216.01"),
        False,
        "535.261.03",
        0,
        ["module 535.216.01 is loaded, 535.261.03 is installed"],
    ),
    "same-module-loaded": (PROPRIETARY_535.format(v="535.261.03"), False, "535.261.03", 0, []),
    "open-module-loaded-same": (OPEN_580.format(v="580.159.04"), False, "580.159.04", 0, []),
    "open-module-loaded-older": (
        OPEN_580.format(v="580.82.07"),
        False,
        "580.159.04",
        0,
        ["module 580.82.07 is loaded, 580.159.04 is installed"],
    ),
    "no-module-for-running-kernel": (None, False, "", 1, ["no nvidia-current module for"]),
}


@pytest.mark.parametrize(
    ("loaded", "nouveau", "installed", "modinfo_rc", "expected"), CASES.values(), ids=CASES.keys()
)
def test_reboot_reasons(kernel, tmp_path, loaded, nouveau, installed, modinfo_rc, expected):
    if loaded is not None:
        kernel["proc"].write_text(loaded, encoding="utf-8")
    if nouveau:
        kernel["nouveau"].mkdir()
    fake_command(tmp_path / "bin", "modinfo", f"{installed}\n" if installed else "", modinfo_rc)
    rc, output, outcome = run_tasks(tmp_path, "module.yml", module_vars(kernel))
    assert rc == 0, output
    assert len(outcome["reasons"]) == len(expected), outcome["reasons"]
    for reason, start in zip(outcome["reasons"], expected, strict=True):
        assert reason.startswith(start), (reason, start)
    if expected:
        assert "A reboot is needed to run the new NVIDIA driver" in output


def test_changed_module_options_under_a_loaded_module_need_a_reboot(kernel, tmp_path):
    kernel["proc"].write_text(PROPRIETARY_535.format(v="535.261.03"), encoding="utf-8")
    fake_command(tmp_path / "bin", "modinfo", "535.261.03\n")
    pre = [
        {
            "name": "Pretend the module options file just changed",
            "ansible.builtin.set_fact": {"__nvidia_driver_module_options": {"changed": True}},
        }
    ]
    rc, output, outcome = run_tasks(tmp_path, "module.yml", module_vars(kernel), pre)
    assert rc == 0, output
    assert outcome["reasons"] == ["module parameters changed while the module is loaded"]


SMI_TWO_GPUS = (
    "0, GPU-11111111-2222-3333-4444-555555555555, NVIDIA H100 80GB HBM3, 535.261.03, Enabled\n"
    "1, GPU-66666666-7777-8888-9999-000000000000, NVIDIA H100 80GB HBM3, 535.261.03, Enabled\n"
)
VERIFY_BASE = {
    "nvidia_driver_version": "535.261.03",
    "nvidia_driver_verify_method": "nvidia_smi",
    "nvidia_driver_verify_gpu_count": 2,
}
VERIFY_CASES = {
    "two-gpus-as-expected": (SMI_TWO_GPUS, {}, True, None),
    "branch-only": (SMI_TWO_GPUS, {"nvidia_driver_version": ""}, True, None),
    "wrong-driver": (SMI_TWO_GPUS.replace("535.261.03", "535.216.01"), {}, False, "Expected 2"),
    "other-branch": (
        SMI_TWO_GPUS,
        {"nvidia_driver_version": "", "nvidia_driver_branch": "550"},
        False,
        "Expected 2",
    ),
    "gpu-missing": (SMI_TWO_GPUS.splitlines(True)[0], {}, False, "on 1 GPU(s)"),
    "persistence-off": (
        SMI_TWO_GPUS.replace("Enabled\n1", "Disabled\n1"),
        {},
        False,
        "have persistence mode off",
    ),
    "persistence-off-but-unmanaged": (
        SMI_TWO_GPUS.replace("Enabled", "Disabled"),
        {"nvidia_driver_manage_service": False},
        True,
        None,
    ),
}


@pytest.mark.parametrize(
    ("smi", "overrides", "passes", "message"), VERIFY_CASES.values(), ids=VERIFY_CASES.keys()
)
def test_verify_with_nvidia_smi(kernel, tmp_path, smi, overrides, passes, message):
    fake_command(tmp_path / "bin", "nvidia-smi", smi)
    rc, output, outcome = run_tasks(tmp_path, "verify.yml", {**VERIFY_BASE, **overrides})
    if passes:
        assert rc == 0, output
        assert [gpu["index"] for gpu in outcome["gpus"]] == [0, 1]
    else:
        assert rc != 0
        assert message in output, output
