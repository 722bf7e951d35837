"""Whole PromQL expressions in OpenSLO queries: what is windowed, what is refused, and proof.

The accepted forms are checked as text, under ``promtool check rules``, and under
``promtool test rules`` against the selector form of the same SLO on the same series: both must
raise the same alerts with the same values. Refused forms fail with one exact line naming the
file and the field, from the loader and from ``sre slo rules`` (exit 2).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sre_tools.exceptions import ValidationError
from sre_tools.slo.loader import load_texts
from sre_tools.slo.query import Kind, window_query
from sre_tools.slo.rules import generate, write
from sre_tools.slo.windows import parse_alert_windows
from tests.slo.test_promtool_rules import promtool

ROOT = Path(__file__).resolve().parents[2]
W = "{{.window}}"
FIELD = "spec.indicator.spec.ratioMetric.good.metricSource.spec.query"
C, G, R = Kind.COUNTER, Kind.GAUGE, Kind.RATIO

# (id, query, kind, template)
ACCEPTED = [
    (
        "counter-selector",
        'jobs_total{result="ok"}',
        C,
        f'sum(rate(jobs_total{{result="ok"}}[{W}]))',
    ),
    (
        "counter-sum",
        "sum(slurm_job_launches_total)",
        C,
        f"sum(rate(slurm_job_launches_total[{W}]))",
    ),
    (
        "counter-sum-by",
        'sum by (cluster) (jobs_total{result!="failed"})',
        C,
        f'sum by (cluster) (rate(jobs_total{{result!="failed"}}[{W}]))',
    ),
    (
        "counter-sum-without-trailing",
        "sum(jobs_total) without (instance, pod)",
        C,
        f"sum without (instance, pod) (rate(jobs_total[{W}]))",
    ),
    ("counter-by-empty", "sum by () (jobs_total)", C, f"sum(rate(jobs_total[{W}]))"),
    ("gauge-selector", "sre_gpu_node_ready", G, f"sum(avg_over_time(sre_gpu_node_ready[{W}]))"),
    (
        "gauge-sum-filter",
        "sum(sre_gpu_node_ready == 1)",
        G,
        f"avg_over_time((sum(sre_gpu_node_ready == 1) or 0 * count(sre_gpu_node_ready))[{W}:1m])",
    ),
    (
        "gauge-count",
        "count(sre_gpu_node_ready)",
        G,
        f"avg_over_time((count(sre_gpu_node_ready))[{W}:1m])",
    ),
    (
        "gauge-count-by-filter",
        'count by (cluster) (sre_gpu_node_ready{pool=~"h100|h200"} > 0.5)',
        G,
        'avg_over_time((count by (cluster) (sre_gpu_node_ready{pool=~"h100|h200"} > 0.5)'
        ' or 0 * count by (cluster) (sre_gpu_node_ready{pool=~"h100|h200"}))'
        f"[{W}:1m])",
    ),
    (
        "gauge-max-without",
        "max without (gpu) (sre_gpu_node_ready)",
        G,
        f"avg_over_time((max without (gpu) (sre_gpu_node_ready))[{W}:1m])",
    ),
    (
        "gauge-avg-bool",
        "avg(sre_gpu_node_ready == bool 1)",
        G,
        f"avg_over_time((avg(sre_gpu_node_ready == bool 1))[{W}:1m])",
    ),
    (
        "gauge-negative-number",
        "sum(temp_celsius >= -1.5e1)",
        G,
        f"avg_over_time((sum(temp_celsius >= -1.5e1) or 0 * count(temp_celsius))[{W}:1m])",
    ),
    ("ratio-selector", "up{job='gpu'}", R, f"avg(avg_over_time(up{{job='gpu'}}[{W}]))"),
    ("ratio-avg", "avg(up{job='gpu'})", R, f"avg_over_time((avg(up{{job='gpu'}}))[{W}:1m])"),
    (
        "window-template-verbatim",
        f"sum(rate(jobs_total[{W}]))",
        C,
        f"sum(rate(jobs_total[{W}]))",
    ),
    ("label-value-with-brace", 'x{a="}"}', C, f'sum(rate(x{{a="}}"}}[{W}]))'),
]

TAIL = f"; write the query with {W} instead, e.g. "
RATE_OF_SUM = (
    "rate() of an aggregation (rate(sum(...))) is wrong: the sum drops whenever one series "
    "restarts; take the rate of each series first, then aggregate"
)
SUM_RATE = f"sum(rate(jobs_total[{W}]))"
SUM_AVG = f"sum(avg_over_time(sre_gpu_node_ready[{W}]))"

# (id, query, counter, reason and suggestion after "FILE: FIELD: ")
REFUSED = [
    (
        "fixed-range",
        "sum(rate(jobs_total[5m]))",
        True,
        f"a fixed range [5m] does not follow the SLO windows{TAIL}{SUM_RATE}",
    ),
    (
        "fixed-subquery",
        "avg_over_time(sum(sre_gpu_node_ready == 1)[1h:5m])",
        False,
        "a fixed range [1h:5m] does not follow the SLO windows"
        f"{TAIL}avg_over_time(sum(sre_gpu_node_ready == 1)[{W}:5m])",
    ),
    (
        "rate-of-sum",
        "rate(sum(jobs_total)[5m:])",
        True,
        f"{RATE_OF_SUM}{TAIL}{SUM_RATE}",
    ),
    (
        # Never suggested back: a range after an expression is not PromQL, and a rate of a sum
        # is wrong however it is windowed.
        "rate-of-sum-with-range",
        'rate(sum(jobs_total{result="ok"})[5m])',
        True,
        f'{RATE_OF_SUM}{TAIL}sum(rate(jobs_total{{result="ok"}}[{W}]))',
    ),
    (
        "template-rate-of-sum",
        f"rate(sum(jobs_total)[{W}:1m])",
        True,
        f"{RATE_OF_SUM}{TAIL}{SUM_RATE}",
    ),
    (
        "template-range-after-an-expression",
        f"sum(sre_gpu_node_ready)[{W}]",
        False,
        "a range [...] follows a series selector, or (with ':') makes a subquery; here it follows "
        f"an expression{TAIL}{SUM_AVG}",
    ),
    (
        "counter-comparison",
        "sum(jobs_total > 0)",
        True,
        "a comparison (> 0) on a counter filters its running total, not its events "
        f"(set counter: false if the metric is a gauge){TAIL}{SUM_RATE}",
    ),
    (
        "counter-count",
        "count(jobs_total)",
        True,
        "count over a counter is not a count of events: counters are rated per series and "
        f"summed{TAIL}{SUM_RATE}",
    ),
    (
        "gauge-min-filter",
        "min(sre_gpu_node_ready == 1)",
        False,
        "min over a filtered selector (== 1) has no value while no series matches, so the window "
        f"average would skip those minutes (sum and count are completed with 0){TAIL}{SUM_AVG}",
    ),
    (
        "bare-comparison",
        "sre_gpu_node_ready == 1",
        False,
        "a comparison (==) outside an aggregation is not rewritten (one inside is: sum(x == 1))"
        f"{TAIL}{SUM_AVG}",
    ),
    (
        "outer-comparison",
        "sum(sre_gpu_node_ready) > 3",
        False,
        f"a comparison (>) on the aggregated value is not rewritten{TAIL}{SUM_AVG}",
    ),
    (
        "arithmetic",
        "sum(jobs_total) / 2",
        True,
        f"binary operator '/' is not rewritten{TAIL}{SUM_RATE}",
    ),
    (
        "function",
        "sum(increase(jobs_total))",
        True,
        f"function increase() is not rewritten{TAIL}{SUM_RATE}",
    ),
    (
        "nested",
        "sum(max by (node) (sre_gpu_node_ready))",
        False,
        f"nested aggregations are not rewritten{TAIL}{SUM_AVG}",
    ),
    (
        "topk",
        "topk(3, jobs_total)",
        True,
        f"aggregation topk is not rewritten (sum, count, min, max, avg are){TAIL}{SUM_RATE}",
    ),
    (
        "offset",
        "sum(jobs_total offset 1h)",
        True,
        f"offset modifiers are not rewritten{TAIL}{SUM_RATE}",
    ),
    (
        "compare-with-series",
        "sum(sre_gpu_node_ready == sre_gpu_node_expected)",
        False,
        "a comparison (==) with 'sre_gpu_node_expected' is not rewritten; compare with a number"
        f"{TAIL}{SUM_AVG}",
    ),
    (
        "unbalanced",
        "sum(jobs_total",
        True,
        f"the query ends too early{TAIL}{SUM_RATE}",
    ),
    (
        "no-selector",
        "vector(1)",
        True,
        f"function vector() is not rewritten{TAIL}sum(rate(METRIC[{W}]))",
    ),
]


@pytest.mark.parametrize(
    ("query", "kind", "template"),
    [pytest.param(q, k, t, id=i) for i, q, k, t in ACCEPTED],
)
def test_accepted_queries_become_window_templates(query: str, kind: Kind, template: str) -> None:
    assert window_query(query, kind, "q").template == template


def spec(good: str, total: str, *, counter: bool, name: str = "nodes") -> dict[str, Any]:
    """An OpenSLO SLO (objective 99 % over 30 days) with an inline good/total indicator."""
    return {
        "apiVersion": "openslo/v1",
        "kind": "SLO",
        "metadata": {"name": name},
        "spec": {
            "service": "gpu-nodes",
            "indicator": {
                "metadata": {"name": f"{name}-sli"},
                "spec": {
                    "ratioMetric": {
                        "counter": counter,
                        "good": {"metricSource": {"type": "Prometheus", "spec": {"query": good}}},
                        "total": {"metricSource": {"type": "Prometheus", "spec": {"query": total}}},
                    }
                },
            },
            "timeWindow": [{"duration": "30d", "isRolling": True}],
            "budgetingMethod": "Occurrences",
            "objectives": [{"target": 0.99}],
        },
    }


@pytest.mark.parametrize(
    ("query", "counter", "message"),
    [pytest.param(q, c, m, id=i) for i, q, c, m in REFUSED],
)
def test_refused_queries_fail_with_one_line(query: str, counter: bool, message: str) -> None:
    text = yaml.safe_dump(spec(query, "sre_gpu_node_expected", counter=counter))
    with pytest.raises(ValidationError) as info:
        load_texts([("nodes.yaml", text)])
    assert str(info.value) == f"nodes.yaml: {FIELD}: {message}"
    assert "\n" not in str(info.value)


def test_refused_multiline_query_stays_one_line() -> None:
    text = yaml.safe_dump(spec("sum(\n  rate(jobs_total[5m])\n)", "x", counter=True))
    with pytest.raises(ValidationError) as info:
        load_texts([("nodes.yaml", text)])
    assert str(info.value) == (
        f"nodes.yaml: {FIELD}: a fixed range [5m] does not follow the SLO windows{TAIL}{SUM_RATE}"
    )


@pytest.mark.parametrize(
    ("good", "total", "message"),
    [
        pytest.param(
            "sum by (cluster) (ok_total)",
            "sum(all_total)",
            "the good query groups by by (cluster) but the total query by nothing (one series)",
            id="by-vs-ungrouped",
        ),
        pytest.param(
            "sum without (pod) (ok_total)",
            "sum by (pod) (all_total)",
            "the good query groups by without (pod) but the total query by by (pod)",
            id="without-vs-by",
        ),
    ],
)
def test_good_and_total_must_group_alike(good: str, total: str, message: str) -> None:
    text = yaml.safe_dump(spec(good, total, counter=True))
    with pytest.raises(ValidationError) as info:
        load_texts([("nodes.yaml", text)])
    assert str(info.value) == (
        f"nodes.yaml: spec.indicator.spec.ratioMetric.good.metricSource.spec.query: {message}: "
        "their ratio would match no series"
    )


def test_same_grouping_in_any_order_is_accepted() -> None:
    text = yaml.safe_dump(
        spec("sum by (a, b) (ok_total)", "sum(all_total) by (b, a, b)", counter=True)
    )
    (slo,) = load_texts([("nodes.yaml", text)])
    assert slo.sli.total_query == f"sum by (b, a, b) (rate(all_total[{W}]))"  # type: ignore[union-attr]


# -- promtool ------------------------------------------------------------------------------


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd)


def test_promtool_accepts_every_rewritten_query(tmp_path: Path) -> None:
    docs = []
    for i, (ident, query, kind, _) in enumerate(ACCEPTED):
        if kind is Kind.RATIO:
            doc = spec("x", "x", counter=False, name=f"q{i}")
            ratio = doc["spec"]["indicator"]["spec"]["ratioMetric"]
            ratio.pop("good")
            ratio.pop("total")
            ratio.update(
                {"rawType": "success", "raw": {"metricSource": {"spec": {"query": query}}}}
            )
        else:
            doc = spec(query, query, counter=kind is Kind.COUNTER, name=f"q{i}")
        doc["metadata"]["labels"] = {"case": ident}
        docs.append(doc)
    _promtool_accepts_the_rules_of(docs, tmp_path)


def _promtool_accepts_the_rules_of(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """Load ``docs`` as one spec file, generate their rules, and have promtool check them all."""
    slos = load_texts([("specs.yaml", yaml.safe_dump_all(docs))])
    rules = tmp_path / "rules.yml"
    groups = generate(slos)
    with rules.open("w") as fh:
        write(groups, fh)
    proc = _run([promtool(), "check", "rules", str(rules)], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in groups['groups'])} rules found" in proc.stdout


def test_promtool_accepts_every_suggested_query(tmp_path: Path) -> None:
    """What a refusal suggests writing is accepted as written: valid PromQL (promtool), and
    windowed by the loader without a further refusal (no rate of a sum, no range after an
    expression)."""
    docs = []
    for i, (ident, _, counter, message) in enumerate(REFUSED):
        suggested = message.split(TAIL, 1)[1].replace("METRIC", "jobs_total")
        doc = spec(suggested, suggested, counter=counter, name=f"s{i}")
        doc["metadata"]["labels"] = {"case": ident}
        docs.append(doc)
    _promtool_accepts_the_rules_of(docs, tmp_path)


# Each scenario is one SLO written twice: with plain selectors and as whole expressions, with a
# one-day period. promtool's test engine caps a query at 10,000 samples and counts a number in a
# subquery once per step, so a [30d:1m] subquery cannot run there; a day holds 1,441 steps. The
# alert windows keep the default factors (14.4, 6, 3, 1) by scaling the budget percents.
WINDOWS_1D = """
apiVersion: sloth.slok.dev/v1
kind: AlertWindows
spec:
  sloPeriod: 1d
  page:
    quick: {errorBudgetPercent: 60, longWindow: 1h, shortWindow: 5m}
    slow: {errorBudgetPercent: 50, longWindow: 2h, shortWindow: 10m}
  ticket:
    quick: {errorBudgetPercent: 75, longWindow: 6h, shortWindow: 30m}
    slow: {errorBudgetPercent: 100, longWindow: 1d, shortWindow: 2h}
"""
PAGE_PAIRS_1D = "1h/5m above 14.4x, 2h/10m above 6x"
TICKET_PAIRS_1D = "6h/30m above 3x, 1d/2h above 1x"
NODES = 5
# scenario: (nodes not ready, promtool values for those nodes)
GAUGE_SCENARIOS = {
    "down": (NODES, "0x250"),  # nothing ready: the filtered sum is empty, 100 % errors
    "degraded": (2, "0x250"),  # 40 %: pages
    "flaky": (1, "0x250"),  # 20 %: a ticket only
    "healthy": (0, ""),
    "recovered": (2, "0x60 1x189"),  # 40 % for the first hour, then all ready
}
# scenario: (failed per minute, ok per minute)
COUNTER_SCENARIOS = {"burst": (40, 60), "trickle": (20, 80), "idle": (0, 0)}


def _both_forms(
    good: str, total: str, good_expr: str, total_expr: str, *, counter: bool, name: str
):
    selector = spec(good, total, counter=counter, name=f"{name}-selector")
    expression = spec(good_expr, total_expr, counter=counter, name=f"{name}-expr")
    for doc in (selector, expression):
        doc["spec"]["timeWindow"][0]["duration"] = "1d"
        doc["spec"]["objectives"][0]["target"] = 0.95
    return [selector, expression]


def _series() -> list[dict[str, str]]:
    out = []
    for scenario, (down, values) in GAUGE_SCENARIOS.items():
        for node in range(NODES):
            labels = f'cluster="{scenario}",node="n{node}"'
            out.append(
                {
                    "series": f"sre_gpu_node_ready{{{labels}}}",
                    "values": values if node < down else "1x250",
                }
            )
            out.append({"series": f"sre_gpu_node_expected{{{labels}}}", "values": "1x250"})
    for scenario, (failed, ok) in COUNTER_SCENARIOS.items():
        for result, per_minute in (("failed", failed), ("ok", ok)):
            out.append(
                {
                    "series": f'slurm_job_launches_total{{cluster="{scenario}",result="{result}"}}',
                    "values": f"0+{per_minute}x250",
                }
            )
    return out


def _alerts(scenario: str, form: str, expected: list[tuple[str, str]]) -> dict[str, Any]:
    name = f"{scenario}-{form}"
    alert = "GpuNodes" + "".join(w.capitalize() for w in name.split("-")) + "SLOBurn"
    return {
        "alertname": alert,
        "exp_alerts": [
            {
                "exp_labels": {
                    "severity": severity,
                    "sre_severity": severity,
                    "sre_id": f"gpu-nodes-{name}",
                    "sre_service": "gpu-nodes",
                    "sre_slo": name,
                },
                "exp_annotations": {
                    "summary": f"gpu-nodes {name} SLO error budget burn rate is too high "
                    f"({severity}).",
                    "description": f"gpu-nodes {name}: objective 95% over 1d; the error ratio "
                    f"({value}) burns the budget in windows "
                    f"{PAGE_PAIRS_1D if severity == 'page' else TICKET_PAIRS_1D}.",
                    "runbook_url": f"runbooks/slo-burn-rate.md#{severity}",
                },
            }
            for severity, value in expected
        ],
    }


# (scenario, eval time, alerts), the same for both forms. Budget 5 %: pages above 72 % (1h/5m)
# or 30 % (2h/10m), tickets above 15 % (6h/30m) or 5 % (1d/2h).
EXPECTED = [
    ("down", "70m", [("page", "100%"), ("ticket", "100%")]),
    ("degraded", "70m", [("page", "40%"), ("ticket", "40%")]),
    ("flaky", "3h", [("ticket", "20%")]),
    ("healthy", "4h", []),
    ("recovered", "55m", [("page", "40%"), ("ticket", "40%")]),
    # 95m: the 10m and 30m windows are clean; the 2h window holds 61 of 96 minutes with 2 of 5
    # nodes down: 2 x 61 / (5 x 96) = 25.42 %.
    ("recovered", "95m", [("ticket", "25.42%")]),
    ("burst", "70m", [("page", "40%"), ("ticket", "40%")]),
    ("trickle", "3h", [("ticket", "20%")]),
    ("idle", "4h", []),
]


def test_expressions_alert_like_selectors_under_promtool(tmp_path: Path) -> None:
    docs = []
    for scenario in GAUGE_SCENARIOS:
        ready = f'sre_gpu_node_ready{{cluster="{scenario}"}}'
        expected = f'sre_gpu_node_expected{{cluster="{scenario}"}}'
        docs += _both_forms(
            ready, expected, f"sum({ready} == 1)", f"count({ready})", counter=False, name=scenario
        )
    for scenario in COUNTER_SCENARIOS:
        ok = f'slurm_job_launches_total{{cluster="{scenario}",result="ok"}}'
        every = f'slurm_job_launches_total{{cluster="{scenario}"}}'
        docs += _both_forms(ok, every, f"sum({ok})", f"sum({every})", counter=True, name=scenario)
    slos = load_texts([("nodes.yaml", yaml.safe_dump_all(docs))])
    catalog = parse_alert_windows(WINDOWS_1D, "windows.yaml")
    with (tmp_path / "slo.rules.yml").open("w") as fh:
        write(generate(slos, catalog), fh)
    alert_tests = [
        {"eval_time": at, **_alerts(scenario, form, alerts)}
        for scenario, at, alerts in EXPECTED
        for form in ("selector", "expr")
    ]
    # The recorded ratios agree too, the period ratio of the recovered nodes included. Rounded
    # as PromQL's round() does: the order of a sum over series is not fixed, so the last bit is not.
    expr_tests = [
        {
            "expr": f'round({metric}{{sre_id="gpu-nodes-recovered-{form}"}}, 0.0001)',
            "eval_time": "95m",
            "exp_samples": [
                {
                    "labels": f'{{sre_id="gpu-nodes-recovered-{form}",sre_service="gpu-nodes",'
                    f'sre_slo="recovered-{form}",sre_window="{window}"}}',
                    "value": math.floor(value * (1 / 0.0001) + 0.5) / (1 / 0.0001),
                }
            ],
        }
        for form in ("selector", "expr")
        for metric, window, value in (
            ("slo:sli_error:ratio_rate2h", "2h", 2 * 61 / (5 * 96)),
            ("slo:sli_error:ratio_rate1d", "1d", 2 * 61 / (5 * 96)),
            ("slo:sli_error:ratio_rate30m", "30m", 0),
        )
    ]
    unit = {
        "rule_files": ["slo.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": _series(),
                "alert_rule_test": alert_tests,
                "promql_expr_test": expr_tests,
            }
        ],
    }
    (tmp_path / "slo.test.yml").write_text(yaml.safe_dump(unit, sort_keys=False))
    proc = _run([promtool(), "test", "rules", "slo.test.yml"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_cli_refuses_with_exit_2_and_one_line(tmp_path: Path) -> None:
    spec_file = tmp_path / "nodes.yaml"
    spec_file.write_text(yaml.safe_dump(spec("sum(rate(jobs_total[5m]))", "x", counter=True)))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "sre_tools.cli.main", "slo", "rules", "nodes.yaml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"sre: error: nodes.yaml: {FIELD}: a fixed range [5m] does not follow the SLO windows"
        f"{TAIL}{SUM_RATE}"
    ]


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(list("sumcoxy_=!~<>()[]{},:\"'` 01.5m-+*/byout@\n"))))
def test_any_text_is_windowed_or_refused_with_one_line(text: str) -> None:
    for kind in Kind:
        try:
            window_query(text, kind, "q")
        except ValidationError as exc:
            assert "\n" not in str(exc)
            assert W in exc.reason
