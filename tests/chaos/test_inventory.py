"""Drill targets from an inventory: merged variables, ``--limit``, each node's transport."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.chaos.inventory import (
    inventory_transports,
    limit_hosts,
    parse_inventory,
    recover_transports,
)
from sre_tools.exceptions import ValidationError
from sre_tools.transport import LocalTransport

INVENTORY: dict[str, Any] = {
    "all": {
        "vars": {"ansible_user": "root", "ansible_port": 2200, "site": "all"},
        "children": {
            "gpu_nodes": {
                "vars": {"site": "gpu", "ansible_ssh_private_key_file": "/keys/id"},
                "children": {
                    "chaos_targets": {
                        "vars": {"site": "chaos", "sre_known_hosts_file": "/keys/known"},
                        "hosts": {
                            "n1": {"ansible_host": "10.0.0.1"},
                            "n2": {"ansible_connection": "local"},
                            "n3": {"ansible_port": 2203},
                        },
                    },
                    "h100": {"hosts": {"n1": {}, "n3": {}}},
                },
            },
            "login": {"hosts": {"login-01": {"site": "host"}}},
        },
    }
}


def write(tmp_path: Path, data: Any, name: str = "hosts.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_variables_merge_like_ansible() -> None:
    inv = parse_inventory(INVENTORY, "hosts.yml")
    # all.vars < gpu_nodes < chaos_targets (a child) < the host's own
    assert inv.hostvars["n1"]["site"] == "chaos"
    assert inv.hostvars["n1"]["ansible_port"] == 2200
    assert inv.hostvars["n3"]["ansible_port"] == 2203
    assert inv.hostvars["n1"]["ansible_ssh_private_key_file"] == "/keys/id"
    assert inv.hostvars["login-01"]["site"] == "host"
    assert "ansible_ssh_private_key_file" not in inv.hostvars["login-01"]
    assert set(inv.groups["gpu_nodes"]) == {"n1", "n2", "n3"}
    assert inv.groups["h100"] == ("n1", "n3")


def test_groups_at_the_same_depth_merge_by_name() -> None:
    data = {
        "all": {
            "children": {
                "b_group": {"vars": {"x": "b"}, "hosts": {"n1": None}},
                "a_group": {"vars": {"x": "a"}, "hosts": {"n1": None}},
            }
        }
    }
    assert parse_inventory(data, "inv").hostvars["n1"]["x"] == "b"


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        pytest.param("n1", ("n1",), id="name"),
        pytest.param("n1,n3", ("n1", "n3"), id="names"),
        pytest.param("n[23]", ("n2", "n3"), id="glob-class"),
        pytest.param("n[1-2]", ("n1", "n2"), id="glob-range"),
        pytest.param("n*:!n2", ("n1", "n3"), id="glob-exclude"),
        pytest.param("h100", ("n1", "n3"), id="group"),
        pytest.param("gpu_nodes:&h100:!n3", ("n1",), id="group-intersect-exclude"),
        pytest.param("!n1", ("n2", "n3"), id="exclude-only"),
        pytest.param("all", ("n1", "n2", "n3"), id="all"),
    ],
)
def test_limit(pattern: str, expected: tuple[str, ...]) -> None:
    inv = parse_inventory(INVENTORY, "hosts.yml")
    assert limit_hosts(("n1", "n2", "n3"), pattern, inv) == expected


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        pytest.param("~n[0-9]+", "unsupported pattern '~n[0-9]+'", id="regex"),
        pytest.param("@retry.txt", "unsupported pattern", id="file"),
        pytest.param("gpu_nodes[0:1]", "unsupported pattern", id="slice"),
        pytest.param("login-01", "matches none of the candidates", id="no-match"),
        pytest.param(" , ", "is empty", id="empty"),
    ],
)
def test_limit_refused(pattern: str, message: str) -> None:
    inv = parse_inventory(INVENTORY, "hosts.yml")
    with pytest.raises(ValidationError, match="--limit") as err:
        limit_hosts(("n1", "n2", "n3"), pattern, inv)
    assert message in str(err.value)


def test_transports_from_the_inventory(tmp_path: Path) -> None:
    allowlist, factory = inventory_transports(str(write(tmp_path, INVENTORY)))
    assert allowlist == ("n1", "n2", "n3")
    assert factory.check(allowlist) == {
        "n1": "root@10.0.0.1:2200",
        "n2": "local",
        "n3": "root@n3:2203",
    }
    assert isinstance(factory("n2"), LocalTransport)
    ssh = factory("n1")  # built, not connected
    assert ssh.target == "root@10.0.0.1:2200"
    assert type(ssh).__name__ == "SshTransport"
    _, forced = inventory_transports(str(write(tmp_path, INVENTORY)), known_hosts="/dev/null")
    with pytest.raises(ValidationError, match="known_hosts is /dev/null"):
        forced.check(["n1"])


def test_config_file_allowlist_is_local(tmp_path: Path) -> None:
    path = write(tmp_path, {"chaos_targets": ["a", "b"]}, "drills.yml")
    allowlist, factory = inventory_transports(str(path))
    assert allowlist == ("a", "b")
    assert factory.check(allowlist) == {"a": "local", "b": "local"}
    assert isinstance(factory("a"), LocalTransport)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        pytest.param({"ansible_port": 0}, "ansible_port: must be in 1..65535", id="port"),
        pytest.param({"ansible_user": None}, "ansible_user: is required", id="user"),
        pytest.param({"ansible_host": "-oProxyCommand=x"}, "ansible_host: must not", id="host"),
        pytest.param({"sre_known_hosts_file": None}, "sre_known_hosts_file: no known", id="kh"),
        pytest.param({"ansible_password": "s3cret"}, "ansible_password: password", id="pw"),
        pytest.param({"ansible_connection": "docker"}, "ansible_connection: must be", id="conn"),
    ],
)
def test_bad_host_fields_name_host_and_field(
    tmp_path: Path, override: dict[str, Any], field: str
) -> None:
    data = yaml.safe_load(yaml.safe_dump(INVENTORY))
    data["all"]["children"]["gpu_nodes"]["children"]["chaos_targets"]["hosts"]["n3"] = override
    _, factory = inventory_transports(str(write(tmp_path, data)))
    with pytest.raises(ValidationError) as err:
        factory.check(["n1", "n2", "n3"])
    assert str(err.value).startswith("inventory host 'n3': ")
    assert field in str(err.value)
    assert "s3cret" not in str(err.value)


def test_recover_reaches_the_nodes_the_journal_names(tmp_path: Path) -> None:
    path = write(tmp_path, INVENTORY)
    events: list[dict[str, Any]] = [
        {"event": "run-start", "inventory": str(path), "transports": {"n1": "root@10.0.0.1:2200"}},
        {"event": "targets-resolved", "nodes": ["n1"]},
    ]
    assert recover_transports(events, None).check(["n1"]) == {"n1": "root@10.0.0.1:2200"}
    moved = yaml.safe_load(yaml.safe_dump(INVENTORY))
    moved["all"]["children"]["gpu_nodes"]["children"]["chaos_targets"]["hosts"]["n1"] = {
        "ansible_host": "10.9.9.9"
    }
    with pytest.raises(ValidationError, match=re.escape("n1 was reached as root@10.0.0.1:2200")):
        recover_transports(events, str(write(tmp_path, moved, "moved.yml")))
    events[0]["inventory"] = None
    with pytest.raises(ValidationError, match="--inventory: the run reached n1 over SSH"):
        recover_transports(events, None)
    unknown = [{"event": "run-start", "inventory": None, "transports": None}, events[1]]
    with pytest.raises(ValidationError, match="does not say how the run reached its nodes"):
        recover_transports(unknown, None)
    assert recover_transports(unknown, str(path)).check(["n1"]) == {"n1": "root@10.0.0.1:2200"}
    # A journal from before transports were journaled: local, as it ran.
    old = [{"event": "run-start"}, {"event": "targets-resolved", "nodes": ["n1"]}]
    assert recover_transports(old, None).check(["n1"]) == {"n1": "local"}
