"""Multi-window, multi-burn-rate alert windows.

The defaults are the SRE Workbook's: page when 2 % of the budget burns in 1 h (checked against a
5 m short window) or 5 % in 6 h (30 m); open a ticket when 10 % burns in 1 d (2 h) or 10 % in 3 d
(6 h). Factors are computed from budget percent, period and long window, never hard-coded.

Custom windows come from a Sloth ``AlertWindows`` document (``sloth.slok.dev/v1``), one per period.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sre_tools.durations import format_duration, parse_duration
from sre_tools.exceptions import ValidationError
from sre_tools.inputs import load_yaml_documents
from sre_tools.slo.math import burn_rate_factor


@dataclass(frozen=True)
class AlertWindow:
    """One long/short window pair of an alert."""

    severity: str  # "page" or "ticket"
    speed: str  # "quick" or "slow"
    budget_percent: float
    long_seconds: float
    short_seconds: float

    def factor(self, period_seconds: float) -> float:
        return burn_rate_factor(self.budget_percent, period_seconds, self.long_seconds)

    @property
    def label(self) -> str:
        return f"{self.severity}-{self.speed}"


@dataclass(frozen=True)
class WindowSet:
    """The four window pairs used for one SLO period."""

    period_seconds: float | None  # None: applies to any period (the built-in default)
    windows: tuple[AlertWindow, ...]

    def for_severity(self, severity: str) -> tuple[AlertWindow, ...]:
        return tuple(w for w in self.windows if w.severity == severity)

    @property
    def all_window_seconds(self) -> tuple[float, ...]:
        seen: set[float] = set()
        for w in self.windows:
            seen.add(w.long_seconds)
            seen.add(w.short_seconds)
        return tuple(sorted(seen))


DEFAULT_WINDOWS = WindowSet(
    period_seconds=None,
    windows=(
        AlertWindow("page", "quick", 2.0, 3600, 300),
        AlertWindow("page", "slow", 5.0, 6 * 3600, 1800),
        AlertWindow("ticket", "quick", 10.0, 86400, 2 * 3600),
        AlertWindow("ticket", "slow", 10.0, 3 * 86400, 6 * 3600),
    ),
)


@dataclass(frozen=True)
class WindowCatalog:
    """Window sets by period; the default set serves periods without their own."""

    by_period: tuple[WindowSet, ...] = ()

    def for_period(self, period_seconds: float) -> WindowSet:
        for ws in self.by_period:
            if ws.period_seconds == period_seconds:
                return ws
        return DEFAULT_WINDOWS


def _get(mapping: Any, key: str, field: str) -> Any:
    if not isinstance(mapping, dict):
        raise ValidationError("expected a mapping", field=field)
    if key not in mapping:
        raise ValidationError("required field is missing", field=f"{field}.{key}" if field else key)
    return mapping[key]


def _window(doc: Any, severity: str, speed: str) -> AlertWindow:
    path = f"spec.{severity}.{speed}"
    pct = _get(doc, "errorBudgetPercent", path)
    if isinstance(pct, bool) or not isinstance(pct, int | float) or not 0 < pct <= 100:
        raise ValidationError(
            f"must be a number in (0, 100], got {pct!r}", field=f"{path}.errorBudgetPercent"
        )
    long_s = parse_duration(_get(doc, "longWindow", path), field=f"{path}.longWindow")
    short_s = parse_duration(_get(doc, "shortWindow", path), field=f"{path}.shortWindow")
    if short_s >= long_s:
        raise ValidationError(
            f"must be shorter than longWindow ({format_duration(long_s)})",
            field=f"{path}.shortWindow",
        )
    return AlertWindow(severity, speed, float(pct), long_s, short_s)


def parse_alert_windows(text: str, source: str) -> WindowCatalog:
    """Parse one or more Sloth ``AlertWindows`` YAML documents."""
    docs = [d for d in load_yaml_documents(text, source) if d is not None]
    if not docs:
        raise ValidationError("no AlertWindows document found", source=source)
    sets: list[WindowSet] = []
    for i, doc in enumerate(docs):
        prefix = f"document {i + 1}: " if len(docs) > 1 else ""
        try:
            if not isinstance(doc, dict):
                raise ValidationError("expected a mapping at the top level")
            if doc.get("apiVersion") != "sloth.slok.dev/v1":
                raise ValidationError(
                    f"expected 'sloth.slok.dev/v1', got {doc.get('apiVersion')!r}",
                    field="apiVersion",
                )
            if doc.get("kind") != "AlertWindows":
                raise ValidationError(
                    f"expected 'AlertWindows', got {doc.get('kind')!r}", field="kind"
                )
            spec = _get(doc, "spec", "")
            period = parse_duration(_get(spec, "sloPeriod", "spec"), field="spec.sloPeriod")
            windows = []
            for severity in ("page", "ticket"):
                block = _get(spec, severity, "spec")
                for speed in ("quick", "slow"):
                    windows.append(_window(_get(block, speed, f"spec.{severity}"), severity, speed))
                    if windows[-1].long_seconds > period:
                        raise ValidationError(
                            "longWindow is longer than sloPeriod",
                            field=f"spec.{severity}.{speed}.longWindow",
                        )
            if any(ws.period_seconds == period for ws in sets):
                raise ValidationError(
                    f"a second AlertWindows document for period {format_duration(period)}",
                    field="spec.sloPeriod",
                )
            sets.append(WindowSet(period, tuple(windows)))
        except ValidationError as exc:
            err = ValidationError(prefix + exc.reason, source=source, field=exc.field)
            raise err from None
    return WindowCatalog(tuple(sets))
