"""Error-budget math against the SRE Workbook's published figures ("Alerting on SLOs")."""

from __future__ import annotations

import math

import pytest

from sre_tools.slo import math as m
from sre_tools.slo.windows import DEFAULT_WINDOWS

DAY = 86400.0


@pytest.mark.parametrize(
    ("budget_percent", "period_days", "long_window_s", "factor"),
    [
        pytest.param(2, 30, 3600, 14.4, id="30d-2pct-1h"),
        pytest.param(5, 30, 6 * 3600, 6.0, id="30d-5pct-6h"),
        pytest.param(10, 30, DAY, 3.0, id="30d-10pct-1d"),
        pytest.param(10, 30, 3 * DAY, 1.0, id="30d-10pct-3d"),
        pytest.param(2, 28, 3600, 13.44, id="28d-2pct-1h"),
        pytest.param(5, 28, 6 * 3600, 5.6, id="28d-5pct-6h"),
        pytest.param(10, 28, DAY, 2.8, id="28d-10pct-1d"),
        pytest.param(10, 28, 3 * DAY, 0.9333333, id="28d-10pct-3d"),
    ],
)
def test_burn_rate_factors_are_computed(budget_percent, period_days, long_window_s, factor):
    got = m.burn_rate_factor(budget_percent, period_days * DAY, long_window_s)
    assert got == pytest.approx(factor, rel=1e-6)


def test_default_windows_give_workbook_factors_for_30_and_28_days():
    got30 = [round(w.factor(30 * DAY), 4) for w in DEFAULT_WINDOWS.windows]
    got28 = [round(w.factor(28 * DAY), 4) for w in DEFAULT_WINDOWS.windows]
    assert got30 == [14.4, 6.0, 3.0, 1.0]
    assert got28 == [13.44, 5.6, 2.8, 0.9333]


@pytest.mark.parametrize(
    ("burn", "expected_s"),
    [
        # Workbook table: burn rate -> time to exhaust a 30-day budget.
        pytest.param(1, 30 * DAY, id="burn-1-30d"),
        pytest.param(2, 15 * DAY, id="burn-2-15d"),
        pytest.param(10, 3 * DAY, id="burn-10-3d"),
        pytest.param(1000, 43.2 * 60, id="burn-1000-43min"),
    ],
)
def test_time_to_exhaustion_matches_workbook_table(burn, expected_s):
    assert m.time_to_exhaustion(1.0, burn, 30 * DAY) == pytest.approx(expected_s)


@pytest.mark.parametrize(
    ("remaining", "burn", "expected"),
    [
        pytest.param(0.5, 2, 7.5 * DAY, id="half-left-burn-2"),
        pytest.param(0.0, 5, 0.0, id="spent"),
        pytest.param(-0.3, 5, 0.0, id="overspent"),
        pytest.param(0.4, 0.0, math.inf, id="not-burning"),
        pytest.param(None, 1.0, None, id="no-data-remaining"),
        pytest.param(0.4, None, None, id="no-data-burn"),
    ],
)
def test_time_to_exhaustion_edges(remaining, burn, expected):
    assert m.time_to_exhaustion(remaining, burn, 30 * DAY) == expected


@pytest.mark.parametrize(
    ("objective", "period_s", "downtime_s"),
    [
        pytest.param(0.999, 30 * DAY, 43.2 * 60, id="three-nines-30d-43.2min"),
        pytest.param(0.99, 30 * DAY, 7.2 * 3600, id="two-nines-30d-7.2h"),
        pytest.param(0.9999, 28 * DAY, 4.032 * 60, id="four-nines-28d-4min"),
    ],
)
def test_allowed_downtime(objective, period_s, downtime_s):
    assert m.allowed_downtime(objective, period_s) == pytest.approx(downtime_s)


def test_zero_traffic_is_no_data_not_nan():
    ratio = m.error_ratio(0, 0)
    assert ratio is None
    assert m.burn_rate(ratio, 0.001) is None
    assert m.budget_remaining(ratio, 0.001) is None


@pytest.mark.parametrize(
    ("bad", "total", "budget", "burn", "remaining"),
    [
        pytest.param(1, 1000, 0.001, 1.0, 0.0, id="on-budget"),
        pytest.param(5, 10000, 0.001, 0.5, 0.5, id="half"),
        pytest.param(20, 1000, 0.001, 20.0, -19.0, id="overspent"),
        pytest.param(0, 1000, 0.01, 0.0, 1.0, id="clean"),
    ],
)
def test_burn_rate_and_remaining(bad, total, budget, burn, remaining):
    ratio = m.error_ratio(bad, total)
    assert m.burn_rate(ratio, budget) == pytest.approx(burn)
    assert m.budget_remaining(ratio, budget) == pytest.approx(remaining)


def test_detection_time_for_full_outage_on_fast_page():
    # 100 % errors on a 99.9 % SLO is a 1000x burn: 2 % of 30 days is spent in 51.84 s.
    assert m.detection_time(1000, 2, 30 * DAY) == pytest.approx(51.84)


def test_error_budget_rejects_impossible_objectives():
    with pytest.raises(ValueError, match="between 0 and 1"):
        m.error_budget(1.0)
