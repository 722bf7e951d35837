"""Masterless ``state.apply`` of the formulas in Debian 12 systemd containers, real packages.

Each test starts its own container (tests/helpers/salt_containers.py: Salt 3008 in /opt/salt,
this repository's salt/ tree in /srv/salt, a pillar written for the test), then for the formula
(``converge`` in that module runs steps 1, 2, 4 and 5; the test checks step 3 itself):

1. ``test=True`` on the fresh container: nothing fails, and the states that must act say so;
2. ``state.apply``: every state's result is True;
3. the result on the system: files, apt's view of the pinned candidate, holds, services;
4. ``state.apply`` again: every result True and no changes at all;
5. ``test=True`` on the converged container: no changes reported.

Marked ``molecule`` (deselected by default; CI runs them in their own step). The full DKMS build
of Debian's driver is also marked ``slow`` (about 7 minutes of compiling on 2 cores).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers.salt_containers import (
    SaltContainer,
    apt_candidate,
    apt_held,
    converge,
    dpkg_version,
    sre_tools_index,
)

pytestmark = pytest.mark.molecule

DRIVER_VERSION = "535.261.03"  # Debian 12's point release; bookworm-security has newer 535 builds


# --- gpu_base + nvidia_driver, user-space packages only (no DKMS build) ------------------------

LIGHT_PILLAR: dict[str, Any] = {
    "gpu_base": {"kernel_headers": "none", "packages": ["pciutils"]},
    "nvidia_driver": {
        "version": DRIVER_VERSION,
        "headless": True,
        # The user-space driver packages, pinned and held, without the kernel module package:
        # its DKMS build is what test_nvidia_driver_dkms covers (7 minutes). Debian builds with
        # DKMS only, hence the lookup that allows dkms: false here.
        "lookup": {
            "distro_dkms_only": False,
            "pkgs": {"distro": {"module": {"precompiled": {"proprietary": []}}}},
        },
        "dkms": False,
        "module_options": {"NVreg_EnableStreamMemOPs": 1, "NVreg_RestrictProfilingToAdminUsers": 0},
        "persistenced_state": "stopped",  # no GPU: it cannot start
        "load_module": False,
        "verify": False,
    },
}
LIGHT_PACKAGES = ["nvidia-smi", "libcuda1", "libnvidia-cfg1"]


def test_gpu_base_and_nvidia_driver_user_space(record_property: Any) -> None:
    with SaltContainer("gpu-h100-01") as node:
        node.set_pillar(LIGHT_PILLAR)
        timings = converge(
            node,
            "gpu_base,nvidia_driver",
            {
                "gpu_base-config-file-file-managed-blacklist",
                "gpu_base-config-file-cmd-run-initramfs",
                "gpu_base-config-file-file-managed-limits",
                "nvidia_driver-package-repo-file-managed-debian",
                "nvidia_driver-package-repo-file-managed-pin",
                "nvidia_driver-package-repo-cmd-run-apt-update",
                "nvidia_driver-package-install-pkg-installed",
                "nvidia_driver-config-file-file-managed-module-options",
                "nvidia_driver-config-file-file-managed-persistenced",
            },
        )
        record_property("timings", timings)

        # The source and the pin decide: non-free is reachable, and the pin wins over the newer
        # 535 builds in bookworm-security.
        for package in [*LIGHT_PACKAGES, "nvidia-driver", "nvidia-kernel-dkms"]:
            assert apt_candidate(node, package).startswith(f"{DRIVER_VERSION}-"), package
        for package in LIGHT_PACKAGES:
            assert dpkg_version(node, package).startswith(f"{DRIVER_VERSION}-"), package
        assert set(LIGHT_PACKAGES) <= apt_held(node)
        assert "nvidia-persistenced" not in apt_held(node)  # its own version, not held
        assert dpkg_version(node, "nvidia-persistenced")
        upgrade = node.exec("apt-get", "-s", "upgrade").stdout
        assert not re.search(r"^Inst (nvidia-smi|libcuda1|libnvidia-cfg1) ", upgrade, re.M), upgrade

        pin = node.read_file("/etc/apt/preferences.d/nvidia-driver.pref")
        assert f"Pin: version {DRIVER_VERSION}-*" in pin and "Pin-Priority: 1001" in pin
        options = node.read_file("/etc/modprobe.d/nvidia-driver-options.conf")
        assert (
            "options nvidia-current NVreg_EnableStreamMemOPs=1 "
            "NVreg_RestrictProfilingToAdminUsers=0" in options
        )
        assert "blacklist nouveau" in node.read_file("/etc/modprobe.d/blacklist-nouveau.conf")
        uu = node.read_file("/etc/apt/apt.conf.d/51gpu-base-unattended-upgrades")
        assert '"^nvidia\\-";' in uu
        dropin = node.exec(
            "systemctl", "show", "nvidia-persistenced.service", "-p", "DropInPaths", "-p",
            "Restart", "-p", "NoNewPrivileges",
        ).stdout  # fmt: skip
        assert "10-sre-tools.conf" in dropin and "Restart=on-failure" in dropin, dropin
        assert "NoNewPrivileges=yes" in dropin
        # Debian's postinst tried to start it (no /dev/nvidia*: it failed); the state keeps it
        # stopped and enabled, as the pillar says.
        state = node.exec("systemctl", "is-active", "nvidia-persistenced", check=False).stdout
        assert state.strip() in ("inactive", "failed"), node.journal("nvidia-persistenced")
        enabled = node.exec("systemctl", "is-enabled", "nvidia-persistenced", check=False).stdout
        assert enabled.strip() == "enabled"
        memlock = node.exec("systemctl", "show", "-p", "DefaultLimitMEMLOCK").stdout
        assert "DefaultLimitMEMLOCK=infinity" in memlock

        # Releasing the hold is a change of its own, and only that.
        node.set_pillar(
            {**LIGHT_PILLAR, "nvidia_driver": {**LIGHT_PILLAR["nvidia_driver"], "hold": False}}
        )
        release = node.apply("nvidia_driver")
        assert not release.failed, release.failed
        assert set(release.changed) == {"nvidia_driver-package-install-pkg-installed"}
        assert not set(LIGHT_PACKAGES) & apt_held(node)


# --- NVIDIA's CUDA repository layout, from the fixture repository ------------------------------


def test_nvidia_driver_cuda_repo_key_and_source() -> None:
    """The CUDA repository path: key downloaded, fingerprint checked, Signed-By source, pin;
    apt then reads the signed fixture repository. A wrong fingerprint stops before trusting it."""
    with SaltContainer("gpu-h100-02") as node:
        fingerprint = node.add_fixture_repo()
        pillar = {
            "nvidia_driver": {
                "source": "cuda_repo",
                "cuda_repo_url": "file:///srv/sre-fixture-repo/cuda/repos",
                "cuda_repo_key_fingerprint": "0" * 40,
                "install_packages": False,
                "manage_service": False,
                "load_module": False,
                "verify": False,
            }
        }
        node.set_pillar(pillar)
        wrong = node.apply("nvidia_driver")
        failed = wrong.failed
        assert "nvidia_driver-package-repo-cmd-run-key-fingerprint" in failed, failed
        assert "does not have fingerprint" in str(wrong.get(
            "nvidia_driver-package-repo-cmd-run-key-fingerprint"
        ))  # fmt: skip
        assert node.exec("test", "-e", "/etc/apt/keyrings/nvidia-cuda.asc", check=False).returncode
        assert node.exec(
            "test", "-e", "/etc/apt/sources.list.d/nvidia-cuda.sources", check=False
        ).returncode

        pillar["nvidia_driver"]["cuda_repo_key_fingerprint"] = fingerprint
        node.set_pillar(pillar)
        converge(
            node,
            "nvidia_driver",
            {
                "nvidia_driver-package-repo-file-managed-key",
                "nvidia_driver-package-repo-file-managed-cuda",
                "nvidia_driver-package-repo-cmd-run-apt-update",
            },
        )
        sources = node.read_file("/etc/apt/sources.list.d/nvidia-cuda.sources")
        assert "URIs: file:///srv/sre-fixture-repo/cuda/repos/debian12/x86_64/" in sources
        assert "Signed-By: /etc/apt/keyrings/nvidia-cuda.asc" in sources
        policy = node.exec("apt-cache", "policy").stdout
        assert "file:/srv/sre-fixture-repo/cuda/repos/debian12/x86_64" in policy, policy


# --- sre_agent ---------------------------------------------------------------------------------


def test_sre_agent() -> None:
    """sre-tools from a local package index (this checkout's wheel and its dependencies, built on
    the host: the containers cannot verify PyPI's certificate), its policy, its timer."""
    with SaltContainer("gpu-h100-03") as node:
        index = sre_tools_index(node)
        node.set_pillar(
            {
                "sre_agent": {
                    "source": {"requirement": "sre-tools", "index_url": index},
                    "config": {"policy": {"profile": "h100-sxm-8"}},
                }
            }
        )
        fresh: list[str] = []
        converge(
            node,
            "sre_agent",
            {
                "sre_agent-package-install-cmd-run",
                "sre_agent-package-install-pip-installed",
                "sre_agent-config-file-file-managed",
                "sre_agent-service-running-service-running",
            },
            fresh_failures=fresh,
            # pip cannot dry-run into the venv that the cmd-run state would create.
            dry_run_cannot_tell=frozenset({"sre_agent-package-install-pip-installed"}),
        )
        assert node.exec("systemctl", "is-active", "sre-health.timer").stdout.strip() == "active"
        version = node.exec("/opt/sre-tools/venv/bin/sre", "--version").stdout
        assert version.strip(), version
        health = node.read_file("/etc/sre-tools/health.yaml")
        assert "profile: h100-sxm-8" in health
    # test=True on the fresh node succeeds too (the pip state waits for the venv to exist).
    assert not fresh, "sre_agent: test=True fails on a fresh node: " + "; ".join(fresh)[:600]


# --- the full driver with DKMS -----------------------------------------------------------------


@pytest.mark.slow
def test_nvidia_driver_dkms(record_property: Any) -> None:
    """Debian's nvidia-driver really installed: DKMS builds the module against
    linux-headers-amd64 (the running kernel is the host's), pinned and held."""
    pillar = {
        "gpu_base": {"kernel_headers": "generic"},
        "nvidia_driver": {
            "version": DRIVER_VERSION,
            "module_options": {"NVreg_EnableStreamMemOPs": 1},
            "persistenced_state": "stopped",
            "load_module": False,
            "verify": False,
        },
    }
    with SaltContainer("gpu-h100-04") as node:
        node.set_pillar(pillar)
        timings = converge(
            node,
            "gpu_base,nvidia_driver",
            {
                "nvidia_driver-package-install-pkg-installed",
                "nvidia_driver-package-install-pkg-installed-unversioned",
            },
            # The DKMS build: about 7 minutes on 2 idle cores, far longer on a loaded machine.
            timeout=3600,
        )
        record_property("timings", timings)
        dkms = node.exec("dkms", "status").stdout
        assert re.search(
            rf"^nvidia-current/{re.escape(DRIVER_VERSION)}.*: installed", dkms, re.M
        ), dkms
        assert dpkg_version(node, "nvidia-driver").startswith(f"{DRIVER_VERSION}-")
        assert {"nvidia-driver", "nvidia-kernel-dkms"} <= apt_held(node)
