"""Behaviour of the infiniband role on a Debian 12 systemd container (both scenarios).

The package names are Debian 12's and the fixture repository's, written out here as an oracle
independent of the role's vars/ files.
"""

from __future__ import annotations

import re

import pytest

JOURNAL_UNITS = ("nvidia-peermem-load", "openibd")

INBOX = ("rdma-core", "ibverbs-providers", "ibverbs-utils", "infiniband-diags", "perftest")


def test_stack_packages(host, role_vars):
    doca = host.package("doca-ofed")
    if role_vars["infiniband_stack"] == "inbox":
        for name in INBOX:
            assert host.package(name).is_installed, name
        assert not doca.is_installed
        return
    assert doca.is_installed
    assert doca.version == "2.10.0-1"  # 2.11.0-1 is offered; the pin holds it back
    assert host.check_output("dpkg --get-selections doca-ofed").split() == ["doca-ofed", "hold"]
    policy = host.check_output("apt-cache policy doca-ofed")
    assert re.search(r"Candidate: 2\.10\.0-1", policy), policy
    assert "2.11.0-1" in policy
    assert host.check_output("ofed_info -s").startswith("DOCA-OFED-2.10.0")


def test_inbox_tools_run(host, role_vars):
    if role_vars["infiniband_stack"] != "inbox":
        pytest.skip("DOCA-OFED fixture: no real tools")
    # No HCA (and no RDMA netlink) in a container: libibverbs loads and says there is no device.
    # It exits 255 then, which over SSH reads as the ssh client's own failure: the status is
    # printed by the remote shell instead.
    devinfo = host.run('ibv_devinfo 2>&1; echo "ibv_devinfo exit status $?"')
    said = devinfo.stdout + devinfo.stderr
    assert devinfo.rc == 0 and "ibv_devinfo exit status 0" not in said, said
    assert "No IB devices found" in said or "Failed to get IB devices list" in said, said
    # infiniband-diags and perftest run and identify themselves.
    ibstat = host.run("ibstat -V")
    assert "BUILD VERSION" in ibstat.stdout + ibstat.stderr, ibstat.stdout + ibstat.stderr
    perf = host.run("ib_write_bw --help")
    assert "Usage:" in perf.stdout + perf.stderr, perf.stdout + perf.stderr


def test_doca_source_is_signed_by_the_checked_key(host, role_vars):
    sources = host.file("/etc/apt/sources.list.d/nvidia-doca.sources")
    if role_vars["infiniband_stack"] != "doca_ofed":
        assert not sources.exists
        return
    text = sources.content_string
    assert "Signed-By: /etc/apt/keyrings/nvidia-doca.asc" in text
    assert "URIs: file:///srv/sre-fixture-repo/doca/2.10.0/debian12/x86_64/" in text
    fingerprint = host.check_output("cat /srv/sre-fixture-repo/FINGERPRINT").strip()
    keys = host.check_output("gpg --show-keys --with-colons /etc/apt/keyrings/nvidia-doca.asc")
    assert f"fpr:::::::::{fingerprint}:" in keys
    # apt accepts the repository's signature (no "NO_PUBKEY"/unsigned warnings).
    update = host.run(
        "apt-get update -o Dir::Etc::sourcelist=%s -o Dir::Etc::sourceparts=-", sources.path
    )
    assert update.rc == 0 and "NO_PUBKEY" not in update.stderr, update.stderr


def test_ipoib_configuration(host, role_vars):
    for iface in role_vars["infiniband_ipoib_interfaces"]:
        mode = iface.get("mode", "datagram")
        if role_vars["infiniband_ipoib_backend"] == "networkd":
            conf = host.file(f"/etc/systemd/network/50-ipoib-{iface['name']}.network")
            lines = conf.content_string.splitlines()
            assert f"Name={iface['name']}" in lines
            assert f"Address={iface['address']}" in lines
            assert f"MTUBytes={iface['mtu']}" in lines
            assert f"Mode={mode}" in lines
        else:
            conf = host.file(f"/etc/network/interfaces.d/{iface['name']}")
            text = conf.content_string
            assert f"auto {iface['name']}" in text
            assert f"address {iface['address']}" in text
            assert f"mtu {iface['mtu']}" in text
            assert f"echo {mode} > /sys/class/net/{iface['name']}/mode" in text


def test_peermem_unit_is_ordered_after_the_rdma_stack(host, role_vars):
    unit = "nvidia-peermem-load.service"
    if not role_vars["infiniband_peermem"]:
        assert not host.file(f"/etc/systemd/system/{unit}").exists
        return
    shown = host.check_output("systemctl show %s --property After,Wants,UnitFileState", unit)
    props = dict(line.split("=", 1) for line in shown.splitlines())
    rdma = (
        "openibd.service"
        if role_vars["infiniband_stack"] == "doca_ofed"
        else ("rdma-load-modules@infiniband.service")
    )
    assert rdma in props["After"].split()
    assert rdma in props["Wants"].split()
    assert props["UnitFileState"] == "enabled"
    # The stack's unit exists: rdma-core's template or the fixture's openibd.
    listed = host.check_output(
        "systemctl list-unit-files --no-legend %s", rdma.replace("infiniband", "")
    )
    assert listed, rdma
