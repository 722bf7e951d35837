"""Why clocks are below their maximum (``nvmlDeviceGetCurrentClocksEventReasons``).

Benign reasons (idle, application/locked clocks, the software power cap, sync boost, display
clocks) are how a healthy GPU behaves, and never warn: a busy H100 sits at its power cap. The
others mean the GPU is being held back by something outside the workload:

- HW slowdown (0x8), HW thermal slowdown (0x40), HW power brake (0x80): the hardware cut clocks by
  half or more (overheating, or the board/PSU asserting the power-brake signal). DCGM's
  diagnostics fail on these; one slow GPU stalls a whole collective, so CRIT.
- SW thermal slowdown (0x20): the driver trims clocks to stay under the thermal limit: WARN.

The NVML violation counters (nanoseconds spent throttled) turn this into a duration: thermal and
reliability violation time above ``clocks.violation_warn_seconds_per_hour`` warns. Power and board
limit violation time is reported as evidence only, since power capping under load is normal.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check

BENIGN = {
    0x1: "gpu_idle",
    0x2: "applications_clocks",  # also user-defined / locked clocks
    0x4: "sw_power_cap",
    0x10: "sync_boost",
    0x100: "display_clocks",
}
BAD = {
    0x8: "hw_slowdown",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
}
CRITICAL_BITS = 0x8 | 0x40 | 0x80
JUDGED_VIOLATIONS = ("thermal", "reliability")
REPORTED_VIOLATIONS = ("power", "board_limit")
RATE_WINDOW_SECONDS = 3600.0


def decode(mask: int) -> tuple[list[str], list[str], list[str]]:
    """Split a clock-event bitmask into (benign, bad, unknown) reason names."""
    benign = [name for bit, name in BENIGN.items() if mask & bit]
    bad = [name for bit, name in BAD.items() if mask & bit]
    known = 0
    for bit in (*BENIGN, *BAD):
        known |= bit
    unknown = [hex(1 << i) for i in range(64) if mask & ~known & (1 << i)]
    return benign, bad, unknown


@gpu_check("clocks.events")
def clock_events(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    mask = int(ctx.read(gpu, "clock_event_reasons"))
    benign, bad, unknown = decode(mask)
    limit = float(ctx.policy.get("clocks.violation_warn_seconds_per_hour"))
    key = gpu.uuid or f"index{gpu.index}"
    rates: dict[str, float | None] = {}
    for policy in (*JUDGED_VIOLATIONS, *REPORTED_VIOLATIONS):
        ns = ctx.optional(gpu, "violation_ns", policy)
        if ns is None:
            continue
        rate = ctx.state.rate_per_hour(
            f"clocks.violation_{policy}:{key}", int(ns) / 1e9, ctx.now, RATE_WINDOW_SECONDS
        )
        rates[policy] = None if rate is None else round(rate, 3)
    ev = {
        "reasons_mask": hex(mask),
        "benign": benign,
        "bad": bad,
        "unknown": unknown,
        "violation_seconds_per_hour": rates,
        "violation_warn_seconds_per_hour": limit,
    }
    over = [p for p in JUDGED_VIOLATIONS if (rates.get(p) or 0.0) > limit]
    if mask & CRITICAL_BITS:
        yield Finding(
            "clocks.events",
            Severity.CRIT,
            f"clocks held back by {', '.join(bad)}: check cooling and power delivery",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    elif bad or over:
        what = list(bad) + [f"{p} violation {rates[p]:.0f} s/h" for p in over]
        yield Finding(
            "clocks.events",
            Severity.WARN,
            f"clocks held back: {', '.join(what)}",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    else:
        summary = f"no harmful clock events ({', '.join(benign) or 'none active'})"
        if all(r is None for r in rates.values()) and rates:
            summary += "; violation rate unknown yet"
        yield Finding("clocks.events", Severity.OK, summary, gpu=gpu, evidence=ev)
