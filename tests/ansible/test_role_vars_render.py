"""The OS-specific variables render to the right packages on platforms CI cannot run.

Molecule here only has Debian 12. For Ubuntu, RHEL and the CUDA repository path, the roles'
``variables.yml`` (and the preflight of nvidia_driver, nvidia_fabricmanager, cuda_toolkit and
container_runtime) run on localhost with the operating-system
facts replaced by a small test module, and the rendered internal variables are compared with
the package names those platforms publish. Nothing is installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import ROLES_DIR, tool, tool_env

FAKE_FACTS_MODULE = """#!/usr/bin/python
from ansible.module_utils.basic import AnsibleModule

module = AnsibleModule(argument_spec={"facts": {"type": "dict", "required": True}})
module.exit_json(changed=False, ansible_facts=module.params["facts"])
"""

PLATFORMS = {
    "debian12": {
        "os_family": "Debian",
        "distribution": "Debian",
        "distribution_major_version": "12",
        "distribution_version": "12.12",
        "distribution_release": "bookworm",
    },
    "ubuntu2204": {
        "os_family": "Debian",
        "distribution": "Ubuntu",
        "distribution_major_version": "22",
        "distribution_version": "22.04",
        "distribution_release": "jammy",
    },
    "ubuntu2404": {
        "os_family": "Debian",
        "distribution": "Ubuntu",
        "distribution_major_version": "24",
        "distribution_version": "24.04",
        "distribution_release": "noble",
    },
    "rhel9": {
        "os_family": "RedHat",
        "distribution": "RedHat",
        "distribution_major_version": "9",
        "distribution_version": "9.4",
        "distribution_release": "Plow",
    },
}


def render(
    tmp_path: Path, role: str, platform: str, tasks_from: list[str], expressions, extra_vars
):
    """Run task files of ``role`` with ``platform``'s facts; (rc, output, rendered values).

    Only variables.yml and preflight.yml are ever run: nothing that would change this machine.
    """
    facts = {
        **PLATFORMS[platform],
        "architecture": "x86_64",
        "kernel": "6.8.0-45-generic" if platform.startswith("ubuntu") else "5.14.0-427.el9.x86_64",
    }
    if platform == "debian12":
        facts["kernel"] = "6.1.0-56-amd64"
    (tmp_path / "library").mkdir(exist_ok=True)
    (tmp_path / "library" / "fake_facts.py").write_text(FAKE_FACTS_MODULE, encoding="utf-8")
    out = tmp_path / "rendered.json"
    content = "{{ {" + ", ".join(f"{k!r}: {v}" for k, v in expressions.items()) + "} | to_json }}"
    play = [
        {
            "name": "Render role variables for another platform",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [
                {"name": "Pretend to be the platform", "fake_facts": {"facts": facts}},
                *(
                    {
                        "name": f"Run {name}",
                        "ansible.builtin.include_role": {
                            "name": role,
                            "tasks_from": name,
                            "public": True,
                        },
                    }
                    for name in tasks_from
                ),
                {
                    "name": "Record the rendered variables",
                    "ansible.builtin.copy": {"dest": str(out), "content": content, "mode": "0644"},
                },
            ],
        }
    ]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play), encoding="utf-8")
    (tmp_path / "vars.json").write_text(
        json.dumps({"ansible_python_interpreter": sys.executable, **extra_vars}), encoding="utf-8"
    )
    env = tool_env()
    env["ANSIBLE_ROLES_PATH"] = str(ROLES_DIR)
    env["ANSIBLE_LOCALHOST_WARNING"] = "false"
    env["ANSIBLE_INVENTORY_UNPARSED_WARNING"] = "false"
    proc = subprocess.run(
        [tool("ansible-playbook"), "-i", "localhost,", "-e", "@vars.json", "play.yml"],
        cwd=tmp_path,
        env={**env, "PWD": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    rendered = json.loads(out.read_text()) if out.exists() else None
    return proc.returncode, proc.stdout + proc.stderr, rendered


NVIDIA_EXPRESSIONS = {
    "packages": "_nvidia_driver_versioned_packages",
    "unversioned": "_nvidia_driver_unversioned_packages[nvidia_driver_source]",
    "module": "_nvidia_driver_kernel_module",
    "options_file": "_nvidia_driver_module_options_file",
    "repo_dir": "_nvidia_driver_cuda_repo_dir",
    "arch": "_nvidia_driver_cuda_repo_arch",
}

NVIDIA_CASES = {
    "debian12-distro-proprietary": (
        "debian12",
        {},
        {
            "packages": ["nvidia-kernel-dkms", "nvidia-driver"],
            "unversioned": ["nvidia-persistenced"],
            "module": "nvidia-current",
            "options_file": "/etc/modprobe.d/nvidia-driver-options.conf",
        },
    ),
    "debian12-distro-open-headless": (
        "debian12",
        {"nvidia_driver_open": True, "nvidia_driver_headless": True},
        {
            "packages": [
                "nvidia-open-kernel-dkms",
                "nvidia-smi",
                "libcuda1",
                "libnvidia-cfg1",
                "firmware-nvidia-gsp",
            ],
            "module": "nvidia-current-open",
        },
    ),
    "debian12-cuda-repo-open": (
        "debian12",
        {
            "nvidia_driver_source": "cuda_repo",
            "nvidia_driver_open": True,
            "nvidia_driver_branch": "570",
        },
        {
            "packages": ["nvidia-open-570"],
            "module": "nvidia",
            "repo_dir": "debian12",
            "arch": "x86_64",
        },
    ),
    "ubuntu2204-distro-proprietary": (
        "ubuntu2204",
        {},
        {
            "packages": ["nvidia-dkms-535-server", "nvidia-driver-535-server"],
            "unversioned": [],
            "module": "nvidia",
            "options_file": "/etc/modprobe.d/nvidia.conf",
        },
    ),
    "ubuntu2404-distro-open-headless-precompiled": (
        "ubuntu2404",
        {
            "nvidia_driver_branch": "570",
            "nvidia_driver_open": True,
            "nvidia_driver_headless": True,
            "nvidia_driver_dkms": False,
        },
        {
            "packages": [
                "linux-modules-nvidia-570-server-open-6.8.0-45-generic",
                "nvidia-headless-570-server-open",
                "nvidia-utils-570-server",
            ]
        },
    ),
    "ubuntu2204-cuda-repo": (
        "ubuntu2204",
        {"nvidia_driver_source": "cuda_repo", "nvidia_driver_branch": "570"},
        {"packages": ["cuda-drivers-570"], "repo_dir": "ubuntu2204"},
    ),
    "rhel9-cuda-repo-open-pinned": (
        "rhel9",
        {
            "nvidia_driver_source": "cuda_repo",
            "nvidia_driver_open": True,
            "nvidia_driver_branch": "570",
            "nvidia_driver_version": "570.86.15",
            "nvidia_driver_cuda_repo_key_fingerprint": "0" * 40,
        },
        {
            "packages": ["@nvidia-driver:570-open", "nvidia-driver-570.86.15"],
            "module": "nvidia",
            "options_file": "/etc/modprobe.d/nvidia.conf",
            "repo_dir": "rhel9",
        },
    ),
}


@pytest.mark.parametrize(
    ("platform", "overrides", "expected"), NVIDIA_CASES.values(), ids=NVIDIA_CASES.keys()
)
def test_nvidia_driver_packages_per_platform(tmp_path, platform, overrides, expected):
    rc, output, rendered = render(
        tmp_path, "nvidia_driver", platform, ["variables.yml"], NVIDIA_EXPRESSIONS, overrides
    )
    assert rc == 0, output
    for key, value in expected.items():
        assert rendered[key] == value, key


PREFLIGHT_CASES = {
    "rhel-has-no-distro-driver": ("rhel9", {}, "set nvidia_driver_source to one of cuda_repo"),
    "debian12-ships-535-only": (
        "debian12",
        {"nvidia_driver_branch": "570"},
        "ships driver branches 535, not nvidia_driver_branch=570",
    ),
    "version-outside-branch": (
        "debian12",
        {"nvidia_driver_version": "550.127.05"},
        "is not an upstream version of branch nvidia_driver_branch=535",
    ),
    "debian12-open-needs-its-build": (
        "debian12",
        {"nvidia_driver_open": True},
        "set nvidia_driver_version to one of them",
    ),
    "rhel-key-fingerprint-required": (
        "rhel9",
        {"nvidia_driver_source": "cuda_repo"},
        "set nvidia_driver_cuda_repo_key_fingerprint",
    ),
    "headless-is-distro-only": (
        "ubuntu2204",
        {"nvidia_driver_source": "cuda_repo", "nvidia_driver_headless": True},
        "set nvidia_driver_headless: false",
    ),
}


@pytest.mark.parametrize(
    ("platform", "overrides", "message"), PREFLIGHT_CASES.values(), ids=PREFLIGHT_CASES.keys()
)
def test_nvidia_driver_preflight_names_the_variable(tmp_path, platform, overrides, message):
    """Preflight stops before any change, and its message says which variable to set."""
    variables = {"nvidia_driver_install_packages": False, **overrides}
    tasks = ["variables.yml", "preflight.yml"]
    rc, output, _ = render(tmp_path, "nvidia_driver", platform, tasks, {"ok": "true"}, variables)
    assert rc != 0
    assert message in " ".join(output.split()), output


GPU_BASE_CASES = {
    "debian12-running": (
        "debian12",
        "running",
        ["linux-headers-6.1.0-56-amd64"],
        "update-initramfs",
    ),
    "debian12-generic": ("debian12", "generic", ["linux-headers-amd64"], "update-initramfs"),
    "ubuntu2404-generic": ("ubuntu2404", "generic", ["linux-headers-generic"], "update-initramfs"),
    "rhel9-running": (
        "rhel9",
        "running",
        ["kernel-devel-5.14.0-427.el9.x86_64", "kernel-headers-5.14.0-427.el9.x86_64"],
        "dracut",
    ),
}


@pytest.mark.parametrize(
    ("platform", "headers", "packages", "initramfs"),
    GPU_BASE_CASES.values(),
    ids=GPU_BASE_CASES.keys(),
)
def test_gpu_base_headers_per_platform(tmp_path, platform, headers, packages, initramfs):
    expressions = {
        "headers": "_gpu_base_kernel_headers_packages[gpu_base_kernel_headers]",
        "initramfs": "_gpu_base_initramfs_rebuild_command",
    }
    rc, output, rendered = render(
        tmp_path,
        "gpu_base",
        platform,
        ["variables.yml"],
        expressions,
        {"gpu_base_kernel_headers": headers},
    )
    assert rc == 0, output
    assert rendered["headers"] == packages
    assert rendered["initramfs"][0] == initramfs


# --- nvidia_fabricmanager, cuda_toolkit, container_runtime ------------------------------------

ROLE_RENDER_CASES = {
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
    ROLE_RENDER_CASES.values(),
    ids=ROLE_RENDER_CASES.keys(),
)
def test_role_variables_per_platform(tmp_path, role, platform, overrides, expressions, expected):
    rc, output, rendered = render(
        tmp_path, role, platform, ["variables", "preflight"], expressions, overrides
    )
    assert rc == 0, output[-3000:]
    assert rendered == expected


ROLE_PREFLIGHT_CASES = {
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
    "sre-agent-prolog-over-30s": (
        "sre_agent",
        {"sre_agent_slurm_prolog": True, "sre_agent_slurm_prolog_timeout": 45},
        "sre_agent_slurm_prolog_timeout must be 1-30 s",
    ),
    "runtime-default-without-nvidia": (
        "container_runtime",
        {"container_runtime_nvidia": False, "container_runtime_nvidia_default_runtime": True},
        "container_runtime_nvidia_default_runtime needs the nvidia runtime",
    ),
}


@pytest.mark.parametrize(
    ("role", "overrides", "message"), ROLE_PREFLIGHT_CASES.values(), ids=ROLE_PREFLIGHT_CASES.keys()
)
def test_preflight_names_the_variable(tmp_path, role, overrides, message):
    rc, output, _ = render(tmp_path, role, "debian12", ["variables", "preflight"], {}, overrides)
    assert rc != 0
    assert message in " ".join(output.split()), output[-3000:]
