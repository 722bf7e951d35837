"""XID events into ``gpu_xid_events_total``: the health engine's events, counted once each by
their stable key, in a counter that only rises."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sre_tools.exporter import metric_names as c
from sre_tools.exporter.xid import XidCounter
from sre_tools.health.model import Action, Finding, GpuRef, HealthReport, Severity
from sre_tools.health.xid.events import event_from_nvml
from sre_tools.health.xid.model import KIND_FALLEN_OFF_BUS, XidEvent, with_key
from sre_tools.health.xid.parser import parse_line
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

T0 = 1_795_000_000.0
XID13 = "NVRM: Xid (PCI:0000:18:00): 13, pid=1234, name=python, Graphics SM Warp Exception"


def line(xid: int, t: float, bus: str = "0000:18:00") -> str:
    """A kernel-log line (journal spelling, ISO time) for XID ``xid`` at ``t``."""
    when = datetime.fromtimestamp(t, UTC).isoformat()
    return f"{when} gpu-test kernel: NVRM: Xid (PCI:{bus}): {xid}, pid=1234, name=python, text"


def read(text: str) -> XidEvent:
    """The event the health engine reads from one kernel-log line, with its key."""
    event = parse_line(text)
    assert event is not None
    return with_key([event])[0]


def kev(xid: int, t: float) -> XidEvent:
    return read(line(xid, t))


def ev(xid: int, t: float) -> dict[str, Any]:
    """An event as the ``xid`` finding's evidence lists it."""
    return {"xid": xid, "time": t, "line": line(xid, t)}


def _nvml(record: dict[str, Any]) -> XidEvent:
    event = event_from_nvml(record)
    assert event is not None
    return with_key([event])[0]


@pytest.mark.parametrize(
    ("event", "xid", "when"),
    [
        (_nvml({"type": "xid", "gpu_index": 0, "xid": 79, "timestamp": T0}), 79, T0),
        (read(f"2026-11-23T10:00:00Z gpu-test kernel: {XID13}"), 13, 1795428000.0),
        (XidEvent(None, "0000:18:00", kind=KIND_FALLEN_OFF_BUS, timestamp=T0, key="k"), 79, T0),
        (_nvml({"type": "dbe", "gpu_index": 2, "timestamp": T0}), 48, T0),
        (XidEvent(94, "0000:18:00", key="k94"), 94, None),
    ],
    ids=["epoch", "iso-string", "fallen-off-bus-text", "nvml-dbe-event", "no-time"],
)
def test_every_event_kind_is_counted_under_its_catalog_xid(
    event: XidEvent, xid: int, when: float | None
) -> None:
    counter = XidCounter()
    assert event.key
    assert counter.observe([event], now=T0 + 100) == 1
    ((key, count),) = counter.counts.items()
    assert (key[-1], count) == (str(xid), 1)
    assert counter.last[key] == (T0 + 100 if when is None else when)


def test_events_without_an_xid_are_ignored() -> None:
    assert parse_line("NVRM: loading driver") is None
    counter = XidCounter()
    assert counter.observe([XidEvent(None, "0000:18:00", kind="other", key="k")], now=T0) == 0
    assert counter.counts == {}


def test_pipeline_event_objects_are_used_with_their_own_key() -> None:
    raw = XidEvent(
        xid=None, pci_bus_id="0000:18:00", kind=KIND_FALLEN_OFF_BUS, timestamp=T0, key="k-79"
    )
    counter = XidCounter()
    counter.observe([raw], now=T0)
    counter.observe([XidEvent(79, "0000:18:00", timestamp=T0 + 1, key="k-79")], now=T0 + 1)
    assert counter.counts == {("", "", "0000:18:00", "79"): 1}
    assert counter.last == {("", "", "0000:18:00", "79"): T0}


def test_key_is_stable_across_reports_and_differs_between_events() -> None:
    a, b, other = kev(79, T0), kev(79, T0), kev(79, T0 + 1)
    assert a.key == b.key != other.key


def test_the_reports_evidence_is_not_an_event_source() -> None:
    """Events come from collect_events only: XID evidence in findings (the ``xid`` check's, or
    another check's) adds nothing, so an event is never counted from two places."""
    gpu = GpuRef(1, UUID1, BUS1)
    findings = (
        Finding("xid", Severity.CRIT, "XID 79", Action.POWER_CYCLE, gpu, {"events": [ev(79, T0)]}),
        Finding("ecc.uncorrected_volatile", Severity.OK, "0", gpu=gpu, evidence={"xid": 48}),
    )

    def run(backend, policy, **kwargs):  # type: ignore[no-untyped-def]
        return HealthReport("gpu-test", kwargs["now"], findings, "test")

    loop = make_loop(CountingBackend.from_file(HEALTHY), health_runner=run)
    loop.collect_once()
    assert [s for s in samples(scrape(loop)) if s[0] == c.GPU_XID_EVENTS] == []


def test_counter_counts_each_event_once_and_never_goes_down() -> None:
    counter = XidCounter(retention_seconds=86400)
    e1, e2, e3 = kev(13, T0), kev(13, T0 + 10), kev(79, T0 + 20)
    history = [[e1], [e1, e2], [e2], [], [e1, e2, e3], [e3]]  # a sliding kernel-log window
    seen = []
    for i, batch in enumerate(history):
        counter.observe(batch, now=T0 + 100 + i)
        seen.append(dict(counter.counts))
    key13 = ("", "", "0000:18:00", "13")
    key79 = ("", "", "0000:18:00", "79")
    assert [s.get(key13, 0) for s in seen] == [1, 2, 2, 2, 2, 2]
    assert [s.get(key79, 0) for s in seen] == [0, 0, 0, 0, 1, 1]
    assert counter.last[key13] == T0 + 10
    assert counter.last[key79] == T0 + 20


def test_keys_are_forgotten_only_when_no_source_reported_them_for_the_retention() -> None:
    counter = XidCounter(retention_seconds=100, max_remembered=10)
    old = kev(13, T0 - 10_000)  # an old event a replay repeats
    for t in range(0, 1000, 50):
        counter.observe([old], now=T0 + t)
    assert sum(counter.counts.values()) == 1
    counter.observe([], now=T0 + 2000)  # not reported for longer than the retention
    assert old.key not in counter._seen
    flood = [kev(43, T0 + 3000 + i) for i in range(50)]
    counter.observe(flood, now=T0 + 3100)
    assert len(counter._seen) <= 10
    assert sum(counter.counts.values()) == 51


def test_xid_counter_is_monotonic_across_collections_of_a_sliding_kernel_log() -> None:
    batches = [
        [line(13, T0)],
        [line(13, T0), line(13, T0 + 5)],
        [line(13, T0 + 5)],  # the first one left the window
        [],
        [line(13, T0 + 5), line(31, T0 + 9)],
    ]
    lines: list[str] = []
    loop = make_loop(CountingBackend.from_file(HEALTHY), kernel_log_lines=lines)
    totals = []
    for batch in batches:
        lines[:] = batch
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


def test_events_come_from_the_xid_source_not_the_report() -> None:
    seen_ctx: list[Any] = []

    def collect(ctx: Any) -> list[XidEvent]:
        seen_ctx.append(ctx)
        # Kernel-log events name the GPU by bus id only, in the kernel's spelling.
        return [XidEvent(48, "0000:2a:00", timestamp=T0, key="dbe-1")]

    def run(backend, policy, **kwargs):  # type: ignore[no-untyped-def]
        gpu = GpuRef(0, UUID0, BUS0)
        evidence = {"events": [ev(13, T0)]}
        finding = Finding("xid", Severity.WARN, "XIDs", Action.RESTART_APP, gpu, evidence)
        return HealthReport("gpu-test", kwargs["now"], (finding,), "test")

    # The report's own xid evidence is ignored (no double counting).
    loop = make_loop(CountingBackend.from_file(HEALTHY), health_runner=run, xid_source=collect)
    loop.collect_once()
    loop.collect_once()
    text = scrape(loop)
    rows = [(labels, v) for n, labels, v in samples(text) if n == c.GPU_XID_EVENTS]
    assert rows == [({"gpu": "1", "uuid": UUID1, "pci_bus_id": BUS1, "xid": "48"}, 1)]
    assert [g.uuid for g in seen_ctx[0].gpus] == [UUID0, UUID1]


def test_source_failure_keeps_the_counts_and_is_counted() -> None:
    calls = {"n": 0}

    def collect(ctx: Any) -> list[XidEvent]:
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("journalctl timed out")
        return [XidEvent(79, None, gpu_index=0, timestamp=T0, key="a")]

    loop = make_loop(CountingBackend.from_file(HEALTHY), xid_source=collect)
    for _ in range(3):
        loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_XID_EVENTS, xid="79", uuid=UUID0) == 1
    assert one(text, c.EXPORTER_COLLECTION_ERRORS, reason="xid") == 1


def test_recorded_kernel_log_and_nvml_events_through_the_real_pipeline(tmp_path: Path) -> None:
    """The XID engineer's collect_events on a recording: kernel-log lines and an NVML event."""
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


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_events_the_health_run_read_are_counted_when_telemetry_fails(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Telemetry that raises (rather than hangs) still leaves this cycle's events counted: the
    ones the health run's ``xid`` check read, from the cycle's cache (no second read)."""
    from sre_tools.exporter import poller

    def broken(*args: Any) -> Any:
        raise RuntimeError("telemetry bug")

    monkeypatch.setattr(poller, "read_all", broken)
    loop = make_loop(CountingBackend.from_file(HEALTHY), kernel_log_lines=[line(13, T0)])
    loop.collect_once()
    text = scrape(loop)
    assert one(text, c.GPU_XID_EVENTS, xid="13", pci_bus_id="0000:18:00") == 1
    assert one(text, c.GPU_XID_LAST_EVENT, xid="13") == T0
