"""MIG mode: a mode change only takes effect at the next GPU reset.

Whether the MIG layout matches the site's desired mig-parted configuration is a separate, later
check; this one only reports a pending mode change.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check


@gpu_check("mig.pending")
def mig_pending(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    current, pending = ctx.read(gpu, "mig_mode")
    ev = {"current": bool(current), "pending": bool(pending)}
    if current != pending:
        yield Finding(
            "mig.pending",
            Severity.WARN,
            f"MIG mode change pending ({'on' if current else 'off'} -> "
            f"{'on' if pending else 'off'}): reset the GPU to apply it",
            Action.RESET_GPU,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "mig.pending",
            Severity.OK,
            f"MIG {'enabled' if current else 'disabled'}, no change pending",
            gpu=gpu,
            evidence=ev,
        )
