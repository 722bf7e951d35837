"""Valid base specs as Python data, and a patcher that edits them by dotted field path.

The paths use the same syntax as ``ValidationError.field`` (``slos[0].sli.events``), so a test
case reads as "set this field to that value, expect an error at that field".
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

DELETE = object()
"""Patch value that removes the key (or list item) instead of setting it."""

EXAMPLES = Path(__file__).resolve().parents[2] / "sre_tools" / "data" / "examples" / "slos"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))

ERROR_Q = 'sum(rate(jobs_total{result="failed"}[{{.window}}]))'
TOTAL_Q = "sum(rate(jobs_total[{{.window}}]))"
RAW_Q = "1 - avg(avg_over_time(up{job='gpu'}[{{.window}}]))"

SLOTH: dict[str, Any] = {
    "version": "prometheus/v1",
    "service": "gpu-jobs",
    "labels": {"owner": "hpc", "tier": "1"},
    "slos": [
        {
            "name": "launch",
            "objective": 99.9,
            "description": "Jobs that launch.",
            "labels": {"tier": "0", "category": "availability"},
            "sli": {"events": {"error_query": ERROR_Q, "total_query": TOTAL_Q}},
            "alerting": {
                "name": "GpuJobsLaunch",
                "labels": {"routing": "gpu"},
                "annotations": {"summary": "Launches fail."},
                "page_alert": {"labels": {"team": "oncall"}},
                "ticket_alert": {"labels": {"team": "platform"}, "annotations": {"x": "y"}},
            },
        },
        {
            "name": "nodes",
            "objective": 99,
            "sli": {"raw": {"error_ratio_query": RAW_Q}},
        },
    ],
}


def _metric(query: str) -> dict[str, Any]:
    return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}


OPENSLO: dict[str, dict[str, Any]] = {
    "service": {
        "apiVersion": "openslo/v1",
        "kind": "Service",
        "metadata": {"name": "api"},
        "spec": {"description": "The API."},
    },
    "sli": {
        "apiVersion": "openslo/v1",
        "kind": "SLI",
        "metadata": {"name": "api-errors"},
        "spec": {
            "ratioMetric": {
                "counter": True,
                "good": _metric('http_requests_total{code!~"5.."}'),
                "total": _metric("http_requests_total"),
            }
        },
    },
    "fast": {
        "apiVersion": "openslo/v1",
        "kind": "AlertCondition",
        "metadata": {"name": "fast-burn"},
        "spec": {
            "severity": "page",
            "condition": {
                "kind": "burnrate",
                "op": "gte",
                "threshold": 14.4,
                "lookbackWindow": "1h",
                "alertAfter": "5m",
            },
        },
    },
    "slow": {
        "apiVersion": "openslo/v1",
        "kind": "AlertCondition",
        "metadata": {"name": "slow-burn"},
        "spec": {
            "severity": "ticket",
            "condition": {"kind": "burnrate", "op": "gte", "threshold": 1, "lookbackWindow": "3d"},
        },
    },
    "target": {
        "apiVersion": "openslo/v1",
        "kind": "AlertNotificationTarget",
        "metadata": {"name": "oncall"},
        "spec": {"target": "pagerduty"},
    },
    "policy": {
        "apiVersion": "openslo/v1",
        "kind": "AlertPolicy",
        "metadata": {"name": "api-availability", "labels": {"team": "api"}},
        "spec": {
            "description": "Page fast, ticket slow.",
            "alertWhenBreaching": True,
            "conditions": [{"conditionRef": "fast-burn"}, {"conditionRef": "slow-burn"}],
            "notificationTargets": [{"targetRef": "oncall"}],
        },
    },
    "slo": {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": "availability", "labels": {"team": "api"}},
        "spec": {
            "service": "api",
            "indicatorRef": "api-errors",
            "timeWindow": [{"duration": "28d", "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [{"displayName": "requests", "target": 0.999}],
            "alertPolicies": ["api-availability"],
        },
    },
}

ALERT_WINDOWS: dict[str, Any] = {
    "apiVersion": "sloth.slok.dev/v1",
    "kind": "AlertWindows",
    "spec": {
        "sloPeriod": "30d",
        "page": {
            "quick": {"errorBudgetPercent": 2, "longWindow": "2h", "shortWindow": "10m"},
            "slow": {"errorBudgetPercent": 5, "longWindow": "12h", "shortWindow": "1h"},
        },
        "ticket": {
            "quick": {"errorBudgetPercent": 10, "longWindow": "2d", "shortWindow": "4h"},
            "slow": {"errorBudgetPercent": 10, "longWindow": "5d", "shortWindow": "12h"},
        },
    },
}

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _steps(path: str) -> list[str | int]:
    steps: list[str | int] = []
    for key, index in _STEP.findall(path):
        steps.append(int(index) if index else key)
    return steps


def patch(doc: Any, changes: dict[str, Any]) -> Any:
    """Deep copy of ``doc`` with each dotted ``path: value`` applied (``DELETE`` removes)."""
    out = copy.deepcopy(doc)
    for path, value in changes.items():
        *parents, last = _steps(path)
        node = out
        for step in parents:
            node = node[step]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list) and isinstance(last, int) and last == len(node):
            node.append(copy.deepcopy(value))
        else:
            node[last] = copy.deepcopy(value)
    return out


def dump(*docs: Any) -> str:
    """Multi-document YAML text."""
    return yaml.safe_dump_all(docs, sort_keys=False)


def openslo(
    changes: dict[str, dict[str, Any]] | None = None,
    *,
    only: tuple[str, ...] | None = None,
    extra: tuple[dict[str, Any], ...] = (),
) -> str:
    """The OpenSLO base set as one multi-document text, with per-object patches."""
    changes = changes or {}
    names = only or tuple(OPENSLO)
    docs = [patch(OPENSLO[n], changes.get(n, {})) for n in names]
    return dump(*docs, *extra)


def sloth(changes: dict[str, Any] | None = None) -> str:
    return dump(patch(SLOTH, changes or {}))
