"""nvidia_fabricmanager's ``nvswitch_devices`` module against fake sysfs/procfs trees, both
imported and run by Ansible itself (``ansible localhost -m nvswitch_devices``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path
from types import ModuleType

import pytest

from tests.ansible.conftest import ROLES_DIR, tool, tool_env

LIBRARY = ROLES_DIR / "nvidia_fabricmanager" / "library"
NVSWITCH = ("0x10de", "0x22a3", "0x068000")
H100 = ("0x10de", "0x2330", "0x030200")
A100_SWITCH_ID_ONLY = ("0x10de", "0x1af1", "0x000000")  # matched by id, not class
MELLANOX = ("0x15b3", "0x101b", "0x020700")


def load_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "nvswitch_devices", LIBRARY / "nvswitch_devices.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sysfs(root: Path, devices: dict[str, tuple[str, str, str]]) -> Path:
    for address, values in devices.items():
        base = root / "bus" / "pci" / "devices" / address
        base.mkdir(parents=True)
        for name, value in zip(("vendor", "device", "class"), values, strict=True):
            (base / name).write_text(value + "\n", encoding="ascii")
    return root


@pytest.mark.parametrize(
    ("devices", "ids", "expected"),
    [
        ({"0000:18:00.0": H100, "0000:05:00.0": NVSWITCH}, [], ["0000:05:00.0"]),
        ({"0000:18:00.0": H100, "0000:3b:00.0": MELLANOX}, [], []),
        ({"0000:07:00.0": A100_SWITCH_ID_ONLY}, ["1af1"], ["0000:07:00.0"]),
        ({"0000:07:00.0": A100_SWITCH_ID_ONLY}, [], []),
        ({}, [], []),
    ],
    ids=["hgx-h100", "gpu-and-nic-only", "by-device-id", "unknown-id", "empty-bus"],
)
def test_find_nvswitches(tmp_path: Path, devices, ids, expected) -> None:
    module = load_module()
    assert module.find_nvswitches(str(sysfs(tmp_path, devices)), ids) == expected


def test_missing_sysfs_and_driver_directory_mean_none(tmp_path: Path) -> None:
    module = load_module()
    assert module.find_nvswitches(str(tmp_path / "absent"), ["22a3"]) == []
    assert module.driver_devices(str(tmp_path)) == []
    (tmp_path / "driver" / "nvidia-nvswitch" / "devices" / "0000:05:00.0").mkdir(parents=True)
    assert module.driver_devices(str(tmp_path)) == ["0000:05:00.0"]


def test_module_runs_under_ansible_in_check_mode(tmp_path: Path) -> None:
    root = sysfs(tmp_path / "sys", {"0000:05:00.0": NVSWITCH, "0000:18:00.0": H100})
    env = tool_env()
    env["ANSIBLE_LIBRARY"] = str(LIBRARY)
    env["ANSIBLE_LOAD_CALLBACK_PLUGINS"] = "1"
    env["ANSIBLE_STDOUT_CALLBACK"] = "json"
    proc = subprocess.run(
        [
            tool("ansible"),
            "localhost",
            "--check",
            "-m",
            "nvswitch_devices",
            "-a",
            json.dumps({"sysfs_root": str(root), "proc_root": str(tmp_path / "proc")}),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    assert result["changed"] is False
    assert result["nvswitches"] == ["0000:05:00.0"]
    assert result["present"] is True
