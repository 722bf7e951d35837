"""The error-budget gate: which SLOs should stop a risky change (a rollout, a driver upgrade).

An SLO blocks while one of its page alert pairs fires, or while its remaining error budget is
below a threshold. The gate judges the reports of :mod:`sre_tools.slo.report` and computes
nothing of its own: the burn rates, factors and budget are the report's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.slo.report import STATUS_NO_DATA, SLOReport

DEFAULT_MIN_BUDGET_PERCENT = 10.0


def validate_min_budget(percent: float, field: str = "--min-budget") -> float:
    """Return ``percent`` when it is a finite number in [0, 100]; raise naming ``field``."""
    if not (isinstance(percent, int | float) and math.isfinite(percent) and 0 <= percent <= 100):
        raise ValidationError(f"must be a percentage in [0, 100], got {percent!r}", field=field)
    return float(percent)


def _percent(ratio: float) -> str:
    return f"{ratio * 100:.1f}%"


def blocking_reasons(report: SLOReport, min_budget_percent: float) -> list[str]:
    """Why ``report``'s SLO blocks: each firing page pair, then a budget below the threshold."""
    pairs = [
        f"{p.severity}-{p.speed} burn rate {p.long_burn_rate:.3g} over {p.long_window} and "
        f"{p.short_burn_rate:.3g} over {p.short_window} > {p.factor:.3g}"
        for p in report.pairs
        if p.firing and p.severity == "page"
    ]
    reasons = ["paging: " + ", ".join(pairs)] if pairs else []
    remaining = report.budget_remaining
    if remaining is not None and remaining * 100 < min_budget_percent:
        reasons.append(f"budget remaining {_percent(remaining)} < {min_budget_percent:g}%")
    return reasons


@dataclass(frozen=True)
class Block:
    slo_id: str
    reasons: tuple[str, ...]

    def line(self) -> str:
        return f"blocked: {self.slo_id}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class GateResult:
    min_budget_percent: float
    slos: int
    blocks: tuple[Block, ...]
    no_data: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.blocks

    def lines(self) -> list[str]:
        if self.blocks:
            return [b.line() for b in self.blocks]
        quiet = f" ({len(self.no_data)} without data)" if self.no_data else ""
        return [f"ok: {self.slos} SLOs, none blocking{quiet}"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "min_budget_percent": self.min_budget_percent,
            "slos": self.slos,
            "blocking": [{"id": b.slo_id, "reasons": list(b.reasons)} for b in self.blocks],
            "no_data": list(self.no_data),
        }


def evaluate(reports: Sequence[SLOReport], min_budget_percent: float) -> GateResult:
    """Judge ``reports``. An SLO without data (no traffic in any window) does not block: it has
    burned no budget; it is counted so that a gate over a wrong query does not pass unseen."""
    threshold = validate_min_budget(min_budget_percent)
    blocks = []
    for r in reports:
        reasons = blocking_reasons(r, threshold)
        if reasons:
            blocks.append(Block(r.slo.id, tuple(reasons)))
    no_data = tuple(r.slo.id for r in reports if r.status == STATUS_NO_DATA)
    return GateResult(threshold, len(reports), tuple(blocks), no_data)
