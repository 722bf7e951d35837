"""Inventory host entries to transports: each field validated, one line naming host and field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.transport import LocalTransport, SshTarget, ssh_target, transport_for_host
from sre_tools.transport.ssh import SshTransport

GOOD: dict[str, Any] = {
    "ansible_host": "10.0.0.17",
    "ansible_port": 2222,
    "ansible_user": "root",
    "ansible_ssh_private_key_file": "/keys/id_ed25519",
    "sre_known_hosts_file": "/keys/known_hosts",
}


def test_a_good_entry() -> None:
    assert ssh_target("n17", GOOD) == SshTarget(
        "n17", "10.0.0.17", 2222, "root", Path("/keys/id_ed25519"), Path("/keys/known_hosts")
    )


def test_defaults_host_from_name_and_port_22() -> None:
    entry = {k: v for k, v in GOOD.items() if k not in ("ansible_host", "ansible_port")}
    target = ssh_target("n17.example.org", entry)
    assert (target.host, target.port) == ("n17.example.org", 22)


def test_port_from_an_ini_inventory_string() -> None:
    assert ssh_target("n17", {**GOOD, "ansible_port": "2200"}).port == 2200


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("-o UserKnownHostsFile=/k/kh -o StrictHostKeyChecking=yes", "/k/kh"),
        ("-oUserKnownHostsFile=/k/kh2", "/k/kh2"),
        ("-o 'UserKnownHostsFile=/k/with space'", "/k/with"),
    ],
    ids=["separate", "joined", "first-of-several-files"],
)
def test_known_hosts_from_ansible_ssh_common_args(args: str, expected: str) -> None:
    entry = {k: v for k, v in GOOD.items() if k != "sre_known_hosts_file"}
    target = ssh_target("n17", {**entry, "ansible_ssh_common_args": args})
    assert target.known_hosts == Path(expected)


def test_known_hosts_argument_wins() -> None:
    assert ssh_target("n17", GOOD, known_hosts="/other").known_hosts == Path("/other")


BAD = [
    ("ansible_host", "-oProxyCommand=touch x", "must not start with '-'"),
    ("ansible_host", "", "must be a host name or address"),
    ("ansible_host", 17, "must be a host name or address"),
    ("ansible_host", "n17;reboot", "not a host name or address"),
    ("ansible_host", "n 17", "not a host name or address"),
    ("ansible_port", 0, "must be in 1..65535, got 0"),
    ("ansible_port", 65536, "must be in 1..65535, got 65536"),
    ("ansible_port", "22x", "must be an integer"),
    ("ansible_port", True, "must be an integer"),
    ("ansible_user", "Root", "must match"),
    ("ansible_user", "-oProxyCommand", "must match"),
    ("ansible_user", "root@n17", "must match"),
    ("ansible_user", None, "is required"),
    ("ansible_ssh_private_key_file", None, "is required"),
    ("ansible_ssh_private_key_file", "", "must be a file path"),
    ("ansible_ssh_private_key_file", "/k/a\nb", "without NUL or newline"),
    ("sre_known_hosts_file", None, "no known_hosts file"),
    ("sre_known_hosts_file", "/dev/null", "would not be verified"),
    ("ansible_password", "hunter2", "password authentication is not supported"),
    ("ansible_ssh_pass", "hunter2", "password authentication is not supported"),
]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    BAD,
    ids=[f"{f}-{i}" for i, (f, _, _) in enumerate(BAD)],
)
def test_bad_fields_are_named(field: str, value: Any, message: str) -> None:
    entry = {**GOOD, field: value}
    if value is None:
        entry.pop(field)
    with pytest.raises(ValidationError) as info:
        ssh_target("n17", entry)
    text = str(info.value)
    assert text.startswith(f"inventory host 'n17': {field}: "), text
    assert message in text
    assert "\n" not in text
    assert "hunter2" not in text


def test_transport_for_host_picks_the_connection(tmp_path: Path) -> None:
    assert isinstance(transport_for_host("n17", GOOD), SshTransport)
    assert isinstance(transport_for_host("n17", {"ansible_connection": "local"}), LocalTransport)
    with pytest.raises(ValidationError, match=r"n17'.*ansible_connection: must be ssh"):
        transport_for_host("n17", {**GOOD, "ansible_connection": "docker"})


def test_ssh_command_line_quotes_every_argument() -> None:
    ssh = SshTransport(ssh_target("n17", GOOD), kill_remote=False)
    assert ssh.command_line(["echo", "$(touch x)", "a b"], 5) == "echo '$(touch x)' 'a b'"
    ssh = SshTransport(ssh_target("n17", GOOD))
    assert ssh.command_line(["uname", "-n"], 5) == "timeout --kill-after 2 7 uname -n"
