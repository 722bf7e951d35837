"""Behaviour of the container_runtime role on a Debian 12 systemd container (both scenarios).

containerd is Debian's real package, running under systemd in the container; its effective
configuration is read back with ``containerd config dump`` and parsed as TOML. The NVIDIA
Container Toolkit comes from the TEST FIXTURE libnvidia-container repository
(molecule/fixture_repo): NVIDIA's package names, ``nvidia-ctk`` a script that writes a CDI spec.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

JOURNAL_UNITS = ("containerd",)

PACKAGES = (
    "nvidia-container-toolkit",
    "nvidia-container-toolkit-base",
    "libnvidia-container-tools",
    "libnvidia-container1",
)
CRI = "io.containerd.grpc.v1.cri"
VERSIONS = Path(__file__).resolve().parents[4] / "sre_tools" / "data" / "versions.yml"


def toolkit_version(v):
    value = v["container_runtime_nvidia_container_toolkit_version"]
    if "{{" in value:  # the role's default: versions.yml
        data = yaml.safe_load(VERSIONS.read_text(encoding="utf-8"))
        value = data["container_runtime"]["nvidia_container_toolkit_version"]
    return value


def dump(host):
    return tomllib.loads(host.check_output("containerd config dump"))


def test_containerd_runs_under_systemd(host, role_vars):
    service = host.service("containerd")
    assert service.is_enabled
    assert service.is_running
    # The daemon answers on its socket (client and server versions).
    versions = host.check_output("ctr version")
    assert re.search(r"^Server:\s*\n\s+Version:\s+\S+", versions, re.M), versions


def test_runc_uses_the_systemd_cgroup_driver(host, role_vars):
    cri = dump(host)["plugins"][CRI]["containerd"]
    runc = cri["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is role_vars["container_runtime_systemd_cgroup"]


def test_nvidia_runtime_is_configured_through_the_dropin(host, role_vars):
    main = host.file("/etc/containerd/config.toml").content_string
    assert 'imports = ["/etc/containerd/conf.d/*.toml"]' in main
    assert "nvidia" not in re.sub(r"^#.*$", "", main, flags=re.M)  # only in the drop-in
    config = dump(host)
    assert "/etc/containerd/conf.d/50-nvidia.toml" in config["imports"]
    cri = config["plugins"][CRI]["containerd"]
    nvidia = cri["runtimes"]["nvidia"]
    assert nvidia["runtime_type"] == "io.containerd.runc.v2"
    assert nvidia["options"]["BinaryName"] == "/usr/bin/nvidia-container-runtime"
    assert nvidia["options"]["SystemdCgroup"] is role_vars["container_runtime_systemd_cgroup"]
    default = "nvidia" if role_vars["container_runtime_nvidia_default_runtime"] else "runc"
    assert cri["default_runtime_name"] == default


def test_running_daemon_loaded_the_nvidia_runtime(host, role_vars):
    """The CRI plugin of the running containerd reports the runtime (not just the files)."""
    info = host.run("ctr plugins ls")
    assert info.rc == 0, info.stderr
    # The daemon started after the last configuration change (the handler restarted it).
    started = host.check_output(
        "systemctl show containerd --property ActiveEnterTimestampMonotonic"
    )
    changed = host.check_output("stat -c %Y /etc/containerd/conf.d/50-nvidia.toml")
    uptime = float(host.check_output("cut -d' ' -f1 /proc/uptime"))
    now = int(host.check_output("date +%s"))
    started_at = now - uptime + int(started.split("=")[1]) / 1e6
    assert started_at >= int(changed) - 1


def test_toolkit_pinned_and_held(host, role_vars):
    version = toolkit_version(role_vars)
    expected = "hold" if role_vars["container_runtime_nvidia_hold"] else "install"
    for package in PACKAGES:
        pkg = host.package(package)
        assert pkg.is_installed, package
        assert pkg.version == f"{version}-1", (package, pkg.version)
        assert host.check_output("dpkg --get-selections %s", package).split() == [
            package,
            expected,
        ]
        policy = host.check_output("apt-cache policy %s", package)
        assert f"Candidate: {version}-1" in policy, policy
    planned = host.check_output("apt-get -s dist-upgrade")
    assert not re.search(r"^Inst (lib)?nvidia", planned, re.M), planned
    assert "TEST FIXTURE" in host.check_output("nvidia-ctk --version")


def test_repository_is_signed_by_the_checked_key(host, role_vars):
    fingerprint = host.file("/srv/sre-fixture-repo/FINGERPRINT").content_string.strip()
    keyring = "/etc/apt/keyrings/nvidia-container-toolkit.asc"
    assert f"fpr:::::::::{fingerprint}:" in host.check_output(
        "gpg --show-keys --with-colons %s", keyring
    )
    source = host.file("/etc/apt/sources.list.d/nvidia-container-toolkit.sources").content_string
    assert f"Signed-By: {keyring}" in source
    assert "URIs: file:///srv/sre-fixture-repo/libnvidia-container/stable/deb/amd64/" in source


def test_cdi_specification(host, role_vars):
    spec = host.file("/etc/cdi/nvidia.yaml")
    if not role_vars["container_runtime_cdi"]:
        assert not spec.exists
        return
    assert spec.exists
    data = yaml.safe_load(spec.content_string)
    assert data["kind"] == "nvidia.com/gpu"
    assert "all" in [device["name"] for device in data["devices"]]
    # What nvidia-ctk generates now is what the file holds (kept current, not just created).
    assert host.check_output("nvidia-ctk cdi generate") == spec.content_string.rstrip("\n")
    assert "nvidia.com/gpu=all" in host.check_output("nvidia-ctk cdi list").splitlines()
