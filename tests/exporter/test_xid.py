"""XID events into ``gpu_xid_events_total``: the adapter, stable keys, a counter that only rises."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sre_tools import conventions as c
from sre_tools.exporter import xid as xid_mod
from sre_tools.exporter.xid import XidCounter, XidEvent, events_from_findings, normalize
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from tests.exporter.conftest import (
    BUS0,
    BUS1,
    HEALTHY,
    UUID0,
    UUID1,
    CountingBackend,
    load_data,
    make_loop,
    one,
    samples,
    scrape,
)
from tests.helpers.reports import finding, report

T0 = 1_795_000_000.0


def ev(xid: int, t: float, line: str = "", **extra: Any) -> dict[str, Any]:
    return {"xid": xid, "time": t, "line": line or f"NVRM: Xid (PCI:0000:18:00): {xid}", **extra}


@pytest.mark.parametrize(
    ("raw", "xid", "when"),
    [
        ({"xid": 79, "timestamp": T0}, 79, T0),
        ({"xid": "13", "time": "2026-11-23T10:00:00Z"}, 13, 1795428000.0),
        ({"xid": None, "kind": "fallen_off_bus", "timestamp": T0}, 79, T0),
        ({"type": "dbe", "gpu_index": 2, "timestamp": T0}, 48, T0),
        ({"xid": 94}, 94, None),
    ],
    ids=["epoch", "iso-string", "fallen-off-bus-text", "nvml-dbe-event", "no-time"],
)
def test_events_are_normalized_from_every_known_shape(
    raw: dict[str, Any], xid: int, when: float | None
) -> None:
    event = normalize(raw)
    assert event is not None
    assert (event.xid, event.timestamp) == (xid, when)
    assert event.key


def test_events_without_an_xid_are_ignored() -> None:
    assert normalize({"line": "NVRM: loading driver"}) is None
    assert normalize({"xid": "abc"}) is None


def test_pipeline_event_objects_are_used_with_their_own_key() -> None:
    from sre_tools.health.xid.model import KIND_FALLEN_OFF_BUS
    from sre_tools.health.xid.model import XidEvent as PipelineEvent

    raw = PipelineEvent(
        xid=None, pci_bus_id="0000:18:00", kind=KIND_FALLEN_OFF_BUS, timestamp=T0, key="k-79"
    )
    event = normalize(raw)
    assert event == XidEvent("k-79", 79, T0, None, "", "0000:18:00")


def test_key_is_stable_across_reports_and_ignores_fields_that_change() -> None:
    a = normalize({**ev(79, T0), "age_seconds": 5, "severity": "crit"}, GpuRef(0, UUID0))
    b = normalize({**ev(79, T0), "age_seconds": 65, "severity": "warn"}, GpuRef(0, UUID0))
    other = normalize(ev(79, T0 + 1), GpuRef(0, UUID0))
    assert a is not None and b is not None and other is not None
    assert a.key == b.key != other.key


def test_fallback_reads_the_evidence_of_xid_findings_only() -> None:
    gpu = GpuRef(1, UUID1, BUS1)
    findings = [
        Finding("xid", Severity.CRIT, "XID 79", Action.POWER_CYCLE, gpu, {"events": [ev(79, T0)]}),
        Finding("xid.recovery_action", Severity.OK, "none", gpu=gpu, evidence={}),
        Finding("ecc.uncorrected_volatile", Severity.OK, "0", gpu=gpu, evidence={"xid": 48}),
    ]
    events = events_from_findings(findings)
    assert [(e.xid, e.uuid, e.gpu_index) for e in events] == [(79, UUID1, 1)]


def test_counter_counts_each_event_once_and_never_goes_down() -> None:
    counter = XidCounter(retention_seconds=86400)
    e1 = normalize(ev(13, T0), GpuRef(0, UUID0, BUS0))
    e2 = normalize(ev(13, T0 + 10), GpuRef(0, UUID0, BUS0))
    e3 = normalize(ev(79, T0 + 20), GpuRef(0, UUID0, BUS0))
    assert e1 and e2 and e3
    history = [[e1], [e1, e2], [e2], [], [e1, e2, e3], [e3]]  # a sliding kernel-log window
    seen = []
    for i, batch in enumerate(history):
        counter.observe(batch, now=T0 + 100 + i)
        seen.append(dict(counter.counts))
    key13 = ("0", UUID0, BUS0, "13")
    key79 = ("0", UUID0, BUS0, "79")
    assert [s.get(key13, 0) for s in seen] == [1, 2, 2, 2, 2, 2]
    assert [s.get(key79, 0) for s in seen] == [0, 0, 0, 0, 1, 1]
    assert counter.last[key13] == T0 + 10
    assert counter.last[key79] == T0 + 20


def test_keys_are_forgotten_only_when_no_source_reported_them_for_the_retention() -> None:
    counter = XidCounter(retention_seconds=100, max_remembered=10)
    old = normalize(ev(13, T0 - 10_000), GpuRef(0, UUID0))  # an old event a replay repeats
    assert old is not None
    for t in range(0, 1000, 50):
        counter.observe([old], now=T0 + t)
    assert sum(counter.counts.values()) == 1
    counter.observe([], now=T0 + 2000)  # not reported for longer than the retention
    assert old.key not in counter._seen
    flood = [normalize(ev(43, T0 + 3000 + i), GpuRef(0, UUID0)) for i in range(50)]
    counter.observe([e for e in flood if e], now=T0 + 3100)
    assert len(counter._seen) <= 10
    assert sum(counter.counts.values()) == 51


def _xid_runner(batches: list[list[dict[str, Any]]]):  # type: ignore[no-untyped-def]
    """A health runner whose ``xid`` finding lists the next batch of events each cycle."""
    state = {"i": 0}

    def run(backend, policy, **kwargs):  # type: ignore[no-untyped-def]
        batch = batches[min(state["i"], len(batches) - 1)]
        state["i"] += 1
        gpu = GpuRef(0, UUID0, BUS0)
        xid = finding(
            "xid",
            Severity.WARN,
            Action.RESTART_APP,
            gpu=gpu,
            summary="XIDs",
            evidence={"events": batch},
        )
        return report(xid, host="gpu-test", at=kwargs["now"], source="test")

    return run


def test_xid_counter_is_monotonic_across_collections_from_findings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(xid_mod, "collect_events_fn", lambda: None)  # the fallback path
    batches = [
        [ev(13, T0)],
        [ev(13, T0), ev(13, T0 + 5)],
        [ev(13, T0 + 5)],  # the first one left the window
        [],
        [ev(13, T0 + 5), ev(31, T0 + 9)],
    ]
    loop = make_loop(CountingBackend.from_file(HEALTHY), health_runner=_xid_runner(batches))
    totals = []
    for _ in batches:
        loop.collect_once()
        text = scrape(loop)
        totals.append(
            {
                labels["xid"]: v
                for n, labels, v in samples(text)
                if n == c.GPU_XID_EVENTS and labels["uuid"] == UUID0
            }
        )
    assert [t.get("13", 0) for t in totals] == [1, 2, 2, 2, 2]
    assert [t.get("31", 0) for t in totals] == [0, 0, 0, 0, 1]
    text = scrape(loop)
    assert one(text, c.GPU_XID_LAST_EVENT, xid="13", gpu="0", pci_bus_id=BUS0) == T0 + 5
    assert one(text, c.GPU_XID_LAST_EVENT, xid="31", uuid=UUID0) == T0 + 9


def test_collect_events_is_preferred_when_the_pipeline_offers_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen_ctx: list[Any] = []

    def collect(ctx: Any) -> list[dict[str, Any]]:
        seen_ctx.append(ctx)
        # Kernel-log events name the GPU by bus id only, in the kernel's spelling.
        return [{"xid": 48, "pci_bus_id": "0000:2a:00", "timestamp": T0, "key": "dbe-1"}]

    monkeypatch.setattr(xid_mod, "collect_events_fn", lambda: collect)
    # The report's own xid evidence is ignored on this path (no double counting).
    runner = _xid_runner([[ev(13, T0)]])
    loop = make_loop(CountingBackend.from_file(HEALTHY), health_runner=runner)
    loop.collect_once()
    loop.collect_once()
    text = scrape(loop)
    rows = [(labels, v) for n, labels, v in samples(text) if n == c.GPU_XID_EVENTS]
    assert rows == [({"gpu": "1", "uuid": UUID1, "pci_bus_id": BUS1, "xid": "48"}, 1)]
    assert [g.uuid for g in seen_ctx[0].gpus] == [UUID0, UUID1]


def test_source_failure_keeps_the_counts_and_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = {"n": 0}

    def collect(ctx: Any) -> list[dict[str, Any]]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("journalctl timed out")
        return [{"xid": 79, "gpu_index": 0, "timestamp": T0, "key": "a"}]

    monkeypatch.setattr(xid_mod, "collect_events_fn", lambda: collect)
    loop = make_loop(CountingBackend.from_file(HEALTHY))
    for _ in range(3):
        loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_XID_EVENTS, xid="79", uuid=UUID0) == 1
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="xid") == 1


def test_recorded_kernel_log_and_nvml_events_through_the_real_pipeline(tmp_path: Path) -> None:
    """The XID engineer's collect_events on a recording: kernel-log lines and an NVML event."""
    assert xid_mod.collect_events_fn() is not None, "sre_tools.health.checks.xid.collect_events"
    data = load_data(HEALTHY)
    data["events"] = [{"type": "xid", "gpu_index": 1, "xid": 94, "timestamp": T0}]
    lines = [
        "[Sun Nov 23 10:00:00 2026] NVRM: Xid (PCI:0000:18:00): 13, pid=1234, name=python, "
        "Graphics SM Warp Exception",
        "[Sun Nov 23 10:00:05 2026] NVRM: Xid (PCI:0000:2a:00): 48, pid=1234, name=python, "
        "An uncorrectable double bit error",
    ]
    path = tmp_path / "xid.json"
    path.write_text(json.dumps(data))
    backend = CountingBackend.from_file(path)
    loop = make_loop(backend, kernel_log_lines=lines)
    for _ in range(3):  # the same events on every cycle: counted once
        loop.collect_once()
    text = scrape(loop)
    counts = {
        (labels["uuid"], labels["xid"]): v
        for n, labels, v in samples(text)
        if n == c.GPU_XID_EVENTS
    }
    assert counts == {(UUID0, "13"): 1, (UUID1, "48"): 1, (UUID1, "94"): 1}
    assert one(text, c.GPU_XID_LAST_EVENT, uuid=UUID1, xid="94") == T0


def test_the_kernel_log_is_read_once_per_cycle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The health run's xid check reads the kernel log; the exporter's XID counting reuses what
    it read (the cycle's shared cache) instead of running journalctl/dmesg a second time."""
    from sre_tools.health.checks import xid as xid_checks

    reads: list[float] = []
    real = xid_checks._log_events

    def counting(ctx: Any, reader: Any) -> Any:
        reads.append(ctx.now)
        return real(ctx, reader)

    monkeypatch.setattr(xid_checks, "_log_events", counting)
    data = load_data(HEALTHY)
    data["events"] = [{"type": "xid", "gpu_index": 1, "xid": 94, "timestamp": T0}]
    path = tmp_path / "xid.json"
    path.write_text(json.dumps(data))
    lines = [
        "[Sun Nov 23 10:00:05 2026] NVRM: Xid (PCI:0000:2a:00): 48, pid=1234, name=python, "
        "An uncorrectable double bit error",
    ]
    loop = make_loop(CountingBackend.from_file(path), kernel_log_lines=lines)
    for _ in range(3):
        loop.collect_once()
    assert len(reads) == 3  # one read per cycle, by the health run
    text = scrape(loop)
    counts = {
        (labels["uuid"], labels["xid"]): v
        for n, labels, v in samples(text)
        if n == c.GPU_XID_EVENTS
    }
    # Both sources still counted, once each: the NVML event drained by the health run too.
    assert counts == {(UUID1, "48"): 1, (UUID1, "94"): 1}
    report = loop.snapshot().report
    assert report is not None
    assert any(f.check.startswith("xid") and f.severity != Severity.OK for f in report.findings)
