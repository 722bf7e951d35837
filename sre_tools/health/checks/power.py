"""Power draw against the enforced power limit."""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.health.model import Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check


@gpu_check("power.draw")
def power_draw(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    draw_w = int(ctx.read(gpu, "power_usage_mw")) / 1000.0
    limit_w = int(ctx.read(gpu, "power_limit_mw")) / 1000.0
    ratio = float(ctx.policy.get("power.warn_ratio"))
    ev = {
        "draw_watts": round(draw_w, 3),
        "limit_watts": round(limit_w, 3),
        "ratio": round(draw_w / limit_w, 4) if limit_w > 0 else None,
        "warn_ratio": ratio,
    }
    if limit_w > 0 and draw_w > limit_w * ratio:
        # Power capping reacts within milliseconds, so a sample above the limit is a sensor or
        # power-delivery problem worth a look, not an emergency.
        yield Finding(
            "power.draw",
            Severity.WARN,
            f"drawing {draw_w:.0f} W against an enforced limit of {limit_w:.0f} W",
            gpu=gpu,
            evidence=ev,
        )
    else:
        yield Finding(
            "power.draw",
            Severity.OK,
            f"drawing {draw_w:.0f} W of {limit_w:.0f} W",
            gpu=gpu,
            evidence=ev,
        )
