"""SLO reports: SLI over the period, budget remaining, burn rate per window, time to exhaustion and
which alert pair would fire, from any SLI source (store or Prometheus)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sre_tools.durations import format_duration
from sre_tools.sli.source import SLISource
from sre_tools.slo import math as m
from sre_tools.slo.model import SLO
from sre_tools.slo.windows import WindowCatalog, WindowSet
from sre_tools.timeutil import iso

STATUS_NO_DATA = "no_data"
STATUS_OK = "ok"
STATUS_TICKET = "ticket"
STATUS_PAGE = "page"
STATUS_EXHAUSTED = "exhausted"


@dataclass(frozen=True)
class PairResult:
    severity: str
    speed: str
    long_window: str
    short_window: str
    factor: float
    long_burn_rate: float | None
    short_burn_rate: float | None
    firing: bool


@dataclass(frozen=True)
class SLOReport:
    slo: SLO
    at: float
    period_error_ratio: float | None
    budget_remaining: float | None
    current_burn_rate: float | None
    current_window: str
    time_to_exhaustion_seconds: float | None
    burn_rates: dict[str, float | None]
    pairs: tuple[PairResult, ...] = field(default_factory=tuple)
    # Budget remaining through the period (``budget_history``): empty unless asked for.
    history: tuple[tuple[float, float | None], ...] = ()

    @property
    def sli(self) -> float | None:
        return None if self.period_error_ratio is None else 1.0 - self.period_error_ratio

    @property
    def status(self) -> str:
        if self.period_error_ratio is None and all(v is None for v in self.burn_rates.values()):
            return STATUS_NO_DATA
        if any(p.firing and p.severity == "page" for p in self.pairs):
            return STATUS_PAGE
        if any(p.firing and p.severity == "ticket" for p in self.pairs):
            return STATUS_TICKET
        if self.budget_remaining is not None and self.budget_remaining <= 0:
            return STATUS_EXHAUSTED
        return STATUS_OK

    @property
    def firing(self) -> list[str]:
        return [f"{p.severity}-{p.speed}" for p in self.pairs if p.firing]

    def to_dict(self) -> dict[str, Any]:
        slo = self.slo
        return {
            "id": slo.id,
            "service": slo.service,
            "slo": slo.name,
            "at": iso(self.at),
            "objective_percent": slo.objective,
            "period": format_duration(slo.period_seconds),
            "period_seconds": slo.period_seconds,
            "budgeting_method": slo.budgeting.value,
            "error_budget_ratio": slo.error_budget_ratio,
            "allowed_downtime_seconds": m.allowed_downtime(slo.objective_ratio, slo.period_seconds),
            "status": self.status,
            "sli": self.sli,
            "period_error_ratio": self.period_error_ratio,
            "budget_remaining": self.budget_remaining,
            "current_burn_rate": self.current_burn_rate,
            "current_window": self.current_window,
            "time_to_exhaustion_seconds": self.time_to_exhaustion_seconds,
            "burn_rates": self.burn_rates,
            "alerts": [
                {
                    "severity": p.severity,
                    "speed": p.speed,
                    "long_window": p.long_window,
                    "short_window": p.short_window,
                    "factor": p.factor,
                    "long_burn_rate": p.long_burn_rate,
                    "short_burn_rate": p.short_burn_rate,
                    "firing": p.firing,
                }
                for p in self.pairs
            ],
            "firing": self.firing,
            **(
                {
                    "budget_history": [
                        {"at": iso(t), "budget_remaining": value} for t, value in self.history
                    ]
                }
                if self.history
                else {}
            ),
        }


def _enabled(slo: SLO, severity: str) -> bool:
    if slo.alerting is None:
        return True
    spec = slo.alerting.page if severity == "page" else slo.alerting.ticket
    return not spec.disabled


HISTORY_POINTS = 30


def budget_history(
    slo: SLO, source: SLISource, at: float, remaining: float | None, points: int = HISTORY_POINTS
) -> tuple[tuple[float, float | None], ...]:
    """Error budget remaining through the period ``[at - period, at]``: ``points + 1`` evenly
    spaced times (whole minutes, the store's bucket), each with the share of the period's budget
    left after the errors from the period's start to that time.

    At time ``t`` the source's error ratio over ``[start, t)`` has consumed
    ``ratio * (t - start) / period`` of the budget (traffic taken as even over the period, the
    same assumption as time to exhaustion). The last point is ``remaining``, the report's
    ``budget_remaining`` at ``at``; a time with no traffic so far is ``None``. The first point,
    the period's start, is 1.0.
    """
    period = slo.period_seconds
    budget = slo.error_budget_ratio
    start = at - period
    step = max(60.0, float(int(period / points) // 60 * 60))
    out: list[tuple[float, float | None]] = [(start, 1.0)]
    k = 1
    while k * step < period:
        window = k * step
        ratio = source.error_ratios(slo, [window], start + window).get(window)
        out.append((start + window, m.budget_remaining(ratio, budget / (window / period))))
        k += 1
    out.append((at, remaining))
    return tuple(out)


def build_report(
    slo: SLO, ws: WindowSet, source: SLISource, at: float, *, history_points: int = 0
) -> SLOReport:
    """Read the SLO's windows from ``source`` and compute the report at ``at``; with
    ``history_points``, the budget remaining through the period too (:func:`budget_history`)."""
    windows = sorted(set(ws.all_window_seconds) | {slo.period_seconds})
    ratios = source.error_ratios(slo, windows, at)
    budget = slo.error_budget_ratio
    burn = {format_duration(w): m.burn_rate(ratios.get(w), budget) for w in windows}
    period_ratio = ratios.get(slo.period_seconds)
    remaining = m.budget_remaining(period_ratio, budget)
    # "Current" burn: the quick page pair's long window (1h by default), steadier than 5m.
    quick = min(ws.windows, key=lambda w: w.long_seconds)
    current_window = format_duration(quick.long_seconds)
    current = burn.get(current_window)
    tte = m.time_to_exhaustion(remaining, current, slo.period_seconds)
    pairs = []
    for win in ws.windows:
        factor = win.factor(slo.period_seconds)
        long_b = burn.get(format_duration(win.long_seconds))
        short_b = burn.get(format_duration(win.short_seconds))
        firing = (
            _enabled(slo, win.severity)
            and long_b is not None
            and short_b is not None
            and long_b > factor
            and short_b > factor
        )
        pairs.append(
            PairResult(
                win.severity,
                win.speed,
                format_duration(win.long_seconds),
                format_duration(win.short_seconds),
                factor,
                long_b,
                short_b,
                firing,
            )
        )
    history = (
        budget_history(slo, source, at, remaining, history_points) if history_points > 0 else ()
    )
    return SLOReport(
        slo, at, period_ratio, remaining, current, current_window, tte, burn, tuple(pairs), history
    )


def build_reports(
    slos: Sequence[SLO],
    source: SLISource,
    at: float,
    catalog: WindowCatalog | None = None,
    *,
    history_points: int = 0,
) -> list[SLOReport]:
    catalog = catalog or WindowCatalog()
    return [
        build_report(
            s, catalog.for_period(s.period_seconds), source, at, history_points=history_points
        )
        for s in slos
    ]
