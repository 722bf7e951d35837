"""The check registry and the context checks run in.

A check is ``fn(ctx) -> iterable of Finding`` registered with :func:`check`; per-GPU checks use
:func:`gpu_check`, which also turns NVML outcomes into findings: NotSupported becomes SKIPPED
("not applicable here"; "not recorded" for a reading a recording lacks), a lost GPU stops that
GPU's other checks, other read errors are UNKNOWN.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from sre_tools.gpu.errors import NotRecorded, NotSupported, NvmlInitError, ReadError
from sre_tools.health.model import Finding, GpuRef, Severity
from sre_tools.health.policy import Policy
from sre_tools.health.state import CounterState
from sre_tools.record import Record

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

    from sre_tools.gpu.backend import Backend


class Context:
    __slots__ = (
        "backend",
        "cache",
        "discovery_failed",
        "expensive",
        "findings",
        "gpus",
        "host",
        "init_error",
        "kernel_log_lines",
        "lost",
        "now",
        "policy",
        "state",
        "sysfs",
        "systemctl",
    )
    backend: Backend
    policy: Policy
    state: CounterState
    now: float
    host: str
    sysfs: Path
    init_error: NvmlInitError | None
    gpus: list[GpuRef]
    lost: set[int]
    discovery_failed: bool  # the GPU list is not known (count or discovery failed)
    kernel_log_lines: list[str] | None  # injected in tests and replays
    # The systemctl that reads unit states (the fabric manager's); None: units are not read
    # (a replay: the host's services are not part of a recording).
    systemctl: str | None
    expensive: bool  # InfoROM validation may run this cycle
    cache: dict[str, Any]
    # This cycle's findings so far, in registry order (the runner fills it as checks run), so an
    # aggregate check registered last (``reset.pending``) can summarise the others.
    findings: list[Finding]

    def __init__(
        self,
        backend: Backend,
        policy: Policy,
        state: CounterState,
        now: float,
        host: str = "",
        sysfs: Path = Path("/sys"),
        init_error: NvmlInitError | None = None,
        gpus: list[GpuRef] | None = None,
        lost: set[int] | None = None,
        discovery_failed: bool = False,
        kernel_log_lines: list[str] | None = None,
        systemctl: str | None = None,
        expensive: bool = False,
        cache: dict[str, Any] | None = None,
        findings: list[Finding] | None = None,
    ) -> None:
        self.backend = backend
        self.policy = policy
        self.state = state
        self.now = now
        self.host = host
        self.sysfs = sysfs
        self.init_error = init_error
        self.gpus = [] if gpus is None else gpus
        self.lost = set() if lost is None else lost
        self.discovery_failed = discovery_failed
        self.kernel_log_lines = kernel_log_lines
        self.systemctl = systemctl
        self.expensive = expensive
        self.cache = {} if cache is None else cache
        self.findings = [] if findings is None else findings

    def read(self, gpu: GpuRef, name: str, *args: Any) -> Any:
        return self.backend.read(gpu.index, name, *args)

    def optional(self, gpu: GpuRef, name: str, *args: Any) -> Any:
        """A reading, or None when NotSupported (for evidence that is nice to have)."""
        try:
            return self.read(gpu, name, *args)
        except NotSupported:
            return None


CheckFn = Callable[[Context], Iterable[Finding]]
GpuCheckFn = Callable[[Context, GpuRef], Iterable[Finding]]


class Registered(Record):
    __slots__ = ("check_id", "fn", "needs_nvml")
    check_id: str
    fn: CheckFn
    needs_nvml: bool

    def __init__(
        self,
        check_id: str,
        fn: CheckFn,
        needs_nvml: bool,
    ) -> None:
        self._init(
            check_id=check_id,
            fn=fn,
            needs_nvml=needs_nvml,
        )


REGISTRY: list[Registered] = []


def check(check_id: str, *, needs_nvml: bool = True) -> Callable[[CheckFn], CheckFn]:
    def deco(fn: CheckFn) -> CheckFn:
        REGISTRY.append(Registered(check_id, fn, needs_nvml))
        return fn

    return deco


def gpu_check(check_id: str) -> Callable[[GpuCheckFn], GpuCheckFn]:
    """Register a per-GPU check; NVML outcomes become findings here, once."""

    def deco(fn: GpuCheckFn) -> GpuCheckFn:
        def run(ctx: Context) -> Iterator[Finding]:
            for gpu in ctx.gpus:
                if gpu.index in ctx.lost:
                    continue
                try:
                    yield from list(fn(ctx, gpu))
                except NotRecorded:
                    yield Finding(
                        check_id, Severity.SKIPPED, "not recorded in this recording", gpu=gpu
                    )
                except NotSupported as exc:
                    yield Finding(
                        check_id, Severity.SKIPPED, f"not applicable here ({exc})", gpu=gpu
                    )
                except ReadError as exc:
                    if exc.gpu_lost or exc.reset_required:
                        ctx.lost.add(gpu.index)
                        yield lost_finding(gpu, exc)
                    else:
                        yield Finding(
                            check_id, Severity.UNKNOWN, f"NVML read failed: {exc.code}", gpu=gpu
                        )

        REGISTRY.append(Registered(check_id, run, True))
        return fn

    return deco


def lost_finding(gpu: GpuRef, exc: ReadError) -> Finding:
    from sre_tools.health.model import Action

    if exc.reset_required:
        return Finding(
            "gpu.lost",
            Severity.CRIT,
            "GPU needs a reset (NVML: RESET_REQUIRED)",
            Action.RESET_GPU,
            gpu,
            {"nvml_error": exc.code},
        )
    return Finding(
        "gpu.lost",
        Severity.CRIT,
        "GPU is lost (fallen off the bus)",
        Action.POWER_CYCLE,
        gpu,
        {"nvml_error": exc.code},
    )
