"""The store-backed reliability report (``sre reliability report``, and the on-call report),
and one component's MTBF from it (``sre reliability plan --component``).

Default window: ``since`` is the earliest incident start in the store, ``until`` is now.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.reliability.incidents import earliest_start, list_incidents
from sre_tools.reliability.metrics import ReliabilityReport, ReliabilityStats, reliability_report
from sre_tools.store import Store
from sre_tools.timeutil import iso


def build_report(
    store: Store,
    *,
    since: int | None = None,
    until: int | None = None,
    gpus: int | None = None,
    nodes: int | None = None,
    now: int | None = None,
) -> ReliabilityReport:
    """Load the window's incidents from ``store`` and compute the report."""
    end = until if until is not None else (int(time.time()) if now is None else now)
    start = since
    if start is None:
        start = earliest_start(store)
        if start is None:
            raise ValidationError(
                "the store has no incidents; import some or pass --since", field="--since"
            )
    if end <= start:
        raise ValidationError(
            f"the window is empty: --since {iso(start)} is not before --until {iso(end)}",
            field="--since",
        )
    incidents = list_incidents(store, since=start, until=end)
    return reliability_report(incidents, since=start, until=end, gpus=gpus, nodes=nodes)


SERIES_BUCKETS = 10


def build_series(
    store: Store,
    report: ReliabilityReport,
    *,
    buckets: int = SERIES_BUCKETS,
) -> list[ReliabilityReport]:
    """``report``'s window cut into ``buckets`` equal parts (whole seconds), each computed the
    same way as the whole window, with its fleet sizes: the figures over time."""
    if buckets < 1:
        raise ValidationError(f"must be at least 1, got {buckets}", field="buckets")
    incidents = list_incidents(store, since=report.since, until=report.until)
    edges = [report.since + (report.window_seconds * k) // buckets for k in range(buckets + 1)]
    return [
        reliability_report(incidents, since=a, until=b, gpus=report.gpus, nodes=report.nodes)
        for a, b in pairwise(edges)
        if b > a
    ]


@dataclass(frozen=True)
class ComponentMtbf:
    """One component class's MTBF over a window, as the report computes it."""

    component: str
    since: int
    until: int
    failures: int
    mtbf_seconds: float


def component_mtbf(
    store: Store,
    component: str,
    *,
    since: int | None = None,
    until: int | None = None,
    now: int | None = None,
) -> ComponentMtbf:
    """The MTBF of ``component`` in the window, from the same report ``sre reliability report``
    prints; :class:`ValidationError` (field ``--component``) when the window has no unplanned
    incident of that component, so there is no MTBF to plan with."""
    report = build_report(store, since=since, until=until, now=now)
    try:
        stats: ReliabilityStats | None = report.component(component)
    except KeyError:
        stats = None
    if stats is None or stats.mtbf_seconds is None:
        raise ValidationError(
            f"no unplanned incidents of component {component!r} from {iso(report.since)} to "
            f"{iso(report.until)}: no MTBF to plan with (widen --since/--until, or give --mtbf)",
            field="--component",
        )
    return ComponentMtbf(
        component=component,
        since=report.since,
        until=report.until,
        failures=stats.failures,
        mtbf_seconds=stats.mtbf_seconds,
    )


def component_mtbf_json(found: ComponentMtbf) -> dict[str, Any]:
    return {
        "component": found.component,
        "since": iso(found.since),
        "until": iso(found.until),
        "failures": found.failures,
        "mtbf_seconds": found.mtbf_seconds,
    }


def stats_json(stats: ReliabilityStats) -> dict[str, Any]:
    return {
        "failures": stats.failures,
        "open": stats.open,
        "mtbf_seconds": stats.mtbf_seconds,
        "mttr_seconds": stats.mttr_seconds,
        "mttd_seconds": stats.mttd_seconds,
        "availability": stats.availability,
        "failures_per_gpu_day": stats.failures_per_gpu_day,
        "failures_per_node_day": stats.failures_per_node_day,
        "planned": {
            "count": stats.planned.count,
            "downtime_seconds": stats.planned.downtime_seconds,
        },
    }


def report_json(
    report: ReliabilityReport, series: list[ReliabilityReport] | None = None
) -> dict[str, Any]:
    """The report with stable keys (``mtbf_seconds`` is ``null`` when there are no failures);
    with ``series`` (:func:`build_series`), the figures over time under ``series``."""
    extra = {} if series is None else {"series": [report_json(r) for r in series]}
    return {
        "since": iso(report.since),
        "until": iso(report.until),
        "window_seconds": report.window_seconds,
        "gpus": report.gpus,
        "nodes": report.nodes,
        "nodes_source": "derived" if report.nodes_derived else "given",
        "fleet": stats_json(report.fleet),
        "components": {name: stats_json(stats) for name, stats in report.components},
        **extra,
    }
