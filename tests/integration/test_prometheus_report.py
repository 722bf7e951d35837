"""``sre slo report --prometheus`` against a real Prometheus holding 31 days of synthetic counters.

How the expected values are exact
---------------------------------
Every series has one sample per minute, at whole minutes, from ``START`` to ``T_END`` inclusive,
and the report is evaluated at ``T_END`` (also a whole minute). Bucket ``i`` is the minute
``[START + 60 i, START + 60 (i + 1))``; its events are added to the counter sample at the *end* of
the bucket (:func:`tests.helpers.prometheus.cumulative`).

In Prometheus 2.x a range selector ``x[W]`` evaluated at ``T`` selects the samples in the closed
interval ``[T - W, T]``. With a sample exactly at both ends, ``rate()`` needs no extrapolation
(the first and last samples sit on the window's edges) and returns
``(x(T) - x(T - W)) / W``: the events of exactly the buckets ``[T - W, T)`` divided by ``W``. The
SLI is ``sum(rate(errors[W])) / sum(rate(total[W]))``; the ``/ W`` cancels, so the report's error
ratio for a window of ``n = W / 60`` minutes is ``sum(errors of the last n buckets) /
sum(total of the last n buckets)``, which is what :func:`occurrences_ratio` computes from the
generated counts. This is also exactly the SQLite store's window (buckets starting in
``[at - W, at)``), so the two SLI sources must agree to float rounding.

(If the samples were not on the window edges, ``rate()`` would extrapolate; extrapolation scales
errors and total by the same factor, so constant per-minute traffic inside a window would still
give an exact ratio. The edge-aligned design makes *every* window exact, including those that
straddle a change of rate, such as 2h in the fast-burn scenario.)

Timeslices (bad-minute fraction) are read with a subquery ``avg_over_time((ratio_1m > bool
0.01)[W:1m])``. Each point at a whole minute ``t`` is the 1-minute ratio of bucket ``[t - 60, t)``
(``rate(x[1m])`` between the samples at ``t - 60`` and ``t``), and a minute without traffic is
0/0 = NaN, filtered by ``>= 0``, so it is not a slice at all. In Prometheus 2.x the subquery's
points are the whole minutes in the *closed* interval ``[T - W, T]``; at a whole-minute ``T``
that is ``W/60 + 1`` slices, one more than the window holds (see
``test_timeslices_at_a_whole_minute_counts_one_slice_too_many``). Half a minute later the points
are the same whole minutes as the intended ``W/60`` slices ``[T - W, T)``, so the passing
Timeslices test reads Prometheus at ``T_END + 30s`` and the store at ``T_END``.

Every scenario's headline numbers are also written out by hand (``HAND``), and the generic
calculation from the counts is checked against them first, so a mistake in either shows.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sre_tools.cli.main import main
from sre_tools.timeutil import iso
from tests.helpers.procs import closed_port
from tests.helpers.prometheus import CounterSeries, PrometheusServer, cumulative

pytestmark = pytest.mark.integration

MINUTE, HOUR, DAY = 60, 3600, 86400
T_END = 1_709_251_200  # 2024-03-01T00:00:00Z: a whole minute (and midnight)
AT = "2024-03-01T00:00:00Z"
AT_HALF_MINUTE = "2024-03-01T00:00:30Z"
MINUTES = 31 * 1440  # 31 days of 1-minute buckets: the 30d window plus a day of history
START = T_END - MINUTES * MINUTE

WINDOW_NAMES = {
    5 * MINUTE: "5m",
    30 * MINUTE: "30m",
    HOUR: "1h",
    2 * HOUR: "2h",
    6 * HOUR: "6h",
    DAY: "1d",
    3 * DAY: "3d",
    28 * DAY: "28d",
    30 * DAY: "30d",
}
# The built-in multi-window pairs (SRE Workbook): severity, speed, % of budget, long, short.
ALERT_PAIRS = (
    ("page", "quick", 2.0, HOUR, 5 * MINUTE),
    ("page", "slow", 5.0, 6 * HOUR, 30 * MINUTE),
    ("ticket", "quick", 10.0, DAY, 2 * HOUR),
    ("ticket", "slow", 10.0, 3 * DAY, 6 * HOUR),
)
SLICE_THRESHOLD = 0.01  # 1 - timeSliceTarget (0.99)
REL, ABS = 1e-6, 1e-9


# --- synthetic traffic ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Traffic:
    """Per-minute event counts; index i is bucket [START + 60 i, START + 60 (i + 1))."""

    total: tuple[int, ...]
    errors: tuple[int, ...]


def steady(total: int, errors: int, *tail: tuple[int, int, int]) -> Traffic:
    """Constant ``total``/``errors`` per minute; each ``(minutes, total, errors)`` in ``tail``
    overwrites the last ``minutes`` buckets (later entries win)."""
    tot, err = [total] * MINUTES, [errors] * MINUTES
    for minutes, t, e in tail:
        tot[-minutes:] = [t] * minutes
        err[-minutes:] = [e] * minutes
    return Traffic(tuple(tot), tuple(err))


def checkpoint_traffic() -> Traffic:
    """200 checkpoint writes a minute, judged per minute against 99 % (bad above 1 % errors).

    - minute ``i % 1440 == 721`` (12:01 every day): no writes, so no slice (an odd index, so never
      one of the bad minutes below);
    - the last 10 minutes: 10 errors (5 %), bad;
    - every 200th minute: 10 errors, bad (0.5 % of the minutes: a background burn of ~0.5);
    - every third minute otherwise: 1 error (0.5 %), errors yet a good slice;
    - the rest: no errors.
    """
    tot, err = [], []
    for i in range(MINUTES):
        if i % 1440 == 721:
            t, e = 0, 0
        elif i >= MINUTES - 10 or i % 200 == 0:
            t, e = 200, 10
        elif i % 3 == 1:
            t, e = 200, 1
        else:
            t, e = 200, 0
        tot.append(t)
        err.append(e)
    return Traffic(tuple(tot), tuple(err))


# (a) healthy: 0.05 % errors all month against 99.9 %: burn 0.5 everywhere.
CATALOG = steady(2000, 1)
# (b) fast burn: 0.05 % background, then 2 % for the last 90 minutes: 1h and 5m burn 20 > 14.4.
CHECKOUT = steady(10_000, 5, (90, 10_000, 200))
# (c) slow burn: 0.05 % background, then 0.2 % (burn 2) for the last 4 days: only ticket-slow.
SEARCH = steady(4000, 2, (4 * 1440, 4000, 8))
# (d) 0.03 % errors, then no traffic at all for the last 8 hours (the counters stay flat).
BATCH = steady(10_000, 3, (8 * 60, 0, 0))
CHECKPOINTS = checkpoint_traffic()


@dataclass(frozen=True)
class Case:
    slo_id: str
    traffic: Traffic
    objective: float  # percent
    period: int  # seconds
    timeslices: bool = False


CASES = {
    c.slo_id: c
    for c in (
        Case("catalog-availability", CATALOG, 99.9, 30 * DAY),
        Case("checkout-availability", CHECKOUT, 99.9, 30 * DAY),
        Case("search-availability", SEARCH, 99.9, 30 * DAY),
        Case("batch-availability", BATCH, 99.9, 30 * DAY),
        # OpenSLO good/total over the same counters as checkout-availability, 99.5 % over 28d.
        Case("checkout-requests", CHECKOUT, 99.5, 28 * DAY),
        Case("storage-checkpoint-writes", CHECKPOINTS, 99.0, 30 * DAY, timeslices=True),
    )
}
OCCURRENCES_IDS = [i for i, c in CASES.items() if not c.timeslices]


def _http(service: str, traffic: Traffic) -> list[CounterSeries]:
    ok = [t - e for t, e in zip(traffic.total, traffic.errors, strict=True)]
    return [
        CounterSeries("http_requests", {"service": service, "code": "200"}, cumulative(START, ok)),
        CounterSeries(
            "http_requests", {"service": service, "code": "500"}, cumulative(START, traffic.errors)
        ),
    ]


@pytest.fixture(scope="module")
def prometheus_series() -> list[CounterSeries]:
    ok = [t - e for t, e in zip(CHECKPOINTS.total, CHECKPOINTS.errors, strict=True)]
    return [
        *_http("catalog", CATALOG),
        *_http("checkout", CHECKOUT),
        *_http("search", SEARCH),
        *_http("batch", BATCH),
        CounterSeries("checkpoint_writes", {"result": "ok"}, cumulative(START, ok)),
        CounterSeries(
            "checkpoint_writes", {"result": "error"}, cumulative(START, CHECKPOINTS.errors)
        ),
    ]


# --- specs ---------------------------------------------------------------------------------------


def _sloth(service: str) -> str:
    sel = f'service="{service}"'
    return f"""\
version: "prometheus/v1"
service: "{service}"
labels:
  owner: "web-platform"
slos:
  - name: "availability"
    objective: 99.9
    description: "Requests to {service} answered without a 5xx."
    sli:
      events:
        error_query: sum(rate(http_requests_total{{{sel},code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate(http_requests_total{{{sel}}}[{{{{.window}}}}]))
    alerting:
      name: "{service.title()}AvailabilityBurn"
      page_alert:
        labels:
          team: "web-oncall"
      ticket_alert:
        labels:
          team: "web-platform"
"""


SLOTH_SPEC = "---\n".join(_sloth(s) for s in ("catalog", "checkout", "search", "batch"))

OPENSLO_SPEC = """\
apiVersion: openslo/v1
kind: Service
metadata:
  name: checkout
spec:
  description: "Checkout front end."
---
apiVersion: openslo/v1
kind: Service
metadata:
  name: storage
spec:
  description: "Shared checkpoint storage."
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: requests
spec:
  description: "99.5 % of checkout requests succeed over 28 days (good/total counters)."
  service: checkout
  indicator:
    metadata:
      name: checkout-good-requests
    spec:
      ratioMetric:
        counter: true
        good:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{service="checkout",code!~"5.."}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{service="checkout"}
  timeWindow:
    - duration: 28d
      isRolling: true
  budgetingMethod: Occurrences
  objectives:
    - displayName: requests
      target: 0.995
---
apiVersion: openslo/v1
kind: SLO
metadata:
  name: checkpoint-writes
spec:
  description: "Minutes in which at least 99 % of checkpoint writes succeed."
  service: storage
  indicator:
    metadata:
      name: checkpoint-write-errors
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: checkpoint_writes_total{result="error"}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: checkpoint_writes_total
  timeWindow:
    - duration: 30d
      isRolling: true
  budgetingMethod: Timeslices
  objectives:
    - displayName: good-minutes
      targetPercent: 99.0
      timeSliceTarget: 0.99
      timeSliceWindow: 1m
"""


@pytest.fixture(scope="module")
def spec_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("specs")
    sloth = folder / "web.sloth.yaml"
    openslo = folder / "platform.openslo.yaml"
    sloth.write_text(SLOTH_SPEC, encoding="utf-8")
    openslo.write_text(OPENSLO_SPEC, encoding="utf-8")
    return [str(sloth), str(openslo)]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store holding the same per-minute counts, imported with ``sre sli import``."""
    folder = tmp_path_factory.mktemp("store")
    csv = folder / "sli.csv"
    with csv.open("w", encoding="utf-8") as fh:
        fh.write("timestamp,slo,good,total\n")
        for slo_id, case in CASES.items():
            tr = case.traffic
            for i, (t, e) in enumerate(zip(tr.total, tr.errors, strict=True)):
                fh.write(f"@{START + i * MINUTE},{slo_id},{t - e},{t}\n")
    db = folder / "store.db"
    rc = main(["sli", "import", str(csv), "--store", str(db), "--json"])
    assert rc == 0, "sre sli import failed"
    return db


# --- running the CLI -----------------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    raise AssertionError(f"JSON output contains {name}")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(list(args))
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def report(
    capsys: pytest.CaptureFixture[str], files: Sequence[str], *source: str, at: str = AT
) -> dict[str, dict[str, Any]]:
    """``sre slo report FILES SOURCE --at AT --json``, by SLO id (strict JSON: no NaN/Infinity)."""
    rc, out, err = run(capsys, "slo", "report", *files, *source, "--at", at, "--json")
    assert rc == 0, f"sre slo report exited {rc}: {err}"
    rows = json.loads(out, parse_constant=_no_constants)
    return {row["id"]: row for row in rows}


@pytest.fixture
def prom_report(
    prometheus: PrometheusServer, spec_files: list[str], capsys: pytest.CaptureFixture[str]
) -> Callable[..., dict[str, dict[str, Any]]]:
    def call(*slo_ids: str, at: str = AT) -> dict[str, dict[str, Any]]:
        only = [a for s in slo_ids for a in ("--slo", s)]
        return report(capsys, spec_files, "--prometheus", prometheus.url, *only, at=at)

    return call


# --- the expected values, from the counts --------------------------------------------------------


def occurrences_ratio(tr: Traffic, window: int) -> float | None:
    """errors / total over the buckets [T_END - window, T_END) (None without traffic)."""
    n = window // MINUTE
    total, errors = sum(tr.total[-n:]), sum(tr.errors[-n:])
    return None if total == 0 else errors / total


def timeslices_ratio(tr: Traffic, window: int, *, extra_slice: bool = False) -> float | None:
    """Bad 1-minute slices / slices with traffic over [T_END - window, T_END).

    ``extra_slice`` adds the minute before the window, as Prometheus 2.x does at a whole minute.
    """
    n = window // MINUTE + (1 if extra_slice else 0)
    slices = [(e, t) for e, t in zip(tr.errors[-n:], tr.total[-n:], strict=True) if t > 0]
    if not slices:
        return None
    return sum(1 for e, t in slices if e / t > SLICE_THRESHOLD) / len(slices)


def expected_report(case: Case, *, extra_slice: bool = False) -> dict[str, Any]:
    """The report's numbers, computed independently of sre_tools from the generated counts."""
    budget = (100.0 - case.objective) / 100.0
    windows = sorted({w for *_, long_w, short_w in ALERT_PAIRS for w in (long_w, short_w)})
    windows = sorted({*windows, case.period})

    def ratio(window: int) -> float | None:
        if case.timeslices:
            return timeslices_ratio(case.traffic, window, extra_slice=extra_slice)
        return occurrences_ratio(case.traffic, window)

    ratios = {w: ratio(w) for w in windows}
    burn = {WINDOW_NAMES[w]: None if r is None else r / budget for w, r in ratios.items()}
    period_ratio = ratios[case.period]
    remaining = None if period_ratio is None else 1.0 - period_ratio / budget
    current = burn["1h"]
    tte: float | None = None
    if remaining is not None and current is not None:
        tte = 0.0 if remaining <= 0 else None if current <= 0 else remaining * case.period / current
    alerts = []
    for severity, speed, pct, long_w, short_w in ALERT_PAIRS:
        factor = pct / 100.0 * case.period / long_w
        lb, sb = burn[WINDOW_NAMES[long_w]], burn[WINDOW_NAMES[short_w]]
        firing = lb is not None and sb is not None and lb > factor and sb > factor
        alerts.append(
            {
                "severity": severity,
                "speed": speed,
                "long_window": WINDOW_NAMES[long_w],
                "short_window": WINDOW_NAMES[short_w],
                "factor": factor,
                "long_burn_rate": lb,
                "short_burn_rate": sb,
                "firing": firing,
            }
        )
    firing_names = [f"{a['severity']}-{a['speed']}" for a in alerts if a["firing"]]
    if period_ratio is None and all(b is None for b in burn.values()):
        status = "no_data"
    elif any(n.startswith("page") for n in firing_names):
        status = "page"
    elif firing_names:
        status = "ticket"
    elif remaining is not None and remaining <= 0:
        status = "exhausted"
    else:
        status = "ok"
    return {
        "id": case.slo_id,
        "objective_percent": case.objective,
        "period": WINDOW_NAMES[case.period],
        "period_seconds": case.period,
        "budgeting_method": "Timeslices" if case.timeslices else "Occurrences",
        "error_budget_ratio": budget,
        "status": status,
        "sli": None if period_ratio is None else 1.0 - period_ratio,
        "period_error_ratio": period_ratio,
        "budget_remaining": remaining,
        "current_burn_rate": current,
        "current_window": "1h",
        "time_to_exhaustion_seconds": tte,
        "burn_rates": burn,
        "alerts": alerts,
        "firing": firing_names,
    }


# Headline numbers worked out by hand from the scenario definitions (see each comment).
HAND: dict[str, dict[str, Any]] = {
    # 1 / 2000 = 0.05 % everywhere: burn 0.5 / 0.1 % budget; half the budget left, lasting the
    # remaining half at half speed: 0.5 * 30d / 0.5 = 30d.
    "catalog-availability": {
        "status": "ok",
        "firing": [],
        "burn_rates": dict.fromkeys(("5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"), 0.5),
        "sli": 0.9995,
        "budget_remaining": 0.5,
        "time_to_exhaustion_seconds": 30 * DAY,
    },
    # 2 % for the last 90 min, 5 / 10_000 before. 2h: (90*200 + 30*5) / 1.2e6 = 1.5125 %;
    # 6h: (18_000 + 270*5) / 3.6e6; 1d: (18_000 + 1350*5) / 1.44e7; 3d: (18_000 + 4230*5) /
    # 4.32e7; 30d: (18_000 + 43_110*5) / 4.32e8 = 0.0540625 %. Only 1h and 5m exceed 14.4.
    "checkout-availability": {
        "status": "page",
        "firing": ["page-quick"],
        "burn_rates": {
            "5m": 20.0,
            "30m": 20.0,
            "1h": 20.0,
            "2h": 15.125,
            "6h": 5.375,
            "1d": 1.71875,
            "3d": 0.90625,
            "30d": 0.540625,
        },
        "budget_remaining": 0.459375,
        "time_to_exhaustion_seconds": 0.459375 * 30 * DAY / 20,  # 59_535 s
    },
    # Burn 2 for 4 days (3d and 6h > 1: ticket-slow; 1d = 2 < 3: no ticket-quick), 0.5 before:
    # 30d = (4*2 + 26*0.5) / 30 = 0.7.
    "search-availability": {
        "status": "ticket",
        "firing": ["ticket-slow"],
        "burn_rates": {
            **dict.fromkeys(("5m", "30m", "1h", "2h", "6h", "1d", "3d"), 2.0),
            "30d": 0.7,
        },
        "budget_remaining": 0.3,
        "time_to_exhaustion_seconds": 0.3 * 30 * DAY / 2,  # 388_800 s
    },
    # No traffic for 8h: every window up to 6h has no data (null, never NaN); 1d, 3d and 30d see
    # 3 / 10_000 = burn 0.3. No current burn rate, so no time to exhaustion either.
    "batch-availability": {
        "status": "ok",
        "firing": [],
        "burn_rates": {
            **dict.fromkeys(("5m", "30m", "1h", "2h", "6h"), None),
            **dict.fromkeys(("1d", "3d", "30d"), 0.3),
        },
        "sli": 0.9997,
        "budget_remaining": 0.7,
        "current_burn_rate": None,
        "time_to_exhaustion_seconds": None,
    },
    # The checkout counters against 99.5 % (budget 0.5 %) over 28d: burns are a fifth of the
    # above, factors 2 % * 28d / 1h = 13.44 etc.; nothing fires. 28d: (18_000 + 40_230*5) /
    # 4.032e8 / 0.005 = 219_150 / 2_016_000.
    "checkout-requests": {
        "status": "ok",
        "firing": [],
        "burn_rates": {
            "5m": 4.0,
            "30m": 4.0,
            "1h": 4.0,
            "2h": 3.025,
            "6h": 1.075,
            "1d": 0.34375,
            "3d": 0.18125,
            "28d": 219_150 / 2_016_000,
        },
        "alert_factors": [13.44, 5.6, 2.8, 28 / 30],
    },
    # Bad minutes: the last 10, and every 200th (index % 200 == 0). 5m: 5 of 5 bad, burn
    # 1 / 1 % = 100. 1h: the last 10 plus index 44_600 = 11 of 60 (2h: 11 of 120). 6h: 10 +
    # {44_400, 44_600} = 12 of 360. 1d: 10 + 8 (43_200 .. 44_600) of 1439 slices (12:01 had no
    # writes). 3d: 10 + 22 (40_400 .. 44_600) of 4317. 30d: 10 + 216 (1_600 .. 44_600) of 43_170
    # (idle minutes are odd, never a multiple of 200). Page-quick fires
    # (100 and 18.3 > 14.4); page-slow does not (6h: 3.33 < 6).
    "storage-checkpoint-writes": {
        "status": "page",
        "firing": ["page-quick"],
        "burn_rates": {
            "5m": 100.0,
            "30m": 10 / 30 / 0.01,
            "1h": 11 / 60 / 0.01,
            "2h": 11 / 120 / 0.01,
            "6h": 12 / 360 / 0.01,
            "1d": 18 / 1439 / 0.01,
            "3d": 32 / 4317 / 0.01,
            "30d": 226 / 43_170 / 0.01,
        },
        "budget_remaining": 1 - 226 / 43_170 / 0.01,
    },
}


def _close(actual: Any, expected: Any) -> bool:
    if expected is None or actual is None:
        return actual is expected
    if isinstance(expected, bool | str):
        return actual == expected
    return math.isclose(actual, expected, rel_tol=REL, abs_tol=ABS)


def assert_matches(actual: Any, expected: Any, path: str = "") -> None:
    """Recursive comparison: exact for strings, bools and None; 1e-6 relative for numbers."""
    if isinstance(expected, dict):
        assert isinstance(actual, dict), f"{path}: expected a mapping, got {actual!r}"
        assert set(actual) >= set(expected), f"{path}: missing {set(expected) - set(actual)}"
        for key, value in expected.items():
            assert_matches(actual[key], value, f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), (
            f"{path}: expected {expected!r}, got {actual!r}"
        )
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_matches(a, e, f"{path}[{i}]")
    else:
        assert _close(actual, expected), f"{path}: expected {expected!r}, got {actual!r}"


def _hand_view(report_dict: dict[str, Any], hand: dict[str, Any]) -> dict[str, Any]:
    view = {k: report_dict[k] for k in hand if k != "alert_factors"}
    if "alert_factors" in hand:
        view["alert_factors"] = [a["factor"] for a in report_dict["alerts"]]
    return view


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("slo_id", list(CASES))
def test_hand_computed_values_match_the_generic_calculation(slo_id: str) -> None:
    """Guards the test itself: the by-hand numbers and the calculation from the counts agree."""
    expected = expected_report(CASES[slo_id])
    assert_matches(_hand_view(expected, HAND[slo_id]), HAND[slo_id], slo_id)


@pytest.mark.parametrize("slo_id", OCCURRENCES_IDS)
def test_prometheus_report_matches_hand_computed_values(
    prom_report: Callable[..., dict[str, dict[str, Any]]], slo_id: str
) -> None:
    got = prom_report(slo_id)
    assert list(got) == [slo_id]
    row = got[slo_id]
    assert row["at"] == AT
    assert_matches(row, expected_report(CASES[slo_id]), slo_id)
    assert_matches(_hand_view(row, HAND[slo_id]), HAND[slo_id], slo_id)


def test_zero_traffic_windows_are_null_never_nan(
    prometheus: PrometheusServer, spec_files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(
        capsys,
        "slo",
        "report",
        *spec_files,
        "--prometheus",
        prometheus.url,
        "--slo",
        "batch-availability",
        "--at",
        AT,
        "--json",
    )
    assert rc == 0, err
    for token in ("NaN", "Infinity"):
        assert token not in out
    (row,) = json.loads(out, parse_constant=_no_constants)
    for window in ("5m", "30m", "1h", "2h", "6h"):
        assert row["burn_rates"][window] is None
    assert row["current_burn_rate"] is None
    assert row["time_to_exhaustion_seconds"] is None
    for alert in row["alerts"]:
        assert alert["firing"] is False
        assert alert["short_burn_rate"] is None  # every short window is within the silent 8h
    assert row["status"] not in {"page", "ticket"}
    assert row["status"] == "ok"


def test_prometheus_and_store_reports_agree(
    prom_report: Callable[..., dict[str, dict[str, Any]]],
    spec_files: list[str],
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The same per-minute counts through Prometheus and through the SQLite store."""
    from_prom = prom_report(*OCCURRENCES_IDS)
    from_store = report(capsys, spec_files, "--store", str(store_path), *_only(OCCURRENCES_IDS))
    assert list(from_prom) == list(from_store) == OCCURRENCES_IDS
    for slo_id in OCCURRENCES_IDS:
        assert_matches(from_store[slo_id], expected_report(CASES[slo_id]), f"store:{slo_id}")
        assert_matches(from_prom[slo_id], from_store[slo_id], slo_id)


def _only(ids: Sequence[str]) -> list[str]:
    return [a for s in ids for a in ("--slo", s)]


def test_timeslices_bad_minute_fraction(
    prom_report: Callable[..., dict[str, dict[str, Any]]],
    spec_files: list[str],
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """OpenSLO Timeslices: fraction of bad minutes, minutes without traffic not counted.

    Prometheus is read half a minute after T_END: its subquery points are then exactly the W/60
    whole minutes ending at T_END (see the module docstring); the store is read at T_END.
    """
    slo_id = "storage-checkpoint-writes"
    expected = expected_report(CASES[slo_id])
    row = prom_report(slo_id, at=AT_HALF_MINUTE)[slo_id]
    assert row["at"] == AT_HALF_MINUTE
    assert row["budgeting_method"] == "Timeslices"
    assert_matches(row, expected, f"prometheus:{slo_id}")
    assert_matches(_hand_view(row, HAND[slo_id]), HAND[slo_id], slo_id)

    stored = report(capsys, spec_files, "--store", str(store_path), "--slo", slo_id)[slo_id]
    assert_matches(stored, expected, f"store:{slo_id}")
    assert stored["at"] == AT
    del row["at"], stored["at"]
    assert_matches(row, stored, slo_id)


def test_timeslices_at_a_whole_minute_match_the_store(
    prom_report: Callable[..., dict[str, dict[str, Any]]],
) -> None:
    """At T_END itself Prometheus gives the same slices as the store: W/step, not W/step + 1.

    A subquery range includes both ends in Prometheus 2.x; window_ratio() shortens it by 1 ms.
    """
    slo_id = "storage-checkpoint-writes"
    row = prom_report(slo_id)[slo_id]
    assert_matches(row, expected_report(CASES[slo_id]), slo_id)


def test_human_table_renders_from_prometheus(
    prometheus: PrometheusServer, spec_files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out, err = run(
        capsys, "slo", "report", *spec_files, "--prometheus", prometheus.url, "--at", AT
    )
    assert rc == 0, err
    assert err == ""
    for slo_id in CASES:
        assert slo_id in out
    assert "PAGE" in out and "TICKET" in out
    assert "nan" not in out.lower()


def test_unreachable_prometheus_is_a_one_line_error(
    spec_files: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with closed_port() as port:
        url = f"http://127.0.0.1:{port}"
        rc, out, err = run(
            capsys,
            "slo",
            "report",
            *spec_files,
            "--prometheus",
            url,
            "--at",
            AT,
            "--timeout",
            "5",
            "--json",
        )
    assert rc == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("sre: error:"), err
    assert url in lines[0]
    assert "cannot reach Prometheus" in lines[0]
    assert "Traceback" not in err


def expected_history(case: Case) -> list[dict[str, Any]]:
    """The budget burn-down of ``--html`` from the counts: budget remaining at the period's
    start, every ``period / 30`` (whole minutes) and at ``T_END``; at ``start + w`` the errors of
    the buckets ``[start, start + w)`` have used ``ratio * w / period`` of the period's budget."""
    budget = (100.0 - case.objective) / 100.0
    start = T_END - case.period
    first = MINUTES - case.period // MINUTE  # the bucket that starts at ``start``
    step = case.period // 30 // MINUTE * MINUTE
    points: list[dict[str, Any]] = [{"at": iso(start), "budget_remaining": 1.0}]
    for window in [*range(step, case.period, step), case.period]:
        n = window // MINUTE
        total = sum(case.traffic.total[first : first + n])
        errors = sum(case.traffic.errors[first : first + n])
        remaining = None if total == 0 else 1.0 - errors / total * (window / case.period) / budget
        points.append({"at": iso(start + window), "budget_remaining": remaining})
    return points


def test_html_burn_down_from_prometheus_and_store(
    prometheus: PrometheusServer,
    spec_files: list[str],
    store_path: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """``--html``: each SLO's budget history read through Prometheus and through the store
    matches the counts; the page has one burn-down chart per SLO."""
    only = _only(OCCURRENCES_IDS)
    for name, source in (
        ("prometheus", ["--prometheus", prometheus.url]),
        ("store", ["--store", str(store_path)]),
    ):
        page = tmp_path / f"{name}.html"
        rc, out, err = run(
            capsys, "slo", "report", *spec_files, *source, *only, "--at", AT, "--html", str(page),
            "--json",
        )  # fmt: skip
        assert rc == 0, err
        rows = {r["id"]: r for r in json.loads(out, parse_constant=_no_constants)}
        for slo_id in OCCURRENCES_IDS:
            history = rows[slo_id]["budget_history"]
            assert len(history) == 31
            assert_matches(history, expected_history(CASES[slo_id]), f"{name}:{slo_id}")
        assert page.read_text(encoding="utf-8").count('class="chart burn-down"') == len(
            OCCURRENCES_IDS
        )
