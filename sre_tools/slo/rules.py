"""Generate Prometheus rule groups for SLOs: SLI recordings, meta recordings, burn-rate alerts.

Alerting follows the SRE Workbook's multi-window, multi-burn-rate recipe: each alert ORs two
long/short window pairs, and each pair fires only while both windows burn faster than the factor
computed from the budget percent, the period and the long window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, TextIO

import yaml

from sre_tools.slo import promql as q
from sre_tools.slo.model import SLO, BudgetingMethod
from sre_tools.slo.windows import WindowCatalog, WindowSet

DEFAULT_RUNBOOK = "runbooks/slo-burn-rate.md"


def _labels(slo: SLO, window: str | None = None) -> dict[str, str]:
    out = dict(slo.labels)
    out[q.LABEL_ID] = slo.id
    out[q.LABEL_SERVICE] = slo.service
    out[q.LABEL_SLO] = slo.name
    if window is not None:
        out[q.LABEL_WINDOW] = window
    return out


def windows_for(slo: SLO, ws: WindowSet) -> list[float]:
    """Every window the SLO's rules record: alert windows and the period, ascending."""
    found = set(ws.all_window_seconds)
    found.add(slo.period_seconds)
    return sorted(found)


def sli_group(slo: SLO, ws: WindowSet) -> dict[str, Any]:
    rules: list[dict[str, Any]] = []
    if slo.budgeting is not BudgetingMethod.OCCURRENCES:
        assert slo.time_slice_seconds is not None
        step = q.window_name(slo.time_slice_seconds)
        rules.append(
            {
                "record": q.SLI_ERROR_RATIO.format(window=step),
                "expr": q.raw_ratio(slo, slo.time_slice_seconds) + "\n",
                "labels": _labels(slo, step),
            }
        )
    for seconds in windows_for(slo, ws):
        window = q.window_name(seconds)
        if slo.budgeting is not BudgetingMethod.OCCURRENCES and seconds == slo.time_slice_seconds:
            continue
        rules.append(
            {
                "record": q.SLI_ERROR_RATIO.format(window=window),
                "expr": q.window_ratio(slo, seconds, recorded=True) + "\n",
                "labels": _labels(slo, window),
            }
        )
    return {"name": f"sre-slo-sli-recordings-{slo.id}", "rules": rules}


def meta_group(slo: SLO, ws: WindowSet) -> dict[str, Any]:
    sel = q.selector(slo)
    budget = slo.error_budget_ratio
    shortest = q.window_name(min(w.short_seconds for w in ws.windows))
    period = q.window_name(slo.period_seconds)
    base = _labels(slo)
    info = dict(base)
    info.update(
        {
            "sre_objective": f"{slo.objective:g}",
            "sre_period": period,
            "sre_budgeting": slo.budgeting.value,
        }
    )
    if slo.alerting is not None and slo.alerting.name:
        info["sre_alert_name"] = slo.alerting.name
    return {
        "name": f"sre-slo-meta-recordings-{slo.id}",
        "rules": [
            {"record": q.OBJECTIVE, "expr": f"vector({slo.objective_ratio!r})", "labels": base},
            {"record": q.ERROR_BUDGET, "expr": f"vector({budget!r})", "labels": base},
            {
                "record": q.TIME_PERIOD_DAYS,
                "expr": f"vector({slo.period_seconds / 86400:g})",
                "labels": base,
            },
            {
                "record": q.CURRENT_BURN_RATE,
                "expr": f"max without ({q.LABEL_WINDOW}) "
                f"({q.SLI_ERROR_RATIO.format(window=shortest)}{sel}) / {budget!r}",
                "labels": base,
            },
            {
                "record": q.PERIOD_BURN_RATE,
                "expr": f"max without ({q.LABEL_WINDOW}) "
                f"({q.SLI_ERROR_RATIO.format(window=period)}{sel}) / {budget!r}",
                "labels": base,
            },
            {
                "record": q.PERIOD_BUDGET_REMAINING,
                "expr": f"1 - {q.PERIOD_BURN_RATE}{sel}",
                "labels": base,
            },
            {"record": q.SLO_INFO, "expr": "vector(1)", "labels": info},
        ],
    }


def alert_expr(slo: SLO, ws: WindowSet, severity: str) -> str:
    """OR of the severity's window pairs; each pair needs both windows above the factor."""
    sel = q.selector(slo)
    budget = slo.error_budget_ratio
    pairs = []
    for win in ws.for_severity(severity):
        factor = win.factor(slo.period_seconds)
        threshold = f"({factor:.6g} * {budget!r})"
        short = q.SLI_ERROR_RATIO.format(window=q.window_name(win.short_seconds)) + sel
        long = q.SLI_ERROR_RATIO.format(window=q.window_name(win.long_seconds)) + sel
        pairs.append(
            "(\n"
            f"  max without ({q.LABEL_WINDOW}) ({short} > {threshold})\n"
            "  and\n"
            f"  max without ({q.LABEL_WINDOW}) ({long} > {threshold})\n"
            ")"
        )
    return "\nor\n".join(pairs) + "\n"


def _alert(
    slo: SLO, ws: WindowSet, severity: str, runbook_base: str | None
) -> dict[str, Any] | None:
    alerting = slo.alerting
    spec = None
    if alerting is not None:
        spec = alerting.page if severity == "page" else alerting.ticket
        if spec.disabled:
            return None
    labels: dict[str, str] = {}
    annotations: dict[str, str] = {}
    if alerting is not None:
        labels.update(alerting.labels)
        annotations.update(alerting.annotations)
    if spec is not None:
        labels.update(spec.labels)
        annotations.update(spec.annotations)
    # Our labels are authoritative: routing relies on them.
    labels[q.LABEL_SEVERITY] = severity
    labels["severity"] = severity
    pairs = ", ".join(
        f"{q.window_name(w.long_seconds)}/{q.window_name(w.short_seconds)} "
        f"above {w.factor(slo.period_seconds):.4g}x"
        for w in ws.for_severity(severity)
    )
    annotations.setdefault(
        "summary",
        f"{{{{ $labels.{q.LABEL_SERVICE} }}}} {{{{ $labels.{q.LABEL_SLO} }}}} SLO error budget "
        f"burn rate is too high ({severity}).",
    )
    annotations.setdefault(
        "description",
        f"{slo.service} {slo.name}: objective {slo.objective:g}% over "
        f"{q.window_name(slo.period_seconds)}; the error ratio "
        f"({{{{ $value | humanizePercentage }}}}) burns the budget in windows {pairs}.",
    )
    if "runbook_url" not in annotations:
        base = runbook_base.rstrip("/") + "/slo-burn-rate.md" if runbook_base else DEFAULT_RUNBOOK
        annotations["runbook_url"] = f"{base}#{severity}"
    return {
        "alert": slo.alert_name,
        "expr": alert_expr(slo, ws, severity),
        "labels": labels,
        "annotations": annotations,
    }


def alert_group(slo: SLO, ws: WindowSet, runbook_base: str | None = None) -> dict[str, Any]:
    rules = [
        rule
        for severity in ("page", "ticket")
        if (rule := _alert(slo, ws, severity, runbook_base)) is not None
    ]
    return {"name": f"sre-slo-alerts-{slo.id}", "rules": rules}


def generate(
    slos: Sequence[SLO], catalog: WindowCatalog | None = None, *, runbook_base: str | None = None
) -> dict[str, Any]:
    """Return a Prometheus rule file (``{"groups": [...]}``) for ``slos``."""
    catalog = catalog or WindowCatalog()
    groups: list[dict[str, Any]] = []
    for slo in slos:
        # One group per SLO. Prometheus evaluates the rules of a group in order, so the meta
        # rules and the alerts always see this cycle's SLI recordings; across groups the order
        # is not defined and an alert could act on the previous cycle's values.
        ws = catalog.for_period(slo.period_seconds)
        rules = sli_group(slo, ws)["rules"] + meta_group(slo, ws)["rules"]
        rules += alert_group(slo, ws, runbook_base)["rules"]
        groups.append({"name": f"sre-slo-{slo.id}", "rules": rules})
    return {"groups": groups}


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """Block scalars for multi-line strings so that PromQL stays readable."""


def _str_presenter(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if "\n" in data:
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_Dumper.add_representer(str, _str_presenter)


def write(rule_file: dict[str, Any], stream: TextIO, *, header: Iterable[str] = ()) -> None:
    """Write a rule file as YAML (with an optional comment header)."""
    for line in header:
        stream.write(f"# {line}\n")
    stream.write("---\n")
    yaml.dump(rule_file, stream, Dumper=_Dumper, sort_keys=False, width=1000, allow_unicode=True)
