"""XID events as a counter that only goes up: ``gpu_xid_events_total{uuid,xid}``.

Where events come from is behind one adapter, :func:`events_for_cycle`:

- if the XID pipeline exposes ``sre_tools.health.checks.xid.collect_events(ctx)``, that is used
  (inside the exporter's NVML session, with a :class:`~sre_tools.health.registry.Context` whose
  ``gpus`` are the devices just read);
- otherwise the events are taken from the evidence of the ``xid`` findings of the health report
  (``evidence["events"]``: a list of events with at least ``xid`` and, ideally, ``timestamp``).

Either source may report the same event again on every cycle (a kernel-log window, a backfill
after a restart), so :class:`XidCounter` remembers events by a stable key and counts each once.
Keys of events older than the retention are forgotten (the sources never report them again).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sre_tools.health.model import Finding, GpuRef, HealthReport

# Events without their own XID number, as the XID pipeline classifies them
# (sre_tools.health.xid.model.EQUIVALENT_XID; repeated so the exporter does not depend on it).
EQUIVALENT_XID = {"fallen_off_bus": 79, "gpu_unavailable": 79, "dbe": 48, "recovery_action": 154}
DEFAULT_RETENTION_SECONDS = 2 * 86400.0
MAX_REMEMBERED = 100_000


@dataclass(frozen=True)
class XidEvent:
    key: str
    xid: int
    timestamp: float | None = None
    gpu_index: int | None = None
    uuid: str = ""
    pci_bus_id: str = ""


def _get(raw: Any, *names: str) -> Any:
    for name in names:
        value = raw.get(name) if isinstance(raw, Mapping) else getattr(raw, name, None)
        if value is not None:
            return value
    return None


def _timestamp(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            pass
        from sre_tools.exceptions import ValidationError
        from sre_tools.timeutil import parse_time

        try:
            return parse_time(value).timestamp()
        except ValidationError:
            return None
    timestamp = getattr(value, "timestamp", None)  # a datetime
    if callable(timestamp):
        try:
            return float(timestamp())
        except (TypeError, ValueError, OverflowError):
            return None
    return None


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def normalize(raw: Any, default_gpu: GpuRef | None = None) -> XidEvent | None:
    """One event from either source (a mapping or an object); None when it names no XID."""
    xid = _int(_get(raw, "catalog_xid", "xid", "code"))
    if xid is None:
        # "GPU has fallen off the bus" and NVML event types carry no number but stand for one.
        xid = EQUIVALENT_XID.get(str(_get(raw, "kind", "type")))
    if xid is None:
        return None
    gpu = _get(raw, "gpu_ref", "gpu")
    index: int | None = None
    uuid = ""
    pci = ""
    if isinstance(gpu, GpuRef):
        index, uuid, pci = gpu.index, gpu.uuid, gpu.pci_bus_id
    elif gpu is not None:
        index = _int(gpu)
    if index is None:
        index = _int(_get(raw, "index", "gpu_index"))
    uuid = str(_get(raw, "uuid", "gpu_uuid") or uuid)
    pci = str(_get(raw, "pci_bus_id", "bus_id", "pci") or pci)
    if default_gpu is not None:
        index = default_gpu.index if index is None else index
        uuid = uuid or default_gpu.uuid
        pci = pci or default_gpu.pci_bus_id
    when = _timestamp(_get(raw, "timestamp", "time", "at", "ts"))
    key = _get(raw, "key", "id")
    if key is None:
        text = _get(raw, "line", "message", "raw", "text")
        # Only fields that do not change between reports of the same event (never an "age").
        ident = [uuid or pci or index, xid, when, None if text is None else str(text)]
        key = hashlib.sha256(json.dumps(ident, default=str).encode()).hexdigest()[:32]
    return XidEvent(str(key), xid, when, index, uuid, pci)


def is_xid_check(check_id: str) -> bool:
    return check_id == "xid" or check_id.startswith("xid.")


def events_from_findings(findings: Iterable[Finding]) -> list[XidEvent]:
    """Events listed in the evidence of ``xid`` findings (the fallback source)."""
    out: list[XidEvent] = []
    for f in findings:
        if not is_xid_check(f.check):
            continue
        raw_events = f.evidence.get("events")
        if raw_events is None and "xid" in f.evidence:
            raw_events = [f.evidence]
        if not isinstance(raw_events, list):
            continue
        for raw in raw_events:
            event = normalize(raw, f.gpu)
            if event is not None:
                out.append(event)
    return out


CollectEvents = Callable[[Any], Iterable[Any]]


def collect_events_fn() -> CollectEvents | None:
    """The XID pipeline's ``collect_events(ctx)``, when it exists."""
    try:
        from sre_tools.health.checks import xid as xid_checks
    except ImportError:
        return None
    fn = getattr(xid_checks, "collect_events", None)
    return fn if callable(fn) else None


def events_for_cycle(
    report: HealthReport | None, collected: Iterable[Any] | None
) -> list[XidEvent]:
    """The adapter: events from ``collect_events`` when it ran, else from the report."""
    if collected is not None:
        return [e for e in (normalize(raw) for raw in collected) if e is not None]
    if report is None:
        return []
    return events_from_findings(report.findings)


CounterKey = tuple[str, str, str, str]  # gpu, uuid, pci_bus_id, xid (the label values)


class XidCounter:
    """Counts each distinct event once; ``last`` holds the newest event time per series.

    An event key is remembered while a source keeps reporting it and for ``retention_seconds``
    after it last did (a kernel-log window slides past it; a replay reports it forever), so an
    event is never counted twice while anyone still reports it. ``max_remembered`` bounds the
    memory under an XID storm (the least recently reported keys go first).
    """

    def __init__(
        self,
        retention_seconds: float = DEFAULT_RETENTION_SECONDS,
        max_remembered: int = MAX_REMEMBERED,
    ):
        self.retention_seconds = retention_seconds
        self.max_remembered = max_remembered
        self.counts: dict[CounterKey, int] = {}
        self.last: dict[CounterKey, float] = {}
        self._seen: dict[str, float] = {}  # event key -> when a source last reported it (LRU)

    def observe(
        self,
        events: Iterable[XidEvent],
        now: float,
        resolve: Callable[[XidEvent], tuple[str, str, str]] | None = None,
    ) -> int:
        """Count the events not seen before; return how many were new.

        ``resolve`` maps an event to its GPU label values (so that an event that names only an
        index or a bus id gets the device's UUID and the same labels as its telemetry).
        """
        new = 0
        for event in events:
            if event.key in self._seen:
                del self._seen[event.key]  # re-insert: most recently reported last
                self._seen[event.key] = now
                continue
            self._seen[event.key] = now
            if resolve is not None:
                labels = resolve(event)
            else:
                index = "" if event.gpu_index is None else str(event.gpu_index)
                labels = (index, event.uuid, event.pci_bus_id)
            key: CounterKey = (*labels, str(event.xid))
            self.counts[key] = self.counts.get(key, 0) + 1
            when = event.timestamp if event.timestamp is not None else now
            if when > self.last.get(key, float("-inf")):
                self.last[key] = when
            new += 1
        self._prune(now)
        return new

    def _prune(self, now: float) -> None:
        horizon = now - self.retention_seconds
        while self._seen:
            key, last_seen = next(iter(self._seen.items()))
            if last_seen >= horizon and len(self._seen) <= self.max_remembered:
                break
            del self._seen[key]
