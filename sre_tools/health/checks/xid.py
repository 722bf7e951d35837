"""Health checks: XIDs (kernel log + NVML events) per GPU, and the GPU recovery action.

``xid``: one finding per GPU (or MIG instance) with XIDs in the current boot's kernel log (the
last ``xid.backfill_seconds``) or in NVML's events; severity and action are the combined
decision of :mod:`sre_tools.health.xid.classify`, with NVML's recovery action authoritative when
it is non-zero. No XIDs: one OK finding. Kernel log unreadable from every source: one UNKNOWN
finding (the events NVML delivered are still judged).

``xid.recovery_action``: NVML_FI_DEV_GET_GPU_RECOVERY_ACTION per GPU.

:func:`collect_events` is the event list both checks and the Prometheus exporter use.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotSupported, ReadError
from sre_tools.health.model import Finding, GpuRef, Severity
from sre_tools.health.registry import Context, check, gpu_check
from sre_tools.health.xid.events import dedupe, nvml_events
from sre_tools.health.xid.kernel_log import (
    COMMAND_TIMEOUT_SECONDS,
    KernelLogError,
    KernelLogReader,
)
from sre_tools.health.xid.model import RECOVERY_ACTIONS, XidEvent, recovery_name
from sre_tools.health.xid.parser import normalize_bus_id, parse_lines
from sre_tools.record import Record

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

    from sre_tools.health.xid.classify import GpuDecision

CHECK = "xid"
CHECK_RECOVERY = "xid.recovery_action"
MAX_EVIDENCE_EVENTS = 20
_EVENTS = "xid.events"
_LOG = "xid.log"
_RECOVERY = "xid.recovery"


class LogStatus(Record):
    """Where the kernel-log events came from, and why not when they could not be read."""

    __slots__ = ("error", "errors", "source", "window_seconds")
    source: str  # "injected", "kmsg", "journalctl", "kmsg+journalctl", "dmesg", "none"
    error: str | None
    errors: tuple[str, ...]
    window_seconds: float | None

    def __init__(
        self,
        source: str,
        error: str | None = None,
        errors: tuple[str, ...] = (),
        window_seconds: float | None = None,
    ) -> None:
        self._init(
            source=source,
            error=error,
            errors=errors,
            window_seconds=window_seconds,
        )


def _log_events(ctx: Context, reader: KernelLogReader | None) -> tuple[list[XidEvent], LogStatus]:
    if ctx.kernel_log_lines is not None:
        # Tests and replays: the lines are taken as given (no time window).
        return parse_lines(ctx.kernel_log_lines), LogStatus("injected")
    window = float(ctx.policy.get("xid.backfill_seconds"))
    if reader is None:
        # journalctl and dmesg may both run: together they must leave the collection watchdog
        # (collection.timeout_seconds) time for every other check.
        budget = float(ctx.policy.get("collection.timeout_seconds"))
        timeout = max(1.0, min(COMMAND_TIMEOUT_SECONDS, 0.3 * budget))
        reader = KernelLogReader(clock=lambda: ctx.now, timeout=timeout)
    try:
        log = reader.read(window)
    except KernelLogError as exc:
        return [], LogStatus("none", str(exc), window_seconds=window)
    events: list[XidEvent] = []
    for _, lines in log.chunks:
        events.extend(parse_lines(lines, boot_time=log.boot_time))
    if log.since is not None:
        since = log.since
        events = [e for e in events if e.timestamp is None or e.timestamp >= since]
    return events, LogStatus(log.source, None, log.errors, window)


def collect_events(ctx: Context, *, reader: KernelLogReader | None = None) -> list[XidEvent]:
    """XID events of this collection: kernel log and NVML events, de-duplicated, with keys.

    Read once per :class:`Context` (cached in ``ctx.cache``): NVML events are drained from the
    backend, so a second call on the same context returns the same list rather than nothing.
    Each event's ``key`` is stable across collections (the exporter counts events by it).
    """
    cached = ctx.cache.get(_EVENTS)
    if cached is not None:
        return list(cached)
    log_events, status = _log_events(ctx, reader)
    try:
        records: list[Any] = list(ctx.backend.events())
    except (NotSupported, ReadError):
        records = []
    events = dedupe([*log_events, *nvml_events(records, ctx.gpus)])
    ctx.cache[_EVENTS] = events
    ctx.cache[_LOG] = status
    return list(events)


def _recovery_reading(ctx: Context, gpu: GpuRef) -> Any:
    """The recovery-action reading, read once per collection (the outcome, exception or value)."""
    cache: dict[int, Any] = ctx.cache.setdefault(_RECOVERY, {})
    if gpu.index not in cache:
        try:
            cache[gpu.index] = int(ctx.read(gpu, "recovery_action"))
        except (NotSupported, ReadError) as exc:
            cache[gpu.index] = exc
    return cache[gpu.index]


def _gpu_for(decision: GpuDecision, by_bus: dict[str, GpuRef], ctx: Context) -> GpuRef | None:
    ref = by_bus.get(decision.pci_bus_id or "")
    if ref is None and decision.gpu_index is not None:
        ref = next((g for g in ctx.gpus if g.index == decision.gpu_index), None)
    if ref is None:
        return None
    return ref.replace(mig=decision.gpu_instance) if decision.gpu_instance else ref


def _event_evidence(decision: GpuDecision) -> list[dict[str, Any]]:
    items = list(decision.events)
    if len(items) > MAX_EVIDENCE_EVENTS:
        half = MAX_EVIDENCE_EVENTS // 2
        items = items[:half] + items[-half:]
    out = []
    for c in items:
        d = c.to_dict()
        out.append(
            {
                k: d[k]
                for k in (
                    "key",
                    "xid",
                    "kind",
                    "mnemonic",
                    "catalog_immediate",
                    "catalog_investigatory",
                    "action",
                    "severity",
                    "time",
                    "uptime",
                    "sources",
                    "pid",
                    "name",
                    "recovery_action",
                    "line",
                    "drill_run",
                )
            }
        )
        if not out[-1]["line"]:
            out[-1]["line"] = c.event.message
    return out


def _summary(decision: GpuDecision) -> str:
    parts = [f"{x} x{n}" if n > 1 else str(x) for x, n in decision.counts.items()]
    head = f"XID {', '.join(parts)}" if parts else "XID events"
    return f"{head} -> {decision.action.value}: {decision.reason}"


def acknowledged_drill_runs(path: str) -> tuple[set[str], str | None]:
    """Run ids in the drill acknowledgment file (``xid.drill_acks_file``, read from its end) and
    the reason it could not be read, if so. A missing file acknowledges nothing."""
    import os

    from sre_tools.health.xid.model import MAX_DRILL_ACKS_BYTES, parse_drill_acks

    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if size > MAX_DRILL_ACKS_BYTES:
                fh.seek(size - MAX_DRILL_ACKS_BYTES - 1)
            data = fh.read(MAX_DRILL_ACKS_BYTES + 1)
    except FileNotFoundError:
        return set(), None
    except OSError as exc:
        return set(), f"{path}: {exc.strerror or exc}"
    return parse_drill_acks(data), None


def _drop_acknowledged(
    ctx: Context, events: list[XidEvent]
) -> tuple[list[XidEvent], dict[str, Any]]:
    """Events minus those of acknowledged drill runs, and what to say about it in evidence."""
    drills = {e.drill_run for e in events} - {None}
    if not drills:
        return events, {}
    path = str(ctx.policy.get("xid.drill_acks_file") or "")
    acked, error = acknowledged_drill_runs(path) if path else (set(), None)
    kept = [e for e in events if e.drill_run is None or e.drill_run not in acked]
    evidence: dict[str, Any] = {"drill_runs": sorted(str(d) for d in drills)}
    if len(kept) < len(events):
        evidence["acknowledged_drill_events"] = len(events) - len(kept)
    if error is not None:
        # Unreadable: nothing is acknowledged, so a drill's XID keeps counting (never the reverse).
        evidence["drill_acks_error"] = error
    return kept, evidence


def xid_findings(ctx: Context, *, reader: KernelLogReader | None = None) -> list[Finding]:
    """The ``xid`` findings (the registered check with production defaults)."""
    events, drill_evidence = _drop_acknowledged(ctx, collect_events(ctx, reader=reader))
    status: LogStatus = ctx.cache.get(_LOG, LogStatus("injected"))
    by_bus = {bus: g for g in ctx.gpus if (bus := normalize_bus_id(g.pci_bus_id)) is not None}
    recovery: dict[str, int] = {}
    for bus, gpu in by_bus.items():
        if gpu.index in ctx.lost:
            continue
        value = _recovery_reading(ctx, gpu)
        if isinstance(value, int) and value:
            recovery[bus] = value
    missing: set[str] = set()
    if ctx.init_error is None:
        complete = len(by_bus) == len(ctx.gpus)
        for ev in events:
            bus = ev.pci_bus_id
            if bus is None:
                continue
            ref = by_bus.get(bus)
            if (ref is None and complete) or (ref is not None and ref.index in ctx.lost):
                missing.add(bus)
    decisions: tuple[GpuDecision, ...] = ()
    if events or recovery or missing:
        # The classifier and the XID catalog are loaded only when there is something to judge:
        # a quiet node's `sre health` (Slurm runs it every few minutes) does not pay for them.
        from sre_tools.health.xid.classify import analyze

        fabric_manager = ctx.policy.get("nvswitch") is not False
        decisions = analyze(
            events, recovery_actions=recovery, gpu_missing=missing, fabric_manager=fabric_manager
        ).gpus
    findings: list[Finding] = []
    log_evidence: dict[str, Any] = {"kernel_log": status.source, **drill_evidence}
    if status.window_seconds is not None:
        log_evidence["window_seconds"] = status.window_seconds
    if status.errors:
        log_evidence["kernel_log_errors"] = list(status.errors)
    if status.error is not None:
        findings.append(
            Finding(
                CHECK,
                Severity.UNKNOWN,
                f"kernel log unreadable, XIDs unknown ({status.error})",
                evidence={**log_evidence, "error": status.error, "nvml_events": len(events)},
            )
        )
    for decision in decisions:
        findings.append(
            Finding(
                CHECK,
                decision.severity,
                _summary(decision),
                decision.action,
                _gpu_for(decision, by_bus, ctx),
                {
                    **decision.to_dict(),
                    "counts": {str(k): v for k, v in decision.counts.items()},
                    "events": _event_evidence(decision),
                    **log_evidence,
                },
            )
        )
    if not decisions and status.error is None:
        findings.append(
            Finding(CHECK, Severity.OK, "no XIDs in this boot's kernel log", evidence=log_evidence)
        )
    return findings


@check(CHECK, needs_nvml=False)
def xid(ctx: Context) -> Iterator[Finding]:
    yield from xid_findings(ctx)


@gpu_check(CHECK_RECOVERY)
def recovery_action(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    value = _recovery_reading(ctx, gpu)
    if isinstance(value, Exception):
        raise value  # the registry turns NotSupported / ReadError into findings
    evidence = {"recovery_action": value, "meaning": recovery_name(value)}
    action = RECOVERY_ACTIONS.get(value)
    if action is None:
        yield Finding(
            CHECK_RECOVERY,
            Severity.UNKNOWN,
            f"unknown GPU recovery action {value}",
            gpu=gpu,
            evidence=evidence,
        )
    elif value == 0:
        yield Finding(
            CHECK_RECOVERY, Severity.OK, "no recovery action pending", gpu=gpu, evidence=evidence
        )
    else:
        yield Finding(
            CHECK_RECOVERY,
            Severity.CRIT,
            f"driver requests recovery: {recovery_name(value)} ({action.value})",
            action,
            gpu,
            evidence,
        )
