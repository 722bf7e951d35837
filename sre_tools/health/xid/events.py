"""NVML XID events: the background watcher, the event schema, and de-duplication across sources.

The watcher (:class:`NvmlEventWatcher`) is the only code here that calls ``pynvml``, and imports
it only when it starts. It turns each NVML event into a plain dict, the same schema a recording
lists under ``"events"`` (``RecordedBackend.events()``)::

    {"type": "xid", "gpu_index": 0, "xid": 79, "timestamp": 1795168800.25}
    {"type": "dbe", "gpu_index": 3, "timestamp": ...}               # double-bit ECC (XID 48)
    {"type": "gpu_unavailable", "gpu_index": 1, "timestamp": ...}   # fallen off the bus (XID 79)
    {"type": "recovery_action", "gpu_index": 2, "value": 2, "timestamp": ...}  # XID 154

``timestamp`` is epoch seconds (when the event was received; NVML events carry no time).
Optional keys: ``pci_bus_id`` (any NVML or kernel spelling) and ``gpu_instance_id`` (MIG).
Dicts go to a thread-safe queue and to an optional sink (``RealBackend.push_event``), from where
the ``xid`` check reads them with ``backend.events()``.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

from sre_tools.health.model import GpuRef
from sre_tools.health.xid.model import (
    KIND_DBE,
    KIND_GPU_UNAVAILABLE,
    KIND_RECOVERY_ACTION,
    KIND_XID,
    SOURCES,
    XidEvent,
    with_key,
)
from sre_tools.health.xid.parser import normalize_bus_id

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

DEDUPE_WINDOW_SECONDS = 2.0
MAX_CANDIDATES = 512
EVENT_TYPES = ("xid", "dbe", "gpu_unavailable", "recovery_action")
_NO_INSTANCE = 0xFFFFFFFF
# nvmlEventType* bits (fallbacks for an older pynvml that lacks the newer names).
_NVML_TYPES = (
    ("nvmlEventTypeXidCriticalError", 0x0008, "xid"),
    ("nvmlEventTypeDoubleBitEccError", 0x0002, "dbe"),
    ("nvmlEventTypeGpuUnavailableError", 0x4000, "gpu_unavailable"),
    ("nvmlEventTypeGpuRecoveryAction", 0x8000, "recovery_action"),
)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value)


def event_from_nvml(data: Mapping[str, Any], gpus: Sequence[GpuRef] = ()) -> XidEvent | None:
    """One event dict (schema above) to an :class:`XidEvent`; None when it is not one."""
    if not isinstance(data, Mapping):
        return None
    kind = data.get("type")
    index = _int(data.get("gpu_index"))
    if kind not in EVENT_TYPES:
        return None
    bus = data.get("pci_bus_id")
    pci_bus_id = normalize_bus_id(bus) if isinstance(bus, str) else None
    if pci_bus_id is None and index is not None:
        ref = next((g for g in gpus if g.index == index), None)
        if ref is not None:
            pci_bus_id = normalize_bus_id(ref.pci_bus_id)
    ts = data.get("timestamp")
    timestamp = (
        float(ts) if isinstance(ts, int | float) and not isinstance(ts, bool) and ts >= 0 else None
    )
    gi = _int(data.get("gpu_instance_id"))
    gpu_instance = None if gi is None or gi < 0 or gi == _NO_INSTANCE else f"GPU-I:{gi:02d}"
    xid: int | None
    recovery: int | None = None
    if kind == "xid":
        xid = _int(data.get("xid"))
        if xid is None or xid < 0:
            return None
        ev_kind = KIND_XID
        message = f"NVML XID {xid} event"
    elif kind == "dbe":
        xid, ev_kind, message = 48, KIND_DBE, "NVML double-bit ECC error event"
    elif kind == "gpu_unavailable":
        xid, ev_kind, message = None, KIND_GPU_UNAVAILABLE, "NVML GPU unavailable event"
    else:
        recovery = _int(data.get("value"))
        if recovery is None:
            return None
        xid, ev_kind = 154, KIND_RECOVERY_ACTION
        message = f"NVML recovery action event: 0x{recovery:x}"
    if xid == 154 and kind == "xid":
        recovery = _int(data.get("value"))
    return XidEvent(
        xid=xid,
        pci_bus_id=pci_bus_id,
        message=message,
        gpu_instance=gpu_instance,
        timestamp=timestamp,
        source="nvml",
        kind=ev_kind,
        gpu_index=index,
        recovery_action=recovery,
    )


def nvml_events(records: Iterable[Any], gpus: Sequence[GpuRef] = ()) -> list[XidEvent]:
    """Event dicts (``backend.events()``) to keyed events; malformed entries are skipped."""
    out = []
    for rec in records:
        ev = event_from_nvml(rec, gpus) if isinstance(rec, Mapping) else None
        if ev is not None:
            out.append(ev)
    return with_key(out)


def _label(ev: XidEvent) -> str:
    """Which reporter an event comes from: two reporters can see the same event, one cannot."""
    return f"{ev.source}:{ev.kind}"


def _priority(ev: XidEvent) -> tuple[int, int]:
    rank = SOURCES.index(ev.source) if ev.source in SOURCES else len(SOURCES)
    return rank, 0 if ev.kind == KIND_XID else 1


def _same_instance(a: XidEvent, b: XidEvent) -> bool:
    return a.gpu_instance is None or b.gpu_instance is None or a.gpu_instance == b.gpu_instance


def dedupe(events: Iterable[XidEvent], window: float = DEDUPE_WINDOW_SECONDS) -> list[XidEvent]:
    """Merge the events that different sources report for one occurrence.

    Two events are one when they come from different reporters (kmsg, journal, NVML, ... or the
    text form next to its numbered XID), concern the same GPU (bus id or NVML index) and XID (79
    for the fallen-off-bus text), and have the same kmsg sequence number or times within
    ``window`` seconds (wall clock, or time since boot). One reporter never repeats itself, so a
    burst of identical XIDs from one source stays a burst. The kept event is the best source's
    (kmsg, dmesg, syslog, journal, text, NVML), with the others' names in ``sources`` and a time
    filled in from them when it had none; its ``key`` does not change.
    """
    evs = sorted(enumerate(events), key=lambda p: (_priority(p[1]), p[0]))
    dedup = _Deduper(window)
    for pos, ev in evs:
        dedup.add(pos, ev)
    return dedup.result()


Group = tuple[str, int | None]  # (GPU, XID)


class _Deduper:
    """The bookkeeping of :func:`dedupe`.

    Kept events are indexed by time per (GPU, XID); for each reporter a separate sorted pool
    holds the kept events that reporter has not matched yet, so that matching a burst from a
    second source is a binary search, not a scan past the already matched ones.
    """

    def __init__(self, window: float):
        self.window = window
        self.kept: list[XidEvent] = []
        self.first_seen: list[int] = []  # input position of each kept event's earliest report
        self.reporters: list[set[str]] = []
        self.times: dict[tuple[str, Group], list[tuple[float, int]]] = {}  # axis: wall, uptime
        # (axis, group) -> reporter -> kept events that reporter has not matched, sorted by time
        self.pools: dict[tuple[str, Group], dict[str, list[tuple[float, int]]]] = {}
        self.by_seq: dict[tuple[Group, int], list[int]] = {}

    @staticmethod
    def _axes(ev: XidEvent) -> list[tuple[str, float]]:
        return [(a, t) for a, t in (("wall", ev.timestamp), ("uptime", ev.uptime)) if t is not None]

    def _pool(self, axis: str, group: Group, label: str) -> list[tuple[float, int]]:
        pools = self.pools.setdefault((axis, group), {})
        pool = pools.get(label)
        if pool is None:
            series = self.times.get((axis, group), [])
            pool = [(t, i) for t, i in series if label not in self.reporters[i]]
            pools[label] = pool
        return pool

    def _index(self, idx: int, axes: list[tuple[str, float]], group: Group) -> None:
        for axis, t in axes:
            bisect.insort(self.times.setdefault((axis, group), []), (t, idx))
            for label, pool in self.pools.get((axis, group), {}).items():
                if label not in self.reporters[idx]:
                    bisect.insort(pool, (t, idx))

    def _unpool(self, idx: int, group: Group, label: str) -> None:
        for axis, t in self._axes(self.kept[idx]):
            pool = self.pools.get((axis, group), {}).get(label)
            if pool is not None:
                j = bisect.bisect_left(pool, (t, idx))
                if j < len(pool) and pool[j] == (t, idx):
                    del pool[j]

    def _find(self, ev: XidEvent, group: Group, label: str) -> int | None:
        if ev.seq is not None:
            for i in self.by_seq.get((group, ev.seq), []):
                if label not in self.reporters[i] and _same_instance(self.kept[i], ev):
                    return i
        for axis, t in self._axes(ev):
            pool = self._pool(axis, group, label)
            j = bisect.bisect_left(pool, (t - self.window, -1))
            for tj, i in pool[j : j + MAX_CANDIDATES]:
                if tj > t + self.window:
                    break
                if _same_instance(self.kept[i], ev):
                    return i
        return None

    def add(self, pos: int, ev: XidEvent) -> None:
        group = (ev.gpu_key[0], ev.catalog_xid)
        label = _label(ev)
        match = self._find(ev, group, label)
        if match is None:
            idx = len(self.kept)
            self.kept.append(ev)
            self.first_seen.append(pos)
            self.reporters.append({label})
            self._index(idx, self._axes(ev), group)
            if ev.seq is not None:
                self.by_seq.setdefault((group, ev.seq), []).append(idx)
            return
        self._unpool(match, group, label)
        self.reporters[match].add(label)
        self.first_seen[match] = min(self.first_seen[match], pos)
        base = self.kept[match]
        merged = base.replace(
            timestamp=base.timestamp if base.timestamp is not None else ev.timestamp,
            uptime=base.uptime if base.uptime is not None else ev.uptime,
            gpu_index=base.gpu_index if base.gpu_index is not None else ev.gpu_index,
            recovery_action=(
                base.recovery_action if base.recovery_action is not None else ev.recovery_action
            ),
            sources=tuple(dict.fromkeys((*base.sources, *(ev.sources or (ev.source,))))),
        )
        self.kept[match] = merged
        # a time the kept event lacked and now has from this report: index it too
        new_axes = [(a, t) for a, t in self._axes(merged) if (a, t) not in self._axes(base)]
        self._index(match, new_axes, group)

    def result(self) -> list[XidEvent]:
        order = sorted(zip(self.first_seen, self.kept, strict=True), key=lambda p: p[0])
        return [ev for _, ev in order]


class NvmlEventWatcher:
    """A background thread that waits for NVML events and queues them as dicts (schema above).

    ``nvml`` is injectable (a fake in tests); by default ``pynvml`` is imported when the thread
    starts. The wait has a timeout (``timeout_ms``) so :meth:`stop` returns promptly. The watcher
    holds its own NVML reference (``nvmlInit``), so a collection's ``nvmlShutdown`` does not
    invalidate its event set.
    """

    def __init__(
        self,
        sink: Callable[[dict[str, Any]], None] | None = None,
        *,
        nvml: Any = None,
        timeout_ms: int = 500,
        clock: Callable[[], float] = time.time,
        maxsize: int = 10000,
    ):
        self.sink = sink
        self.nvml = nvml
        self.timeout_ms = timeout_ms
        self.clock = clock
        import queue  # only the live event watcher queues (a check run never starts one)

        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=maxsize)
        self.errors: list[str] = []
        self.registered: dict[int, list[str]] = {}
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> NvmlEventWatcher:
        self._thread = threading.Thread(target=self._run, daemon=True, name="sre-xid-events")
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def drain(self) -> list[dict[str, Any]]:
        """Every event queued so far (and not yet taken)."""
        import queue

        out = []
        while True:
            try:
                out.append(self.queue.get_nowait())
            except queue.Empty:
                return out

    def _error(self, text: str) -> None:
        self.errors.append(text)
        del self.errors[:-100]

    def _emit(self, event: dict[str, Any]) -> None:
        import queue

        with contextlib.suppress(queue.Full):  # a stuck consumer must not grow memory
            self.queue.put_nowait(event)
        if self.sink is not None:
            try:
                self.sink(event)
            except Exception as exc:  # the sink is someone else's code: never kill the thread
                self._error(f"sink failed: {type(exc).__name__}: {exc}")

    def _run(self) -> None:
        nvml = self.nvml
        try:
            if nvml is None:
                import pynvml

                nvml = pynvml
            nvml.nvmlInit()
        except Exception as exc:
            self._error(f"NVML init failed: {exc}")
            self.ready.set()
            return
        event_set = None
        try:
            event_set = nvml.nvmlEventSetCreate()
            self._register(nvml, event_set)
            self.ready.set()
            while not self._stop.is_set():
                try:
                    data = nvml.nvmlEventSetWait_v2(event_set, self.timeout_ms)
                except nvml.NVMLError as exc:
                    if getattr(exc, "value", None) == getattr(nvml, "NVML_ERROR_TIMEOUT", 10):
                        continue
                    self._error(f"event wait failed: {exc}")
                    self._stop.wait(1.0)  # do not spin on a persistent error
                    continue
                event = self._to_dict(nvml, data)
                if event is not None:
                    self._emit(event)
        except Exception as exc:
            self._error(f"event thread failed: {type(exc).__name__}: {exc}")
        finally:
            self.ready.set()
            if event_set is not None:
                with contextlib.suppress(Exception):
                    nvml.nvmlEventSetFree(event_set)
            with contextlib.suppress(Exception):
                nvml.nvmlShutdown()

    def _register(self, nvml: Any, event_set: Any) -> None:
        for index in range(int(nvml.nvmlDeviceGetCount())):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(index)
                supported = int(nvml.nvmlDeviceGetSupportedEventTypes(handle))
            except nvml.NVMLError as exc:
                self._error(f"GPU {index}: cannot list event types: {exc}")
                continue
            mask, names = 0, []
            for attr, default, name in _NVML_TYPES:
                bit = int(getattr(nvml, attr, default))
                if supported & bit:
                    mask |= bit
                    names.append(name)
            if not mask:
                continue
            try:
                nvml.nvmlDeviceRegisterEvents(handle, mask, event_set)
            except nvml.NVMLError as exc:
                self._error(f"GPU {index}: cannot register events: {exc}")
                continue
            self.registered[index] = names

    def _to_dict(self, nvml: Any, data: Any) -> dict[str, Any] | None:
        etype = int(getattr(data, "eventType", 0))
        kind = None
        for attr, default, name in _NVML_TYPES:
            if etype & int(getattr(nvml, attr, default)):
                kind = name
                break
        if kind is None:
            return None
        event: dict[str, Any] = {"type": kind, "timestamp": self.clock()}
        try:
            event["gpu_index"] = int(nvml.nvmlDeviceGetIndex(data.device))
            bus = nvml.nvmlDeviceGetPciInfo(data.device).busId
            event["pci_bus_id"] = bus.decode() if isinstance(bus, bytes) else str(bus)
        except Exception as exc:  # a GPU that just fell off the bus may not answer
            self._error(f"cannot name the GPU of an event: {exc}")
        value = int(getattr(data, "eventData", 0))
        if kind == "xid":
            event["xid"] = value
        elif kind == "recovery_action":
            event["value"] = value
        gi = getattr(data, "gpuInstanceId", _NO_INSTANCE)
        if isinstance(gi, int) and gi != _NO_INSTANCE:
            event["gpu_instance_id"] = gi
        return event


def start_event_watcher(backend: Any = None, **kwargs: Any) -> NvmlEventWatcher:
    """Start a watcher that feeds ``backend.push_event`` (``RealBackend``) when it has one."""
    sink = getattr(backend, "push_event", None)
    return NvmlEventWatcher(sink, **kwargs).start()
