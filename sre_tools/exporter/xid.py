"""XID events as a counter that only goes up: ``gpu_xid_events_total{uuid,xid}``.

The events are the health engine's (:class:`sre_tools.health.xid.model.XidEvent`), as
:func:`sre_tools.health.checks.xid.collect_events` returns them each cycle: kernel log and NVML
events, de-duplicated across sources, each with a ``key`` that is stable across collections.
A kernel-log window reports the same event again on every cycle, so :class:`XidCounter`
remembers events by that key and counts each once, under its catalog XID (79 for the
fallen-off-bus text, 48 for NVML's double-bit ECC event, ...). Keys of events older than the
retention are forgotten (the sources never report them again).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sre_tools.health.xid.model import XidEvent

DEFAULT_RETENTION_SECONDS = 2 * 86400.0
MAX_REMEMBERED = 100_000

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
            xid = event.catalog_xid
            if xid is None:  # an event kind without a catalog entry has no series
                continue
            if event.key in self._seen:
                del self._seen[event.key]  # re-insert: most recently reported last
                self._seen[event.key] = now
                continue
            self._seen[event.key] = now
            if resolve is not None:
                labels = resolve(event)
            else:
                index = "" if event.gpu_index is None else str(event.gpu_index)
                labels = (index, event.uuid or "", event.pci_bus_id or "")
            key: CounterKey = (*labels, str(xid))
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
