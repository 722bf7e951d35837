"""A small builder for Grafana dashboard JSON: the subset of the model our dashboards use.

Plain dictionaries in, plain JSON out, no Grafana library: ``grafana-foundation-sdk`` publishes
versions as ``<timestamp>!<grafana version>`` and must be pinned to one Grafana release (an unpinned
install resolves to an old 10.1 build), which would tie the toolkit to that release for three panel
types and a handful of fields. What we emit is checked against a JSON schema of that subset
(``tests/dashboards/dashboard.schema.json``) instead.

Rules the builder enforces (each with a test): panel types ``timeseries``, ``stat``, ``table`` and
``row`` only (never the deprecated ``graph``); every query goes to the ``${datasource}`` variable
(provisioned files cannot resolve ``__inputs``); fixed UIDs; no range selector over 30 days.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 39
GRID_WIDTH = 24
MAX_RANGE_SECONDS = 30 * 86400
PANEL_TYPES = ("timeseries", "stat", "table")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

# Health status values as the exporter writes them, with the colours on-call expects.
_STATUS_COLOURS = {"ok": "green", "unknown": "blue", "warn": "orange", "crit": "red"}

_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_PART = re.compile(r"([0-9]+)(ms|s|m|h|d|w|y)")


class DashboardError(ValueError):
    """A dashboard definition breaks one of the builder's rules."""


def range_seconds(duration: str) -> float:
    """Seconds of a PromQL duration (``5m``, ``1h30m``); Grafana's ``$__`` ranges count as 0."""
    if duration.startswith("$"):
        return 0.0
    parts = _DURATION_PART.findall(duration)
    if not parts or "".join(a + b for a, b in parts) != duration:
        raise DashboardError(f"not a PromQL duration: {duration!r}")
    return sum(int(n) * _UNIT_SECONDS[u] for n, u in parts)


def query_ranges(expr: str) -> list[str]:
    """The range selectors of ``expr`` (``[5m]``, ``[1d:5m]``, ``[$__rate_interval]``)."""
    return re.findall(r"\[(\$?[A-Za-z0-9_]+)(?::[^\]]*)?\]", expr)


@dataclass(frozen=True)
class Target:
    """One Prometheus query of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False  # a table of current values rather than a time series

    def to_json(self, ref_id: str) -> dict[str, Any]:
        for duration in query_ranges(self.expr):
            if range_seconds(duration) > MAX_RANGE_SECONDS:
                raise DashboardError(f"range [{duration}] is over 30 days: {self.expr}")
        return {
            "refId": ref_id,
            "datasource": dict(DATASOURCE),
            "expr": self.expr,
            "legendFormat": self.legend or "__auto",
            "instant": self.instant,
            "range": not self.instant,
            "format": "table" if self.instant else "time_series",
        }


def value_mappings(*shown: tuple[int, str, str | None]) -> list[dict[str, Any]]:
    """Grafana value mappings: each ``(value, text, colour)`` shows the value as that text, in
    that colour (None: the panel's own)."""
    options: dict[str, Any] = {}
    for value, text, colour in shown:
        option: dict[str, Any] = {"text": text, "index": value}
        if colour is not None:
            option["color"] = colour
        options[str(value)] = option
    return [{"type": "value", "options": options}]


def status_mappings() -> list[dict[str, Any]]:
    """Value mappings for gpu_health_status / gpu_health_check_status (0 ok .. 3 crit)."""
    from sre_tools.exporter.metric_names import STATUS_VALUES

    return value_mappings(
        *((value, name.upper(), _STATUS_COLOURS[name]) for name, value in STATUS_VALUES.items())
    )


def status_thresholds() -> dict[str, Any]:
    from sre_tools.exporter.metric_names import STATUS_CRIT, STATUS_UNKNOWN, STATUS_WARN

    return thresholds(
        ("green", None),
        ("blue", STATUS_UNKNOWN),
        ("orange", STATUS_WARN),
        ("red", STATUS_CRIT),
    )


def thresholds(*steps: tuple[str, float | None]) -> dict[str, Any]:
    return {
        "mode": "absolute",
        "steps": [{"color": colour, "value": value} for colour, value in steps],
    }


@dataclass(frozen=True)
class Panel:
    """A panel: ``kind`` is timeseries, stat or table; ``width`` and ``height`` in grid units."""

    kind: str
    title: str
    targets: Sequence[Target]
    description: str = ""
    unit: str = ""
    width: int = 12
    height: int = 8
    mappings: Sequence[Mapping[str, Any]] = ()
    thresholds: Mapping[str, Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    custom: Mapping[str, Any] = field(default_factory=dict)
    overrides: Sequence[Mapping[str, Any]] = ()
    transformations: Sequence[Mapping[str, Any]] = ()

    def __post_init__(self) -> None:
        if self.kind not in PANEL_TYPES:
            raise DashboardError(
                f"{self.title}: panel type {self.kind!r} is not one of {PANEL_TYPES}"
            )
        if not self.targets:
            raise DashboardError(f"{self.title}: a panel needs at least one query")
        if not 1 <= self.width <= GRID_WIDTH:
            raise DashboardError(f"{self.title}: width {self.width} is not in 1..{GRID_WIDTH}")

    def to_json(self, panel_id: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {}
        if self.unit:
            defaults["unit"] = self.unit
        if self.mappings:
            defaults["mappings"] = [dict(m) for m in self.mappings]
        if self.thresholds is not None:
            defaults["thresholds"] = dict(self.thresholds)
        if self.minimum is not None:
            defaults["min"] = self.minimum
        if self.maximum is not None:
            defaults["max"] = self.maximum
        if self.custom:
            defaults["custom"] = dict(self.custom)
        out: dict[str, Any] = {
            "id": panel_id,
            "type": self.kind,
            "title": self.title,
            "description": self.description,
            "datasource": dict(DATASOURCE),
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": [t.to_json(chr(ord("A") + i)) for i, t in enumerate(self.targets)],
            "fieldConfig": {"defaults": defaults, "overrides": [dict(o) for o in self.overrides]},
            "options": dict(self.options) or _default_options(self.kind),
        }
        if self.transformations:
            out["transformations"] = [dict(t) for t in self.transformations]
        return out


def _default_options(kind: str) -> dict[str, Any]:
    if kind == "timeseries":
        return {
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "showLegend": True,
                "calcs": ["lastNotNull", "max"],
            },
            "tooltip": {"mode": "multi", "sort": "desc"},
        }
    if kind == "stat":
        return {
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "auto",
            "justifyMode": "auto",
            "orientation": "auto",
        }
    return {"showHeader": True, "cellHeight": "sm"}


@dataclass(frozen=True)
class Row:
    """A row of panels; ``repeat`` names a variable to repeat the row for (one row per value)."""

    title: str
    panels: Sequence[Panel]
    repeat: str = ""
    collapsed: bool = False


@dataclass(frozen=True)
class Variable:
    """A query variable over label values (``label_values(metric, label)``)."""

    name: str
    label: str
    query: str
    multi: bool = True
    include_all: bool = True

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": "query",
            "datasource": dict(DATASOURCE),
            "definition": self.query,
            "query": {"query": self.query, "refId": f"{self.name}-variable"},
            "refresh": 2,  # on time range change
            "sort": 1,
            "multi": self.multi,
            "includeAll": self.include_all,
            "current": {},
            "options": [],
            "regex": "",
            "hide": 0,
        }
        if self.include_all:
            out["allValue"] = ".*"
        return out


def datasource_variable() -> dict[str, Any]:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "options": [],
        "refresh": 1,
        "regex": "",
        "hide": 0,
    }


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    rows: Sequence[Row]
    variables: Sequence[Variable] = ()
    tags: Sequence[str] = ("sre-tools",)
    time_from: str = "now-6h"
    refresh: str = "1m"

    def panels(self) -> list[Panel]:
        return [p for row in self.rows for p in row.panels]

    def to_json(self) -> dict[str, Any]:
        if not re.fullmatch(r"[a-z0-9-]{1,40}", self.uid):
            raise DashboardError(f"uid {self.uid!r}: 1-40 of a-z, 0-9, '-'")
        if range_seconds(self.time_from.removeprefix("now-")) > MAX_RANGE_SECONDS:
            raise DashboardError(f"{self.uid}: default time range {self.time_from} is over 30 days")
        panels: list[dict[str, Any]] = []
        next_id = 1
        y = 0
        for row in self.rows:
            row_json: dict[str, Any] = {
                "id": next_id,
                "type": "row",
                "title": row.title,
                "collapsed": row.collapsed,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
            }
            if row.repeat:
                row_json["repeat"] = row.repeat
            panels.append(row_json)
            next_id += 1
            y += 1
            x = 0
            line_height = 0
            for panel in row.panels:
                if x + panel.width > GRID_WIDTH:
                    x, y = 0, y + line_height
                    line_height = 0
                body = panel.to_json(next_id, x, y)
                (row_json["panels"] if row.collapsed else panels).append(body)
                next_id += 1
                x += panel.width
                line_height = max(line_height, panel.height)
            y += line_height
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": list(self.tags),
            "timezone": "browser",
            "editable": True,
            "graphTooltip": 1,
            "schemaVersion": SCHEMA_VERSION,
            "version": 1,
            "time": {"from": self.time_from, "to": "now"},
            "refresh": self.refresh,
            "annotations": {"list": []},
            "links": [],
            "templating": {"list": [datasource_variable(), *(v.to_json() for v in self.variables)]},
            "panels": panels,
        }
