"""The SSH transport against a real sshd: one podman node (tests/helpers/podman_nodes.py).

The node's host key and the client key are made here and known_hosts is written from them, so
every connection verifies the host key. The transport comes from the inventory that
``PodmanNodes.inventory`` writes for Ansible (the same ``ansible_*`` variables, known_hosts from
``UserKnownHostsFile`` in ``ansible_ssh_common_args``). Then the refusals: an unknown host key,
a changed one and a client key the node does not accept.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.transport import (
    AuthError,
    HostKeyError,
    Transport,
    TransportTimeout,
    transport_for_host,
)
from tests.helpers.podman_nodes import PodmanNodes, node_image

pytestmark = pytest.mark.molecule  # podman, runc, root: left out of the default run


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanNodes]:
    for tool in ("podman", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install podman runc openssh-client)")
    work = tmp_path_factory.mktemp("transport-ssh")
    with PodmanNodes(1, work / "keys", prefix="sre-transport-", image=node_image()) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def hostvars(fleet: PodmanNodes, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    inv = yaml.safe_load(fleet.inventory(tmp_path_factory.mktemp("inv") / "hosts.yml").read_text())
    return {**inv["all"]["vars"], **inv["all"]["children"]["gpu_nodes"]["hosts"]["node1"]}


def ssh(hostvars: dict[str, Any], **options: Any) -> Transport:
    return transport_for_host("node1", hostvars, **options)


def keygen(path: Path) -> str:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True, timeout=30
    )
    return " ".join(path.with_name(path.name + ".pub").read_text().split()[:2])


def test_uname_over_ssh(hostvars: dict[str, Any], fleet: PodmanNodes) -> None:
    before = fleet.known_hosts.read_text()
    with ssh(hostvars) as node:
        res = node.run(["uname", "-n"], timeout=20)
        assert (res.rc, res.stdout, res.stderr) == (0, b"node1\n", b"")
        assert node.run(["sh", "-c", "exit 7"], timeout=20).rc == 7
        assert node.run(["cat"], timeout=20, input=b"to stdin").stdout == b"to stdin"
    assert fleet.known_hosts.read_text() == before


def test_arguments_reach_the_node_literally(hostvars: dict[str, Any]) -> None:
    with ssh(hostvars) as node:
        arg = "$(touch /tmp/sre-shell-ran); `touch /tmp/sre-shell-ran` 'q\" *"
        assert node.run(["echo", arg], timeout=20).stdout == arg.encode() + b"\n"
        assert node.run(["test", "-e", "/tmp/sre-shell-ran"], timeout=20).rc == 1


def test_write_and_read_file(hostvars: dict[str, Any]) -> None:
    with ssh(hostvars) as node:
        node.write_file("/tmp/sre-transport.txt", b"first", mode=0o600)
        node.write_file("/tmp/sre-transport.txt", b"drill state\n", mode=0o640)
        assert node.read_file("/tmp/sre-transport.txt") == b"drill state\n"
        mode = node.run(["stat", "-c", "%a", "/tmp/sre-transport.txt"], timeout=20).stdout
        assert mode == b"640\n"
        left = node.run(["find", "/tmp", "-name", ".sre-transport.txt.*"], timeout=20).stdout
        assert left == b""


def test_output_is_capped(hostvars: dict[str, Any]) -> None:
    with ssh(hostvars, max_output=1000) as node:
        res = node.run(["head", "-c", "3000000", "/dev/zero"], timeout=30)
    assert res.rc == 0 and res.stdout == b"\0" * 1000 and res.stdout_truncated


WRITE_THEN_READ = (
    "import sys\n"
    "sys.stdout.write('x' * 3_000_000)\n"
    "sys.stdout.flush()\n"
    "print(len(sys.stdin.buffer.read()), file=sys.stderr)\n"
)


def test_large_input_to_a_command_that_writes_first(hostvars: dict[str, Any]) -> None:
    """Neither side blocks: stdin is fed while the output is read."""
    with ssh(hostvars, max_output=100) as node:
        res = node.run(["python3", "-c", WRITE_THEN_READ], timeout=30, input=b"i" * 3_000_000)
    assert (res.rc, res.stderr, res.stdout_truncated) == (0, b"3000000\n", True)


COUNT_SLEEPS = (
    "import os\n"
    "n = 0\n"
    "for p in filter(str.isdigit, os.listdir('/proc')):\n"
    "    try:\n"
    "        n += open(f'/proc/{p}/cmdline', 'rb').read() == b'sleep\\x00417\\x00'\n"
    "    except OSError:\n"
    "        pass\n"
    "print(n)\n"
)


def test_command_timeout(hostvars: dict[str, Any]) -> None:
    with ssh(hostvars) as node:
        started = time.monotonic()
        with pytest.raises(TransportTimeout, match=r"root@127\.0\.0\.1:\d+: sleep did not finish"):
            node.run(["sleep", "417"], timeout=2)
        assert time.monotonic() - started < 6
        # The node's `timeout` stops it too (REMOTE_GRACE seconds after ours).
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            left = node.run(["python3", "-c", COUNT_SLEEPS], timeout=20).stdout
            if left == b"0\n":
                break
            time.sleep(0.5)
        assert left == b"0\n"
        assert node.run(["true"], timeout=20).rc == 0  # the connection is still usable


def refused(hostvars: dict[str, Any], **override: Any) -> str:
    with pytest.raises((HostKeyError, AuthError)) as info, ssh({**hostvars, **override}) as node:
        node.run(["true"], timeout=20)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_unknown_host_key_is_refused(hostvars: dict[str, Any], tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    port = hostvars["ansible_port"]
    text = refused(hostvars, sre_known_hosts_file=str(empty))
    assert f"host key for [127.0.0.1]:{port} is not in {empty} (unknown host" in text
    assert empty.read_text() == ""  # nothing learnt on first use


def test_changed_host_key_is_refused(hostvars: dict[str, Any], tmp_path: Path) -> None:
    port = hostvars["ansible_port"]
    other = tmp_path / "known_hosts"
    line = f"[127.0.0.1]:{port} {keygen(tmp_path / 'other_host_key')}\n"
    other.write_text(line)
    text = refused(hostvars, sre_known_hosts_file=str(other))
    assert f"host key for [127.0.0.1]:{port} does not match {other} (changed key" in text
    assert other.read_text() == line


def test_wrong_client_key_is_refused(hostvars: dict[str, Any], tmp_path: Path) -> None:
    keygen(tmp_path / "stranger")
    text = refused(hostvars, ansible_ssh_private_key_file=str(tmp_path / "stranger"))
    assert text.endswith(f"authentication as root with key {tmp_path / 'stranger'} refused")
