"""Temperatures against the device's own limits.

``thermal.gpu`` judges the GPU against the limits its driver reports, not a fixed number, so one
policy fits every model:

- where NVML reports absolute thresholds (``nvmlDeviceGetTemperatureThreshold``) that are
  plausible (:data:`PLAUSIBLE_THRESHOLD_C`, shutdown not below slowdown): WARN at
  ``slowdown - thermal.margin_warn_c``, CRIT at ``slowdown - thermal.margin_crit_c`` or at the
  shutdown threshold;
- else (H100 on driver 580 answers NotSupported; some drivers answer 0 or an offset) the margin to
  T.Limit, the point where the driver starts to slow the GPU down
  (``nvmlDeviceGetMarginTemperature``, ``gpu_temp_tlimit`` in ``nvidia-smi -q``): WARN at
  ``margin <= thermal.margin_warn_c``, CRIT at ``margin <= thermal.margin_crit_c``.

Only when neither is there is the check SKIPPED. ``thermal.hbm`` compares the HBM temperature
with ``thermal.hbm_warn_c`` / ``thermal.hbm_crit_c``, the CRIT limit capped at the device's own
memory maximum where NVML reports a plausible one.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotSupported
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

# An absolute GPU or HBM threshold outside this range is not one (0, or a T.Limit offset).
PLAUSIBLE_THRESHOLD_C = (50, 130)
# A margin to T.Limit outside this range is a misreading, not a temperature.
PLAUSIBLE_MARGIN_C = (-50, 150)


def _plausible(value: Any, bounds: tuple[int, int]) -> int | None:
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if bounds[0] <= value <= bounds[1] else None


def thresholds(ctx: Context, gpu: GpuRef) -> tuple[int | None, str, int | None, dict[str, Any]]:
    """(slowdown, which threshold it is, shutdown, implausible readings) of one GPU."""
    rejected: dict[str, Any] = {}

    def read(kind: str) -> int | None:
        raw = ctx.optional(gpu, "temperature_threshold_c", kind)
        value = _plausible(raw, PLAUSIBLE_THRESHOLD_C)
        if raw is not None and value is None:
            rejected[kind] = raw
        return value

    slowdown, source = read("slowdown"), "slowdown"
    if slowdown is None:
        slowdown, source = read("gpu_max"), "gpu_max"
    shutdown = read("shutdown")
    if shutdown is not None and slowdown is not None and shutdown < slowdown:
        rejected["shutdown"] = shutdown
        shutdown = None
    return slowdown, source, shutdown, rejected


@gpu_check("thermal.gpu")
def thermal_gpu(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    slowdown, source, shutdown, rejected = thresholds(ctx, gpu)
    warn_margin = int(ctx.policy.get("thermal.margin_warn_c"))
    crit_margin = int(ctx.policy.get("thermal.margin_crit_c"))
    if slowdown is None:
        yield from _by_margin(ctx, gpu, warn_margin, crit_margin, rejected)
        return
    temp = int(ctx.read(gpu, "temperature_c"))
    warn_at = slowdown - warn_margin
    crit_at = slowdown - crit_margin
    if shutdown is not None:
        crit_at = min(crit_at, shutdown)
    ev: dict[str, Any] = {
        "temperature_c": temp,
        f"{source}_c": slowdown,
        "shutdown_c": shutdown,
        "warn_at_c": warn_at,
        "crit_at_c": crit_at,
        "judged_by": f"{source} threshold",
    }
    if rejected:
        ev["implausible_thresholds_c"] = rejected
    if temp >= crit_at:
        yield Finding(
            "thermal.gpu",
            Severity.CRIT,
            f"GPU at {temp} C, {source} threshold {slowdown} C: check cooling",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    elif temp >= warn_at:
        yield Finding(
            "thermal.gpu",
            Severity.WARN,
            f"GPU at {temp} C, within {slowdown - temp} C of its {source} threshold",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    else:
        yield Finding("thermal.gpu", Severity.OK, f"GPU at {temp} C", gpu=gpu, evidence=ev)


def _by_margin(
    ctx: Context, gpu: GpuRef, warn_margin: int, crit_margin: int, rejected: dict[str, Any]
) -> Iterator[Finding]:
    try:
        raw = ctx.read(gpu, "margin_temperature_c")
    except NotSupported:
        why = "no plausible temperature threshold and no T.Limit margin"
        raise NotSupported(why) from None
    margin = _plausible(raw, PLAUSIBLE_MARGIN_C)
    if margin is None:
        raise NotSupported(f"implausible T.Limit margin {raw!r} and no plausible threshold")
    temp = ctx.optional(gpu, "temperature_c")
    ev: dict[str, Any] = {
        "temperature_c": temp,
        "margin_to_tlimit_c": margin,
        "warn_at_margin_c": warn_margin,
        "crit_at_margin_c": crit_margin,
        "judged_by": "margin to T.Limit",
    }
    if rejected:
        ev["implausible_thresholds_c"] = rejected
    at = f"GPU at {temp} C, " if temp is not None else "GPU "
    if margin <= crit_margin:
        where = f"{-margin} C past" if margin < 0 else f"{margin} C below"
        yield Finding(
            "thermal.gpu",
            Severity.CRIT,
            f"{at}{where} its slowdown point (T.Limit): check cooling",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    elif margin <= warn_margin:
        yield Finding(
            "thermal.gpu",
            Severity.WARN,
            f"{at}within {margin} C of its slowdown point (T.Limit)",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "thermal.gpu",
            Severity.OK,
            f"{at}{margin} C below its slowdown point (T.Limit)",
            gpu=gpu,
            evidence=ev,
        )


@gpu_check("thermal.hbm")
def thermal_hbm(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    temp = int(ctx.read(gpu, "memory_temperature_c"))
    mem_max = _plausible(
        ctx.optional(gpu, "temperature_threshold_c", "mem_max"), PLAUSIBLE_THRESHOLD_C
    )
    crit_at = int(ctx.policy.get("thermal.hbm_crit_c"))
    if mem_max is not None:
        crit_at = min(crit_at, mem_max)
    warn_at = min(int(ctx.policy.get("thermal.hbm_warn_c")), crit_at)
    ev = {
        "memory_temperature_c": temp,
        "mem_max_c": mem_max,
        "warn_at_c": warn_at,
        "crit_at_c": crit_at,
    }
    if temp >= crit_at:
        yield Finding(
            "thermal.hbm",
            Severity.CRIT,
            f"HBM at {temp} C (limit {crit_at} C): check cooling",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    elif temp >= warn_at:
        yield Finding(
            "thermal.hbm",
            Severity.WARN,
            f"HBM at {temp} C (warn at {warn_at} C)",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    else:
        yield Finding("thermal.hbm", Severity.OK, f"HBM at {temp} C", gpu=gpu, evidence=ev)
