"""Spec loaders: valid Sloth and OpenSLO specs map onto the model; bad ones name file + field."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.slo.loader import load_files, load_texts
from sre_tools.slo.model import SLO, BudgetingMethod, EventsSLI, RawSLI
from sre_tools.slo.windows import DEFAULT_WINDOWS, parse_alert_windows
from tests.slo.spec_builders import (
    ALERT_WINDOWS,
    DELETE,
    ERROR_Q,
    EXAMPLE_FILES,
    OPENSLO,
    RAW_Q,
    SLOTH,
    TOTAL_Q,
    dump,
    openslo,
    patch,
    sloth,
)

DAY = 86400.0
Files = list[tuple[str, str]]


def summary(slo: SLO) -> dict[str, Any]:
    """The model fields a spec controls, flattened for table-driven comparison."""
    out: dict[str, Any] = {
        "service": slo.service,
        "name": slo.name,
        "objective": slo.objective,
        "period_seconds": slo.period_seconds,
        "budgeting": slo.budgeting,
        "time_slice_target": slo.time_slice_target,
        "time_slice_seconds": slo.time_slice_seconds,
        "description": slo.description,
        "labels": dict(slo.labels),
        "alert_name": slo.alert_name,
        "source": slo.source,
    }
    if isinstance(slo.sli, EventsSLI):
        out["error_query"] = slo.sli.error_query
        out["total_query"] = slo.sli.total_query
    else:
        assert isinstance(slo.sli, RawSLI)
        out["error_ratio_query"] = slo.sli.error_ratio_query
    alerting = slo.alerting
    out["alerting"] = alerting is not None
    if alerting is not None:
        out["alert_labels"] = dict(alerting.labels)
        out["alert_annotations"] = dict(alerting.annotations)
        out["page_disabled"] = alerting.page.disabled
        out["ticket_disabled"] = alerting.ticket.disabled
        out["page_labels"] = dict(alerting.page.labels)
        out["ticket_labels"] = dict(alerting.ticket.labels)
        out["ticket_annotations"] = dict(alerting.ticket.annotations)
    return out


def crd(spec_changes: dict[str, Any] | None = None, **top: Any) -> str:
    """SLOTH as a ``sloth.slok.dev/v1`` PrometheusServiceLevel resource."""
    spec = patch({k: v for k, v in SLOTH.items() if k != "version"}, spec_changes or {})
    doc = {
        "apiVersion": "sloth.slok.dev/v1",
        "kind": "PrometheusServiceLevel",
        "metadata": {"name": "gpu-jobs", "namespace": "monitoring"},
        "spec": spec,
    }
    doc.update(top)
    return dump(doc)


INLINE_SLI = {
    "metadata": {"name": "inline"},
    "spec": {
        "ratioMetric": {
            "counter": False,
            "bad": {"metricSource": {"type": "Prometheus", "spec": {"query": "q_bad"}}},
            "total": {"metricSource": {"spec": {"query": "q_total"}}},
        }
    },
}


def raw_sli(raw_type: str, query: str = 'job_ok_ratio{job="x"}') -> dict[str, Any]:
    return {
        "metadata": {"name": "raw"},
        "spec": {
            "ratioMetric": {
                "rawType": raw_type,
                "raw": {"metricSource": {"type": "prometheus", "spec": {"query": query}}},
            }
        },
    }


GOOD_TOTAL_ERR = (
    "(sum(rate(http_requests_total[{{.window}}]))) - "
    '(sum(rate(http_requests_total{code!~"5.."}[{{.window}}])))'
)
POLICY_ALERTING = {
    "alerting": True,
    "alert_name": "ApiAvailability",
    "alert_labels": {"team": "api"},
    "alert_annotations": {
        "policy_description": "Page fast, ticket slow.",
        "notification_targets": "oncall",
    },
    "page_disabled": False,
    "ticket_disabled": False,
}
SLOTH_LAUNCH = {
    "service": "gpu-jobs",
    "name": "launch",
    "objective": 99.9,
    "period_seconds": 30 * DAY,
    "budgeting": BudgetingMethod.OCCURRENCES,
    "error_query": ERROR_Q,
    "total_query": TOTAL_Q,
    "description": "Jobs that launch.",
    "labels": {"owner": "hpc", "tier": "0", "category": "availability"},
    "alert_name": "GpuJobsLaunch",
    "alert_labels": {"routing": "gpu"},
    "alert_annotations": {"summary": "Launches fail."},
    "page_disabled": False,
    "ticket_disabled": False,
    "page_labels": {"team": "oncall"},
    "ticket_labels": {"team": "platform"},
    "ticket_annotations": {"x": "y"},
    "source": "spec.yaml",
}
SLOTH_NODES = {
    "objective": 99.0,
    "error_ratio_query": RAW_Q,
    "labels": {"owner": "hpc", "tier": "1"},
    "alerting": False,
    "alert_name": "GpuJobsNodesSLOBurn",
    "description": "",
}


def case(files: Files | str, expected: dict[str, dict[str, Any]], *, id: str, **kw: Any) -> Any:
    if isinstance(files, str):
        files = [("spec.yaml", files)]
    return pytest.param(files, expected, kw, id=id)


VALID = [
    case(
        sloth(), {"gpu-jobs-launch": SLOTH_LAUNCH, "gpu-jobs-nodes": SLOTH_NODES}, id="sloth-full"
    ),
    case(
        sloth(),
        {
            "gpu-jobs-launch": {"period_seconds": 28 * DAY},
            "gpu-jobs-nodes": {"period_seconds": 28 * DAY},
        },
        id="sloth-period-28d",
        period_seconds=28 * DAY,
    ),
    case(
        sloth({"slos[0].sli.events.error_query": f"  {ERROR_Q}\n"}),
        {"gpu-jobs-launch": {"error_query": ERROR_Q}, "gpu-jobs-nodes": {}},
        id="sloth-query-stripped",
    ),
    case(
        sloth({"slos[0].alerting.page_alert": {"disable": True}}),
        {
            "gpu-jobs-launch": {"page_disabled": True, "ticket_disabled": False},
            "gpu-jobs-nodes": {},
        },
        id="sloth-page-disabled",
    ),
    case(
        sloth(
            {
                "slos[0].alerting": {
                    "page_alert": {"disable": True},
                    "ticket_alert": {"disable": True},
                }
            }
        ),
        {
            "gpu-jobs-launch": {
                "page_disabled": True,
                "ticket_disabled": True,
                "alert_name": "GpuJobsLaunchSLOBurn",
            },
            "gpu-jobs-nodes": {},
        },
        id="sloth-both-disabled-no-name",
    ),
    case(
        sloth({"labels": DELETE, "slos[0].labels": {"n": 1, "b": True, "l": ["a", "b"]}}),
        {"gpu-jobs-launch": {"labels": {"n": "1", "b": "true", "l": "a,b"}}, "gpu-jobs-nodes": {}},
        id="sloth-label-scalars",
    ),
    case(
        sloth({"service": "9lives", "slos[1].name": "a.b_c"}),
        {
            "9lives-launch": {"service": "9lives"},
            "9lives-a.b_c": {"alert_name": "SLO9livesABCSLOBurn"},
        },
        id="sloth-default-alert-name-digit",
    ),
    case(
        crd(),
        {"gpu-jobs-launch": SLOTH_LAUNCH, "gpu-jobs-nodes": SLOTH_NODES},
        id="sloth-crd-prometheus-service-level",
    ),
    case(
        openslo(),
        {
            "api-availability": {
                "service": "api",
                "name": "availability",
                "objective": 99.9,
                "period_seconds": 28 * DAY,
                "budgeting": BudgetingMethod.OCCURRENCES,
                "error_query": GOOD_TOTAL_ERR,
                "total_query": "sum(rate(http_requests_total[{{.window}}]))",
                "labels": {"team": "api"},
                **POLICY_ALERTING,
            }
        },
        id="openslo-indicatorRef-same-file",
    ),
    case(
        [
            ("slis.yaml", openslo(only=("service", "sli"))),
            ("slos.yaml", openslo(only=("slo", "policy", "fast", "slow", "target"))),
        ],
        {"api-availability": {"source": "slos.yaml", "error_query": GOOD_TOTAL_ERR}},
        id="openslo-indicatorRef-across-files",
    ),
    case(
        openslo({"slo": {"spec.objectives[0]": {"targetPercent": 99.5}}}),
        {"api-availability": {"objective": 99.5}},
        id="openslo-targetPercent",
    ),
    case(
        openslo(
            {
                "slo": {
                    "spec.indicatorRef": DELETE,
                    "spec.indicator": INLINE_SLI,
                    "spec.alertPolicies": DELETE,
                }
            },
            only=("slo",),
        ),
        {
            "api-availability": {
                "error_query": "sum(avg_over_time(q_bad[{{.window}}]))",
                "total_query": "sum(avg_over_time(q_total[{{.window}}]))",
                "alerting": False,
                "alert_name": "ApiAvailabilitySLOBurn",
            }
        },
        id="openslo-inline-indicator-bad-total-gauge",
    ),
    case(
        openslo(
            {"slo": {"spec.indicatorRef": DELETE, "spec.indicator": raw_sli("failure")}},
            only=("slo", "policy", "fast", "slow", "target"),
        ),
        {
            "api-availability": {
                "error_ratio_query": 'avg(avg_over_time(job_ok_ratio{job="x"}[{{.window}}]))'
            }
        },
        id="openslo-raw-failure",
    ),
    case(
        openslo(
            {"slo": {"spec.indicatorRef": DELETE, "spec.indicator": raw_sli("success")}},
            only=("slo", "policy", "fast", "slow", "target"),
        ),
        {
            "api-availability": {
                "error_ratio_query": '1 - (avg(avg_over_time(job_ok_ratio{job="x"}[{{.window}}])))'
            }
        },
        id="openslo-raw-success",
    ),
    case(
        openslo(
            {
                "slo": {
                    "spec.indicatorRef": DELETE,
                    "spec.indicator": raw_sli("failure", "1 - avg(up[{{.window}}])"),
                }
            },
            only=("slo", "policy", "fast", "slow", "target"),
        ),
        {"api-availability": {"error_ratio_query": "1 - avg(up[{{.window}}])"}},
        id="openslo-window-placeholder-used-verbatim",
    ),
    case(
        openslo(
            {
                "slo": {
                    "spec.budgetingMethod": "Timeslices",
                    "spec.timeWindow[0].duration": "7d",
                    "spec.objectives[0]": {
                        "targetPercent": 95,
                        "timeSliceTarget": 0.99,
                        "timeSliceWindow": "5m",
                    },
                }
            }
        ),
        {
            "api-availability": {
                "budgeting": BudgetingMethod.TIMESLICES,
                "objective": 95.0,
                "period_seconds": 7 * DAY,
                "time_slice_target": 0.99,
                "time_slice_seconds": 300.0,
            }
        },
        id="openslo-timeslices",
    ),
    case(
        openslo(
            {
                "slo": {
                    "spec.budgetingMethod": "RatioTimeslices",
                    "spec.objectives[0]": {"target": 0.99, "timeSliceWindow": "1m"},
                }
            }
        ),
        {
            "api-availability": {
                "budgeting": BudgetingMethod.RATIO_TIMESLICES,
                "time_slice_target": None,
                "time_slice_seconds": 60.0,
            }
        },
        id="openslo-ratio-timeslices",
    ),
    case(
        openslo(
            {
                "slo": {
                    "spec.objectives": [
                        {"displayName": "Fast Path", "target": 0.99},
                        {"target": 0.9},
                    ]
                }
            }
        ),
        {
            "api-availability-fast-path": {"objective": 99.0, "name": "availability-fast-path"},
            "api-availability-1": {"objective": 90.0},
        },
        id="openslo-multiple-objectives",
    ),
    case(
        openslo({"slow": {"spec.severity": "warning"}, "fast": {"spec.severity": "Critical"}}),
        {"api-availability": {"page_disabled": False, "ticket_disabled": False}},
        id="openslo-severity-mapping",
    ),
    case(
        openslo({"policy": {"spec.conditions": [{"conditionRef": "slow-burn"}]}}),
        {"api-availability": {"page_disabled": True, "ticket_disabled": False}},
        id="openslo-ticket-only-policy",
    ),
    case(
        openslo(
            {
                "policy": {
                    "spec.conditions": [
                        {
                            "kind": "AlertCondition",
                            "metadata": {"name": "inline-fast"},
                            "spec": OPENSLO["fast"]["spec"],
                        }
                    ],
                    "spec.notificationTargets": [
                        {"targetRef": "oncall"},
                        {"metadata": {"name": "slack-api"}, "spec": {"target": "slack"}},
                    ],
                }
            }
        ),
        {
            "api-availability": {
                "page_disabled": False,
                "ticket_disabled": True,
                "alert_annotations": {
                    "policy_description": "Page fast, ticket slow.",
                    "notification_targets": "oncall,slack-api",
                },
            }
        },
        id="openslo-inline-condition-and-targets",
    ),
    case(
        openslo(
            {
                "slo": {
                    "spec.alertPolicies": [
                        {
                            "kind": "AlertPolicy",
                            "metadata": {"name": "inline-policy", "labels": {"sev": "x"}},
                            "spec": {"conditions": [{"conditionRef": "fast-burn"}]},
                        }
                    ]
                }
            }
        ),
        {
            "api-availability": {
                "alert_name": "InlinePolicy",
                "alert_labels": {"sev": "x"},
                "alert_annotations": {},
                "ticket_disabled": True,
            }
        },
        id="openslo-inline-alert-policy",
    ),
    case(
        openslo({"slo": {"spec.alertPolicies": [{"alertPolicyRef": "api-availability"}]}}),
        {"api-availability": POLICY_ALERTING},
        id="openslo-alertPolicyRef",
    ),
    case(
        [("all.yaml", sloth() + "---\n" + openslo())],
        {
            "gpu-jobs-launch": {"source": "all.yaml"},
            "gpu-jobs-nodes": {},
            "api-availability": {"source": "all.yaml"},
        },
        id="multi-document-mixed-formats",
    ),
    case(
        "# leading comment\n---\n---\n" + sloth() + "---\n# trailing empty document\n",
        {"gpu-jobs-launch": {}, "gpu-jobs-nodes": {}},
        id="multi-document-empty-documents-skipped",
    ),
]


@pytest.mark.parametrize(("files", "expected", "kwargs"), VALID)
def test_valid_specs(files: Files, expected: dict[str, dict[str, Any]], kwargs: dict[str, Any]):
    slos = load_texts(files, **kwargs)
    by_id = {s.id: summary(s) for s in slos}
    assert sorted(by_id) == sorted(expected)
    for slo_id, fields in expected.items():
        got = by_id[slo_id]
        for key, want in fields.items():
            if isinstance(want, float):
                assert got[key] == pytest.approx(want), (slo_id, key)
            else:
                assert got[key] == want, (slo_id, key)


def test_example_specs_load():
    slos = load_files([str(p) for p in EXAMPLE_FILES])
    by_id = {s.id: s for s in slos}
    assert set(by_id) == {
        "slurm-scheduler-job-launch-success",
        "slurm-scheduler-gpu-node-availability",
        "training-api-availability",
        "training-api-checkpoint-writes",
    }
    avail = by_id["training-api-availability"]
    assert avail.period_seconds == 28 * DAY
    assert avail.objective == pytest.approx(99.9)
    assert avail.alert_name == "TrainingApiAvailability"
    writes = by_id["training-api-checkpoint-writes"]
    assert writes.budgeting is BudgetingMethod.TIMESLICES
    assert (writes.time_slice_target, writes.time_slice_seconds) == (0.99, 60.0)
    assert by_id["slurm-scheduler-gpu-node-availability"].alerting.page.disabled  # type: ignore[union-attr]


# -- invalid specs ------------------------------------------------------------------------------


def bad(
    files: Files | str, source: str, field: str | None, fragment: str, *, id: str, **kw: Any
) -> Any:
    if isinstance(files, str):
        files = [("spec.yaml", files)]
    return pytest.param(files, source, field, fragment, kw, id=id)


S = "spec.yaml"
INVALID = [
    # Sloth: envelope
    bad(
        sloth({"version": "prometheus/v2"}),
        S,
        "version",
        "expected 'prometheus/v1'",
        id="sloth-bad-version",
    ),
    bad(
        sloth({"service": DELETE}),
        S,
        "service",
        "required field is missing",
        id="sloth-missing-service",
    ),
    bad(
        sloth({"service": 5}),
        S,
        "service",
        "expected a string, got number 5",
        id="sloth-service-wrong-type",
    ),
    bad(
        sloth({"service": "gpu jobs!"}),
        S,
        "service",
        "invalid name 'gpu jobs!'",
        id="sloth-service-bad-name",
    ),
    bad(sloth({"servce": "x"}), S, "servce", "unknown field (allowed:", id="sloth-top-level-typo"),
    bad(sloth({"slos": []}), S, "slos", "must not be empty", id="sloth-slos-empty"),
    bad(
        sloth({"slos": {"a": 1}}),
        S,
        "slos",
        "expected a list, got a mapping",
        id="sloth-slos-not-list",
    ),
    bad(
        sloth({"slos[1]": "nodes"}),
        S,
        "slos[1]",
        "expected a mapping, got str",
        id="sloth-slo-not-mapping",
    ),
    # Sloth: SLO fields
    bad(
        sloth({"slos[0].name": DELETE}),
        S,
        "slos[0].name",
        "required field is missing",
        id="sloth-missing-name",
    ),
    bad(
        sloth({"slos[1].name": "launch"}),
        S,
        "slos[1].name",
        "duplicate SLO name 'launch'",
        id="sloth-duplicate-name",
    ),
    bad(
        sloth({"slos[0].objetive": 99}),
        S,
        "slos[0].objetive",
        "unknown field",
        id="sloth-field-typo",
    ),
    bad(
        sloth({"slos[0].objective": 120}),
        S,
        "slos[0].objective",
        "must be in (0, 100), got 120",
        id="sloth-objective-over-100",
    ),
    bad(
        sloth({"slos[0].objective": 0}),
        S,
        "slos[0].objective",
        "must be in (0, 100), got 0",
        id="sloth-objective-zero",
    ),
    bad(
        sloth({"slos[0].objective": "99.9"}),
        S,
        "slos[0].objective",
        "expected a number, got str",
        id="sloth-objective-string",
    ),
    bad(
        sloth({"slos[0].objective": True}),
        S,
        "slos[0].objective",
        "expected a number, got boolean",
        id="sloth-objective-bool",
    ),
    bad(
        sloth({"slos[0].objective": DELETE}),
        S,
        "slos[0].objective",
        "required field is missing",
        id="sloth-objective-missing",
    ),
    bad(
        sloth({"slos[0].objective": 99.99999999999999}),
        S,
        "slos[0].objective",
        "leaves no error budget",
        id="sloth-objective-no-budget",
    ),
    bad(
        sloth({"slos[0].sli": DELETE}),
        S,
        "slos[0].sli",
        "required field is missing",
        id="sloth-sli-missing",
    ),
    bad(
        sloth({"slos[0].sli.events.error_query": "sum(rate(x[5m]))"}),
        S,
        "slos[0].sli.events.error_query",
        "must contain {{.window}}",
        id="sloth-missing-window-placeholder",
    ),
    bad(
        sloth({"slos[1].sli.raw.error_ratio_query": "1 - up"}),
        S,
        "slos[1].sli.raw.error_ratio_query",
        "{{.window}}",
        id="sloth-raw-missing-window",
    ),
    bad(
        sloth({"slos[0].sli.events.total_query": ""}),
        S,
        "slos[0].sli.events.total_query",
        "must not be empty",
        id="sloth-empty-query",
    ),
    bad(
        sloth({"slos[0].sli": {"plugin": {"id": "sloth-common/availability"}}}),
        S,
        "slos[0].sli.plugin",
        "plugins are not supported",
        id="sloth-plugin-sli",
    ),
    bad(
        sloth({"slos[0].sli.raw": {"error_ratio_query": RAW_Q}}),
        S,
        "slos[0].sli",
        "exactly one of events, raw or plugin",
        id="sloth-events-and-raw",
    ),
    bad(
        sloth({"slos[0].sli": {}}),
        S,
        "slos[0].sli",
        "exactly one of events, raw or plugin",
        id="sloth-sli-empty",
    ),
    # Sloth: labels and alerting
    bad(
        sloth({"labels": {"team-name": "x"}}),
        S,
        "labels.team-name",
        "invalid label name",
        id="sloth-label-dash",
    ),
    bad(
        sloth({"slos[0].labels": {"__name__": "x"}}),
        S,
        "slos[0].labels.__name__",
        "invalid label name",
        id="sloth-label-reserved",
    ),
    bad(
        sloth({"labels": {"owner": {"a": 1}}}),
        S,
        "labels.owner",
        "expected a string, got a mapping",
        id="sloth-label-value-mapping",
    ),
    bad(
        sloth({"labels": ["a"]}),
        S,
        "labels",
        "expected a mapping, got a list",
        id="sloth-labels-list",
    ),
    bad(sloth({"labels": {1: "x"}}), S, "labels", "keys must be strings", id="sloth-label-int-key"),
    bad(
        sloth({"slos[0].alerting.name": "Gpu Jobs"}),
        S,
        "slos[0].alerting.name",
        "invalid alert name 'Gpu Jobs'",
        id="sloth-bad-alert-name",
    ),
    bad(
        sloth({"slos[0].alerting.name": DELETE}),
        S,
        "slos[0].alerting.name",
        "required field is missing",
        id="sloth-alert-name-missing",
    ),
    bad(
        sloth({"slos[0].alerting.page_alert.disable": "yes"}),
        S,
        "slos[0].alerting.page_alert.disable",
        "expected true or false, got str",
        id="sloth-disable-not-bool",
    ),
    bad(
        sloth({"slos[0].alerting.ticket_alert.severity": "low"}),
        S,
        "slos[0].alerting.ticket_alert.severity",
        "unknown field",
        id="sloth-alert-unknown-field",
    ),
    bad(
        sloth({"slos[0].alerting.page_alert.labels": {"a b": "x"}}),
        S,
        "slos[0].alerting.page_alert.labels.a b",
        "invalid label name",
        id="sloth-alert-label-bad",
    ),
    # Sloth CRD
    bad(
        crd(kind="ServiceLevel"),
        S,
        "kind",
        "expected kind PrometheusServiceLevel",
        id="sloth-crd-bad-kind",
    ),
    bad(
        crd({"slos[0].objective": 100}),
        S,
        "spec.slos[0].objective",
        "must be in (0, 100)",
        id="sloth-crd-field-path",
    ),
    bad(crd(spec=None), S, "spec", "required field is missing", id="sloth-crd-no-spec"),
    # documents that are no SLO spec
    bad(
        dump({"apiVersion": "v1", "kind": "ConfigMap"}),
        S,
        "apiVersion",
        "not an SLO spec",
        id="unknown-apiVersion",
    ),
    bad(dump({"service": "x", "slos": []}), S, "version", "not an SLO spec", id="no-version"),
    # OpenSLO: envelope
    bad(
        openslo({"slo": {"apiVersion": "openslo/v2"}}),
        S,
        "apiVersion",
        "expected 'openslo/v1'",
        id="openslo-bad-apiVersion",
    ),
    bad(
        openslo({"slo": {"kind": "ServiceLevelObjective"}}),
        S,
        "kind",
        "unknown kind 'ServiceLevelObjective'",
        id="openslo-unknown-kind",
    ),
    bad(
        openslo({"slo": {"metadata.name": DELETE}}),
        S,
        "metadata.name",
        "required field is missing",
        id="openslo-missing-name",
    ),
    bad(
        openslo({"slo": {"metadata.name": "a/b"}}),
        S,
        "metadata.name",
        "invalid name 'a/b'",
        id="openslo-bad-name",
    ),
    bad(
        openslo({"slo": {"status": {}}}), S, "status", "unknown field", id="openslo-extra-top-level"
    ),
    bad(
        openslo({"slo": {"spec": "x"}}),
        S,
        "spec",
        "expected a mapping, got str",
        id="openslo-spec-not-mapping",
    ),
    bad(
        openslo({"sli": {"metadata.name": "availability", "kind": "SLO"}}),
        S,
        "metadata.name",
        "duplicate SLO 'availability'",
        id="openslo-duplicate-object",
    ),
    # OpenSLO: SLO spec
    bad(
        openslo({"slo": {"spec.service": DELETE}}),
        S,
        "spec.service",
        "required field is missing",
        id="openslo-missing-service",
    ),
    bad(
        openslo({"slo": {"spec.sevice": "api"}}),
        S,
        "spec.sevice",
        "unknown field",
        id="openslo-spec-typo",
    ),
    bad(
        openslo({"slo": {"spec.indicator": INLINE_SLI}}),
        S,
        "spec",
        "exactly one of indicator or indicatorRef",
        id="openslo-indicator-and-ref",
    ),
    bad(
        openslo({"slo": {"spec.indicatorRef": "nope"}}),
        S,
        "spec.indicatorRef",
        "no SLI named 'nope' was loaded",
        id="openslo-indicatorRef-unknown",
    ),
    bad(
        openslo(
            {
                "slo": {
                    "spec.timeWindow[0]": {
                        "duration": "1M",
                        "calendar": {"startTime": "2026-01-01"},
                    }
                }
            }
        ),
        S,
        "spec.timeWindow[0].isRolling",
        "only rolling windows",
        id="openslo-calendar-window",
    ),
    bad(
        openslo({"slo": {"spec.timeWindow[0].isRolling": False}}),
        S,
        "spec.timeWindow[0].isRolling",
        "only rolling windows",
        id="openslo-not-rolling",
    ),
    bad(
        openslo({"slo": {"spec.timeWindow[1]": {"duration": "7d", "isRolling": True}}}),
        S,
        "spec.timeWindow",
        "exactly one time window",
        id="openslo-two-windows",
    ),
    bad(
        openslo({"slo": {"spec.timeWindow[0].duration": "30 days"}}),
        S,
        "spec.timeWindow[0].duration",
        "invalid duration '30 days'",
        id="openslo-bad-duration",
    ),
    bad(
        openslo({"slo": {"spec.timeWindow[0].duration": 30}}),
        S,
        "spec.timeWindow[0].duration",
        "expected a duration",
        id="openslo-duration-number",
    ),
    bad(
        openslo({"slo": {"spec.budgetingMethod": "Occurences"}}),
        S,
        "spec.budgetingMethod",
        "unknown budgeting method 'Occurences'",
        id="openslo-bad-budgeting",
    ),
    bad(
        openslo(
            {
                "slo": {
                    "spec.budgetingMethod": "Timeslices",
                    "spec.objectives[0].timeSliceWindow": "1m",
                }
            }
        ),
        S,
        "spec.objectives[0].timeSliceTarget",
        "required field is missing",
        id="openslo-timeslices-no-target",
    ),
    bad(
        openslo(
            {
                "slo": {
                    "spec.budgetingMethod": "Timeslices",
                    "spec.objectives[0].timeSliceTarget": 0.9,
                }
            }
        ),
        S,
        "spec.objectives[0].timeSliceWindow",
        "required field is missing",
        id="openslo-timeslices-no-window",
    ),
    bad(
        openslo(
            {
                "slo": {
                    "spec.budgetingMethod": "Timeslices",
                    "spec.objectives[0].timeSliceTarget": 0.9,
                    "spec.objectives[0].timeSliceWindow": "90s",
                }
            }
        ),
        S,
        "spec.objectives[0].timeSliceWindow",
        "whole number of minutes",
        id="openslo-slice-90s",
    ),
    bad(
        openslo(
            {
                "slo": {
                    "spec.budgetingMethod": "Timeslices",
                    "spec.objectives[0].timeSliceTarget": 1.5,
                    "spec.objectives[0].timeSliceWindow": "1m",
                }
            }
        ),
        S,
        "spec.objectives[0].timeSliceTarget",
        "must be in (0, 1], got 1.5",
        id="openslo-slice-target-range",
    ),
    bad(
        openslo(
            {
                "slo": {
                    "spec.budgetingMethod": "RatioTimeslices",
                    "spec.objectives[0].timeSliceTarget": 0.9,
                    "spec.objectives[0].timeSliceWindow": "1m",
                }
            }
        ),
        S,
        "spec.objectives[0].timeSliceTarget",
        "only valid with Timeslices budgeting",
        id="openslo-ratio-slices-target",
    ),
    bad(
        openslo({"slo": {"spec.objectives[0].timeSliceWindow": "1m"}}),
        S,
        "spec.objectives[0].timeSliceWindow",
        "only valid with Timeslices or RatioTimeslices",
        id="openslo-occurrences-slice-window",
    ),
    bad(
        openslo({"slo": {"spec.objectives[0].targetPercent": 99}}),
        S,
        "spec.objectives[0]",
        "exactly one of target or targetPercent",
        id="openslo-target-and-percent",
    ),
    bad(
        openslo({"slo": {"spec.objectives[0].target": DELETE}}),
        S,
        "spec.objectives[0]",
        "exactly one of target or targetPercent",
        id="openslo-no-target",
    ),
    bad(
        openslo({"slo": {"spec.objectives[0].target": 99.9}}),
        S,
        "spec.objectives[0].target",
        "must be in (0, 1), got 99.9",
        id="openslo-target-as-percent",
    ),
    bad(
        openslo({"slo": {"spec.objectives[0]": {"targetPercent": 100}}}),
        S,
        "spec.objectives[0].targetPercent",
        "must be in (0, 100), got 100",
        id="openslo-target-percent-100",
    ),
    bad(
        openslo({"slo": {"spec.objectives[0].op": "lte", "spec.objectives[0].value": 200}}),
        S,
        "spec.objectives[0].op",
        "threshold and composite objectives are not supported",
        id="openslo-threshold-objective",
    ),
    bad(
        openslo(
            {
                "slo": {
                    "spec.objectives": [
                        {"displayName": "a", "target": 0.9},
                        {"displayName": "A", "target": 0.99},
                    ]
                }
            }
        ),
        S,
        "spec.objectives[1].displayName",
        "duplicate objective name 'availability-a'",
        id="openslo-duplicate-objective",
    ),
    bad(
        openslo({"slo": {"metadata.labels": {"bad-label": "x"}}}),
        S,
        "metadata.labels.bad-label",
        "invalid label name",
        id="openslo-bad-label",
    ),
    # OpenSLO: SLI, reported at the SLI's own file when referenced
    bad(
        [
            (
                "slis.yaml",
                openslo({"sli": {"spec.thresholdMetric": {"metricSource": {}}}}, only=("sli",)),
            ),
            ("slos.yaml", openslo(only=("slo", "policy", "fast", "slow", "target"))),
        ],
        "slis.yaml",
        "spec.thresholdMetric",
        "thresholdMetric SLIs are not supported",
        id="openslo-threshold-sli-other-file",
    ),
    bad(
        openslo({"sli": {"spec.ratioMetric.bad": {"metricSource": {"spec": {"query": "x"}}}}}),
        S,
        "spec.ratioMetric",
        "exactly one of good or bad",
        id="openslo-good-and-bad",
    ),
    bad(
        openslo({"sli": {"spec.ratioMetric.total": DELETE}}),
        S,
        "spec.ratioMetric.total",
        "required field is missing",
        id="openslo-no-total",
    ),
    bad(
        openslo(
            {
                "sli": {
                    "spec.ratioMetric.raw": {"metricSource": {"spec": {"query": "x"}}},
                    "spec.ratioMetric.rawType": "success",
                }
            }
        ),
        S,
        "spec.ratioMetric.good",
        "raw cannot be combined",
        id="openslo-raw-and-good",
    ),
    bad(
        openslo({"slo": {"spec.indicatorRef": DELETE, "spec.indicator": raw_sli("ok")}}),
        S,
        "spec.indicator.spec.ratioMetric.rawType",
        "expected success or failure, got 'ok'",
        id="openslo-bad-rawType",
    ),
    bad(
        openslo({"sli": {"spec.ratioMetric.total.metricSource.type": "Datadog"}}),
        S,
        "spec.ratioMetric.total.metricSource.type",
        "unsupported metric source 'Datadog'",
        id="openslo-datadog-source",
    ),
    bad(
        openslo({"sli": {"spec.ratioMetric.good.metricSource.spec.query": "sum(rate(x[5m]))"}}),
        S,
        "spec.ratioMetric.good.metricSource.spec.query",
        "a fixed range [5m] does not follow the SLO windows",
        id="openslo-query-fixed-range",
    ),
    bad(
        openslo({"sli": {"spec.ratioMetric.counter": "yes"}}),
        S,
        "spec.ratioMetric.counter",
        "expected true or false",
        id="openslo-counter-not-bool",
    ),
    # OpenSLO: alerting
    bad(
        openslo({"slo": {"spec.alertPolicies": ["nope"]}}),
        S,
        "spec.alertPolicies[0]",
        "no AlertPolicy named 'nope' was loaded",
        id="openslo-policy-unknown",
    ),
    bad(
        openslo({"slo": {"spec.alertPolicies": [{"metadata": {"name": "p"}}]}}),
        S,
        "spec.alertPolicies[0].kind",
        "expected kind AlertPolicy",
        id="openslo-inline-policy-no-kind",
    ),
    bad(
        [
            (
                "policies.yaml",
                openslo(
                    {"policy": {"spec.conditions[0].conditionRef": "nope"}},
                    only=("policy", "target"),
                ),
            ),
            ("slos.yaml", openslo(only=("service", "sli", "slo", "fast", "slow"))),
        ],
        "policies.yaml",
        "spec.conditions[0].conditionRef",
        "no AlertCondition named 'nope'",
        id="openslo-conditionRef-unknown",
    ),
    bad(
        [
            (
                "conditions.yaml",
                openslo({"fast": {"spec.condition.kind": "threshold"}}, only=("fast", "slow")),
            ),
            ("slos.yaml", openslo(only=("service", "sli", "slo", "policy", "target"))),
        ],
        "conditions.yaml",
        "spec.condition.kind",
        "only kind 'burnrate'",
        id="openslo-condition-not-burnrate",
    ),
    bad(
        openslo({"slow": {"spec.condition.lookbackWindow": "3 days"}}),
        S,
        "spec.condition.lookbackWindow",
        "invalid duration '3 days'",
        id="openslo-condition-bad-lookback",
    ),
    bad(
        openslo({"fast": {"spec.condition.op": "eq"}}),
        S,
        "spec.condition.op",
        "invalid op 'eq'",
        id="openslo-condition-bad-op",
    ),
    bad(
        openslo({"fast": {"spec.severity": DELETE}}),
        S,
        "spec.severity",
        "required field is missing",
        id="openslo-condition-no-severity",
    ),
    bad(
        openslo({"policy": {"spec.conditions": []}}),
        S,
        "spec.conditions",
        "must not be empty",
        id="openslo-policy-no-conditions",
    ),
    bad(
        openslo({"policy": {"spec.conditions[0]": {"name": "fast-burn"}}}),
        S,
        "spec.conditions[0]",
        "expected conditionRef or an inline AlertCondition",
        id="openslo-condition-neither",
    ),
    bad(
        openslo({"policy": {"spec.notificationTargets": "oncall"}}),
        S,
        "spec.notificationTargets",
        "expected a list, got str",
        id="openslo-targets-not-list",
    ),
    bad(
        openslo({"policy": {"spec.notificationTargets[0].targetRef": "slack"}}),
        S,
        "spec.notificationTargets[0].targetRef",
        "no AlertNotificationTarget named 'slack'",
        id="openslo-targetRef-unknown",
    ),
    bad(
        openslo({"policy": {"spec.alertWhenNoData": "sometimes"}}),
        S,
        "spec.alertWhenNoData",
        "expected true or false",
        id="openslo-policy-flag-not-bool",
    ),
    # across files: the same SLO id twice
    bad(
        [("a.yaml", sloth()), ("b.yaml", sloth())],
        "b.yaml",
        "name",
        "SLO id 'gpu-jobs-launch' is defined twice (also in a.yaml)",
        id="duplicate-id-across-files",
    ),
    bad(
        [("a.yaml", openslo()), ("b.yaml", openslo(only=("slo",)))],
        "b.yaml",
        "metadata.name",
        "duplicate SLO 'availability' (also in a.yaml)",
        id="openslo-duplicate-across-files",
    ),
    # text-level problems
    bad(
        "version: prometheus/v1\nservice: x\nslos:\n  - name: [a\n",
        S,
        None,
        "invalid YAML:",
        id="bad-yaml",
    ),
    bad(
        "version: prometheus/v1\nservice: x\n\tslos: []\n",
        S,
        None,
        "line 3",
        id="bad-yaml-line-number",
    ),
    bad("", S, None, "no SLO documents found", id="empty-file"),
    bad("# only a comment\n---\n", S, None, "no SLO documents found", id="only-comments"),
    bad(
        "- version: prometheus/v1\n", S, None, "document 1: expected a mapping", id="top-level-list"
    ),
    bad(
        sloth() + "---\njust a string\n",
        S,
        None,
        "document 2: expected a mapping",
        id="second-doc-scalar",
    ),
    bad("[" * 600 + "]" * 600, S, None, "nested too deeply", id="yaml-too-deep"),
    bad(
        [("ok.yaml", sloth()), ("broken.yaml", "a: b: c\n")],
        "broken.yaml",
        None,
        "invalid YAML: mapping values are not allowed",
        id="bad-yaml-second-file",
    ),
]


@pytest.mark.parametrize(("files", "source", "field", "fragment", "kwargs"), INVALID)
def test_invalid_specs(
    files: Files, source: str, field: str | None, fragment: str, kwargs: dict[str, Any]
):
    with pytest.raises(ValidationError) as info:
        load_texts(files, **kwargs)
    err = info.value
    assert (err.source, err.field) == (source, field), str(err)
    assert fragment in err.reason, str(err)
    text = str(err)
    assert "\n" not in text
    assert text.startswith(f"{source}: " + (f"{field}: " if field else ""))


def test_invalid_case_count():
    assert len(INVALID) >= 30


def test_error_with_newline_in_key_renders_on_one_line():
    with pytest.raises(ValidationError) as info:
        load_texts([("spec.yaml", sloth({"slos[0].a\nb": 1}))])
    assert info.value.field == "slos[0].a\nb"
    assert str(info.value) == "spec.yaml: slos[0].a\\nb: " + info.value.reason


def test_load_files_unreadable(tmp_path):
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ValidationError) as info:
        load_files([str(missing)])
    assert info.value.source == str(missing)
    assert "cannot read" in info.value.reason
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ValidationError, match="not a UTF-8 text file"):
        load_files([str(binary)])
    with pytest.raises(ValidationError, match="no spec files given"):
        load_files([])


# -- AlertWindows -------------------------------------------------------------------------------


def test_alert_windows_valid():
    text = dump(ALERT_WINDOWS, patch(ALERT_WINDOWS, {"spec.sloPeriod": "28d"}))
    catalog = parse_alert_windows(text, "w.yaml")
    ws = catalog.for_period(30 * DAY)
    assert [(w.label, w.budget_percent, w.long_seconds, w.short_seconds) for w in ws.windows] == [
        ("page-quick", 2.0, 7200, 600),
        ("page-slow", 5.0, 43200, 3600),
        ("ticket-quick", 10.0, 2 * DAY, 4 * 3600),
        ("ticket-slow", 10.0, 5 * DAY, 12 * 3600),
    ]
    assert [round(w.factor(30 * DAY), 6) for w in ws.windows] == [7.2, 3.0, 1.5, 0.6]
    assert catalog.for_period(28 * DAY).period_seconds == 28 * DAY
    assert catalog.for_period(7 * DAY) is DEFAULT_WINDOWS


W = "w.yaml"
INVALID_WINDOWS = [
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"apiVersion": "v1"})),
        "apiVersion",
        "expected 'sloth.slok.dev/v1'",
        id="apiVersion",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"kind": "AlertWindow"})),
        "kind",
        "expected 'AlertWindows'",
        id="kind",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec": DELETE})),
        "spec",
        "required field is missing",
        id="no-spec",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.sloPeriod": DELETE})),
        "spec.sloPeriod",
        "required",
        id="no-period",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.sloPeriod": "a month"})),
        "spec.sloPeriod",
        "invalid duration",
        id="bad-period",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.ticket": DELETE})),
        "spec.ticket",
        "required",
        id="no-ticket",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.page.slow": DELETE})),
        "spec.page.slow",
        "required",
        id="no-page-slow",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.page": [1]})),
        "spec.page",
        "expected a mapping",
        id="page-list",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.page.quick.errorBudgetPercent": 0})),
        "spec.page.quick.errorBudgetPercent",
        "must be a number in (0, 100], got 0",
        id="budget-zero",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.page.quick.errorBudgetPercent": "2%"})),
        "spec.page.quick.errorBudgetPercent",
        "got '2%'",
        id="budget-string",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.ticket.quick.shortWindow": "2d"})),
        "spec.ticket.quick.shortWindow",
        "must be shorter than longWindow (2d)",
        id="short-not-shorter",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.ticket.slow.longWindow": "31d"})),
        "spec.ticket.slow.longWindow",
        "longer than sloPeriod",
        id="long-over-period",
    ),
    pytest.param(
        dump(patch(ALERT_WINDOWS, {"spec.page.quick.longWindow": "1 hour"})),
        "spec.page.quick.longWindow",
        "invalid duration",
        id="bad-long-window",
    ),
    pytest.param(
        dump(ALERT_WINDOWS, ALERT_WINDOWS),
        "spec.sloPeriod",
        "document 2: a second AlertWindows",
        id="duplicate-period",
    ),
    pytest.param(
        dump(ALERT_WINDOWS, ["x"]), None, "document 2: expected a mapping", id="second-not-mapping"
    ),
    pytest.param("", None, "no AlertWindows document found", id="empty"),
    pytest.param("spec: [\n", None, "invalid YAML", id="bad-yaml"),
    pytest.param("[" * 600, None, "nested too deeply", id="too-deep"),
]


@pytest.mark.parametrize(("text", "field", "fragment"), INVALID_WINDOWS)
def test_alert_windows_invalid(text: str, field: str | None, fragment: str):
    with pytest.raises(ValidationError) as info:
        parse_alert_windows(text, W)
    err = info.value
    assert (err.source, err.field) == (W, field), str(err)
    assert fragment in err.reason, str(err)


def test_sloth_period_from_caller_does_not_touch_openslo():
    slos = load_texts([("a.yaml", sloth()), ("b.yaml", openslo())], period_seconds=7 * DAY)
    periods = {s.id: s.period_seconds for s in slos}
    assert periods == {
        "gpu-jobs-launch": 7 * DAY,
        "gpu-jobs-nodes": 7 * DAY,
        "api-availability": 28 * DAY,
    }


def test_spec_text_roundtrip_is_readable():
    """The builders produce ordinary YAML a person would write (guards the helper itself)."""
    text = sloth()
    assert text.startswith("version: prometheus/v1\nservice: gpu-jobs\n")
    assert textwrap.dedent(text) == text
