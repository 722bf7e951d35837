"""Temperatures against the device's own limits.

``thermal.gpu`` uses the GPU's slowdown threshold (``nvmlDeviceGetTemperatureThreshold``), not a
fixed number, so one policy fits every model: WARN at ``slowdown - thermal.margin_warn_c``, CRIT at
``slowdown - thermal.margin_crit_c`` or at the shutdown threshold. ``thermal.hbm`` compares the
HBM temperature with ``thermal.hbm_warn_c`` / ``thermal.hbm_crit_c``, the CRIT limit capped at the
device's own memory maximum where NVML reports one.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotSupported
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check


@gpu_check("thermal.gpu")
def thermal_gpu(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    temp = int(ctx.read(gpu, "temperature_c"))
    slowdown = ctx.optional(gpu, "temperature_threshold_c", "slowdown")
    source = "slowdown"
    if slowdown is None:
        slowdown = ctx.optional(gpu, "temperature_threshold_c", "gpu_max")
        source = "gpu_max"
    if slowdown is None:
        raise NotSupported("no temperature threshold reported")
    shutdown = ctx.optional(gpu, "temperature_threshold_c", "shutdown")
    warn_at = int(slowdown) - int(ctx.policy.get("thermal.margin_warn_c"))
    crit_at = int(slowdown) - int(ctx.policy.get("thermal.margin_crit_c"))
    if shutdown is not None:
        crit_at = min(crit_at, int(shutdown))
    ev = {
        "temperature_c": temp,
        f"{source}_c": int(slowdown),
        "shutdown_c": shutdown,
        "warn_at_c": warn_at,
        "crit_at_c": crit_at,
    }
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
            f"GPU at {temp} C, within {int(slowdown) - temp} C of its {source} threshold",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    else:
        yield Finding("thermal.gpu", Severity.OK, f"GPU at {temp} C", gpu=gpu, evidence=ev)


@gpu_check("thermal.hbm")
def thermal_hbm(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    temp = int(ctx.read(gpu, "memory_temperature_c"))
    mem_max = ctx.optional(gpu, "temperature_threshold_c", "mem_max")
    crit_at = int(ctx.policy.get("thermal.hbm_crit_c"))
    if mem_max is not None:
        crit_at = min(crit_at, int(mem_max))
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
