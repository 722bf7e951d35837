"""One aggregate: is a GPU reset or a reboot pending on this node, and why.

Registered last, it reads the findings the earlier checks produced this cycle (``ctx.findings``):
every WARN/CRIT finding whose action is a GPU reset, a drain and reset, or a reboot (pending ECC
and MIG mode changes, pending row remaps and repairs, volatile uncorrectable errors, links down,
a driver/library mismatch). Its severity and action are the worst of those, so the finding can
drive a drain-and-reset workflow on its own; the findings it cites stay in the report.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.health.model import Action, Finding, Severity
from sre_tools.health.registry import Context, check

RESET_ACTIONS = (Action.RESET_GPU, Action.DRAIN_AND_RESET, Action.REBOOT)
PENDING_CHECKS = ("ecc.mode", "mig.pending")  # mode changes: pending until a reset either way


def _wanted(f: Finding) -> bool:
    if f.check == "reset.pending" or f.severity not in (Severity.WARN, Severity.CRIT):
        return False
    return f.action in RESET_ACTIONS or (f.check in PENDING_CHECKS and f.action is not Action.NONE)


@check("reset.pending", needs_nvml=False)
def reset_pending(ctx: Context) -> Iterator[Finding]:
    reasons = [f for f in list(ctx.findings) if _wanted(f)]
    if not reasons:
        yield Finding("reset.pending", Severity.OK, "no reset or reboot pending")
        return
    severity = max((f.severity for f in reasons), key=lambda s: s.rank)
    action = max((f.action for f in reasons), key=lambda a: a.rank)
    gpus = sorted({f.gpu.index for f in reasons if f.gpu is not None})
    ev = {
        "gpus": gpus,
        "reasons": [
            {
                "check": f.check,
                "gpu": None if f.gpu is None else f.gpu.index,
                "action": f.action.value,
                "summary": f.summary,
            }
            for f in reasons
        ],
    }
    where = f"GPU {', '.join(map(str, gpus))}" if gpus else "node"
    checks = sorted({f.check for f in reasons})
    yield Finding(
        "reset.pending",
        severity,
        f"reset or reboot pending ({where}, {action.value}): {', '.join(checks)}",
        action,
        evidence=ev,
    )
