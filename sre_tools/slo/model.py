"""The SLO domain model: frozen dataclasses, no I/O.

Both input formats (OpenSLO v1 and Sloth ``prometheus/v1``) load into these types, and everything
downstream (rules, reports) works on them only.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

WINDOW_PLACEHOLDER = "{{.window}}"
_ID_SAFE = re.compile(r"[^a-zA-Z0-9_.-]+")


class BudgetingMethod(enum.StrEnum):
    """How the SLI is aggregated over a window (OpenSLO ``budgetingMethod``)."""

    OCCURRENCES = "Occurrences"  # bad events / all events
    TIMESLICES = "Timeslices"  # bad slices / all slices; a slice is bad below timeSliceTarget
    RATIO_TIMESLICES = "RatioTimeslices"  # mean of the per-slice error ratios


@dataclass(frozen=True)
class EventsSLI:
    """Error and total event rates as PromQL with ``{{.window}}`` (Sloth ``events``)."""

    error_query: str
    total_query: str


@dataclass(frozen=True)
class RawSLI:
    """An error ratio as PromQL with ``{{.window}}`` (Sloth ``raw``)."""

    error_ratio_query: str


SLI = EventsSLI | RawSLI


@dataclass(frozen=True)
class AlertSpec:
    """One alert (page or ticket) derived from the SLO's alerting block."""

    disabled: bool = False
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Alerting:
    name: str
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    page: AlertSpec = field(default_factory=AlertSpec)
    ticket: AlertSpec = field(default_factory=AlertSpec)


@dataclass(frozen=True)
class SLO:
    """One objective on one SLI over one rolling period."""

    service: str
    name: str
    objective: float  # percent, 0 < objective < 100
    period_seconds: float
    sli: SLI
    description: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    alerting: Alerting | None = None
    budgeting: BudgetingMethod = BudgetingMethod.OCCURRENCES
    time_slice_target: float | None = None  # ratio, for Timeslices
    time_slice_seconds: float | None = None  # slice length for (Ratio)Timeslices
    source: str = ""  # file it came from, for messages

    @property
    def id(self) -> str:
        """Stable id: ``<service>-<name>`` (the store key and the ``sre_id`` label)."""
        return _ID_SAFE.sub("-", f"{self.service}-{self.name}")

    @property
    def objective_ratio(self) -> float:
        return round(self.objective / 100.0, 12)

    @property
    def error_budget_ratio(self) -> float:
        """Fraction of events (or slices) allowed to be bad: 1 - objective."""
        return round((100.0 - self.objective) / 100.0, 12)

    @property
    def alert_name(self) -> str:
        if self.alerting is not None and self.alerting.name:
            return self.alerting.name
        return default_alert_name(self.service, self.name)


_ALERT_WORD = re.compile(r"[A-Za-z0-9]+")


def default_alert_name(service: str, name: str) -> str:
    """``gpu-jobs`` + ``availability`` -> ``GpuJobsAvailabilitySLOBurn`` (a valid alert name)."""
    words = _ALERT_WORD.findall(f"{service} {name}")
    camel = "".join(w[:1].upper() + w[1:] for w in words) or "SLO"
    if camel[0].isdigit():
        camel = "SLO" + camel
    return f"{camel}SLOBurn"
