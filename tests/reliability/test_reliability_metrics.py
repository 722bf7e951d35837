"""Fleet reliability figures: MTBF, MTTR, MTTD, availability, rates; Llama 3's published MTBF."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from reliability_helpers import Result, csv_text

from sre_tools.exceptions import ValidationError
from sre_tools.reliability.incidents import import_csv
from sre_tools.reliability.metrics import (
    availability,
    mtbf,
    rate_per_unit_day,
    reliability_report,
    stats_for,
)
from sre_tools.reliability.model import Incident
from sre_tools.store import Store

DAY = 86400
HOUR = 3600
T0 = 1_700_000_000  # 2023-11-14: in the past (times ahead of now are refused)


def inc(
    started: int,
    resolved: int | None = None,
    *,
    component: str = "gpu",
    host: str = "",
    planned: bool = False,
    detected: int | None = None,
) -> Incident:
    return Incident(
        id=None,
        started=started,
        detected=detected,
        resolved=resolved,
        component=component,
        host=host,
        planned=planned,
    )


@pytest.mark.parametrize(
    ("mtbf_s", "mttr_s", "expected"),
    [
        pytest.param(99.0, 1.0, 0.99, id="99/(99+1)"),
        pytest.param(3 * HOUR, 1 * HOUR, 0.75, id="3h-MTBF-1h-MTTR"),
        pytest.param(1000.0, 0.0, 1.0, id="instant-repair"),
        pytest.param(None, None, 1.0, id="no-failures-is-fully-available"),
        pytest.param(None, 5.0, 1.0, id="no-failures-ignores-MTTR"),
        pytest.param(100.0, None, None, id="nothing-resolved-is-unknown"),
    ],
)
def test_availability(mtbf_s: float | None, mttr_s: float | None, expected: float | None) -> None:
    assert availability(mtbf_s, mttr_s) == (None if expected is None else pytest.approx(expected))


@pytest.mark.parametrize(
    ("window", "failures", "expected"),
    [
        pytest.param(54 * DAY, 419, 54 * DAY / 419, id="llama3-54d-419-failures"),
        pytest.param(30 * DAY, 1, 30 * DAY, id="one-failure"),
        pytest.param(30 * DAY, 0, None, id="zero-failures-is-infinite"),
    ],
)
def test_mtbf(window: int, failures: int, expected: float | None) -> None:
    assert mtbf(window, failures) == expected


@pytest.mark.parametrize(
    ("failures", "units", "window", "expected"),
    [
        pytest.param(419, 16_384, 54 * DAY, 419 / (16_384 * 54), id="llama3-per-GPU-day"),
        pytest.param(10, 128, 10 * DAY, 10 / 1280, id="10-failures-128-GPUs-10-days"),
        pytest.param(3, 16, DAY / 2, 3 / 8, id="half-a-day"),
        pytest.param(3, None, DAY, None, id="unknown-count"),
    ],
)
def test_rate_per_unit_day(
    failures: int, units: int | None, window: float, expected: float | None
) -> None:
    result = rate_per_unit_day(failures, units, window)
    assert result == (None if expected is None else pytest.approx(expected))


def test_stats_mttr_mttd_and_planned_apart() -> None:
    incidents = [
        inc(T0, T0 + 2 * HOUR, detected=T0 + 60),
        inc(T0 + DAY, T0 + DAY + 4 * HOUR, detected=T0 + DAY + 180),
        inc(T0 + 2 * DAY, None),  # open: no MTTR contribution
        inc(T0 + 3 * DAY, T0 + 3 * DAY + 8 * HOUR, planned=True),
        inc(T0 + 9 * DAY, None, planned=True),  # open planned: counted until the window end
        inc(T0 - DAY, T0 - DAY + 1),  # before the window: ignored
        inc(T0 + 10 * DAY, T0 + 10 * DAY + 1),  # at `until` (exclusive): ignored
    ]
    stats = stats_for(incidents, since=T0, until=T0 + 10 * DAY, gpus=8, nodes=1)
    assert stats.failures == 3
    assert stats.open == 1
    assert stats.mtbf_seconds == pytest.approx(10 * DAY / 3)
    assert stats.mttr_seconds == pytest.approx(3 * HOUR)
    assert stats.mttd_seconds == pytest.approx(120)
    assert stats.availability == pytest.approx((10 * DAY / 3) / (10 * DAY / 3 + 3 * HOUR))
    assert stats.failures_per_gpu_day == pytest.approx(3 / 80)
    assert stats.failures_per_node_day == pytest.approx(3 / 10)
    assert stats.planned.count == 2
    assert stats.planned.downtime_seconds == 8 * HOUR + DAY


def test_zero_failures_never_nan() -> None:
    report = reliability_report(
        [inc(T0, T0 + HOUR, planned=True)], since=T0, until=T0 + DAY, gpus=8
    )
    fleet = report.fleet
    assert fleet.failures == 0
    assert fleet.mtbf_seconds is None
    assert fleet.mttr_seconds is None
    assert fleet.availability == 1.0
    assert fleet.failures_per_gpu_day == 0.0
    values = [v for v in (fleet.failures_per_gpu_day, fleet.availability) if v is not None]
    assert all(math.isfinite(v) for v in values)


def test_report_groups_by_component_and_derives_nodes_from_hosts() -> None:
    incidents = [
        inc(T0, T0 + HOUR, component="gpu", host="n1"),
        inc(T0 + HOUR, T0 + 2 * HOUR, component="gpu", host="n2"),
        inc(T0 + 2 * HOUR, T0 + 3 * HOUR, component="psu", host="n2"),
        inc(T0 + 3 * HOUR, T0 + 4 * HOUR, component="host", host="n3", planned=True),
        inc(T0 + 4 * HOUR, T0 + 5 * HOUR, component="software"),
    ]
    report = reliability_report(incidents, since=T0, until=T0 + 10 * DAY)
    assert [name for name, _ in report.components] == ["gpu", "host", "psu", "software"]
    assert report.nodes == 3
    assert report.nodes_derived
    assert report.fleet.failures == 4
    assert report.component("gpu").failures == 2
    assert report.component("host").failures == 0
    assert report.component("host").planned.count == 1
    assert report.component("gpu").failures_per_node_day == pytest.approx(2 / 30)
    given = reliability_report(incidents, since=T0, until=T0 + 10 * DAY, nodes=16)
    assert given.nodes == 16
    assert not given.nodes_derived


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"since": T0, "until": T0}, "window", id="empty-window"),
        pytest.param({"since": T0, "until": T0 - 1}, "window", id="reversed-window"),
        pytest.param({"since": T0, "until": T0 + 1, "gpus": 0}, "--gpus", id="zero-gpus"),
        pytest.param({"since": T0, "until": T0 + 1, "nodes": 0}, "--nodes", id="zero-nodes"),
    ],
)
def test_report_rejects_bad_windows(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        reliability_report([], **kwargs)
    assert info.value.field == field


def _iso(t: int) -> str:
    from sre_tools.timeutil import iso

    return str(iso(t))


def test_llama3_419_interruptions_in_54_days_gives_3_09h_mtbf(
    store_path: Path, sre: Callable[..., Result]
) -> None:
    """Llama 3 (arXiv 2407.21783): 419 unexpected interruptions in 54 days on 16,384 GPUs."""
    window = 54 * DAY
    step = window // 419
    rows = [
        f"@{T0 + n * step},@{T0 + n * step + 1800},gpu,host-{n % 2048},{n % 8},hardware,false"
        for n in range(419)
    ]
    with Store(store_path) as store:
        assert import_csv(store, csv_text(*rows), "llama3.csv") == 419
    code, out, err = sre(
        "reliability", "report", "--store", str(store_path), "--since", _iso(T0),
        "--until", _iso(T0 + window), "--gpus", "16384", "--json",
    )  # fmt: skip
    assert code == 0, err
    fleet = json.loads(out)["fleet"]
    assert fleet["failures"] == 419
    assert fleet["mtbf_seconds"] / HOUR == pytest.approx(3.09, abs=0.01)
    assert fleet["failures_per_gpu_day"] == pytest.approx(419 / (16_384 * 54))
    assert fleet["mttr_seconds"] == pytest.approx(1800)
