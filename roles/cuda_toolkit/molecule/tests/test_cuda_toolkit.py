"""Behaviour of the cuda_toolkit role on a Debian 12 systemd container (both scenarios).

``default`` installs from the TEST FIXTURE CUDA repository (molecule/fixture_repo): packages
with NVIDIA's names whose nvcc is a script that prints its release, and whose cudart registers
the /usr/local/cuda alternatives as NVIDIA's packages do. ``alternative`` uses Debian's
nvidia-cuda-toolkit without installing it.
"""

from __future__ import annotations

import re

import pytest

JOURNAL_UNITS: tuple[str, ...] = ()
PROFILE = "/etc/profile.d/cuda.sh"


def default_version(v):
    return v.get("cuda_toolkit_default_version") or v["cuda_toolkit_versions"][0]


def cuda_repo(v):
    return v["cuda_toolkit_source"] == "cuda_repo"


def test_every_version_is_installed(host, role_vars):
    if not cuda_repo(role_vars):
        pytest.skip("distribution source: see test_distro_toolkit_resolves")
    for version in role_vars["cuda_toolkit_versions"]:
        package = "cuda-toolkit-" + version.replace(".", "-")
        assert host.package(package).is_installed, package
        nvcc = host.check_output("/usr/local/cuda-%s/bin/nvcc --version", version)
        assert f"release {version}," in nvcc


def test_alternatives_point_at_the_default_version(host, role_vars):
    if not cuda_repo(role_vars):
        pytest.skip("distribution source: no alternatives")
    version = default_version(role_vars)
    major = version.split(".")[0]
    assert host.file("/usr/local/cuda").linked_to == f"/usr/local/cuda-{version}"
    assert host.file(f"/usr/local/cuda-{major}").linked_to == f"/usr/local/cuda-{version}"
    shown = host.check_output("update-alternatives --query cuda")
    assert "Status: manual" in shown, shown
    # Every installed version is registered; the default is chosen although another may have a
    # higher priority (12.8 registers 128, 12.6 registers 126).
    for other in role_vars["cuda_toolkit_versions"]:
        assert f"Alternative: /usr/local/cuda-{other}" in shown


def test_login_shell_finds_the_default_nvcc(host, role_vars):
    if not cuda_repo(role_vars):
        assert not host.file(PROFILE).exists
        return
    version = default_version(role_vars)
    out = host.check_output(
        "bash -lc 'command -v nvcc; nvcc --version; echo $CUDA_HOME; echo $LD_LIBRARY_PATH'"
    )
    lines = out.splitlines()
    assert lines[0] == "/usr/local/cuda/bin/nvcc"
    assert f"release {version}," in out
    assert "/usr/local/cuda" in lines
    assert lines[-1].split(":")[0] == "/usr/local/cuda/lib64"
    # Sourcing the profile twice does not grow PATH.
    twice = host.check_output(f"bash -c '. {PROFILE}; . {PROFILE}; echo $PATH'")
    assert twice.split(":").count("/usr/local/cuda/bin") == 1


def test_repository_is_signed_by_the_checked_key(host, role_vars):
    if not cuda_repo(role_vars):
        pytest.skip("distribution source")
    fingerprint = host.file("/srv/sre-fixture-repo/FINGERPRINT").content_string.strip()
    keys = host.check_output("gpg --show-keys --with-colons /etc/apt/keyrings/nvidia-cuda.asc")
    assert f"fpr:::::::::{fingerprint}:" in keys
    source = host.file("/etc/apt/sources.list.d/nvidia-cuda.sources").content_string
    assert "Signed-By: /etc/apt/keyrings/nvidia-cuda.asc" in source


def test_distro_toolkit_resolves(host, role_vars):
    if cuda_repo(role_vars):
        pytest.skip("NVIDIA repository source")
    source = host.file("/etc/apt/sources.list.d/cuda-toolkit-debian.sources").content_string
    assert "Components: contrib non-free non-free-firmware" in source
    result = host.run("apt-get install -s --no-install-recommends nvidia-cuda-toolkit")
    assert result.rc == 0, result.stderr
    planned = dict(re.findall(r"^Inst (\S+) \((\S+)", result.stdout, re.M))
    assert planned["nvidia-cuda-toolkit"].startswith("11.8."), planned.get("nvidia-cuda-toolkit")
    assert not host.package("nvidia-cuda-toolkit").is_installed
    assert not host.file("/usr/local/cuda").exists
