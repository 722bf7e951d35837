"""The engine over a fake Slurm: guardrails end to end, dry run, audit of every decision."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sre_tools.health.model import Action, Severity
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.errors import ActionError, NotifyError, SlurmError
from sre_tools.remediation.model import Outcome, RemediationRequest, diag_from_dict
from sre_tools.remediation.runner import CommandResult
from sre_tools.remediation.slurm import SlurmClient
from tests.helpers.reports import diag_run, node_report
from tests.remediation.conftest import NODES, RigFactory
from tests.remediation.fakes import Clock, FakeSlurm

RESET = Action.RESET_GPU


def req(
    node: str, action: Action = RESET, event: str | None = None, gpus: tuple[int, ...] = (3,)
) -> RemediationRequest:
    return RemediationRequest(
        node=node,
        action=action,
        event_id=event or f"ev-{node}-{action.value}",
        reason="ECC uncorrectable",
        source="test",
        checks=("ecc.uncorrected_volatile",),
        gpus=gpus,
    )


def passing_diag(node: str, at: float) -> list[Any]:
    """A passing level-2 DCGM run, which a resume after a GPU reset needs."""
    return [diag_from_dict(diag_run(node, at, 2))]


def test_drain_then_reset_an_idle_node(make_rig: RigFactory) -> None:
    rig = make_rig()
    d = rig.engine.handle(req("gpu05"))
    assert (d.outcome, d.code) == (Outcome.ACTED, "drained_and_acted")
    node = rig.slurm.nodes["gpu05"]
    assert node.drain and node.reason is not None
    assert node.reason.startswith("sre: reset_gpu ev=ev-gpu05-reset_gpu: ECC")
    assert rig.node_runner.calls == [("nvidia-smi", "--gpu-reset", "-i", "3")]
    assert [list(c) for c in d.commands][-1] == ["nvidia-smi", "--gpu-reset", "-i", "3"]
    (line,) = rig.audit()
    assert (line["outcome"], line["code"], line["node"], line["dry_run"]) == (
        "acted",
        "drained_and_acted",
        "gpu05",
        False,
    )


def test_reset_only_after_the_drain(make_rig: RigFactory) -> None:
    """The reset runs after scontrol drained the node, never before."""
    rig = make_rig()
    order: list[str] = []
    slurm_call, node_call = rig.slurm.__call__, rig.node_runner.__call__

    def slurm_spy(argv: Sequence[str], **kw: Any) -> CommandResult:
        if "state=drain" in argv:
            order.append("drain")
        return slurm_call(argv, **kw)

    def node_spy(argv: Sequence[str], **kw: Any) -> CommandResult:
        order.append("reset")
        return node_call(argv, **kw)

    rig.engine.slurm.runner = slurm_spy
    rig.engine.runner = node_spy
    rig.engine.handle(req("gpu01"))
    assert order == ["drain", "reset"]


def test_dry_run_is_the_default_and_changes_nothing(make_rig: RigFactory, tmp_path: Path) -> None:
    rig = make_rig()
    engine = Remediator(
        None,
        SlurmClient(rig.slurm),
        tmp_path / "dry.db",
        tmp_path / "dry.jsonl",
        clock=rig.clock,
        runner=rig.node_runner,
    )
    assert engine.dry_run
    d = engine.handle(req("gpu02"))
    assert (d.outcome, d.code) == (Outcome.DRY_RUN, "would_drain")
    assert [c[0] for c in d.commands] == ["scontrol", "nvidia-smi"]
    assert not rig.slurm.updates("drain")
    assert rig.node_runner.calls == []
    assert engine.state.drains() == []
    # A dry run remembers nothing: the same event is still new for the real run.
    assert engine.handle(req("gpu02")).outcome is Outcome.DRY_RUN


def test_budget_by_count(make_rig: RigFactory) -> None:
    rig = make_rig(max_drained_nodes=2, max_drained_percent=100)
    codes = [rig.engine.handle(req(n)).code for n in NODES[4:8]]
    assert codes == [
        "drained_and_acted",
        "drained_and_acted",
        "budget_exhausted",
        "budget_exhausted",
    ]
    assert len(rig.slurm.updates("drain")) == 2


def test_budget_by_percent_of_the_smallest_partition(make_rig: RigFactory) -> None:
    # debug = gpu01..04 (4 nodes, 25% -> 1); gpu = 16 nodes (25% -> 4).
    rig = make_rig(max_drained_nodes=100, max_drained_percent=25)
    assert rig.engine.handle(req("gpu01")).acted
    refused = rig.engine.handle(req("gpu02"))
    assert refused.code == "budget_exhausted" and "partition debug" in refused.message
    assert [rig.engine.handle(req(n)).acted for n in NODES[8:12]] == [True, True, True, False]


def test_budget_frees_up_when_an_operator_resumes_our_node(make_rig: RigFactory) -> None:
    rig = make_rig(max_drained_nodes=1, max_drained_percent=100)
    assert rig.engine.handle(req("gpu09")).acted
    assert rig.engine.handle(req("gpu10")).code == "budget_exhausted"
    rig.slurm.nodes["gpu09"].drain = False  # an operator ran `scontrol update state=resume`
    rig.slurm.nodes["gpu09"].reason = None
    rig.clock.advance(60)  # reconcile runs at most every 30 s
    assert rig.engine.handle(req("gpu10", event="ev-2")).acted


def test_dedupe_by_event_id(make_rig: RigFactory) -> None:
    rig = make_rig()
    assert rig.engine.handle(req("gpu05", event="beacon-1")).acted
    again = rig.engine.handle(req("gpu05", event="beacon-1"))
    assert (again.outcome, again.code) == (Outcome.REFUSED, "duplicate_event")
    assert len(rig.node_runner.calls) == 1
    # Remembered in the state file: a new engine (another process) also refuses it.
    other = Remediator(
        rig.engine.config,
        SlurmClient(rig.slurm),
        rig.state_path,
        rig.audit_path,
        clock=rig.clock,
        runner=rig.node_runner,
        dry_run=False,
    )
    assert other.handle(req("gpu05", event="beacon-1")).code == "duplicate_event"
    assert [r["code"] for r in rig.audit()] == [
        "drained_and_acted",
        "duplicate_event",
        "duplicate_event",
    ]


def test_event_ids_expire(make_rig: RigFactory) -> None:
    rig = make_rig(event_ttl_seconds=100, cooldown_seconds=0)
    rig.engine.handle(req("gpu05", Action.RMA_CANDIDATE, event="e"))
    rig.clock.advance(101)
    assert rig.engine.handle(req("gpu05", Action.RMA_CANDIDATE, event="e")).code == (
        "already_drained"
    )


def test_cooldown_after_resume(make_rig: RigFactory) -> None:
    rig = make_rig(cooldown_seconds=600)
    rig.engine.handle(req("gpu05"))
    rig.clock.advance(10)
    passing = passing_diag("gpu05", rig.clock())
    assert rig.engine.try_resume("gpu05", node_report("gpu05", rig.clock()), passing).code == (
        "resumed"
    )
    rig.clock.advance(60)
    d = rig.engine.handle(req("gpu05", event="ev-again"))
    assert (d.code, d.outcome) == ("cooldown", Outcome.REFUSED)
    assert "540s left" in d.message
    rig.clock.advance(541)
    assert rig.engine.handle(req("gpu05", event="ev-later")).acted


def test_repeat_actions_wait_for_the_cooldown_and_stop(make_rig: RigFactory) -> None:
    rig = make_rig(cooldown_seconds=600, max_actions_per_drain=2)
    assert rig.engine.handle(req("gpu05", event="e1")).code == "drained_and_acted"
    assert rig.engine.handle(req("gpu05", event="e2")).code == "cooldown"
    rig.clock.advance(601)
    second = rig.engine.handle(req("gpu05", Action.REBOOT, event="e3"))
    assert (second.outcome, second.code) == (Outcome.ACTED, "acted")
    rig.clock.advance(601)
    third = rig.engine.handle(req("gpu05", Action.REBOOT, event="e4"))
    assert third.code == "attempts_exhausted" and third.notified
    assert rig.node_runner.calls == [
        ("nvidia-smi", "--gpu-reset", "-i", "3"),
        ("systemctl", "reboot"),
    ]
    assert len(rig.slurm.updates("drain")) == 1
    assert rig.notes.payloads[0]["node"] == "gpu05"


def test_no_node_action_at_all_with_max_actions_per_drain_0(make_rig: RigFactory) -> None:
    """A site that only drains (a person reboots): the drain happens, no node-side action runs,
    and the refusal says the node stays drained for a person."""
    rig = make_rig(max_actions_per_drain=0)
    d = rig.engine.handle(req("gpu05", Action.REBOOT, event="e1"))
    assert (d.outcome, d.code) == (Outcome.ACTED, "attempts_exhausted"), d
    assert "stays drained for a person" in d.message
    assert len(rig.slurm.updates("drain")) == 1
    assert rig.node_runner.calls == []
    rig.clock.advance(7200)
    again = rig.engine.handle(req("gpu05", Action.REBOOT, event="e2"))
    assert again.code == "attempts_exhausted" and rig.node_runner.calls == []


def test_operator_drain_is_never_touched(make_rig: RigFactory) -> None:
    rig = make_rig()
    node = rig.slurm.nodes["gpu03"]
    node.drain, node.reason = True, "bad DIMM, ticket 4711 (alice)"
    d = rig.engine.handle(req("gpu03", Action.REBOOT))
    assert (d.outcome, d.code) == (Outcome.REFUSED, "operator_drain")
    assert node.reason == "bad DIMM, ticket 4711 (alice)"
    r = rig.engine.try_resume("gpu03", node_report("gpu03", rig.clock()))
    assert r.code == "operator_drain"
    assert node.drain
    assert not rig.slurm.updates("drain") and not rig.slurm.updates("resume")
    assert rig.node_runner.calls == []


def test_down_node_with_slurms_reason_is_left_alone(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.slurm.nodes["gpu04"].state = "DOWN"
    rig.slurm.nodes["gpu04"].reason = "Not responding"
    assert rig.engine.handle(req("gpu04")).code == "operator_drain"


def test_unknown_node_is_refused(make_rig: RigFactory) -> None:
    rig = make_rig()
    d = rig.engine.handle(req("gpu99"))
    assert (d.outcome, d.code) == (Outcome.REFUSED, "unknown_node")


def test_draining_node_waits_for_its_jobs(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.slurm.nodes["gpu06"].state = "MIXED"  # jobs running
    first = rig.engine.handle(req("gpu06", event="e1"))
    assert (first.outcome, first.code) == (Outcome.ACTED, "action_pending")
    assert rig.node_runner.calls == []
    still = rig.engine.handle(req("gpu06", event="e2"))
    assert (still.outcome, still.code) == (Outcome.REFUSED, "action_pending")
    rig.slurm.nodes["gpu06"].state = "IDLE"  # jobs done
    done = rig.engine.handle(req("gpu06", event="e3"))
    assert (done.outcome, done.code) == (Outcome.ACTED, "acted")
    assert rig.node_runner.calls == [("nvidia-smi", "--gpu-reset", "-i", "3")]


@pytest.mark.parametrize(
    "action",
    [
        Action.POWER_CYCLE,
        Action.CHECK_MECHANICALS,
        Action.CONTACT_SUPPORT,
        Action.RMA_CANDIDATE,
    ],
)
def test_hands_on_actions_drain_and_notify(make_rig: RigFactory, action: Action) -> None:
    rig = make_rig()
    d = rig.engine.handle(req("gpu07", action))
    assert (d.outcome, d.code, d.notified) == (Outcome.ACTED, "drained_notify", True)
    assert rig.slurm.nodes["gpu07"].drain
    assert rig.node_runner.calls == []  # nothing runs on the node
    (note,) = rig.notes.payloads
    assert (note["node"], note["action"], note["gpus"]) == ("gpu07", action.value, [3])


def test_failed_notification_does_not_undo_the_drain(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.notes.error = NotifyError("webhook answered HTTP 502")
    d = rig.engine.handle(req("gpu07", Action.RMA_CANDIDATE))
    assert d.acted and not d.notified and "notification failed" in d.message


@pytest.mark.parametrize(
    ("action", "code"), [(Action.NONE, "no_action"), (Action.RESTART_APP, "not_automated")]
)
def test_nothing_to_do(make_rig: RigFactory, action: Action, code: str) -> None:
    rig = make_rig()
    d = rig.engine.handle(req("gpu01", action))
    assert (d.outcome, d.code) == (Outcome.REFUSED, code)
    assert rig.slurm.calls == []


def test_reset_without_a_gpu_index_is_left_for_a_person(make_rig: RigFactory) -> None:
    rig = make_rig()
    d = rig.engine.handle(req("gpu01", gpus=()))
    assert (d.outcome, d.code, d.notified) == (Outcome.ACTED, "no_gpu_index", True)
    assert rig.slurm.nodes["gpu01"].drain and rig.node_runner.calls == []


def test_fabric_manager_and_reboot_commands(make_rig: RigFactory) -> None:
    rig = make_rig(max_drained_percent=100)
    rig.engine.handle(req("gpu05", Action.RESTART_FABRIC_MANAGER))
    rig.engine.handle(req("gpu06", Action.REBOOT))
    assert rig.node_runner.calls == [
        ("systemctl", "restart", "nvidia-fabricmanager"),
        ("systemctl", "reboot"),
    ]


def test_node_actions_go_through_ssh_by_default(make_rig: RigFactory) -> None:
    rig = make_rig(node_exec="ssh")
    rig.engine.handle(req("gpu01"))
    (call,) = rig.node_runner.calls
    assert call[0] == "ssh" and call[-2:] == ("gpu01", "nvidia-smi --gpu-reset -i 3")


# --- resume --------------------------------------------------------------------------------------


def test_resume_after_a_healthy_fresh_report(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engine.handle(req("gpu05"))
    sick = node_report("gpu05", rig.clock(), ("ecc.uncorrected_volatile", Severity.CRIT, RESET, 3))
    assert rig.engine.try_resume("gpu05", sick).code == "still_unhealthy"
    assert rig.slurm.nodes["gpu05"].drain
    rig.clock.advance(30)
    stale = node_report("gpu05", rig.clock() - 31)  # from before the reset
    assert rig.engine.try_resume("gpu05", stale).code == "stale_report"
    # After the reset, a passing level-2 diagnostic too (tests/remediation/test_resume_diag.py).
    healthy = node_report("gpu05", rig.clock())
    assert rig.engine.try_resume("gpu05", healthy).code == "diag_required"
    d = rig.engine.try_resume("gpu05", healthy, passing_diag("gpu05", rig.clock()))
    assert (d.outcome, d.code) == (Outcome.ACTED, "resumed")
    assert not rig.slurm.nodes["gpu05"].drain
    assert rig.engine.state.drains() == []
    assert rig.engine.try_resume("gpu05", node_report("gpu05", rig.clock())).code == "not_drained"
    codes = [(r["outcome"], r["code"], r["source"]) for r in rig.audit()[1:]]
    assert codes[-3] == ("refused", "diag_required", "resume")
    assert codes[-2] == ("acted", "resumed", "resume")


def test_resume_dry_run(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engine.handle(req("gpu05"))
    rig.engine.dry_run = True
    passing = passing_diag("gpu05", rig.clock())
    d = rig.engine.try_resume("gpu05", node_report("gpu05", rig.clock()), passing)
    assert (d.outcome, d.code) == (Outcome.DRY_RUN, "would_resume")
    assert rig.slurm.nodes["gpu05"].drain


def test_resume_needs_the_gpu_back(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engine.handle(req("gpu05", gpus=(7,)))
    assert rig.engine.try_resume("gpu05", node_report("gpu05", rig.clock(), gpus=7)).code == (
        "gpu_missing"
    )


def test_a_drain_with_our_prefix_unknown_to_the_state_is_adopted(make_rig: RigFactory) -> None:
    rig = make_rig()
    node = rig.slurm.nodes["gpu08"]
    node.drain, node.reason = True, "sre: reboot ev=lost-state"
    d = rig.engine.handle(req("gpu08", Action.REBOOT))
    assert d.code == "acted"
    assert [r.node for r in rig.engine.state.drains()] == ["gpu08"]
    assert rig.engine.try_resume("gpu08", node_report("gpu08", rig.clock())).code == "resumed"


# --- events and failures -------------------------------------------------------------------------

FORGED = [
    {"node": "gpu01; reboot", "action": "reboot", "event_id": "x"},
    {"node": "gpu01", "action": "format", "event_id": "x"},
    {"node": "gpu01", "action": "reboot", "event_id": "x", "reason": "\x1b]0;pwned\x07"},
    {"node": "gpu01", "action": "reboot", "event_id": "x", "admin": True},
    "not even a dict",
    None,
]


def test_invalid_events_are_refused_and_audited(make_rig: RigFactory) -> None:
    rig = make_rig()
    for raw in FORGED:
        d = rig.engine.handle_event(raw)
        assert (d.outcome, d.code, d.node) == (Outcome.REFUSED, "invalid_event", None)
    for text in ("{not json", "[]", "x" * 70_000):
        assert rig.engine.handle_event_json(text).code == "invalid_event"
    assert rig.slurm.calls == [] and rig.node_runner.calls == []
    lines = rig.audit()
    assert len(lines) == len(FORGED) + 3
    assert all(r["code"] == "invalid_event" and r["node"] is None for r in lines)
    raw = rig.raw_audit()
    assert b"\x1b" not in raw and b"\x07" not in raw  # escaped in JSON, never raw


def test_a_valid_event_is_handled(make_rig: RigFactory) -> None:
    rig = make_rig()
    event = {"node": "gpu02", "action": "reboot", "event_id": "salt-1", "source": "salt"}
    assert rig.engine.handle_event_json(json.dumps(event)).acted
    assert rig.audit()[0]["source"] == "salt"


def test_slurm_failure_is_raised_audited_and_retryable(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.slurm.fail["drain"] = "timeout"
    with pytest.raises(SlurmError, match="timed out"):
        rig.engine.handle(req("gpu02", event="e1"))
    assert rig.engine.state.drains() == []  # the reservation was given back
    (line,) = rig.audit()
    assert (line["outcome"], line["code"]) == ("failed", "slurm_failed")
    del rig.slurm.fail["drain"]
    assert rig.engine.handle(req("gpu02", event="e1")).acted  # same event id: retried


def test_action_failure_leaves_the_node_drained(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.node_runner.fail["nvidia-smi"] = 255
    with pytest.raises(ActionError):
        rig.engine.handle(req("gpu02"))
    assert rig.slurm.nodes["gpu02"].drain
    assert rig.audit()[-1]["code"] == "action_failed"


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrent_events_never_exceed_the_budget(make_rig: RigFactory) -> None:
    rig = make_rig(max_drained_nodes=3, max_drained_percent=100)
    requests = [req(NODES[i % 16], event=f"storm-{i}") for i in range(300)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        decisions = list(pool.map(rig.engine.handle, requests))
    drains = rig.slurm.updates("drain")
    assert len(drains) == 3
    assert len({c[2] for c in drains}) == 3  # no node drained twice
    resets = rig.node_runner.calls
    assert len(resets) == 3
    assert sum(d.acted for d in decisions) == 3
    assert len(rig.audit()) == 300
    assert rig.engine.state.db.query("SELECT COUNT(*) FROM drains") == [(3,)]
    assert rig.engine.state.db.query("SELECT COUNT(*) FROM events") == [(300,)]


def test_status(make_rig: RigFactory) -> None:
    rig = make_rig(max_drained_nodes=5, max_drained_percent=25)
    rig.engine.handle(req("gpu01"))
    op = rig.slurm.nodes["gpu12"]
    op.drain, op.reason = True, "operator"
    s = rig.engine.status()
    assert s["budget"]["drained_by_us"] == 1
    parts = {p["partition"]: p for p in s["partitions"]}
    assert parts["debug"] == {
        "partition": "debug",
        "nodes": 4,
        "drained_by_us": 1,
        "limit": 1,
        "drained_total": 1,
    }
    assert parts["gpu"]["drained_total"] == 2
    (drain,) = s["drains"]
    assert drain["node"] == "gpu01" and drain["in_slurm"]


def test_clock_is_injected(make_rig: RigFactory) -> None:
    rig = make_rig(clock=Clock(1_900_000_000.0))
    d = rig.engine.handle(req("gpu01"))
    assert d.at == 1_900_000_000.0
    assert rig.audit()[0]["ts"] == "2030-03-17T17:46:40Z"


def test_fake_slurm_rejects_unknown_commands() -> None:
    with pytest.raises(AssertionError):
        FakeSlurm()(["rm", "-rf", "/"], timeout=1)


def test_a_node_drained_for_a_person_gets_no_automatic_action(make_rig: RigFactory) -> None:
    rig = make_rig()
    assert rig.engine.handle(req("gpu05", Action.RMA_CANDIDATE, event="e1")).acted
    d = rig.engine.handle(req("gpu05", Action.REBOOT, event="e2"))
    assert (d.outcome, d.code) == (Outcome.REFUSED, "awaiting_person")
    assert rig.node_runner.calls == []


def test_escalation_to_hands_on_notifies_again(make_rig: RigFactory) -> None:
    rig = make_rig()
    rig.engine.handle(req("gpu05", event="e1"))
    d = rig.engine.handle(req("gpu05", Action.CONTACT_SUPPORT, event="e2"))
    assert (d.code, d.notified) == ("already_drained", True)
    assert rig.notes.payloads[-1]["action"] == "contact_support"


def test_an_adopted_drain_for_a_person_stays_with_the_person(make_rig: RigFactory) -> None:
    rig = make_rig()
    node = rig.slurm.nodes["gpu08"]
    node.drain, node.reason = True, "sre: rma_candidate ev=lost-state: bad HBM"
    assert rig.engine.handle(req("gpu08", Action.REBOOT)).code == "awaiting_person"
    assert rig.node_runner.calls == []


def test_reconcile_releases_what_an_operator_took_back(make_rig: RigFactory) -> None:
    rig = make_rig(max_drained_nodes=5, max_drained_percent=100)
    rig.engine.handle(req("gpu05"))
    rig.engine.handle(req("gpu06"))
    rig.slurm.nodes["gpu05"].drain, rig.slurm.nodes["gpu05"].reason = False, None
    rig.slurm.nodes["gpu06"].reason = "operator took it over"
    assert sorted(rig.engine.reconcile()) == ["gpu05", "gpu06"]
    assert rig.engine.state.drains() == []


def test_reconcile_never_releases_a_drain_confirmed_meanwhile(make_rig: RigFactory) -> None:
    """Another process confirms a drain after our sinfo snapshot: it must stay counted."""
    rig = make_rig(max_drained_nodes=5, max_drained_percent=100)
    other = Remediator(
        rig.engine.config,
        SlurmClient(rig.slurm),
        rig.state_path,
        rig.audit_path,
        clock=rig.clock,
        runner=rig.node_runner,
        dry_run=False,
    )

    def other_process_drains() -> None:
        other.handle(req("gpu06"))

    rig.slurm.on_sinfo = other_process_drains
    assert rig.engine.reconcile() == []
    assert [r.node for r in rig.engine.state.drains()] == ["gpu06"]


# --- one way to build the engine --------------------------------------------------------------


def test_from_paths_defaults_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = tmp_path / "remediation.yaml"
    cfg.write_text("max_drained_nodes: 5\nslurm_timeout_seconds: 7\n", encoding="utf-8")
    monkeypatch.setenv("SRE_REMEDIATION_CONFIG", str(cfg))
    monkeypatch.setenv("SRE_REMEDIATION_STATE", str(tmp_path / "env.db"))
    monkeypatch.setenv("SRE_REMEDIATION_AUDIT", str(tmp_path / "env.jsonl"))
    engine = Remediator.from_paths()
    assert engine.config.max_drained_nodes == 5 and engine.slurm.timeout == 7
    assert engine.state.path == tmp_path / "env.db"
    assert engine.audit.path == tmp_path / "env.jsonl"
    assert engine.dry_run is True and engine.slurm.env is None


def test_from_paths_explicit_paths_controller_and_slurm_conf(tmp_path: Path) -> None:
    from sre_tools.remediation.runner import SshRunner

    engine = Remediator.from_paths(
        None,
        tmp_path / "s.db",
        str(tmp_path / "a.jsonl"),
        controller="slurmctl-1",
        slurm_conf="/etc/slurm/x.conf",
        dry_run=False,
    )
    assert engine.state.path == tmp_path / "s.db" and engine.audit.path == tmp_path / "a.jsonl"
    assert isinstance(engine.slurm.runner, SshRunner) and engine.slurm.runner.host == "slurmctl-1"
    assert engine.slurm.env == {"SLURM_CONF": "/etc/slurm/x.conf"}
    assert engine.dry_run is False


def test_from_paths_refuses_a_bad_controller(tmp_path: Path) -> None:
    from sre_tools.exceptions import ValidationError

    with pytest.raises(ValidationError, match=r"^controller: invalid host name"):
        Remediator.from_paths(None, tmp_path / "s.db", tmp_path / "a.jsonl", controller="-oX=y")


def test_every_front_end_builds_the_engine_with_from_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI, Salt's gpu module and the master's runner: one constructor, their settings."""
    from sre_tools.cli.remediation import _engine
    from tests.helpers.salt import GPU_MODULE, SALT_DIR, load_salt_file

    calls: list[tuple[tuple[Any, ...], dict[str, Any]]] = []

    def record(*args: Any, **kwargs: Any) -> str:
        calls.append((args, kwargs))
        return "engine"

    monkeypatch.setattr(Remediator, "from_paths", record)
    cfg, state, audit = tmp_path / "c.yaml", tmp_path / "s.db", tmp_path / "a.jsonl"

    assert _engine(cfg, state, audit, "slurmctl-1", True) == "engine"
    gpu = load_salt_file(GPU_MODULE, __opts__={"id": "gpu01"}, __salt__={})
    assert gpu._remediator(True, "slurmctl-1", str(cfg), str(state), str(audit)) == "engine"
    runner = load_salt_file(SALT_DIR / "_runners" / "sre_remediate.py")
    settings = {**runner.DEFAULTS, "config": str(cfg), "state": str(state), "audit": str(audit)}
    assert runner._build_remediator({**settings, "slurm_conf": "/x.conf"}) == "engine"

    paths = [tuple(str(a) for a in args) for args, _ in calls]
    assert paths == [(str(cfg), str(state), str(audit))] * 3
    assert [kw for _, kw in calls] == [
        {"controller": "slurmctl-1", "dry_run": False},
        {"controller": "slurmctl-1", "dry_run": False},
        {"slurm_conf": "/x.conf", "dry_run": True},
    ]
