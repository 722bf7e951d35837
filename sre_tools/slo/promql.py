"""PromQL for SLIs: the error-ratio expression of an SLO over any window.

Both the rule generator and the Prometheus report use these, so what the alerts evaluate and what
``sre slo report --prometheus`` reads back are the same expressions.

Zero traffic: an events ratio is ``errors / total``; with no traffic that is 0/0 = NaN. Every
ratio is filtered with ``>= 0`` (NaN compares false), so "no traffic" is an absent series, an
explicit no-data state: alerts stay quiet and the period value is never poisoned by a NaN.
"""

from __future__ import annotations

from sre_tools.durations import format_duration
from sre_tools.slo.model import SLO, WINDOW_PLACEHOLDER, BudgetingMethod, EventsSLI

# Metric names (recording rules); the one place they are spelled.
SLI_ERROR_RATIO = "slo:sli_error:ratio_rate{window}"
OBJECTIVE = "slo:objective:ratio"
ERROR_BUDGET = "slo:error_budget:ratio"
TIME_PERIOD_DAYS = "slo:time_period:days"
CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
PERIOD_BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"
SLO_INFO = "sre_slo_info"

LABEL_ID = "sre_id"
LABEL_SERVICE = "sre_service"
LABEL_SLO = "sre_slo"
LABEL_WINDOW = "sre_window"
LABEL_SEVERITY = "sre_severity"


def quote(value: str) -> str:
    """A PromQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def window_name(seconds: float) -> str:
    return format_duration(seconds)


def raw_ratio(slo: SLO, window_seconds: float) -> str:
    """Error ratio over a window straight from the SLI's queries (counters over the window)."""
    window = window_name(window_seconds)
    if isinstance(slo.sli, EventsSLI):
        errors = slo.sli.error_query.replace(WINDOW_PLACEHOLDER, window)
        total = slo.sli.total_query.replace(WINDOW_PLACEHOLDER, window)
        return f"(\n  ({errors})\n  /\n  ({total})\n) >= 0"
    ratio = slo.sli.error_ratio_query.replace(WINDOW_PLACEHOLDER, window)
    return f"(\n  {ratio}\n) >= 0"


def selector(slo: SLO) -> str:
    return f"{{{LABEL_ID}={quote(slo.id)}}}"


def slice_threshold(slo: SLO) -> float:
    """Error ratio above which a time slice is bad (1 - timeSliceTarget)."""
    assert slo.time_slice_target is not None
    return round(1.0 - slo.time_slice_target, 12)


def window_ratio(slo: SLO, window_seconds: float, *, recorded: bool) -> str:
    """Error ratio over ``window_seconds`` according to the SLO's budgeting method.

    ``recorded`` builds time-slice expressions on the recorded slice ratio (rules); otherwise the
    slice ratio is computed inline (ad-hoc queries from the report).
    """
    if slo.budgeting is BudgetingMethod.OCCURRENCES:
        return raw_ratio(slo, window_seconds)
    assert slo.time_slice_seconds is not None
    step = window_name(slo.time_slice_seconds)
    if recorded:
        slice_series = SLI_ERROR_RATIO.format(window=step) + selector(slo)
    else:
        slice_series = f"({raw_ratio(slo, slo.time_slice_seconds)})"
    if slo.budgeting is BudgetingMethod.TIMESLICES:
        inner = f"{slice_series} > bool {slice_threshold(slo)!r}"
    else:
        inner = slice_series
    # A subquery range includes both ends in Prometheus 2.x: [30d:1m] at a whole minute holds
    # 43,201 slices. One millisecond less gives exactly W/step slices on 2.x and 3.x alike.
    return f"avg_over_time(({inner})[{round(window_seconds * 1000) - 1}ms:{step}])"
