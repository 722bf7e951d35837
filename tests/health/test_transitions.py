"""sre_tools.health.transitions: what changed since it was last reported, debounced."""

from __future__ import annotations

from typing import Any

import pytest

from sre_tools.health import transitions as t
from sre_tools.health.model import Action, Finding, GpuRef, HealthReport, Severity

T0 = 1_800_000_000.0


def report(*findings: Finding) -> dict[str, Any]:
    """A real HealthReport's dict: its status and action come from the health model."""
    return HealthReport("gpu-node-01", T0, tuple(findings), source="test").to_dict()


def thermal(severity: Severity, index: int = 0) -> Finding:
    return Finding("thermal.gpu", severity, "t", gpu=GpuRef(index, f"GPU-{index}"))


def ecc(severity: Severity, action: Action = Action.RESET_GPU) -> Finding:
    return Finding("ecc.uncorrected_volatile", severity, "e", action, GpuRef(0, "GPU-0"))


def xid(*keys: str) -> Finding:
    events = [{"key": k, "xid": 79} for k in keys]
    return Finding("xid", Severity.CRIT, "x", Action.REBOOT, GpuRef(0, "GPU-0"), {"events": events})


def steps(
    *reports: dict[str, Any], every: float = 10.0, cooldown: t.Cooldown = 300
) -> list[str | None]:
    """The transition name of each report in turn (None: nothing fired), ``every`` s apart."""
    state = t.new_state()
    out: list[str | None] = []
    for i, rep in enumerate(reports):
        fired = t.evaluate(state, rep, now=T0 + i * every, cooldown=cooldown)
        out.append(None if fired is None else t.transition_name(fired))
    return out


OK = report(thermal(Severity.OK))
WARN = report(thermal(Severity.WARN))
CRIT = report(thermal(Severity.WARN), ecc(Severity.CRIT))
UNKNOWN = report(thermal(Severity.UNKNOWN))


@pytest.mark.parametrize(
    ("reports", "names"),
    [
        pytest.param([OK, OK], [None, None], id="healthy-stays-quiet"),
        pytest.param([OK, WARN, CRIT], [None, "warn", "crit"], id="ok-warn-crit"),
        pytest.param([CRIT, CRIT], ["crit", None], id="steady-crit"),
        pytest.param([OK, UNKNOWN, WARN], [None, "unknown", "warn"], id="unknown-escalates"),
        pytest.param([WARN, UNKNOWN], ["warn", None], id="warn-to-unknown-waits"),
        pytest.param([WARN, OK, WARN, OK], ["warn", None, None, None], id="flapping-damped"),
        pytest.param([WARN, CRIT, WARN], ["warn", "crit", None], id="escalation-at-once"),
    ],
)
def test_transitions_follow_the_severity_order(
    reports: list[dict[str, Any]], names: list[str | None]
) -> None:
    assert steps(*reports) == names


def test_unknown_ranks_between_ok_and_warn() -> None:
    names = ["crit", "ok", "warn", "unknown", "skipped"]
    ranked = sorted(names, key=lambda s: t.severity_of(s).rank)
    assert ranked == ["ok", "skipped", "unknown", "warn", "crit"]  # skipped counts as ok
    assert t.severity_of("bogus") is Severity.UNKNOWN


def test_skipped_counts_as_ok() -> None:
    skipped = report(thermal(Severity.SKIPPED))
    assert steps(OK, skipped, OK) == [None, None, None]


def test_recovery_fires_once_the_cooldown_is_over() -> None:
    assert steps(WARN, OK, OK, every=200) == ["warn", None, "ok"]
    assert steps(WARN, OK, cooldown=0) == ["warn", "ok"]


def test_a_finding_that_disappears_counts_as_ok() -> None:
    state = t.new_state()
    t.evaluate(state, WARN, now=T0, cooldown=0)
    fired = t.evaluate(state, report(), now=T0 + 1, cooldown=0)
    assert fired is not None
    (gone,) = fired["findings"]
    assert (gone["check"], gone["previous"], gone["severity"], gone["finding"]) == (
        "thermal.gpu",
        "warn",
        "ok",
        {},
    )


def test_severity_is_tracked_per_gpu() -> None:
    state = t.new_state()
    t.evaluate(state, report(thermal(Severity.WARN, 0), thermal(Severity.OK, 1)), now=T0)
    fired = t.evaluate(
        state, report(thermal(Severity.WARN, 0), thermal(Severity.WARN, 1)), now=T0 + 1
    )
    assert fired is not None and fired["kinds"] == ["finding"]
    assert [c["key"] for c in fired["findings"]] == ["thermal.gpu@GPU-1"]


def test_a_more_disruptive_action_is_an_escalation() -> None:
    reset = report(ecc(Severity.CRIT))
    reboot = report(ecc(Severity.CRIT), Finding("nvml.init", Severity.CRIT, "n", Action.REBOOT))
    state = t.new_state()
    t.evaluate(state, reset, now=T0)
    fired = t.evaluate(state, reboot, now=T0 + 1)
    assert fired is not None and t.transition_name(fired) == "action"
    assert fired["node"] == {
        "severity": "crit",
        "previous_severity": "crit",
        "action": "reboot",
        "previous_action": "reset_gpu",
    }
    assert t.evaluate(state, reset, now=T0 + 2) is None  # back down: waits for the cooldown


def test_cooldown_per_check_and_default_for_the_node() -> None:
    cooldown = {"default": 300, "thermal.gpu": 10}
    state = t.new_state()
    t.evaluate(state, WARN, now=T0, cooldown=cooldown)
    fired = t.evaluate(state, OK, now=T0 + 11, cooldown=cooldown)
    assert fired is not None and fired["kinds"] == ["finding"] and fired["node"] is None
    fired = t.evaluate(state, OK, now=T0 + 311, cooldown=cooldown)
    assert fired is not None and t.transition_name(fired) == "ok"


def test_new_xids_fire_wait_for_their_cooldown_or_ride_along() -> None:
    cooldown = {"default": 300, "xid": 60}
    state = t.new_state()
    first = t.evaluate(state, report(xid("k1")), now=T0, cooldown=cooldown)
    assert first is not None and first["xids"] == ["k1"]
    assert t.evaluate(state, report(xid("k1", "k2")), now=T0 + 30, cooldown=cooldown) is None
    later = t.evaluate(state, report(xid("k1", "k2", "k3")), now=T0 + 61, cooldown=cooldown)
    assert later is not None and later["kinds"] == ["xid"] and later["xids"] == ["k2", "k3"]
    riding = t.evaluate(
        state, report(xid("k1", "k2", "k3", "k4"), thermal(Severity.WARN, 1)), now=T0 + 62
    )
    assert riding is not None and riding["kinds"] == ["xid", "finding"]
    assert t.transition_name(riding) == "xid" and riding["xids"] == ["k4"]


def test_seen_xids_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(t, "MAX_SEEN_XIDS", 5)
    state = t.new_state()
    t.evaluate(state, report(xid(*[f"k{i}" for i in range(20)])), now=T0)
    assert len(state["xids"]) == 5


def test_recovered_findings_are_forgotten_after_the_cooldown() -> None:
    state = t.new_state()
    for i, rep in enumerate([WARN, report(), report()]):
        t.evaluate(state, rep, now=T0 + i, cooldown=0)
    assert state["findings"] == {}


@pytest.mark.parametrize(
    "data",
    [None, "not a dict", [], {"version": 99, "findings": {"x": {}}}],
    ids=["none", "text", "list", "other-version"],
)
def test_unusable_state_starts_fresh(data: Any) -> None:
    assert t.state_from_dict(data) == t.new_state()


def test_state_round_trips_through_json() -> None:
    import json

    state = t.new_state()
    t.evaluate(state, report(xid("k1")), now=T0)
    again = t.state_from_dict(json.loads(json.dumps(state)))
    assert again == state
    assert t.evaluate(again, report(xid("k1")), now=T0 + 1) is None


@pytest.mark.parametrize(
    ("gpu", "key"),
    [
        pytest.param({"index": 0, "uuid": "GPU-x", "mig": None}, "c@GPU-x", id="uuid"),
        pytest.param({"index": 3, "uuid": "", "mig": None}, "c@index:3", id="index"),
        pytest.param(None, "c@node", id="node"),
        pytest.param({"index": 0, "uuid": "GPU-x", "mig": "GPU-I:1"}, "c@GPU-x/GPU-I:1", id="mig"),
    ],
)
def test_finding_key(gpu: Any, key: str) -> None:
    assert t.finding_key({"check": "c", "gpu": gpu}) == key


@pytest.mark.parametrize(
    ("cooldown", "check", "seconds"),
    [
        (None, "xid", 300.0),
        (30, "xid", 30.0),
        ({"xid": 5}, "xid", 5.0),
        ({"xid": 5}, "thermal.gpu", 300.0),
        ({"default": 7, "xid": 5}, "thermal.gpu", 7.0),
    ],
)
def test_cooldown_for(cooldown: Any, check: str, seconds: float) -> None:
    assert t.cooldown_for(cooldown, check) == seconds
