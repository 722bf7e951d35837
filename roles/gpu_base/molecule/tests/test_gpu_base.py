"""Behaviour of the gpu_base role on a Debian 12 systemd container (both scenarios).

Expectations follow the role's variables (``role_vars``: defaults plus the scenario's), so the
same assertions check the ``default`` and the ``alternative`` scenario.
"""

from __future__ import annotations

import re


def test_kernel_headers_follow_the_switch(host, role_vars):
    choice = role_vars["gpu_base_kernel_headers"]
    meta = host.package("linux-headers-amd64")
    if choice == "generic":
        assert meta.is_installed
        # DKMS builds against /lib/modules/<version>/build: the headers must be wired there.
        version = host.check_output(
            "dpkg-query -W -f='${Depends}' linux-headers-amd64 | sed 's/linux-headers-//; s/ .*//'"
        )
        assert host.file(f"/lib/modules/{version}/build").exists
    elif choice == "none":
        assert not meta.is_installed
        assert host.run("ls -d /usr/src/linux-headers-*").rc != 0


def test_base_packages_are_installed(host, role_vars):
    for name in role_vars["gpu_base_packages"]:
        assert host.package(name).is_installed, name


def test_nouveau_blacklist_is_what_modprobe_reads(host, role_vars):
    conf = host.file("/etc/modprobe.d/blacklist-nouveau.conf")
    effective = host.check_output("modprobe --showconfig")
    if role_vars["gpu_base_blacklist_nouveau"]:
        assert conf.exists
        assert conf.user == "root"
        assert conf.mode == 0o644
        assert conf.content_string.startswith("#")  # ansible_managed header
        assert "blacklist nouveau" in effective.splitlines()
        assert "options nouveau modeset=0" in effective.splitlines()
    else:
        assert not conf.exists
        assert "blacklist nouveau" not in effective.splitlines()


def test_initramfs_tooling_follows_the_switch(host, role_vars):
    installed = host.package("initramfs-tools").is_installed
    if role_vars["gpu_base_rebuild_initramfs"]:
        assert installed
        assert host.run("update-initramfs -u -k all").rc == 0
    else:
        assert not installed


def test_unattended_upgrades_skip_the_gpu_stack(host, role_vars):
    """apt itself reports the blacklist, and each entry matches the packages it is meant for."""
    dump = host.check_output("apt-config dump Unattended-Upgrade::Package-Blacklist")
    patterns = re.findall(r'^Unattended-Upgrade::Package-Blacklist:: "(.*)";$', dump, re.M)
    prefixes = role_vars["gpu_base_unattended_upgrades_exclude"]
    assert len(patterns) == len(prefixes)
    for prefix, pattern in zip(prefixes, patterns, strict=True):
        assert re.match(pattern, prefix + "535-server"), (prefix, pattern)
    for unrelated in ("linux-image-amd64", "openssh-server", "libc6", "python3-nvidia-ml"):
        assert not any(re.match(p, unrelated) for p in patterns), unrelated
    sample = {
        "nvidia-": "nvidia-kernel-dkms",
        "cuda-": "cuda-drivers-535",
        "datacenter-gpu-manager": "datacenter-gpu-manager-4-core",
    }
    for prefix, package in sample.items():
        if prefix in prefixes:
            assert any(re.match(p, package) for p in patterns), package


def test_memlock_limit_for_sessions(host, role_vars):
    conf = host.file("/etc/security/limits.d/90-gpu-base-memlock.conf")
    assert conf.exists
    entries = {
        tuple(line.split())
        for line in conf.content_string.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    }
    domain = role_vars["gpu_base_memlock_domain"]
    limit = str(role_vars["gpu_base_memlock_limit"])
    assert entries == {(domain, "soft", "memlock", limit), (domain, "hard", "memlock", limit)}


def test_memlock_limit_for_services(host, role_vars):
    """systemd was re-executed and now hands the limit to every service it starts."""
    limit = str(role_vars["gpu_base_memlock_limit"])
    expected = "infinity" if limit == "unlimited" else str(int(limit) * 1024)
    shown = host.check_output("systemctl show --property DefaultLimitMEMLOCK --value")
    assert shown == expected
