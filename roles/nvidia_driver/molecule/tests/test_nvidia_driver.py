"""Behaviour of the nvidia_driver role on a Debian 12 systemd container (both scenarios).

Expectations follow the role's variables (``role_vars``: defaults plus the scenario's). The
package names below are Debian 12's, written out here as an oracle independent of the role's
vars/ files.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import pytest

JOURNAL_UNITS = ("nvidia-persistenced",)

DROPIN = "/etc/systemd/system/nvidia-persistenced.service.d/10-sre-tools.conf"
OPTIONS_FILE = "/etc/modprobe.d/nvidia-driver-options.conf"


def driver_packages(v):
    """Debian 12 packages that carry the driver version, for the scenario's switches."""
    packages = ["nvidia-open-kernel-dkms" if v["nvidia_driver_open"] else "nvidia-kernel-dkms"]
    if v["nvidia_driver_headless"]:
        packages += ["nvidia-smi", "libcuda1", "libnvidia-cfg1"]
    else:
        packages += ["nvidia-driver"]
    if v["nvidia_driver_open"]:
        packages.append("firmware-nvidia-gsp")
    return packages


def version_pattern(v):
    """Debian version strings the pin admits: "<version>-<revision>" or "<branch>.*"."""
    if v["nvidia_driver_version"]:
        return re.compile(re.escape(v["nvidia_driver_version"]) + r"-\S+$")
    return re.compile(re.escape(str(v["nvidia_driver_branch"])) + r"\.\S+$")


def policy(host, package):
    """(installed, candidate, priority of the candidate) from apt-cache policy."""
    out = host.check_output("apt-cache policy %s", package)
    installed = re.search(r"Installed: (\S+)", out).group(1)
    candidate = re.search(r"Candidate: (\S+)", out).group(1)
    priority = re.search(r"^\s+(?:\*\*\* )?" + re.escape(candidate) + r" (-?\d+)", out, re.M)
    return installed, candidate, int(priority.group(1)) if priority else None


def test_non_free_is_a_package_source(host, role_vars):
    source = host.file("/etc/apt/sources.list.d/nvidia-driver-debian.sources")
    assert source.exists
    assert "Components: contrib non-free non-free-firmware" in source.content_string
    # apt really indexes non-free: the driver is known with a non-free origin.
    assert "/non-free amd64 Packages" in host.check_output("apt-cache policy nvidia-smi")


def test_pin_makes_the_requested_build_the_candidate(host, role_vars):
    pattern = version_pattern(role_vars)
    for package in driver_packages(role_vars):
        _installed, candidate, priority = policy(host, package)
        assert pattern.match(candidate), (package, candidate)
        assert priority == 1001, (package, priority)


def test_pin_holds_back_newer_security_builds(host, role_vars):
    """bookworm-security offers 535.309.01: the exact pin must still choose the older build."""
    if not role_vars["nvidia_driver_version"]:
        pytest.skip("the scenario follows the branch")
    versions = host.check_output("apt-cache madison nvidia-smi")
    assert len(versions.splitlines()) > 1, "the archive no longer offers a second build"
    _installed, candidate, _priority = policy(host, "nvidia-smi")
    assert candidate.startswith(role_vars["nvidia_driver_version"] + "-")


def test_packages_installed_at_the_pinned_version_and_held(host, role_vars):
    pattern = version_pattern(role_vars)
    for package in driver_packages(role_vars):
        pkg = host.package(package)
        if not role_vars["nvidia_driver_install_packages"]:
            assert not pkg.is_installed, package
            continue
        assert pkg.is_installed, package
        assert pattern.match(pkg.version), (package, pkg.version)
        selection = host.check_output("dpkg --get-selections %s", package).split()
        expected = "hold" if role_vars["nvidia_driver_hold"] else "install"
        assert selection == [package, expected]


def test_apt_upgrade_leaves_the_driver_alone(host, role_vars):
    if not role_vars["nvidia_driver_install_packages"]:
        pytest.skip("nothing installed")
    for command in ("apt-get -s upgrade", "apt-get -s dist-upgrade"):
        planned = host.check_output(command)
        moved = [line for line in planned.splitlines() if re.match(r"^Inst (lib)?nvidia", line)]
        assert moved == [], (command, moved)


def test_role_package_set_resolves(host, role_vars):
    """Without installing: apt can install exactly the role's package set from its pin."""
    if role_vars["nvidia_driver_install_packages"]:
        pytest.skip("installed for real")
    packages = driver_packages(role_vars)
    placeholders = " ".join(["%s"] * len(packages))
    result = host.run(f"apt-get install -s --no-install-recommends {placeholders}", *packages)
    assert result.rc == 0, result.stderr
    pattern = version_pattern(role_vars)
    planned = dict(re.findall(r"^Inst (\S+) \((\S+)", result.stdout, re.M))
    for package in driver_packages(role_vars):
        assert pattern.match(planned[package]), (package, planned.get(package))


def test_dkms_built_the_module(host, role_vars):
    if not role_vars["nvidia_driver_install_packages"]:
        pytest.skip("nothing installed")
    status = host.check_output("dkms status")
    built = re.findall(r"^(nvidia-current(?:-open)?)/([\d.]+), (\S+), \S+: installed", status, re.M)
    assert built, status
    module = "nvidia-current-open" if role_vars["nvidia_driver_open"] else "nvidia-current"
    for name, version, kernel in built:
        assert name == module
        if role_vars["nvidia_driver_version"]:
            assert version == role_vars["nvidia_driver_version"]
        else:
            assert version.startswith(f"{role_vars['nvidia_driver_branch']}.")
        modinfo = host.check_output("modinfo --field version -k %s %s", kernel, module)
        assert modinfo == version


def test_module_options_are_what_modprobe_reads(host, role_vars):
    options = role_vars["nvidia_driver_module_options"]
    conf = host.file(OPTIONS_FILE)
    # Debian's own /etc/modprobe.d/nvidia.conf stays an alternatives link the role never writes.
    if host.file("/etc/modprobe.d/nvidia.conf").exists:
        assert host.file("/etc/modprobe.d/nvidia.conf").is_symlink
    if not options:
        assert not conf.exists
        return
    module = "nvidia_current_open" if role_vars["nvidia_driver_open"] else "nvidia_current"
    # modprobe reports module names with underscores (nvidia-current reads as nvidia_current).
    effective = host.check_output("modprobe --showconfig")
    lines = [line for line in effective.splitlines() if line.startswith(f"options {module} ")]
    given = {token for line in lines for token in line.split()[2:]}
    assert given == {f"{key}={value}" for key, value in options.items()}


def test_persistenced_dropin_is_loaded_and_enabled(host, role_vars):
    dropin = host.file(DROPIN)
    if not role_vars["nvidia_driver_manage_service"]:
        assert not dropin.exists
        return
    assert dropin.exists
    shown = host.check_output(
        "systemctl show nvidia-persistenced --property DropInPaths,Restart,NoNewPrivileges,"
        "ProtectSystem,UnitFileState,ActiveState"
    )
    properties = dict(line.split("=", 1) for line in shown.splitlines())
    assert DROPIN in properties["DropInPaths"].split()
    assert properties["Restart"] == "on-failure"
    assert properties["NoNewPrivileges"] == "yes"
    assert properties["ProtectSystem"] == "full"
    expected_state = "enabled" if role_vars["nvidia_driver_persistenced_enabled"] else "disabled"
    assert properties["UnitFileState"] == expected_state
    if role_vars["nvidia_driver_persistenced_state"] == "stopped":
        assert properties["ActiveState"] in {"inactive", "failed"}
    else:
        assert properties["ActiveState"] == "active"


def test_nvml_probe_reports_why_nvml_cannot_answer(host, role_vars):
    """The verify step's NVML probe, run where no GPU is: it must fail cleanly, naming why."""
    probe = Path(os.environ["MOLECULE_PROJECT_DIRECTORY"]) / "files" / "nvml_probe.py"
    encoded = base64.b64encode(probe.read_bytes()).decode()
    result = host.run(
        "echo %s | base64 -d > /tmp/nvml_probe.py && python3 /tmp/nvml_probe.py", encoded
    )
    assert result.rc == 1, result.stdout
    assert result.stdout == ""
    if role_vars["nvidia_driver_install_packages"]:
        # libnvidia-ml.so.1 is installed and loads; the kernel driver is what is missing.
        assert result.stderr.startswith("nvml_probe: nvmlInit_v2: "), result.stderr
        assert "Driver Not Loaded" in result.stderr
    else:
        assert result.stderr.startswith("nvml_probe: cannot load libnvidia-ml.so.1"), result.stderr
