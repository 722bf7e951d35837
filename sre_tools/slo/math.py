"""Error-budget arithmetic (Google SRE Workbook, "Alerting on SLOs" and "Implementing SLOs").

All ratios are fractions (0.001, not 0.1 %). Functions return None where the inputs carry no
information (zero traffic): callers show "no data" instead of a NaN.
"""

from __future__ import annotations

import math


def error_budget(objective_ratio: float) -> float:
    """Allowed bad fraction: 1 - objective (0.999 -> 0.001)."""
    if not 0.0 < objective_ratio < 1.0:
        raise ValueError(f"objective must be between 0 and 1 exclusive, got {objective_ratio}")
    return 1.0 - objective_ratio


def error_ratio(bad: float, total: float) -> float | None:
    """bad / total, or None when there was no traffic."""
    if total <= 0:
        return None
    return max(0.0, min(1.0, bad / total))


def burn_rate(error_ratio_value: float | None, budget: float) -> float | None:
    """How fast the budget burns relative to spending it exactly over the period (1 = on track)."""
    if error_ratio_value is None:
        return None
    return error_ratio_value / budget


def budget_remaining(period_error_ratio: float | None, budget: float) -> float | None:
    """Fraction of the period's budget still unspent (negative once overspent)."""
    if period_error_ratio is None:
        return None
    return 1.0 - period_error_ratio / budget


def time_to_exhaustion(
    remaining: float | None, current_burn_rate: float | None, period_seconds: float
) -> float | None:
    """Seconds until the remaining budget is spent at the current burn rate.

    At burn rate b the whole budget lasts ``period / b``; the remaining fraction r lasts
    ``r * period / b``. 0 once the budget is spent, infinity when nothing burns, None without data.
    """
    if remaining is None or current_burn_rate is None:
        return None
    if remaining <= 0:
        return 0.0
    if current_burn_rate <= 0:
        return math.inf
    return remaining * period_seconds / current_burn_rate


def allowed_downtime(objective_ratio: float, period_seconds: float) -> float:
    """Seconds of full outage the budget allows over the period (99.9 % over 30d: 43.2 min)."""
    return error_budget(objective_ratio) * period_seconds


def burn_rate_factor(
    budget_percent: float, period_seconds: float, long_window_seconds: float
) -> float:
    """Burn rate that spends ``budget_percent`` of the budget within the long window.

    factor = (budget_percent / 100) * period / long_window; 2 % in 1 h of 30 d gives 14.4.
    """
    if long_window_seconds <= 0 or period_seconds <= 0:
        raise ValueError("windows must be positive")
    return (budget_percent / 100.0) * period_seconds / long_window_seconds


def detection_time(burn: float, budget_percent: float, period_seconds: float) -> float:
    """Seconds a constant burn rate ``burn`` needs to spend ``budget_percent`` of the budget."""
    if burn <= 0:
        return math.inf
    return (budget_percent / 100.0) * period_seconds / burn
