"""Loader for Sloth's ``version: "prometheus/v1"`` SLO spec.

Reference: https://sloth.dev/specs/default/ . ``plugin`` SLIs are Sloth-specific Go code and are
refused with a message; everything else maps onto :mod:`sre_tools.slo.model`.
"""

from __future__ import annotations

from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.slo import fields as f
from sre_tools.slo.model import (
    SLO,
    WINDOW_PLACEHOLDER,
    Alerting,
    AlertSpec,
    EventsSLI,
    RawSLI,
)

VERSION = "prometheus/v1"
DEFAULT_PERIOD_SECONDS = 30 * 86400


def _query(value: dict[str, Any], key: str, path: str) -> str:
    query = f.req_str(value, key, path)
    if WINDOW_PLACEHOLDER not in query:
        raise ValidationError(
            f"query must contain {WINDOW_PLACEHOLDER} where the range goes, e.g. "
            f"rate(x[{WINDOW_PLACEHOLDER}])",
            field=f.join(path, key),
        )
    return query.strip()


def _sli(raw: Any, path: str) -> EventsSLI | RawSLI:
    sli = f.mapping(raw, path)
    f.no_extra(sli, {"events", "raw", "plugin"}, path)
    kinds = [k for k in ("events", "raw", "plugin") if sli.get(k) is not None]
    if len(kinds) != 1:
        raise ValidationError("exactly one of events, raw or plugin is required", field=path)
    if kinds[0] == "plugin":
        raise ValidationError(
            "Sloth SLI plugins are not supported; use events or raw", field=f.join(path, "plugin")
        )
    if kinds[0] == "events":
        ev_path = f.join(path, "events")
        events = f.mapping(sli["events"], ev_path)
        f.no_extra(events, {"error_query", "total_query"}, ev_path)
        return EventsSLI(
            _query(events, "error_query", ev_path), _query(events, "total_query", ev_path)
        )
    raw_path = f.join(path, "raw")
    raw_sli = f.mapping(sli["raw"], raw_path)
    f.no_extra(raw_sli, {"error_ratio_query"}, raw_path)
    return RawSLI(_query(raw_sli, "error_ratio_query", raw_path))


def _alert(raw: Any, path: str) -> AlertSpec:
    if raw is None:
        return AlertSpec()
    alert = f.mapping(raw, path)
    f.no_extra(alert, {"disable", "labels", "annotations"}, path)
    return AlertSpec(
        disabled=f.boolean(alert, "disable", path, False),
        labels=f.labels(alert, "labels", path),
        annotations=f.annotation_map(alert, "annotations", path),
    )


def _alerting(raw: Any, path: str) -> Alerting | None:
    if raw is None:
        return None
    alerting = f.mapping(raw, path)
    f.no_extra(alerting, {"name", "labels", "annotations", "page_alert", "ticket_alert"}, path)
    page = _alert(alerting.get("page_alert"), f.join(path, "page_alert"))
    ticket = _alert(alerting.get("ticket_alert"), f.join(path, "ticket_alert"))
    name = ""
    if alerting.get("name") is not None or not (page.disabled and ticket.disabled):
        name = f.req_str(alerting, "name", path)
        if not f.LABEL_NAME.fullmatch(name):
            raise ValidationError(
                f"invalid alert name {name!r} (letters, digits and '_', not starting with a digit)",
                field=f.join(path, "name"),
            )
    return Alerting(
        name=name,
        labels=f.labels(alerting, "labels", path),
        annotations=f.annotation_map(alerting, "annotations", path),
        page=page,
        ticket=ticket,
    )


def load_sloth(
    doc: dict[str, Any], source: str, *, period_seconds: float | None = None
) -> list[SLO]:
    """Turn one parsed Sloth document into SLOs. Raises ValidationError naming the field."""
    f.no_extra(doc, {"version", "service", "labels", "slos"}, "")
    if doc.get("version") != VERSION:
        raise ValidationError(f"expected {VERSION!r}, got {doc.get('version')!r}", field="version")
    service = f.name(f.required(doc, "service", ""), "service")
    common_labels = dict(f.labels(doc, "labels", ""))
    slos_raw = f.sequence(f.required(doc, "slos", ""), "slos")
    out: list[SLO] = []
    seen: set[str] = set()
    for i, raw in enumerate(slos_raw):
        path = f"slos[{i}]"
        item = f.mapping(raw, path)
        f.no_extra(item, {"name", "objective", "description", "labels", "sli", "alerting"}, path)
        name = f.name(f.required(item, "name", path), f.join(path, "name"))
        if name in seen:
            raise ValidationError(f"duplicate SLO name {name!r}", field=f.join(path, "name"))
        seen.add(name)
        objective_raw = f.required(item, "objective", path)
        objective = f.objective_percent(
            f.number(objective_raw, f.join(path, "objective"), low=0, high=100),
            f.join(path, "objective"),
            objective_raw,
        )
        labels = dict(common_labels)
        labels.update(f.labels(item, "labels", path))
        out.append(
            SLO(
                service=service,
                name=name,
                objective=objective,
                period_seconds=period_seconds or DEFAULT_PERIOD_SECONDS,
                sli=_sli(f.required(item, "sli", path), f.join(path, "sli")),
                description=f.opt_str(item, "description", path),
                labels=tuple(sorted(labels.items())),
                alerting=_alerting(item.get("alerting"), f.join(path, "alerting")),
                source=source,
            )
        )
    return out
