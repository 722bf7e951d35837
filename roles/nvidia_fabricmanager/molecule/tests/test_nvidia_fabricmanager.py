"""Behaviour of the nvidia_fabricmanager role on a Debian 12 systemd container (both scenarios).

Installed from the TEST FIXTURE CUDA repository (molecule/fixture_repo): the packages carry
NVIDIA's names, the daemon is a stand-in that reads its configuration and sleeps. The expected
package names and versions are written out here, independent of the role's vars/.
"""

from __future__ import annotations

import re

JOURNAL_UNITS = ("nvidia-fabricmanager",)

CONFIG = "/usr/share/nvidia/nvswitch/fabricmanager.cfg"
PIN = "/etc/apt/preferences.d/nvidia-fabricmanager.pref"
# What the fixture repository offers (molecule/fixture_repo/packages/nvidia_fabricmanager.yml)
# and what each scenario must end up with.
EXPECTED = {
    "535": ("nvidia-fabricmanager-535", "535.261.03-1"),
    "580": ("nvidia-fabricmanager", "580.105.08-1"),
}


def expected(role_vars):
    return EXPECTED[str(role_vars["nvidia_fabricmanager_branch"])]


def test_repository_is_signed_by_the_checked_key(host, role_vars):
    source = host.file("/etc/apt/sources.list.d/nvidia-cuda.sources").content_string
    assert "URIs: file:///srv/sre-fixture-repo/cuda/repos/debian12/x86_64/" in source
    assert "Signed-By: /etc/apt/keyrings/nvidia-cuda.asc" in source
    fingerprint = host.file("/srv/sre-fixture-repo/FINGERPRINT").content_string.strip()
    keys = host.check_output("gpg --show-keys --with-colons /etc/apt/keyrings/nvidia-cuda.asc")
    assert f"fpr:::::::::{fingerprint}:" in keys
    # apt verified the InRelease signature with that key (no unauthenticated warning).
    update = host.run("apt-get update")
    assert update.rc == 0, update.stderr
    assert "NO_PUBKEY" not in update.stderr and "not signed" not in update.stderr


def test_installed_at_the_drivers_version_and_held(host, role_vars):
    package, version = expected(role_vars)
    pkg = host.package(package)
    assert pkg.is_installed
    assert pkg.version == version
    selection = host.check_output("dpkg --get-selections %s", package).split()
    assert selection == [package, "hold" if role_vars["nvidia_fabricmanager_hold"] else "install"]
    # The other naming is not installed alongside.
    other = (
        "nvidia-fabricmanager" if package != "nvidia-fabricmanager" else "nvidia-fabricmanager-535"
    )
    assert not host.package(other).is_installed


def test_pin_keeps_newer_builds_out(host, role_vars):
    package, version = expected(role_vars)
    assert host.file(PIN).contains(f"Package: {package}")
    policy = host.check_output("apt-cache policy %s", package)
    assert f"Candidate: {version}" in policy, policy
    # A newer build exists in the repository, and an upgrade would not take it.
    newer = [v for v in re.findall(r"^\s+(?:\*\*\* )?(\S+) -?\d+$", policy, re.M) if v != version]
    assert newer, policy
    planned = host.check_output("apt-get -s dist-upgrade")
    assert not re.search(r"^Inst nvidia-fabricmanager", planned, re.M), planned


def test_configuration_keys_are_set(host, role_vars):
    content = host.file(CONFIG).content_string
    for key, value in role_vars["nvidia_fabricmanager_config"].items():
        assert re.search(rf"^{key}={value}$", content, re.M), key
        assert len(re.findall(rf"^{key}=", content, re.M)) == 1, key
    if not role_vars["nvidia_fabricmanager_config"]:
        assert re.search(r"^LOG_LEVEL=4$", content, re.M)  # the package's own value


def test_service_state(host, role_vars):
    service = host.service("nvidia-fabricmanager")
    assert service.is_enabled == role_vars["nvidia_fabricmanager_service_enabled"]
    running = role_vars["nvidia_fabricmanager_service_state"] == "started"
    assert service.is_running == running
    if running:
        log = host.check_output("journalctl --no-pager -u nvidia-fabricmanager")
        _package, version = expected(role_vars)
        assert f"(TEST FIXTURE) {version.rsplit('-', 1)[0]} started with {CONFIG}" in log
