"""The collection loop: health + telemetry on an interval, published as an immutable snapshot.

Scrapes and collections are decoupled: a background thread runs :meth:`CollectionLoop.collect_once`
every ``interval`` seconds and swaps in a new :class:`Snapshot`; the prometheus-client collector
only formats the latest snapshot. A slow or hung GPU therefore never slows a scrape, and N
Prometheus replicas scraping cost nothing extra on the GPUs.

One cycle:

1. ``run_health`` (its own watchdog: a hung NVML call becomes a CRIT ``collection.timeout``);
2. telemetry in a worker thread joined with the same timeout (skipped when health hung, since
   NVML is then still busy in the other thread);
3. XID events (the health engine's :func:`~sre_tools.health.checks.xid.collect_events`, in the
   telemetry's NVML session) into a counter that only goes up (:mod:`sre_tools.exporter.xid`);
4. everything rendered into plain series (:mod:`sre_tools.exporter.series`), plus the
   exporter's own metrics.

A thread blocked inside the driver cannot be killed: while one from an earlier cycle is still
alive, the cycle is skipped (``busy``) and the snapshot says CRIT ``collection.timeout``.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sre_tools.exceptions import SreError
from sre_tools.exporter import metric_names as c
from sre_tools.exporter.metric_names import ErrorReason
from sre_tools.exporter.series import (
    KnownGpus,
    Rows,
    SeriesBuilder,
    render_gpus,
    render_health,
    render_self,
    render_xid,
)
from sre_tools.exporter.telemetry import DeviceTelemetry, LabelValues, Telemetry, read_all
from sre_tools.exporter.xid import XidCounter
from sre_tools.health.checks.xid import collect_events
from sre_tools.health.model import Action, Finding, GpuRef, HealthReport, Severity
from sre_tools.health.policy import Policy
from sre_tools.health.registry import Context
from sre_tools.health.state import CounterState
from sre_tools.health.xid.model import XidEvent

if TYPE_CHECKING:
    from sre_tools.gpu.backend import Backend

log = logging.getLogger(__name__)

HEALTH_THREAD_NAME = "sre-health-collect"  # the worker name sre_tools.health.runner uses
TELEMETRY_THREAD_NAME = "sre-exporter-telemetry"
DEFAULT_INTERVAL_SECONDS = 15.0

HealthRunner = Callable[..., HealthReport]
XidSource = Callable[[Context], Iterable[XidEvent]]


@dataclass(frozen=True)
class Snapshot:
    """Everything one scrape shows: metric name -> ((label values, value), ...)."""

    at: float  # unix time the collection finished (0: none yet)
    duration_seconds: float
    collections: int
    series: Mapping[str, Rows] = field(default_factory=dict)
    report: HealthReport | None = None

    @property
    def ready(self) -> bool:
        return self.collections > 0


def _default_health_runner() -> HealthRunner:
    from sre_tools.health.runner import run_health

    return run_health


def _health_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == HEALTH_THREAD_NAME and t.is_alive()]


def _timeout_finding(message: str, limit: float) -> Finding:
    return Finding(
        "collection.timeout",
        Severity.CRIT,
        message,
        Action.REBOOT,
        evidence={"timeout_seconds": limit},
    )


class EventTee:
    """The backend as the health engine sees it, remembering what ``events()`` returned.

    NVML events are drained by the first reader (``RealBackend.events()``): the health run's
    ``xid`` check. The exporter's own ``collect_events`` call normally finds that run's events
    in the cycle's shared cache; when the run did not read them (a health runner without the
    xid check), it reads the same records through :class:`_TeedEvents` instead of an empty
    queue.
    """

    def __init__(self, backend: Backend):
        self.backend = backend
        self.last_events: list[dict[str, Any]] = []

    def init(self) -> None:
        self.backend.init()

    def shutdown(self) -> None:
        self.backend.shutdown()

    def device_count(self) -> int:
        return self.backend.device_count()

    def system(self, name: str) -> Any:
        return self.backend.system(name)

    def read(self, index: int, name: str, *args: Any) -> Any:
        return self.backend.read(index, name, *args)

    def pci_bus_id(self, index: int) -> str | None:
        return self.backend.pci_bus_id(index)

    def events(self) -> list[dict[str, Any]]:
        records = list(self.backend.events())
        self.last_events = records
        return list(records)


class _TeedEvents(EventTee):
    """Reads go to the backend; ``events()`` replays what the health run drained."""

    def __init__(self, tee: EventTee):
        super().__init__(tee.backend)
        self.last_events = tee.last_events

    def events(self) -> list[dict[str, Any]]:
        return list(self.last_events)


class CollectionLoop:
    """Owns the backend, the counter state and the accumulated counters; publishes snapshots.

    Everything the outside world provides is injected: the backend (real or recorded), the
    health runner, the XID event source, the clocks. ``kernel_log_lines`` and ``sysfs`` are
    passed to the health engine (a replay gives ``[]`` and a path without GPUs so the host's own
    kernel log and PCI bus do not leak into a recording). ``kernel_log_source``, when given, is
    called at the start of every cycle and its lines replace ``kernel_log_lines`` (``sre exporter
    --kernel-log FILE``: a file read each cycle, parsed like the real kernel log); when it
    raises ``OSError`` or an :class:`SreError` the cycle keeps the previous lines and counts an
    ``xid`` collection error.
    """

    def __init__(
        self,
        backend: Backend,
        policy: Policy,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        state: CounterState | None = None,
        source: str = "nvml",
        host: str | None = None,
        sysfs: Path = Path("/sys"),
        kernel_log_lines: list[str] | None = None,
        kernel_log_source: Callable[[], list[str]] | None = None,
        systemctl: str | None = None,
        health_runner: HealthRunner | None = None,
        xid_source: XidSource = collect_events,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        timeout: float | None = None,
    ):
        self.backend = backend
        self._tee = EventTee(backend)
        # What this cycle's health run read (its Context.cache), reused by the XID counting
        # that follows: the kernel log is read once per cycle, not twice. A new dict each cycle.
        self._cycle_cache: dict[str, Any] = {}
        self.policy = policy
        self.interval = interval
        self.state = state or CounterState()
        self.source = source
        self.host = host if host is not None else socket.gethostname()
        self.sysfs = sysfs
        self.kernel_log_lines = kernel_log_lines
        self.kernel_log_source = kernel_log_source
        # Unit states (fabric.manager) are read through this systemctl; None: not read.
        self.systemctl = systemctl
        self.health_runner = health_runner or _default_health_runner()
        self.xid_source = xid_source
        self.clock = clock
        self.monotonic = monotonic
        self.timeout = (
            float(policy.get("collection.timeout_seconds")) if timeout is None else timeout
        )
        backfill = float(policy.get("xid.backfill_seconds"))
        self.xid = XidCounter(retention_seconds=max(2 * backfill, 86400.0))
        self.errors: collections.Counter[ErrorReason] = collections.Counter(
            dict.fromkeys(ErrorReason, 0)
        )
        self.collections = 0
        self.gpus = KnownGpus()
        self._snapshot = Snapshot(
            0.0, 0.0, 0, render_self(SeriesBuilder(), 0, self.errors, 0.0, 0.0).freeze()
        )
        self._lock = threading.Lock()  # one collection at a time (timer thread vs --once)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._telemetry_worker: threading.Thread | None = None
        self._hung_health: list[threading.Thread] = []
        # Called with each new snapshot, in the collecting thread (pre-rendering the exposition).
        self.listeners: list[Callable[[Snapshot], None]] = []

    # --- public ---------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        return self._snapshot  # a reference swap: no lock needed to read

    def collect_once(self) -> Snapshot:
        with self._lock:
            snap = self._collect()
            self._snapshot = snap
        for listener in self.listeners:
            try:
                listener(snap)
            except Exception:  # a listener must not stop collections
                log.exception("snapshot listener failed")
        return snap

    def start(self) -> None:
        """Collect now, then every ``interval`` seconds, in a daemon thread."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sre-exporter-loop", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = self.monotonic()
            try:
                self.collect_once()
            except Exception:  # the loop must survive a bug in one cycle
                log.exception("collection failed")
                self.errors[ErrorReason.HEALTH] += 1
            elapsed = self.monotonic() - started
            self._stop.wait(max(0.0, self.interval - elapsed))

    # --- one cycle ------------------------------------------------------------------------------

    def _busy(self) -> bool:
        """A worker of an earlier cycle (health or telemetry) is still inside the driver."""
        self._hung_health = [t for t in self._hung_health if t.is_alive()]
        worker = self._telemetry_worker
        return bool(self._hung_health) or (worker is not None and worker.is_alive())

    def _collect(self) -> Snapshot:
        started = self.monotonic()
        now = self.clock()
        if self.kernel_log_source is not None:
            try:
                self.kernel_log_lines = self.kernel_log_source()
            except (OSError, SreError) as exc:  # a log rotated away mid-read, a file too large
                log.warning("cannot read the kernel log, keeping the last lines read: %s", exc)
                self.errors[ErrorReason.XID] += 1
        out = SeriesBuilder()
        report: HealthReport | None
        if self._busy():
            self.errors[ErrorReason.BUSY] += 1
            report = HealthReport(
                self.host,
                now,
                (
                    _timeout_finding(
                        "an earlier collection is still hung in NVML; skipping this cycle",
                        self.timeout,
                    ),
                ),
                self.source,
            )
            telemetry = None
        else:
            report = self._health(now)
            health_hung = report is not None and any(
                f.check == "collection.timeout" for f in report.findings
            )
            telemetry = None
            if health_hung:
                self.errors[ErrorReason.TIMEOUT] += 1
            else:
                telemetry = self._telemetry(report, now)
                if telemetry is None:
                    self.errors[ErrorReason.TIMEOUT] += 1
                    extra = _timeout_finding(
                        f"telemetry did not finish within {self.timeout:g}s (hung NVML call?)",
                        self.timeout,
                    )
                    base = report or HealthReport(self.host, now, (), self.source)
                    report = HealthReport(
                        base.host,
                        base.at,
                        (*base.findings, extra),
                        base.source,
                        base.duration_seconds,
                    )
        if telemetry is not None:
            self.errors.update(telemetry.errors)
            render_gpus(out, telemetry, self.gpus)
            self._count_xid(telemetry.extra or [], now)
        elif report is not None and not self._busy():
            # Telemetry failed without hanging: the events the health run read this cycle.
            self._count_xid(self._xid_events((), now, self.errors), now)
        expected = self.policy.get("expected_gpus")
        if expected is not None:
            out.add(c.GPU_EXPECTED_COUNT, (), int(expected))
        render_xid(out, self.xid)
        render_health(out, report, self.gpus)
        self.collections += 1
        finished = self.clock()
        duration = self.monotonic() - started
        render_self(out, self.collections, self.errors, finished, duration)
        return Snapshot(finished, duration, self.collections, out.freeze(), report)

    def _health(self, now: float) -> HealthReport | None:
        before = set(_health_threads())
        try:
            self._tee.last_events = []
            self._cycle_cache = {}
            report = self.health_runner(
                self._tee,
                self.policy,
                state=self.state,
                now=now,
                host=self.host,
                sysfs=self.sysfs,
                kernel_log_lines=self.kernel_log_lines,
                source=self.source,
                timeout=self.timeout,
                cache=self._cycle_cache,
                **({"systemctl": self.systemctl} if self.systemctl else {}),
            )
        except Exception:
            log.exception("health engine failed")
            self.errors[ErrorReason.HEALTH] += 1
            return None
        # The runner's watchdog gave up on a worker: remember it (and only ours) as hung.
        self._hung_health += [t for t in _health_threads() if t not in before]
        return report

    def _telemetry(self, report: HealthReport | None, now: float) -> Telemetry | None:
        """Telemetry and this cycle's XID events (in the same NVML session) under a watchdog."""
        result: list[Telemetry] = []

        def in_session(t: Telemetry) -> list[XidEvent]:
            return self._xid_events(t.devices, now, t.errors)

        def work() -> None:
            result.append(read_all(self.backend, in_session))

        worker = threading.Thread(target=work, name=TELEMETRY_THREAD_NAME, daemon=True)
        self._telemetry_worker = worker
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            return None
        self._telemetry_worker = None
        return result[0] if result else None

    def _xid_events(
        self,
        devices: Iterable[DeviceTelemetry],
        now: float,
        errors: collections.Counter[ErrorReason],
    ) -> list[XidEvent]:
        """This cycle's XID events; none (and an ``xid`` error) when the source fails."""
        try:
            return list(self.xid_source(self._xid_context(devices, now)))
        except Exception:
            log.exception("XID event source failed")
            errors[ErrorReason.XID] += 1
            return []

    def _xid_context(self, devices: Iterable[DeviceTelemetry], now: float) -> Context:
        ctx = Context(
            backend=_TeedEvents(self._tee),
            policy=self.policy,
            state=self.state,
            now=now,
            host=self.host,
            sysfs=self.sysfs,
            kernel_log_lines=self.kernel_log_lines,
            # The health run's events of this cycle, when its xid check read them.
            cache=self._cycle_cache,
        )
        for dev in devices:
            ident = dev.identity
            ctx.gpus.append(GpuRef(ident.index, ident.uuid, ident.pci_bus_id))
            if not dev.up:
                ctx.lost.add(ident.index)
        return ctx

    # --- XID counting ------------------------------------------------------------------------

    def _count_xid(self, events: Iterable[XidEvent], now: float) -> None:
        def resolve(event: XidEvent) -> tuple[str, str, str]:
            # The device's own labels where it is known: the same series as its telemetry.
            uuid, pci = event.uuid or "", event.pci_bus_id or ""
            ident = self.gpus.identity_for(event.gpu_index, uuid, pci)
            index = ident.index if ident.index >= 0 else event.gpu_index
            return (
                "" if index is None or index < 0 else str(index),
                ident.uuid or uuid,
                ident.pci_bus_id or pci,
            )

        self.xid.observe(events, now, resolve)


def rows_by_labels(snapshot: Snapshot, metric: str) -> dict[LabelValues, float]:
    """Convenience for tests and ``--once`` debugging: one metric's rows as a dict."""
    return dict(snapshot.series.get(metric, ()))


def label_dicts(snapshot: Snapshot, metric: str) -> Iterable[tuple[dict[str, str], float]]:
    names = c.SPECS[metric].labels
    for labels, value in snapshot.series.get(metric, ()):
        yield dict(zip(names, labels, strict=True)), value
