"""Incidents and drill results from the store as Prometheus metrics (``sre reliability metrics``).

A prometheus-client Collector over an immutable :class:`Snapshot`; the snapshot is read from the
store at each scrape (a few aggregate queries), so the dashboards see what ``sre reliability
report`` and ``sre drill report`` see. Metric and label names are spelled here only.

- ``sre_incidents_total{component, planned}``: incidents recorded (a counter: the log only grows);
- ``sre_incidents_open{component}``: incidents not yet resolved;
- ``sre_incident_detect_seconds{component}`` / ``sre_incident_repair_seconds{component}``:
  summaries (``_sum``, ``_count``) of time to detect and time to repair over unplanned incidents
  that have them; ``_sum / _count`` is the MTTD / MTTR since the log began;
- ``sre_drill_runs_total{drill, status}``: recorded drill runs by final status;
- ``sre_drill_last_run_timestamp_seconds{drill, status}``: start of each drill's latest run;
- ``sre_drill_measured_median_seconds{drill, measure}`` and ``..._max_seconds``: detect, alert,
  drain and recover times the drills measured.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
    SummaryMetricFamily,
)

from sre_tools.store import Store

INCIDENTS = "sre_incidents"  # exposed with _total
INCIDENTS_OPEN = "sre_incidents_open"
INCIDENT_DETECT = "sre_incident_detect_seconds"
INCIDENT_REPAIR = "sre_incident_repair_seconds"
DRILL_RUNS = "sre_drill_runs"  # exposed with _total
DRILL_LAST_RUN = "sre_drill_last_run_timestamp_seconds"
DRILL_MEDIAN = "sre_drill_measured_median_seconds"
DRILL_MAX = "sre_drill_measured_max_seconds"

LABEL_COMPONENT = "component"
LABEL_PLANNED = "planned"
LABEL_DRILL = "drill"
LABEL_STATUS = "status"
LABEL_MEASURE = "measure"


@dataclass(frozen=True)
class Snapshot:
    incidents: tuple[tuple[str, bool, int], ...]  # component, planned, count
    open_incidents: tuple[tuple[str, int], ...]
    detect: tuple[tuple[str, int, float], ...]  # component, count, sum of seconds
    repair: tuple[tuple[str, int, float], ...]
    drill_runs: tuple[tuple[str, str, int], ...]  # drill, status, count
    drill_last: tuple[tuple[str, str, float], ...]  # drill, status, started
    drill_times: tuple[tuple[str, str, float, float], ...]  # drill, measure, median, max


def read_snapshot(store: Store) -> Snapshot:
    from sre_tools.chaos.results import drill_report, load_runs
    from sre_tools.reliability.incidents import list_incidents

    incidents = list_incidents(store)
    counts: dict[tuple[str, bool], int] = {}
    open_: dict[str, int] = {}
    detect: dict[str, tuple[int, float]] = {}
    repair: dict[str, tuple[int, float]] = {}
    for inc in incidents:
        key = (inc.component, inc.planned)
        counts[key] = counts.get(key, 0) + 1
        open_.setdefault(inc.component, 0)
        if inc.is_open:
            open_[inc.component] += 1
        if inc.planned:
            continue
        for table, seconds in ((detect, inc.detect_seconds), (repair, inc.repair_seconds)):
            if seconds is not None:
                n, total = table.get(inc.component, (0, 0.0))
                table[inc.component] = (n + 1, total + seconds)
    runs = load_runs(store)
    report = drill_report(runs)
    last: dict[str, tuple[str, float]] = {}
    for run in runs:  # oldest first: the last one written wins
        last[run.drill] = (run.status, run.started)
    return Snapshot(
        incidents=tuple((c, p, n) for (c, p), n in sorted(counts.items())),
        open_incidents=tuple(sorted(open_.items())),
        detect=tuple((c, n, s) for c, (n, s) in sorted(detect.items())),
        repair=tuple((c, n, s) for c, (n, s) in sorted(repair.items())),
        drill_runs=tuple(
            (row["drill"], status, count)
            for row in report
            for status, count in row["statuses"].items()
        ),
        drill_last=tuple((d, s, t) for d, (s, t) in sorted(last.items())),
        drill_times=tuple(
            (row["drill"], measure, stats["median_seconds"], stats["max_seconds"])
            for row in report
            for measure, stats in row["times"].items()
            if stats["count"]
        ),
    )


class ReliabilityCollector:
    """Yields the snapshot ``read`` returns at each scrape."""

    def __init__(self, read: Callable[[], Snapshot]):
        self._read = read

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the store: no fixed description

    def collect(self) -> Iterator[Metric]:
        yield from format_snapshot(self._read())


def format_snapshot(snap: Snapshot) -> Iterator[Metric]:
    total = CounterMetricFamily(
        INCIDENTS, "Incidents recorded in the store.", labels=[LABEL_COMPONENT, LABEL_PLANNED]
    )
    for component, planned, count in snap.incidents:
        total.add_metric([component, str(planned).lower()], count)
    yield total
    open_ = GaugeMetricFamily(
        INCIDENTS_OPEN, "Incidents not yet resolved.", labels=[LABEL_COMPONENT]
    )
    for component, count in snap.open_incidents:
        open_.add_metric([component], count)
    yield open_
    for name, help_, rows in (
        (
            INCIDENT_DETECT,
            "Time to detect of unplanned incidents (detected - started).",
            snap.detect,
        ),
        (INCIDENT_REPAIR, "Time to repair of resolved unplanned incidents.", snap.repair),
    ):
        family = SummaryMetricFamily(name, help_, labels=[LABEL_COMPONENT])
        for component, count, seconds in rows:
            family.add_metric([component], count_value=count, sum_value=seconds)
        yield family
    runs = CounterMetricFamily(
        DRILL_RUNS, "Drill runs recorded, by final status.", labels=[LABEL_DRILL, LABEL_STATUS]
    )
    for drill, status, count in snap.drill_runs:
        runs.add_metric([drill, status], count)
    yield runs
    last = GaugeMetricFamily(
        DRILL_LAST_RUN, "Start of the drill's latest run.", labels=[LABEL_DRILL, LABEL_STATUS]
    )
    for drill, status, started in snap.drill_last:
        last.add_metric([drill, status], started)
    yield last
    median = GaugeMetricFamily(
        DRILL_MEDIAN, "Median time the drill measured.", labels=[LABEL_DRILL, LABEL_MEASURE]
    )
    maximum = GaugeMetricFamily(
        DRILL_MAX, "Longest time the drill measured.", labels=[LABEL_DRILL, LABEL_MEASURE]
    )
    for drill, measure, med, top in snap.drill_times:
        median.add_metric([drill, measure], med)
        maximum.add_metric([drill, measure], top)
    yield median
    yield maximum
