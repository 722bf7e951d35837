"""Property tests: whatever the input, the spec and window loaders raise only ValidationError.

Three kinds of input: random text, random YAML-shaped documents (recursive dicts, lists and
scalars with the specs' own keys), and valid specs with a few nodes replaced, removed or added.
Whatever loads must also generate and write rules.
"""

from __future__ import annotations

import copy
import io
from typing import Any

import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sre_tools.exceptions import ValidationError
from sre_tools.slo.loader import load_texts
from sre_tools.slo.rules import generate, write
from sre_tools.slo.windows import parse_alert_windows
from tests.slo.spec_builders import ALERT_WINDOWS, EXAMPLE_FILES, OPENSLO, SLOTH

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SPEC_KEYS = [
    # Sloth
    "version", "service", "labels", "slos", "name", "objective", "description", "sli",
    "events", "raw", "plugin", "error_query", "total_query", "error_ratio_query", "alerting",
    "annotations", "page_alert", "ticket_alert", "disable",
    # OpenSLO
    "apiVersion", "kind", "metadata", "spec", "indicator", "indicatorRef", "timeWindow",
    "duration", "isRolling", "calendar", "budgetingMethod", "objectives", "displayName",
    "target", "targetPercent", "timeSliceTarget", "timeSliceWindow", "op", "value",
    "ratioMetric", "thresholdMetric", "counter", "good", "bad", "total", "rawType",
    "metricSource", "type", "query", "alertPolicies", "alertPolicyRef", "conditions",
    "conditionRef", "severity", "condition", "threshold", "lookbackWindow", "alertAfter",
    "notificationTargets", "targetRef", "alertWhenBreaching",
    # AlertWindows
    "sloPeriod", "page", "ticket", "quick", "slow", "errorBudgetPercent", "longWindow",
    "shortWindow",
]  # fmt: skip
SPEC_WORDS = [
    "prometheus/v1", "openslo/v1", "openslo/v2", "sloth.slok.dev/v1", "PrometheusServiceLevel",
    "AlertWindows", "Service", "SLI", "SLO", "AlertCondition", "AlertPolicy",
    "AlertNotificationTarget", "DataSource", "Occurrences", "Timeslices", "RatioTimeslices",
    "burnrate", "gte", "page", "ticket", "success", "failure", "Prometheus", "5m", "1h", "28d",
    "30d", "0s", "61s", "1.5m", "101y", "rate(x[{{.window}}])", "x{a=\"b\"}", "{{.window}}",
    "api", "availability", "fast-burn", "api-errors", "9", "a b", "__name__", "",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(SPEC_WORDS),
)
keys = st.one_of(st.sampled_from(SPEC_KEYS), st.text(max_size=6))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5),
    max_leaves=12,
)
documents = st.dictionaries(keys, values, max_size=6)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, child in node.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            out.extend(_paths(child, (*prefix, i)))
    return out


@st.composite
def mutated(draw: st.DrawFn, bases: list[list[Any]]) -> list[Any]:
    """A valid document set with 1-3 nodes replaced, deleted or given an extra child."""
    docs = copy.deepcopy(draw(st.sampled_from(bases)))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(docs)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent: Any = docs
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "add" and isinstance(parent[path[-1]], dict):
            parent[path[-1]][draw(keys)] = draw(values)
        elif action == "add" and isinstance(parent[path[-1]], list):
            parent[path[-1]].append(draw(values))
        else:
            parent[path[-1]] = draw(values)
    return docs


SPEC_BASES: list[list[Any]] = [
    [SLOTH],
    [
        {
            "apiVersion": "sloth.slok.dev/v1",
            "kind": "PrometheusServiceLevel",
            "metadata": {"name": "x"},
            "spec": {k: v for k, v in SLOTH.items() if k != "version"},
        }
    ],
    list(OPENSLO.values()),
    *[list(yaml.safe_load_all(p.read_text())) for p in EXAMPLE_FILES],
]
WINDOW_BASES: list[list[Any]] = [[ALERT_WINDOWS]]


def check_specs(text: str) -> None:
    try:
        slos = load_texts([("fuzz.yaml", text)])
    except ValidationError as exc:
        assert exc.source == "fuzz.yaml", str(exc)
        assert "\n" not in str(exc)
        event("specs rejected")
        return
    event("specs loaded: none" if not slos else "specs loaded: some")
    for slo in slos:
        assert 0 < slo.error_budget_ratio < 1
        assert slo.period_seconds > 0
    # Only Service/SLI/... objects and no SLO is not an error: the rule file is then empty.
    buf = io.StringIO()
    rule_file = generate(slos)
    write(rule_file, buf)
    assert yaml.safe_load(buf.getvalue()) == rule_file
    assert len(rule_file["groups"]) == len(slos)


def check_windows(text: str) -> None:
    try:
        catalog = parse_alert_windows(text, "windows.yaml")
    except ValidationError as exc:
        assert exc.source == "windows.yaml", str(exc)
        assert "\n" not in str(exc)
        event("windows rejected")
        return
    event("windows loaded")
    for ws in catalog.by_period:
        assert ws.period_seconds is not None
        for win in ws.windows:
            assert 0 < win.short_seconds < win.long_seconds <= ws.period_seconds
            assert win.factor(ws.period_seconds) > 0


def dump(docs: list[Any]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False, allow_unicode=True)


@SETTINGS
@given(st.text(max_size=300))
def test_random_text(text: str):
    check_specs(text)
    check_windows(text)


@SETTINGS
@given(st.lists(documents, min_size=1, max_size=3))
def test_yaml_shaped_documents(docs: list[dict[str, Any]]):
    text = dump(docs)
    check_specs(text)
    check_windows(text)


@SETTINGS
@given(mutated(SPEC_BASES))
def test_mutated_specs(docs: list[Any]):
    check_specs(dump(docs))


@SETTINGS
@given(mutated(WINDOW_BASES))
def test_mutated_alert_windows(docs: list[Any]):
    check_windows(dump(docs))


@st.composite
def damaged_text(draw: st.DrawFn) -> str:
    """Valid spec text with a few characters deleted, inserted or swapped: broken YAML."""
    text = dump(draw(st.sampled_from(SPEC_BASES + WINDOW_BASES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        pos = draw(st.integers(min_value=0, max_value=len(text)))
        action = draw(st.sampled_from(["delete", "insert"]))
        if action == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 8)) :]
        else:
            chunk = draw(
                st.sampled_from(
                    [
                        ":",
                        "- ",
                        "\n",
                        "  ",
                        "{",
                        "[",
                        "'",
                        '"',
                        "&a",
                        "*a",
                        "!!python/name:os.system",
                        "\t",
                        "---\n",
                        "%YAML 1.1\n",
                    ]
                )
            )
            text = text[:pos] + chunk + text[pos:]
    return text


@SETTINGS
@given(damaged_text())
def test_damaged_yaml_text(text: str):
    check_specs(text)
    check_windows(text)
