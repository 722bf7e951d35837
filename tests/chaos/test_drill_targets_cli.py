"""``sre drill run`` on inventory targets: --limit, each node's transport, unreachable nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from sre_tools.chaos.journal import read_events
from sre_tools.chaos.model import parse_experiment
from sre_tools.chaos.runner import Runner, recover
from sre_tools.chaos.safety import Safety, Targets
from sre_tools.transport import ConnectError, HostKeyError, LocalTransport, Result, Transport
from tests.chaos.conftest import DrillEnv, experiment, unacknowledged_lines

Sre = Any


def ssh_inventory(env: DrillEnv, **n2: Any) -> Path:
    """n1 local; n2 over SSH to a port where nothing listens (with ``n2`` overriding fields)."""
    known = env.root / "known_hosts"
    known.write_text("")
    key = env.root / "id_ed25519"
    private = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    key.write_bytes(private)
    key.chmod(0o600)
    data = {
        "all": {
            "vars": {"ansible_user": "root", "ansible_ssh_private_key_file": str(key)},
            "children": {
                "chaos_targets": {
                    "vars": {"sre_known_hosts_file": str(known)},
                    "hosts": {
                        "n1": {"ansible_connection": "local"},
                        "n2": {"ansible_host": "127.0.0.1", "ansible_port": 1, **n2},
                    },
                }
            },
        }
    }
    path = env.root / "ssh-hosts.yml"
    path.write_text(yaml.safe_dump(data))
    return path


def drill_file(env: DrillEnv, **blast: Any) -> Path:
    doc = experiment(env.kernel_log)
    if blast:
        doc["x-sre"]["blast_radius"] = blast
    return env.write(doc)


def test_limit_narrows_the_candidates_before_the_blast_radius(
    drill_env: DrillEnv, sre: Sre
) -> None:
    path = drill_file(drill_env, mode="ALL", max_nodes=2)
    args = ("drill", "run", str(path), "--inventory", str(drill_env.inventory), "--json")
    code, out, err = sre(*args, "--limit", "n*:!n2")
    assert code == 0, err
    assert json.loads(out)["targets"] == ["n1", "n3"]
    code, _, err = sre(*args, "--limit", "n[1-3]")  # three candidates, cap 2
    assert code == 2 and "above the blast radius cap of 2" in err
    code, _, err = sre(*args, "--limit", "login-01")
    assert code == 2 and err.count("\n") == 1
    assert "--limit: 'login-01' matches none of the candidates (n1, n2, n3)" in err


def test_local_nodes_of_the_inventory_run_and_journal_how_they_were_reached(
    drill_env: DrillEnv, sre: Sre
) -> None:
    inventory = ssh_inventory(drill_env)
    code, out, err = sre(
        "drill", "run", str(drill_file(drill_env)), "--inventory", str(inventory),
        "--targets", "n1", "--execute", "--json",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    start = read_events(Path(data["journal"]))[0]
    assert start["transports"] == {"n1": "local"}
    assert start["inventory"] == str(inventory.resolve())
    assert "root" not in json.dumps(start["transports"])  # no user, key or password journaled


def test_bad_host_field_is_exit_2_naming_host_and_field(drill_env: DrillEnv, sre: Sre) -> None:
    inventory = ssh_inventory(drill_env, ansible_port=70000)
    code, _, err = sre(
        "drill", "run", str(drill_file(drill_env)), "--inventory", str(inventory),
        "--targets", "n2", "--execute",
    )  # fmt: skip
    assert code == 2
    assert err == "sre: error: inventory host 'n2': ansible_port: must be in 1..65535, got 70000\n"
    assert not drill_env.journals.exists()


def test_no_verified_host_key_is_exit_2(drill_env: DrillEnv, sre: Sre) -> None:
    known = drill_env.root / "k"
    inventory = ssh_inventory(drill_env, ansible_ssh_common_args="-o UserKnownHostsFile=/dev/null")
    data = yaml.safe_load(inventory.read_text())
    del data["all"]["children"]["chaos_targets"]["vars"]["sre_known_hosts_file"]
    inventory.write_text(yaml.safe_dump(data))
    code, _, err = sre(
        "drill", "run", str(drill_file(drill_env)), "--inventory", str(inventory),
        "--targets", "n2",
    )  # fmt: skip
    assert code == 2 and err.count("\n") == 1
    assert "inventory host 'n2': ansible_ssh_common_args: known_hosts is /dev/null" in err
    code, _, err = sre(
        "drill", "run", str(drill_file(drill_env)), "--inventory", str(inventory),
        "--targets", "n2", "--known-hosts", str(known),
    )  # fmt: skip
    assert code == 0, err  # a dry run: validated, never connected


def test_unreachable_node_is_one_line_exit_1_and_nothing_is_done(
    drill_env: DrillEnv, sre: Sre
) -> None:
    inventory = ssh_inventory(drill_env)
    code, out, err = sre(
        "drill", "run", str(drill_file(drill_env, mode="ALL", max_nodes=2)),
        "--inventory", str(inventory), "--execute",
    )  # fmt: skip
    assert code == 1, out
    assert err.count("\n") == 1
    assert err.startswith("sre: error: root@127.0.0.1:1: cannot connect: ")
    assert "Traceback" not in err
    assert not drill_env.kernel_log.exists()  # n1 was reachable, and still untouched
    assert not list(drill_env.journals.glob("*.jsonl"))
    safety = Safety(drill_env.store)
    try:
        assert safety.holder() is None
    finally:
        safety.close()


class GoesAway:
    """A local transport whose node stops answering once ``down`` is set."""

    def __init__(self) -> None:
        self.local = LocalTransport()
        self.down = False
        self.target = "root@n1:22"
        self.calls: list[list[str]] = []

    def run(self, argv: Any, timeout: float, input: bytes | None = None) -> Result:
        self.calls.append(list(argv))
        if self.down:
            raise ConnectError("no answer within 10s", target=self.target)
        return self.local.run(argv, timeout, input)

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.local.write_file(path, data, mode)

    def read_file(self, path: str, max_bytes: int = 1 << 20) -> bytes:
        return self.local.read_file(path, max_bytes)

    def close(self) -> None:
        pass

    def __enter__(self) -> GoesAway:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_node_lost_after_the_fault_is_an_error_and_rollbacks_are_tried(
    drill_env: DrillEnv,
) -> None:
    node = GoesAway()
    assert isinstance(node, Transport)

    def on_event(record: dict[str, Any]) -> None:
        if record["event"] == "action-end":
            node.down = True

    safety = Safety(drill_env.store)
    try:
        result = Runner(
            parse_experiment(experiment(drill_env.kernel_log, within=0.2)),
            Targets(("n1",), ("n1",)),
            safety=safety,
            journal_dir=drill_env.journals,
            execute=True,
            transport_factory=lambda name: node,
            install_signals=False,
            poll_interval=0.02,
            on_event=on_event,
        ).run()
    finally:
        safety.close()
    assert result.status == "error" and result.rollbacks_ok is False
    assert "unreachable: root@n1:22: no answer within 10s" in result.details
    events = read_events(result.journal)
    rollback = [e for e in events if e["event"] == "rollback-end"]
    assert rollback and rollback[0]["status"] == "failed"
    assert "ConnectError" in rollback[0]["error"]
    assert node.calls[0] == ["true"]  # reached before anything was done


class UnknownHostKey(GoesAway):
    def run(self, argv: Any, timeout: float, input: bytes | None = None) -> Result:
        raise HostKeyError(
            "host key for [127.0.0.1]:2222 is not in /etc/sre/known_hosts", target=self.target
        )


def test_unknown_host_key_refuses_before_anything_is_written(drill_env: DrillEnv) -> None:
    safety = Safety(drill_env.store)
    runner = Runner(
        parse_experiment(experiment(drill_env.kernel_log)),
        Targets(("n1",), ("n1",)),
        safety=safety,
        journal_dir=drill_env.journals,
        execute=True,
        transport_factory=lambda name: UnknownHostKey(),
        install_signals=False,
    )
    try:
        with pytest.raises(HostKeyError, match=r"^root@n1:22: host key for \[127.0.0.1\]:2222"):
            runner.run()
        assert safety.holder() is None
    finally:
        safety.close()
    assert not drill_env.journals.exists()


def test_recover_with_an_unreachable_node_leaves_the_journal_and_the_lock(
    drill_env: DrillEnv,
) -> None:
    safety = Safety(drill_env.store)
    try:
        done = Runner(
            parse_experiment(experiment(drill_env.kernel_log)),
            Targets(("n1",), ("n1",)),
            safety=safety,
            journal_dir=drill_env.journals,
            execute=True,
            install_signals=False,
        ).run()
        # As if killed after the fault: the journal stops before the rollbacks, the lock held.
        lines = done.journal.read_text().splitlines(keepends=True)
        cut = next(i for i, line in enumerate(lines) if '"rollback-start"' in line)
        done.journal.write_text("".join(lines[:cut]))
        line = f"NVRM: Xid (PCI:0000:00:00.0): 79 [sre-drill run={done.run_id}]\n"
        drill_env.kernel_log.write_text(line)
        safety.store.conn.execute(
            "INSERT INTO drill_lock VALUES ('fleet', ?, 999999999, ?, 'tester', 0)",
            (done.run_id, safety.host),
        )
        before = done.journal.read_text()
        with pytest.raises(ConnectError, match=r"^root@n1:22: no answer"):
            recover(done.journal, safety=safety, transport_factory=lambda name: gone())
        assert done.journal.read_text() == before
        holder = safety.holder()
        assert holder is not None and holder.run_id == done.run_id and holder.stale
        again = recover(done.journal, safety=safety)
        assert again.status == "recovered" and again.rollbacks_ok
        log = drill_env.kernel_log
        assert unacknowledged_lines(log, log.with_name("drill-acks")) == 0
    finally:
        safety.close()


def gone() -> GoesAway:
    node = GoesAway()
    node.down = True
    return node


def test_recover_refuses_an_inventory_that_moved_a_node(drill_env: DrillEnv, sre: Sre) -> None:
    code, out, err = sre(
        "drill", "run", str(drill_file(drill_env)), "--inventory", str(drill_env.inventory),
        "--targets", "n1", "--execute", "--json",
    )  # fmt: skip
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    moved = ssh_inventory(drill_env, ansible_connection="local")
    data = yaml.safe_load(moved.read_text())
    data["all"]["children"]["chaos_targets"]["hosts"]["n1"] = {"ansible_host": "10.0.0.9"}
    moved.write_text(yaml.safe_dump(data))
    code, _, err = sre("drill", "recover", run_id, "--inventory", str(moved))
    assert code == 2 and err.count("\n") == 1
    assert (
        f"{moved}: --inventory: n1 was reached as local; the inventory now says root@10.0.0.9:22"
        in err
    )
    code, out, _ = sre("drill", "recover", run_id)  # the journaled inventory
    assert code == 0 and "nothing-to-recover" in out
