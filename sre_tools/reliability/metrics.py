"""Fleet reliability figures over a window ``[since, until)``. Pure math: no I/O, no clock.

Definitions (see ``docs/reliability.md``):

- a *failure* is an unplanned incident that **started** in the window;
- ``MTBF = window length / failures`` (``None``, shown as "no failures", when there are none);
- ``MTTR = mean(resolved - started)`` over the failures that are resolved;
- ``MTTD = mean(detected - started)`` over the failures whose detection time is known;
- ``availability = MTBF / (MTBF + MTTR)``; 1.0 with no failures, ``None`` when no failure is
  resolved yet (MTTR unknown);
- ``failures per GPU-day = failures / (GPUs * window days)`` (needs the GPU count);
- ``failures per node-day = failures / (nodes * window days)``; the node count is given, or else
  the number of distinct non-empty hosts among the window's incidents (a lower bound: hosts that
  never had an incident are not seen);
- planned incidents never count as failures; they are counted apart with their total downtime
  (``resolved - started``, or ``until - started`` while still open).

Every figure is computed for each component class (the ``component`` column) and for the fleet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from statistics import fmean

from sre_tools.exceptions import ValidationError
from sre_tools.reliability.model import Incident

DAY = 86400


@dataclass(frozen=True, slots=True)
class PlannedStats:
    count: int
    downtime_seconds: int


@dataclass(frozen=True, slots=True)
class ReliabilityStats:
    """The figures for one component class, or for the fleet."""

    failures: int
    open: int
    mtbf_seconds: float | None
    mttr_seconds: float | None
    mttd_seconds: float | None
    availability: float | None
    failures_per_gpu_day: float | None
    failures_per_node_day: float | None
    planned: PlannedStats


@dataclass(frozen=True, slots=True)
class ReliabilityReport:
    since: int
    until: int
    gpus: int | None
    nodes: int | None
    nodes_derived: bool
    fleet: ReliabilityStats
    components: tuple[tuple[str, ReliabilityStats], ...]

    @property
    def window_seconds(self) -> int:
        return self.until - self.since

    def component(self, name: str) -> ReliabilityStats:
        for key, stats in self.components:
            if key == name:
                return stats
        raise KeyError(name)


def mtbf(window_seconds: float, failures: int) -> float | None:
    """Window length over failure count; ``None`` (infinite) with no failures."""
    if window_seconds <= 0:
        raise ValidationError("window must be longer than zero", field="window")
    if failures < 0:
        raise ValidationError("failure count must not be negative", field="failures")
    return None if failures == 0 else window_seconds / failures


def availability(mtbf_seconds: float | None, mttr_seconds: float | None) -> float | None:
    """``MTBF / (MTBF + MTTR)``: 1.0 when MTBF is infinite (``None``), ``None`` if MTTR unknown."""
    if mtbf_seconds is None:
        return 1.0
    if mttr_seconds is None:
        return None
    if mtbf_seconds + mttr_seconds <= 0:
        return None
    return mtbf_seconds / (mtbf_seconds + mttr_seconds)


def rate_per_unit_day(failures: int, units: int | None, window_seconds: float) -> float | None:
    """``failures / (units * window days)``; ``None`` when ``units`` is unknown or zero."""
    if units is None or units <= 0 or window_seconds <= 0:
        return None
    return failures / (units * window_seconds / DAY)


def _mean(values: Iterable[int]) -> float | None:
    items = list(values)
    return fmean(items) if items else None


def stats_for(
    incidents: Sequence[Incident],
    *,
    since: int,
    until: int,
    gpus: int | None = None,
    nodes: int | None = None,
) -> ReliabilityStats:
    """The figures for ``incidents`` (those that started outside the window are ignored)."""
    window = until - since
    in_window = [i for i in incidents if since <= i.started < until]
    failures = [i for i in in_window if not i.planned]
    planned = [i for i in in_window if i.planned]
    mtbf_s = mtbf(window, len(failures))
    mttr_s = _mean(i.repair_seconds for i in failures if i.repair_seconds is not None)
    mttd_s = _mean(i.detect_seconds for i in failures if i.detect_seconds is not None)
    downtime = sum((i.resolved if i.resolved is not None else until) - i.started for i in planned)
    return ReliabilityStats(
        failures=len(failures),
        open=sum(1 for i in failures if i.is_open),
        mtbf_seconds=mtbf_s,
        mttr_seconds=mttr_s,
        mttd_seconds=mttd_s,
        availability=availability(mtbf_s, mttr_s),
        failures_per_gpu_day=rate_per_unit_day(len(failures), gpus, window),
        failures_per_node_day=rate_per_unit_day(len(failures), nodes, window),
        planned=PlannedStats(count=len(planned), downtime_seconds=downtime),
    )


def derive_nodes(incidents: Iterable[Incident]) -> int:
    """Distinct non-empty hosts among ``incidents`` (a lower bound on the node count)."""
    return len({i.host for i in incidents if i.host})


def reliability_report(
    incidents: Sequence[Incident],
    *,
    since: int,
    until: int,
    gpus: int | None = None,
    nodes: int | None = None,
) -> ReliabilityReport:
    """Fleet and per-component figures over ``[since, until)``.

    ``nodes`` defaults to the distinct hosts among the window's incidents (``nodes_derived``).
    """
    if until <= since:
        raise ValidationError("the window is empty: --since must be before --until", field="window")
    if gpus is not None and gpus < 1:
        raise ValidationError(f"must be at least 1, got {gpus}", field="--gpus")
    if nodes is not None and nodes < 1:
        raise ValidationError(f"must be at least 1, got {nodes}", field="--nodes")
    in_window = [i for i in incidents if since <= i.started < until]
    derived = nodes is None
    if nodes is None:
        nodes = derive_nodes(in_window) or None
    fleet = stats_for(in_window, since=since, until=until, gpus=gpus, nodes=nodes)
    names = sorted({i.component for i in in_window})
    components = tuple(
        (
            name,
            stats_for(
                [i for i in in_window if i.component == name],
                since=since,
                until=until,
                gpus=gpus,
                nodes=nodes,
            ),
        )
        for name in names
    )
    return ReliabilityReport(
        since=since,
        until=until,
        gpus=gpus,
        nodes=nodes,
        nodes_derived=derived,
        fleet=fleet,
        components=components,
    )
