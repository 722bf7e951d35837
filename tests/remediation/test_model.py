"""Requests: untrusted events validated field by field; reports turned into requests."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, GpuRef, Severity
from sre_tools.remediation.model import (
    MAX_EVENT_JSON_BYTES,
    Decision,
    Outcome,
    RemediationRequest,
    parse_event_json,
    parse_report_json,
    report_from_dict,
    request_from_event,
    request_from_report,
    sanitize_text,
)
from tests.helpers.reports import finding, node_report, report

GOOD: dict[str, Any] = {
    "node": "gpu07",
    "action": "reset_gpu",
    "event_id": "salt/beacon/gpu07/sre_health:1795460346",
    "reason": "ECC uncorrectable on GPU 3",
    "source": "salt",
    "checks": ["ecc.uncorrected_volatile", "reset.pending"],
    "gpus": [3, 3, 1],
    "evidence": {"ecc.volatile": 2, "note": "from beacon", "ok": True, "ratio": 0.5, "x": None},
}


def test_a_good_event_validates() -> None:
    req = request_from_event(GOOD)
    assert req.node == "gpu07"
    assert req.action is Action.RESET_GPU
    assert req.gpus == (1, 3)  # sorted, deduplicated
    assert req.checks == ("ecc.uncorrected_volatile", "reset.pending")
    assert req.to_dict()["evidence"]["ecc.volatile"] == 2


def test_minimal_event_gets_defaults() -> None:
    req = request_from_event({"node": "n1", "action": "reboot", "event_id": "e1"})
    assert (req.reason, req.source, req.checks, req.gpus) == ("", "event", (), ())


def _with(**changes: Any) -> dict[str, Any]:
    event = dict(GOOD)
    for key, value in changes.items():
        if value is ...:
            event.pop(key)
        else:
            event[key] = value
    return event


BAD_EVENTS = {
    "not-a-mapping": ["node", "gpu07"],
    "missing-node": _with(node=...),
    "missing-event-id": _with(event_id=...),
    "unknown-key": {**GOOD, "gpu": 3},
    "salt-stamp-key": {**GOOD, "_stamp": "2026-11-23T18:00:00"},
    "node-shell": _with(node="gpu07; reboot"),
    "node-option": _with(node="-rf"),
    "node-newline": _with(node="gpu07\n"),
    "node-too-long": _with(node="a" * 64),
    "node-int": _with(node=7),
    "node-empty": _with(node=""),
    "node-unicode": _with(node="gpu０7"),
    "action-unknown": _with(action="format_disk"),
    "action-int": _with(action=3),
    "event-id-space": _with(event_id="a b"),
    "event-id-long": _with(event_id="e" * 129),
    "reason-control": _with(reason="ok\x1b[31mred"),
    "reason-newline": _with(reason="line1\nline2"),
    "reason-bidi": _with(reason="abc\u202edcb"),
    "reason-nul": _with(reason="a\x00b"),
    "reason-long": _with(reason="r" * 201),
    "reason-list": _with(reason=["x"]),
    "source-space": _with(source="salt master"),
    "checks-str": _with(checks="ecc"),
    "checks-many": _with(checks=[f"c{i}" for i in range(33)]),
    "checks-bad": _with(checks=["ok", "$(reboot)"]),
    "gpus-bool": _with(gpus=[True]),
    "gpus-negative": _with(gpus=[-1]),
    "gpus-huge": _with(gpus=[10**9]),
    "gpus-str": _with(gpus=["0"]),
    "gpus-many": _with(gpus=list(range(65))),
    "evidence-list": _with(evidence=[1]),
    "evidence-nested": _with(evidence={"a": {"b": 1}}),
    "evidence-nan": _with(evidence={"a": float("nan")}),
    "evidence-key": _with(evidence={"a b": 1}),
    "evidence-many": _with(evidence={f"k{i}": i for i in range(33)}),
    "evidence-control": _with(evidence={"a": "x\ry"}),
    "evidence-big": _with(evidence={f"k{i}": "v" * 250 for i in range(30)}),
}


@pytest.mark.parametrize("event", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_bad_events_are_refused(event: Any) -> None:
    with pytest.raises(ValidationError) as info:
        request_from_event(event)
    message = str(info.value)
    assert "\n" not in message and len(message) < 400


def test_error_names_the_field() -> None:
    with pytest.raises(ValidationError, match=r"gpus\[0\]"):
        request_from_event(_with(gpus=[True]))
    with pytest.raises(ValidationError, match="unknown key"):
        request_from_event({**GOOD, "extra": 1})


def test_direct_construction_validates_too() -> None:
    with pytest.raises(ValidationError):
        RemediationRequest(node="bad node", action=Action.REBOOT, event_id="e")
    with pytest.raises(ValidationError):
        RemediationRequest(node="n", action="nope", event_id="e")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text",
    ["", "{", "null", "[]", '"x"', "[" * 100_000, json.dumps(GOOD) + "garbage"],
    ids=["empty", "truncated", "null", "list", "string", "deep-nesting", "trailing"],
)
def test_garbage_json_is_a_validation_error(text: str) -> None:
    with pytest.raises(ValidationError):
        parse_event_json(text)


def test_oversized_json_is_refused_before_parsing() -> None:
    text = json.dumps({**GOOD, "reason": "x" * MAX_EVENT_JSON_BYTES})
    with pytest.raises(ValidationError, match="too large"):
        parse_event_json(text)


def test_sanitize_text() -> None:
    assert sanitize_text("a\nb\x1b[0m\u202e c", 100) == "a b [0m c"
    assert sanitize_text("x" * 50, 10) == "xxxxxxx..."


# --- from reports --------------------------------------------------------------------------------


def test_request_from_report_takes_the_worst_action_and_its_gpus() -> None:
    rep = node_report(
        "gpu05",
        1_800_000_000,
        ("ecc.uncorrected_volatile", Severity.CRIT, Action.RESET_GPU, 3),
        ("thermal.slowdown", Severity.WARN, Action.CHECK_MECHANICALS, 1),
        ("pcie.width", Severity.WARN, Action.RESET_GPU, 6),
    )
    req = request_from_report(rep)
    assert req.node == "gpu05"
    assert req.action is Action.CHECK_MECHANICALS
    assert req.gpus == (1,)
    assert req.checks[0] == "thermal.slowdown"
    assert set(req.checks) == {"thermal.slowdown", "ecc.uncorrected_volatile", "pcie.width"}
    assert req.event_id == "report:gpu05:1800000000:check_mechanicals"
    assert req.reason == "thermal.slowdown on GPU 1"


def test_request_from_report_reads_reset_pending_gpus() -> None:
    pending = finding(
        "reset.pending",
        Severity.CRIT,
        Action.RESET_GPU,
        summary="reset or reboot pending (GPU 2, 5, reset_gpu)",
        evidence={"gpus": [2, 5, True, -1, "x"]},
    )
    rep = report(pending, host="gpu01", at=1.0)
    assert request_from_report(rep, node="gpu01").gpus == (2, 5)


def test_request_from_report_sanitizes_summaries() -> None:
    f = finding(
        "xid", Severity.CRIT, Action.REBOOT, gpu=GpuRef(0), summary="XID 79\nfallen off the bus\x1b"
    )
    req = request_from_report(report(f, host="gpu01", at=1.0), event_id="e-1", source="ansible")
    assert req.reason == "XID 79 fallen off the bus"
    assert (req.event_id, req.source) == ("e-1", "ansible")


def test_request_from_report_refuses_a_bad_host() -> None:
    with pytest.raises(ValidationError, match="node"):
        request_from_report(report(host="bad host", at=1.0))


def test_report_json_round_trip() -> None:
    rep = node_report("gpu02", 1_800_000_000, ("ecc.x", Severity.CRIT, Action.RESET_GPU, 4))
    back = parse_report_json(json.dumps(rep.to_dict()))
    assert back.host == "gpu02"
    assert back.at == 1_800_000_000
    assert back.action is Action.RESET_GPU
    assert [f.check for f in back.findings] == [f.check for f in rep.findings]
    assert back.findings[-1].gpu is not None and back.findings[-1].gpu.index == 4


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda d: d.pop("host"), "host"),
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d.update(at="yesterday"), "at"),
        (lambda d: d["findings"][0].update(severity="bad"), "findings[0].severity"),
        (lambda d: d["findings"][0].update(action="bad"), "findings[0].action"),
        (lambda d: d["findings"][0].update(gpu={"index": "0"}), "findings[0].gpu.index"),
        (lambda d: d.update(findings={}), "findings"),
    ],
    ids=["no-host", "version", "time", "severity", "action", "gpu-index", "findings-type"],
)
def test_bad_reports_name_the_field(mutate: Any, field: str) -> None:
    data = node_report("gpu02", 1_800_000_000).to_dict()
    mutate(data)
    with pytest.raises(ValidationError) as info:
        report_from_dict(data)
    assert info.value.field == field


def test_decision_to_dict() -> None:
    d = Decision(Outcome.REFUSED, "cooldown", "wait", node="n", action=Action.REBOOT, at=1.0)
    assert d.to_dict()["action"] == "reboot"
    assert not d.acted
