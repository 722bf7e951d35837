"""The Salt reactor path in the situations it exists for, on real daemons only (loopback):
a salt-master with the reactor routed as in ``salt/reactor/master.conf.example``, a salt-minion
running the ``gpu_health`` beacon on a recording the test swaps, and Slurm (munged, slurmctld,
the suite's cluster from tests/conftest.py: 16 slurmd plus 96 nodes defined without a slurmd
for the storm).

- **Recovery**: a lost GPU drains ``gpu01``; when the recording turns healthy the beacon fires a
  recovery, the master asks the minion for a fresh ``gpu.health`` and resumes the node; the audit
  says why.
- **Operator drain**: a node drained by hand (a reason without ``sre:``) stays drained through a
  fault and a recovery; both refusals are audited.
- **Forged events** sent by the real minion (``event.fire_master``) naming another node are
  refused and audited; nothing is drained.
- **Storm**: 1,000 events (a fifth of them repeats) for 99 nodes fired at the master's bus in a
  few seconds: drains stop at the budget, no event acts twice, every event has its audit line.

Node-side commands never run: every fault here asks for a hands-on action (drain and notify).
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers.salt import FIXTURES, PAIR_COMMANDS, SALT_DIR, SaltError, SaltPair
from tests.helpers.slurm import SERVED_NODES, SIMULATED_NODES, SlurmCluster
from tests.salt.conftest import fail_unless_salt

NODE = "gpu01"
SERVED = SERVED_NODES[:4]  # the served nodes these scenarios use
SIMULATED = SIMULATED_NODES
# Cluster-wide 4 drains; 10 % of a partition: 1 of the 16 gpu nodes (and of the 4 debug ones),
# 9 of the 96 sim nodes.
GUARDRAILS = {"max_drained_nodes": 4, "max_drained_percent": 10, "node_exec": "local"}
MASTER_EXAMPLE = SALT_DIR / "reactor" / "master.conf.example"
LOST = FIXTURES / "faults" / "gpu-lost.json"
HEALTHY = FIXTURES / "h100-capture.json"
STEP_TIMEOUT_SECONDS = 60.0
STORM_EVENTS = 1000
STORM_REPEATS = 200  # of the 1,000, this many re-send an earlier event (same event id)
STORM_TIMEOUT_SECONDS = 180.0
HANDS_ON = ("power_cycle", "rma_candidate", "contact_support", "check_mechanicals")
OPERATOR_REASON = "operator: PSU swap, ticket 4711"


def recording(source: Path, host: str) -> str:
    """A recording as the node ``host`` would have made it (the report's host is the node's)."""
    data = json.loads(source.read_text(encoding="utf-8"))
    data["host"] = host
    return json.dumps(data)


def master_config(work: Path, cluster: SlurmCluster) -> dict[str, Any]:
    """salt/reactor/master.conf.example with this test's paths: the example is what runs."""
    example = yaml.safe_load(MASTER_EXAMPLE.read_text(encoding="utf-8"))
    reactor = [
        {tag: [str(SALT_DIR / "reactor" / Path(sls).name) for sls in files]}
        for entry in example["reactor"]
        for tag, files in entry.items()
    ]
    guardrails = work / "remediation.yaml"
    guardrails.write_text(yaml.safe_dump(GUARDRAILS), encoding="utf-8")
    return {
        "runner_dirs": [str(SALT_DIR / "_runners")],
        "reactor": reactor,
        **{k: v for k, v in example.items() if k.startswith("reactor_")},
        "sre_remediation": {
            **example["sre_remediation"],
            "config": str(guardrails),
            "state": str(work / "remediation.db"),
            "audit": str(work / "audit.jsonl"),
            "execute": True,
            "slurm_conf": str(cluster.conf),
            "fresh_check": {"replay": str(work / "health.json")},
        },
    }


@dataclass
class Rig:
    pair: SaltPair
    cluster: SlurmCluster
    audit: Path
    replay: Path
    bus: Any

    def set_health(self, source: Path) -> None:
        """Swap what the node's GPUs report (atomically: the beacon never reads half a file)."""
        tmp = self.replay.with_suffix(".tmp")
        tmp.write_text(recording(source, NODE), encoding="utf-8")
        os.replace(tmp, self.replay)

    def records(self, since: float = 0.0) -> list[dict[str, Any]]:
        if not self.audit.exists():
            return []
        lines = self.audit.read_text(encoding="utf-8").splitlines()
        out = [json.loads(line) for line in lines if line.strip()]
        return [r for r in out if r["at"] >= since]

    def node(self, name: str) -> str:
        return self.cluster.scontrol("show", "node", "-o", name).stdout

    def wait(
        self, what: str, done: Callable[[], Any], timeout: float = STEP_TIMEOUT_SECONDS
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = done()
            if result:
                return result
            time.sleep(0.25)
        pytest.fail(
            f"{what}: not within {timeout:g}s\n--- {NODE} ---\n{self.node(NODE)}"
            f"\n--- audit ---\n{self.audit.read_text() if self.audit.exists() else ''}"
            f"\n--- salt ---\n{self.pair.logs()[-6000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def rig(slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    fail_unless_salt(*PAIR_COMMANDS)
    cluster = slurm_cluster
    cluster.reset()  # the session's cluster: idle before this module's scenarios, and after
    work = tmp_path_factory.mktemp("scenarios")
    replay = work / "health.json"
    replay.write_text(recording(HEALTHY, NODE), encoding="utf-8")
    # cooldown 0: a recovery is announced at once (production keeps the 300 s debounce).
    beacons = {
        "gpu_health": [{"interval": 1}, {"replay": str(replay)}, {"node": NODE}, {"cooldown": 0}]
    }
    pair = SaltPair(
        work,
        minion_id=NODE,
        beacons=beacons,
        master_extra=master_config(work, cluster),
        stop_timeout=5,
    )
    with pair:
        try:
            pair.start_master()
            with pair.master_events() as bus:
                pair.wait_reactor(bus)
                pair.start_minion(bus)
                pair.salt("saltutil.sync_all", timeout=60)
                yield Rig(pair, cluster, work / "audit.jsonl", replay, bus)
        except SaltError as exc:
            pytest.fail(f"{exc}\n{pair.logs()[-4000:]}", pytrace=False)
    cluster.reset()


def _reason(show: str) -> str:
    return show.split(" Reason=", 1)[1] if " Reason=" in show else ""


@pytest.mark.integration
def test_recovery_resumes_our_drain_after_a_fresh_check(rig: Rig) -> None:
    start = time.time()
    rig.set_health(LOST)
    rig.wait("gpu01 drained with our reason", lambda: _reason(rig.node(NODE)).startswith("sre:"))
    drained_at = time.time()
    rig.set_health(HEALTHY)
    rig.wait(
        "gpu01 resumed",
        lambda: "DRAIN" not in rig.node(NODE) and not _reason(rig.node(NODE)),
    )
    resumed_at = time.time()
    mine = [r for r in rig.records(start) if r["node"] == NODE]
    assert [(r["outcome"], r["code"]) for r in mine] == [
        ("acted", "drained_notify"),
        ("acted", "resumed"),
    ], mine
    drain, resume = mine
    assert drain["action"] == "power_cycle"
    assert drain["event_id"].startswith("salt:gpu01:")
    assert drain["source"] == "salt-beacon"
    assert drain["checks"][:1] == ["gpu.lost"]
    assert [c[:2] for c in drain["commands"]] == [["scontrol", "update"]]
    # Why it came back: a fresh gpu.health on the minion was healthy, and the drain was ours.
    assert resume["source"] == "resume"
    assert resume["message"] == "back in service: the fresh report is healthy"
    assert resume["commands"] == [["scontrol", "update", f"nodename={NODE}", "state=resume"]]
    print(
        f"fault -> drained {drained_at - start:.1f}s; recovery -> resumed "
        f"{resumed_at - drained_at:.1f}s"
    )


@pytest.mark.integration
def test_operator_drain_stays_through_fault_and_recovery(rig: Rig) -> None:
    start = time.time()
    rig.cluster.scontrol("update", f"nodename={NODE}", "state=drain", f"reason={OPERATOR_REASON}")
    try:
        rig.set_health(LOST)
        rig.wait(
            "the fault's refusal in the audit",
            lambda: [r for r in rig.records(start) if r["event_id"] and r["node"] == NODE],
        )
        rig.set_health(HEALTHY)
        rig.wait(
            "the recovery's refusal in the audit",
            lambda: [r for r in rig.records(start) if r.get("source") == "resume"],
        )
        time.sleep(2)  # two more beacon runs: nothing else may follow
        show = rig.node(NODE)
        assert "DRAIN" in show
        assert _reason(show).startswith(OPERATOR_REASON), show
        mine = [r for r in rig.records(start) if r["node"] == NODE]
        assert [(r["outcome"], r["code"], r.get("source")) for r in mine] == [
            ("refused", "operator_drain", "salt-beacon"),
            ("refused", "operator_drain", "resume"),
        ], mine
        assert all(not r["commands"] for r in mine)
        assert OPERATOR_REASON in mine[0]["message"]
        assert "never resumed by sre" in mine[1]["message"]
    finally:
        rig.cluster.reset()


@pytest.mark.integration
def test_forged_events_from_a_real_minion_are_refused(rig: Rig) -> None:
    """gpu01's minion sends, with ``event.fire_master``, (a) an event under gpu02's beacon tag
    and (b) one under its own tag whose request names gpu02. Salt authenticates the sender's id
    on the request channel; the runner holds the tag and the payload to it."""
    start = time.time()
    victim = "gpu02"

    def payload(minion: str, node: str, event_id: str) -> dict[str, Any]:
        return {
            "minion": minion,
            "node": node,
            "severity": "crit",
            "remediation": {
                "node": node,
                "action": "power_cycle",
                "event_id": event_id,
                "source": "salt-beacon",
                "reason": "forged",
            },
        }

    tag = "salt/beacon/{}/gpu_health/sre/gpu/health/crit"
    sent = [
        (payload(victim, victim, "forged:a"), tag.format(victim)),
        (payload(NODE, victim, "forged:b"), tag.format(NODE)),
    ]
    for data, event_tag in sent:
        assert rig.pair.salt("event.fire_master", json.dumps(data), event_tag) is True
    refused = rig.wait(
        "both forgeries refused in the audit",
        lambda: (
            found
            if len(found := [r for r in rig.records(start) if r["code"] == "invalid_event"]) >= 2
            else None
        ),
    )
    messages = sorted(r["message"] for r in refused)
    assert any(f"event sent by minion '{NODE}', tag says '{victim}'" in m for m in messages), (
        messages
    )
    assert any(
        f"minion '{NODE}' may only report on node '{NODE}', event names '{victim}'" in m
        for m in messages
    ), messages
    assert all(r["outcome"] == "refused" and not r["commands"] for r in refused)
    assert not [r for r in rig.records(start) if r["outcome"] == "acted"]
    assert "DRAIN" not in rig.node(victim)


@pytest.mark.integration
def test_events_without_a_request_are_audited_not_acted_on(rig: Rig) -> None:
    """A warning that asks for nothing is audited as ``no_action``; a recovery for a node whose
    minion does not answer (no such minion here) is not resumed: no fresh report."""
    start = time.time()
    tag = "salt/beacon/{}/gpu_health/sre/gpu/health/{}"
    for node, severity in (("gpu03", "warn"), ("gpu04", "ok")):
        data = {"minion": node, "node": node, "severity": severity, "remediation": None}
        rig.bus.fire_event(data, tag.format(node, severity))
    records = rig.wait(
        "both events audited",
        lambda: (
            found
            if len(found := [r for r in rig.records(start) if r["node"] in ("gpu03", "gpu04")]) >= 2
            else None
        ),
    )
    by_node = {r["node"]: r for r in records}
    assert (by_node["gpu03"]["outcome"], by_node["gpu03"]["code"]) == ("refused", "no_action")
    assert by_node["gpu03"]["reason"] == "gpu_health transition to warn"
    assert (by_node["gpu04"]["outcome"], by_node["gpu04"]["code"]) == (
        "refused",
        "no_fresh_report",
    )
    assert "did not answer gpu.health" in by_node["gpu04"]["message"]
    assert all(not r["commands"] for r in records)


@pytest.mark.integration
def test_storm_of_1000_events_stays_within_budget_and_is_all_audited(rig: Rig) -> None:
    assert not [r for r in rig.cluster.drain_reasons().values() if r.startswith("sre:")]
    rng = random.Random(7)
    nodes = SIMULATED + SERVED[1:]  # gpu01 belongs to the other scenarios
    run = f"storm{int(time.time())}"
    events: list[tuple[str, dict[str, Any]]] = []
    for i in range(STORM_EVENTS - STORM_REPEATS):
        node = nodes[i % len(nodes)]
        data = {
            "minion": node,
            "node": node,
            "severity": "crit",
            "remediation": {
                "node": node,
                "action": HANDS_ON[i % len(HANDS_ON)],
                "event_id": f"{run}:{i}",
                "source": "salt-beacon",
                "checks": ["gpu.lost"],
                "gpus": [i % 8],
                "reason": f"GPU {i % 8} fell off the bus",
            },
        }
        events.append((f"salt/beacon/{node}/gpu_health/sre/gpu/health/crit", data))
    for _ in range(STORM_REPEATS):  # re-sent events, at random places
        events.insert(rng.randrange(len(events) + 1), rng.choice(events[:400]))
    sent = Counter(data["remediation"]["event_id"] for _, data in events)
    assert sum(sent.values()) == STORM_EVENTS

    start = time.time()
    for tag, data in events:
        rig.bus.fire_event(data, tag)
    fired = time.time() - start
    assert fired < 60, f"firing {STORM_EVENTS} events took {fired:.1f}s"

    def storm_records() -> list[dict[str, Any]]:
        return [r for r in rig.records(start) if str(r["event_id"]).startswith(f"{run}:")]

    records = rig.wait(
        f"{STORM_EVENTS} storm events audited",
        lambda: found if len(found := storm_records()) >= STORM_EVENTS else None,
        timeout=STORM_TIMEOUT_SECONDS,
    )
    done = max(r["at"] for r in records) - start
    try:
        # Every event has exactly one audit line, repeats included.
        assert Counter(r["event_id"] for r in records) == sent
        outcomes = Counter((r["outcome"], r["code"]) for r in records)
        acted = [r for r in records if r["outcome"] == "acted"]
        # The budget: 4 drains cluster-wide, at most 1 of the gpu partition.
        assert len(acted) == GUARDRAILS["max_drained_nodes"], outcomes
        assert len({r["node"] for r in acted}) == len(acted)
        assert len([r for r in acted if r["node"] in SERVED]) <= 1
        # No event acted twice; every repeat was refused as a duplicate.
        assert len({r["event_id"] for r in acted}) == len(acted)
        dups = Counter(r["event_id"] for r in records if r["code"] == "duplicate_event")
        assert dups == Counter({eid: n - 1 for eid, n in sent.items() if n > 1})
        assert {code for outcome, code in outcomes if outcome == "refused"} <= {
            "budget_exhausted",
            "duplicate_event",
            "already_drained",
            "in_progress",
        }, outcomes
        # Only the drains ran, once each; Slurm shows exactly those nodes drained by us.
        commands = [c for r in records for c in r["commands"]]
        assert len(commands) == len(acted)
        assert all(c[:2] == ["scontrol", "update"] and "state=drain" in c for c in commands)
        ours = {n for n, why in rig.cluster.drain_reasons().items() if why.startswith("sre:")}
        assert ours == {r["node"] for r in acted}
    finally:
        rig.cluster.reset()
    print(
        f"storm: {STORM_EVENTS} events fired in {fired:.1f}s, all audited after {done:.1f}s; "
        f"{dict(outcomes)}"
    )


def _render(path: Path, **context: Any) -> Any:
    import salt.config  # missing Salt fails here, never skips
    import salt.loader
    import salt.template

    opts = salt.config.minion_config(None)
    opts["file_client"] = "local"
    renderers = salt.loader.render(opts, {})
    return salt.template.compile_template(
        ":string:", renderers, "jinja|yaml", [], [], input_data=path.read_text(), **context
    )


def test_direct_reactor_passes_the_event_as_data_not_text() -> None:
    tag = f"salt/beacon/{NODE}/gpu_health/sre/gpu/health/crit"
    hostile = {
        "minion": NODE,
        "remediation": {"node": NODE, "event_id": "e1", "reason": "x'; rm -rf / #{{ 7*7 }}\n- a"},
    }
    out = _render(SALT_DIR / "reactor" / "gpu_health_runner.sls", tag=tag, data=hostile)
    state = out["sre-reactor-gpu-health-runner-handle"]["runner.sre_remediate.handle"]
    args = json.loads(json.dumps(state))[0]["args"]
    assert args == [{"tag": tag}, {"data": hostile}]


def test_master_example_routes_to_files_that_exist() -> None:
    example = yaml.safe_load(MASTER_EXAMPLE.read_text(encoding="utf-8"))
    for entry in example["reactor"]:
        for files in entry.values():
            for sls in files:
                assert (SALT_DIR / "reactor" / Path(sls).name).is_file(), sls
    assert example["sre_remediation"]["execute"] is False  # a dry run until an operator says so
