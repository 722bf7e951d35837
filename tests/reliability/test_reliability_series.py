"""The reliability report over time (``build_series``, the HTML report's chart): the window cut
into equal parts, each computed like the whole window."""

from __future__ import annotations

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.reliability.incidents import open_incident, resolve_incident
from sre_tools.reliability.report import build_report, build_series, report_json
from sre_tools.store import Store

DAY = 86400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def failure(store: Store, component: str, started: int, repair: int | None) -> None:
    incident = open_incident(store, component=component, started=started, host="n1")
    if repair is not None:
        assert incident.id is not None
        resolve_incident(store, incident.id, started + repair)


def test_ten_days_in_ten_parts(store: Store) -> None:
    failure(store, "gpu", T0 + 2 * DAY + 100, 3600)
    failure(store, "gpu", T0 + 2 * DAY + 5000, 7200)
    failure(store, "node", T0 + 7 * DAY, None)  # still open
    report = build_report(store, since=T0, until=T0 + 10 * DAY, gpus=64)
    series = build_series(store, report)
    assert [(p.since, p.until) for p in series] == [
        (T0 + k * DAY, T0 + (k + 1) * DAY) for k in range(10)
    ]
    assert [p.fleet.failures for p in series] == [0, 0, 2, 0, 0, 0, 0, 1, 0, 0]
    day2 = series[2]
    # By hand: 2 failures in a day, MTBF 12h; MTTR the mean of 1h and 2h.
    assert day2.component("gpu").mtbf_seconds == DAY / 2
    assert day2.component("gpu").mttr_seconds == 5400
    assert day2.component("gpu").availability == pytest.approx(43200 / (43200 + 5400))
    assert series[7].component("node").availability is None  # open: no repair time yet
    assert series[0].fleet.availability == 1.0  # no failure
    assert all(p.gpus == 64 and p.nodes == report.nodes for p in series)
    data = report_json(report, series)
    assert [p["fleet"]["failures"] for p in data["series"]] == [0, 0, 2, 0, 0, 0, 0, 1, 0, 0]
    assert "series" not in report_json(report)


def test_a_window_shorter_than_the_parts(store: Store) -> None:
    failure(store, "gpu", T0 + 3, 10)
    report = build_report(store, since=T0, until=T0 + 7)
    series = build_series(store, report)
    # Seven seconds in ten parts: only the non-empty parts, covering the window end to end.
    assert [(p.since, p.until) for p in series] == [(T0 + k, T0 + k + 1) for k in range(7)]
    assert sum(p.fleet.failures for p in series) == 1
    with pytest.raises(ValidationError, match="at least 1"):
        build_series(store, report, buckets=0)
