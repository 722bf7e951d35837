"""The budget burn-down of the HTML report (``budget_history``): which windows it reads from
the SLI source, and the budget left it derives from them."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sre_tools.slo.loader import load_texts
from sre_tools.slo.model import SLO
from sre_tools.slo.report import budget_history, build_report
from sre_tools.slo.windows import WindowCatalog
from tests.slo.spec_builders import sloth

DAY = 86400
AT = 1_767_225_600.0  # 2026-01-01T00:00:00Z


class Source:
    """Error ratio 0.0005 over every window ending at or after ``quiet_until``, no traffic
    (None) before; records what was asked."""

    def __init__(self, quiet_until: float):
        self.quiet_until = quiet_until
        self.calls: list[tuple[tuple[float, ...], float]] = []

    def error_ratios(
        self, slo: SLO, windows: Sequence[float], at: float
    ) -> dict[float, float | None]:
        self.calls.append((tuple(windows), at))
        return {w: None if at < self.quiet_until else 0.0005 for w in windows}


def slo(period: str) -> SLO:
    found = load_texts([("spec.yaml", sloth())], period_seconds=float(period[:-1]) * DAY)[0]
    assert found.error_budget_ratio == pytest.approx(0.001)  # 99.9 %
    return found


@pytest.mark.parametrize(
    ("period", "step"),
    [
        pytest.param("30d", DAY, id="30d-daily"),
        pytest.param("7d", 7 * DAY // 30 // 60 * 60, id="7d-whole-minutes"),
    ],
)
def test_windows_read_and_budget_left(period: str, step: int) -> None:
    spec = slo(period)
    span = spec.period_seconds
    start = AT - span
    source = Source(quiet_until=start + 3 * step)
    history = budget_history(spec, source, AT, remaining=0.5, points=30)
    # One read per point between the ends, each a window from the period's start.
    windows = [float(k * step) for k in range(1, 31) if k * step < span]
    assert source.calls == [((w,), start + w) for w in windows]
    assert history[0] == (start, 1.0)
    assert history[-1] == (AT, 0.5)  # the report's own figure, not read again
    # No traffic yet: no point; then 0.0005 of 0.001 over w/period of the period: 1 - w/(2 P).
    assert [v for _, v in history[1:3]] == [None, None]
    for (t, value), window in zip(history[3:-1], windows[2:], strict=True):
        assert t == start + window
        assert value == pytest.approx(1 - 0.5 * window / span)


def test_only_with_history_points() -> None:
    spec = slo("30d")
    ws = WindowCatalog().for_period(spec.period_seconds)
    plain = build_report(spec, ws, Source(0.0), AT)
    assert plain.history == () and "budget_history" not in plain.to_dict()
    with_history = build_report(spec, ws, Source(0.0), AT, history_points=30)
    points = with_history.to_dict()["budget_history"]
    assert len(points) == 31
    assert points[-1] == {"at": "2026-01-01T00:00:00Z", "budget_remaining": 0.5}
    assert with_history.budget_remaining == 0.5
