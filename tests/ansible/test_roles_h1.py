"""Non-container checks for nvidia_fabricmanager, cuda_toolkit and container_runtime.

* nvidia_fabricmanager's ``nvswitch_devices`` module against fake sysfs/procfs trees, both
  imported and run by Ansible itself (``ansible localhost -m nvswitch_devices``).
* The three roles that write NVIDIA's CUDA repository source write the same text: apt refuses a
  source listed twice with different Signed-By, and differing files would flip every run.
"""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

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


def normalised(role: str, template: str) -> str:
    text = (ROLES_DIR / role / "templates" / template).read_text(encoding="utf-8")
    return re.sub(rf"\b(_?){role}_", r"\1ROLE_", text)


def test_cuda_repository_source_is_the_same_in_every_role() -> None:
    reference = normalised("nvidia_driver", "cuda.sources.j2")
    for role in ("nvidia_fabricmanager", "cuda_toolkit"):
        assert normalised(role, "cuda.sources.j2") == reference, role


def test_cuda_repository_files_and_key_are_the_same_in_every_role() -> None:
    names = ("keyring", "key_name", "key_fingerprint", "dir", "arch")
    seen = {}
    for role in ("nvidia_driver", "nvidia_fabricmanager", "cuda_toolkit"):
        data = yaml.safe_load(
            (ROLES_DIR / role / "vars" / "Debian.yml").read_text(encoding="utf-8")
        )
        values = {name: data[f"_{role}_cuda_repo_{name}"] for name in names}
        values["sources_file"] = data[f"_{role}_cuda_sources_file"]
        seen[role] = values
    assert seen["nvidia_fabricmanager"] == seen["nvidia_driver"]
    assert seen["cuda_toolkit"] == seen["nvidia_driver"]


# --- variables and preflight on platforms CI cannot run (tests/ansible/test_role_vars_render.py) --

RENDER_CASES = {
    "fabricmanager-ubuntu2204-570": (
        "nvidia_fabricmanager",
        "ubuntu2204",
        {
            "nvidia_fabricmanager_install": "always",
            "nvidia_fabricmanager_branch": "570",
            "nvidia_fabricmanager_version": "570.195.03",
        },
        {
            "package": "_nvidia_fabricmanager_package",
            "wanted": "__nvidia_fabricmanager_wanted | bool",
            "version": "__nvidia_fabricmanager_version",
            "repo_dir": "_nvidia_fabricmanager_cuda_repo_dir",
        },
        {
            "package": "nvidia-fabricmanager-570",
            "wanted": True,
            "version": "570.195.03",
            "repo_dir": "ubuntu2204",
        },
    ),
    "fabricmanager-debian12-580-auto": (
        "nvidia_fabricmanager",
        "debian12",
        {"nvidia_fabricmanager_branch": "580", "nvidia_fabricmanager_version": ""},
        {
            "package": "_nvidia_fabricmanager_package",
            "wanted": "__nvidia_fabricmanager_wanted | bool",
            "repo_dir": "_nvidia_fabricmanager_cuda_repo_dir",
        },
        # This machine has no NVSwitch: auto leaves Fabric Manager out.
        {"package": "nvidia-fabricmanager", "wanted": False, "repo_dir": "debian12"},
    ),
    "cuda-toolkit-ubuntu2404-two-versions": (
        "cuda_toolkit",
        "ubuntu2404",
        {"cuda_toolkit_versions": ["12.8", "12.6"]},
        {
            "packages": "_cuda_toolkit_repo_packages",
            "default": "_cuda_toolkit_default",
            "repo_dir": "_cuda_toolkit_cuda_repo_dir",
        },
        {
            "packages": ["cuda-toolkit-12-8", "cuda-toolkit-12-6"],
            "default": "12.8",
            "repo_dir": "ubuntu2404",
        },
    ),
    "container-runtime-ubuntu2204": (
        "container_runtime",
        "ubuntu2204",
        {},
        {
            "arch": "_container_runtime_nvidia_repo_arch",
            "packages": "_container_runtime_nvidia_packages",
            "version": "container_runtime_nvidia_container_toolkit_version",
        },
        {
            "arch": "amd64",
            "packages": [
                "nvidia-container-toolkit",
                "nvidia-container-toolkit-base",
                "libnvidia-container-tools",
                "libnvidia-container1",
            ],
            "version": yaml.safe_load(
                (ROLES_DIR.parent / "sre_tools" / "data" / "versions.yml").read_text()
            )["container_runtime"]["nvidia_container_toolkit_version"],
        },
    ),
}


@pytest.mark.parametrize(
    ("role", "platform", "overrides", "expressions", "expected"),
    RENDER_CASES.values(),
    ids=RENDER_CASES.keys(),
)
def test_role_variables_per_platform(tmp_path, role, platform, overrides, expressions, expected):
    from tests.ansible.test_role_vars_render import render

    rc, output, rendered = render(
        tmp_path, role, platform, ["variables", "preflight"], expressions, overrides
    )
    assert rc == 0, output[-3000:]
    assert rendered == expected


PREFLIGHT_CASES = {
    "fabricmanager-version-of-another-branch": (
        "nvidia_fabricmanager",
        {"nvidia_fabricmanager_branch": "535", "nvidia_fabricmanager_version": "550.144.03"},
        "nvidia_fabricmanager_version=550.144.03 is not a version of branch",
    ),
    "cuda-default-not-listed": (
        "cuda_toolkit",
        {"cuda_toolkit_versions": ["12.8"], "cuda_toolkit_default_version": "12.6"},
        "cuda_toolkit_default_version=12.6 is not in",
    ),
    "cuda-versions-not-major-minor": (
        "cuda_toolkit",
        {"cuda_toolkit_versions": ["12"]},
        "must list versions as major.minor",
    ),
    "runtime-default-without-nvidia": (
        "container_runtime",
        {"container_runtime_nvidia": False, "container_runtime_nvidia_default_runtime": True},
        "container_runtime_nvidia_default_runtime needs the nvidia runtime",
    ),
}


@pytest.mark.parametrize(
    ("role", "overrides", "message"), PREFLIGHT_CASES.values(), ids=PREFLIGHT_CASES.keys()
)
def test_preflight_names_the_variable(tmp_path, role, overrides, message):
    from tests.ansible.test_role_vars_render import render

    rc, output, _ = render(tmp_path, role, "debian12", ["variables", "preflight"], {}, overrides)
    assert rc != 0
    assert message in " ".join(output.split()), output[-3000:]
