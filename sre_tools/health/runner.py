"""Run every registered check once, under a watchdog, and return a :class:`HealthReport`.

A hung NVML call cannot hang the CLI or the exporter: the collection runs in a worker thread and
after ``collection.timeout_seconds`` the cycle returns what it has plus a CRIT
``collection.timeout`` finding. (A thread blocked inside the driver cannot be killed; the caller
must not start another collection while one is still running, see ``collector_busy``.)
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path

from sre_tools.gpu.backend import MAX_GPUS, is_gpu_count
from sre_tools.gpu.errors import NotSupported, NvmlInitError, ReadError
from sre_tools.health import checks as _checks  # noqa: F401  (registers checks)
from sre_tools.health.model import Action, Finding, GpuRef, HealthReport, Severity
from sre_tools.health.policy import Policy
from sre_tools.health.registry import REGISTRY, Context, lost_finding
from sre_tools.health.state import CounterState, default_state_path

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

    from sre_tools.gpu.backend import Backend

_busy = threading.Lock()


def collector_busy() -> bool:
    return _busy.locked()


def discover(ctx: Context) -> list[Finding]:
    """Fill ``ctx.gpus``; a GPU that cannot even be named is lost (named by its PCI bus id from
    the backend or sysfs where NVML cannot give one)."""
    findings: list[Finding] = []
    try:
        count = ctx.backend.device_count()
    except (ReadError, NotSupported) as exc:
        ctx.discovery_failed = True
        return [Finding("gpu.count", Severity.UNKNOWN, f"NVML cannot count GPUs: {exc}")]
    if not is_gpu_count(count):
        ctx.discovery_failed = True
        return [
            Finding(
                "gpu.count",
                Severity.UNKNOWN,
                f"NVML reported {count!r} GPUs: not a GPU count (0 to {MAX_GPUS})",
                evidence={"device_count": repr(count)},
            )
        ]
    bus_ids: list[str] | None = None
    for index in range(count):
        ref = GpuRef(index)
        try:
            uuid = str(ctx.backend.read(index, "uuid"))
            pci = ctx.backend.read(index, "pci")
            ref = GpuRef(index, uuid, str(pci.get("bus_id", "")) if isinstance(pci, dict) else "")
        except ReadError as exc:
            bus = ctx.backend.pci_bus_id(index)
            if bus is None:
                if bus_ids is None:
                    bus_ids = nvidia_bus_ids(ctx.sysfs)
                bus = bus_ids[index] if index < len(bus_ids) else ""
            ref = GpuRef(index, "", bus)
            ctx.lost.add(index)
            findings.append(lost_finding(ref, exc))
        except NotSupported:
            pass
        ctx.gpus.append(ref)
    return findings


def nvidia_bus_ids(sysfs: Path) -> list[str]:
    """Bus ids of the GPUs bound to the nvidia driver, in PCI order (NVML's default index order).

    ``/sys/bus/pci/drivers/nvidia`` lists every bound device, a lost GPU too; NVSwitches
    (class 0x0680) are left out.
    """
    root = sysfs / "bus" / "pci" / "drivers" / "nvidia"
    try:
        names = sorted(p.name for p in root.iterdir() if p.name.count(":") == 2)
    except OSError:
        return []
    out = []
    for name in names:
        try:
            klass = (root / name / "class").read_text().strip().lower()
        except OSError:
            klass = ""
        if not klass or klass[:6] in ("0x0300", "0x0302"):
            out.append(name)
    return out


def _failed(what: str, exc: BaseException) -> Finding:
    return Finding(
        "health.collection",
        Severity.UNKNOWN,
        f"{what} failed: {type(exc).__name__}: {exc}",
        evidence={"error": f"{type(exc).__name__}: {exc}"},
    )


def _collect(ctx: Context, out: list[Finding]) -> None:
    ctx.findings = out  # checks that aggregate (reset.pending) read what ran before them
    try:
        ctx.backend.init()
    except NvmlInitError as exc:
        ctx.init_error = exc
    except Exception as exc:  # a crash outside any check: the node's state is unknown
        ctx.discovery_failed = True
        out.append(_failed("NVML initialisation", exc))
        return
    try:
        if ctx.init_error is None:
            try:
                out.extend(discover(ctx))
            except Exception as exc:
                ctx.discovery_failed = True
                ctx.gpus.clear()
                out.append(_failed("GPU discovery", exc))
            resolve_profile(ctx)
        for reg in REGISTRY:
            if reg.needs_nvml and ctx.init_error is not None:
                continue
            try:
                out.extend(reg.fn(ctx))
            except Exception as exc:  # a bug in one check must not hide the others
                out.append(
                    Finding(
                        reg.check_id, Severity.UNKNOWN, f"check failed: {type(exc).__name__}: {exc}"
                    )
                )
    except Exception as exc:
        out.append(_failed("health collection", exc))
    finally:
        if ctx.init_error is None:
            ctx.backend.shutdown()


def resolve_profile(ctx: Context) -> None:
    """Where no profile was named, pick the node's (model and NVSwitch present:
    :func:`sre_tools.health.policy.profile_for_node`)."""
    if not ctx.policy.auto or ctx.discovery_failed:
        return
    indices = [g.index for g in ctx.gpus if g.index not in ctx.lost]
    model, nvswitch = node_model_and_fabric(ctx.backend, indices, ctx.sysfs)
    ctx.policy = ctx.policy.for_node(model, len(ctx.gpus), nvswitch)


def node_model_and_fabric(
    backend: Backend, indices: Iterable[int], sysfs: Path | None
) -> tuple[str, bool]:
    """``(model, NVSwitch fabric present)`` for :meth:`Policy.for_node`, as ``sre health`` and
    ``sre diag`` both find them: the first readable GPU name; an NVSwitch on the PCI bus under
    ``sysfs``, else any GPU whose NVML fabric state is not "not supported"."""
    model = ""
    nvswitch = bool(sysfs is not None and nvswitch_bus_ids(sysfs))
    for index in indices:
        if not model:
            with contextlib.suppress(NotSupported, ReadError):
                model = str(backend.read(index, "name"))
        if not nvswitch:
            try:
                fabric = backend.read(index, "fabric")
                nvswitch = isinstance(fabric, dict) and int(fabric.get("state", 0)) != 0
            except (NotSupported, ReadError, TypeError, ValueError):
                pass
        if model and nvswitch:
            break
    return model, nvswitch


def nvswitch_bus_ids(sysfs: Path) -> list[str]:
    """NVIDIA NVSwitches on the PCI bus (vendor 0x10de, class 0x0680)."""
    root = sysfs / "bus" / "pci" / "devices"
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    out = []
    for dev in entries:
        try:
            vendor = (dev / "vendor").read_text().strip().lower()
            klass = (dev / "class").read_text().strip().lower()
        except OSError:
            continue
        if vendor == "0x10de" and klass[:6] == "0x0680":
            out.append(dev.name)
    return out


def run_health(
    backend: Backend,
    policy: Policy,
    *,
    state: CounterState | None = None,
    now: float | None = None,
    host: str | None = None,
    sysfs: Path = Path("/sys"),
    kernel_log_lines: list[str] | None = None,
    systemctl: str | None = None,
    source: str = "nvml",
    timeout: float | None = None,
    cache: dict[str, Any] | None = None,
) -> HealthReport:
    """Run every registered check once and return the report.

    ``cache`` becomes the run's :attr:`Context.cache`: a caller that reads more of the same
    cycle afterwards (the exporter's XID counts) passes a dict and finds what the checks already
    read there (the kernel log's and NVML's XID events), instead of reading it a second time.
    """
    state = state or CounterState()
    started = time.monotonic()
    when = time.time() if now is None else now
    interval = float(policy.get("inforom.validate_interval_seconds"))
    last_validation = float(state.meta.get("inforom_validated_at", 0) or 0)
    ctx = Context(
        backend=backend,
        policy=policy,
        state=state,
        now=when,
        host=host if host is not None else os.uname().nodename,  # socket.gethostname()'s answer
        sysfs=sysfs,
        kernel_log_lines=kernel_log_lines,
        systemctl=systemctl,
        expensive=when - last_validation >= interval,
        cache=cache if cache is not None else {},
    )
    findings: list[Finding] = []
    limit = float(policy.get("collection.timeout_seconds")) if timeout is None else timeout
    with _busy:
        worker = threading.Thread(
            target=_collect, args=(ctx, findings), daemon=True, name="sre-health-collect"
        )
        worker.start()
        worker.join(limit)
        hung = worker.is_alive()
    done = list(findings)
    if hung:
        done.append(
            Finding(
                "collection.timeout",
                Severity.CRIT,
                f"health collection did not finish within {limit:g}s (hung NVML call?)",
                Action.REBOOT,
                evidence={"timeout_seconds": limit},
            )
        )
    else:
        if ctx.expensive and ctx.init_error is None:
            state.meta["inforom_validated_at"] = when
        state.save()
    return HealthReport(ctx.host, when, tuple(done), source, time.monotonic() - started)


# A replay never reads this machine's PCI bus or InfiniBand ports.
REPLAY_SYSFS = Path("/nonexistent-sysfs")


def counter_state(
    replay: str | Path | None, state_path: Path | None, *, live_default: Path | None = None
) -> CounterState:
    """The counter state a run keeps (every front end asks here: the CLI, Ansible, Salt).

    ``state_path`` when one is given. Else a replay keeps none: a recording's counters are not
    this machine's, and a rate across two recordings means nothing. A live run keeps
    ``live_default`` (a front end's own file), else :func:`default_state_path`.
    """
    if state_path is not None:
        return CounterState(state_path)
    if replay is not None:
        return CounterState()
    return CounterState(live_default or default_state_path())


def run_replay_or_live(
    policy: Policy,
    *,
    replay: str | Path | None,
    state: CounterState,
    sysfs: Path | None = None,
    kernel_log_lines: list[str] | None = None,
    systemctl: str | None = None,
    timeout: float | None = None,
) -> HealthReport:
    """One run the way ``sre health [--replay FILE]`` does it (the CLI, Salt's ``gpu.health``,
    Ansible's ``gpu_health``); ``state`` is usually :func:`counter_state`'s.

    A replay uses the recording's own kernel log (``"kernel_log"``) unless lines are given, and
    no sysfs and no unit states unless a sysfs or a systemctl is given; a live run reads NVML,
    the kernel log, ``/sys`` and unit states through ``systemctl`` on PATH.
    """
    from sre_tools.gpu.backend import RealBackend, RecordedBackend

    if replay is None:
        return run_health(
            RealBackend(),
            policy,
            state=state,
            sysfs=sysfs or Path("/sys"),
            kernel_log_lines=kernel_log_lines,
            systemctl=systemctl or "systemctl",
            timeout=timeout,
        )
    backend = RecordedBackend.load(replay)
    if kernel_log_lines is None:
        recorded = backend.data.get("kernel_log")
        kernel_log_lines = [str(x) for x in recorded] if isinstance(recorded, list) else []
    return run_health(
        backend,
        policy,
        state=state,
        host=str(backend.data.get("host") or "replay"),
        sysfs=sysfs or REPLAY_SYSFS,
        kernel_log_lines=kernel_log_lines,
        systemctl=systemctl,
        source=f"replay:{replay}",
        timeout=timeout,
    )
