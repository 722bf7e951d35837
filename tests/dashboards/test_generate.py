"""The dashboards: committed files match the generator, the JSON fits the schema of the subset we
emit, and the builder's rules hold (panel types, datasource variable, fixed UIDs, ranges)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from sre_tools.cli.main import cli
from sre_tools.dashboards import builder
from sre_tools.dashboards.builder import Dashboard, DashboardError, Panel, Row, Target
from sre_tools.dashboards.generate import DASHBOARDS, dashboards_json, files, packaged_dir
from sre_tools.exporter import metric_names as m
from sre_tools.reliability import exposition as r
from sre_tools.slo import promql as q

SCHEMA = json.loads((Path(__file__).parent / "dashboard.schema.json").read_text())


def all_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            out.extend(panel["panels"])
        else:
            out.append(panel)
    return out


def test_committed_files_are_what_the_generator_writes() -> None:
    committed = {p.name: p.read_text(encoding="utf-8") for p in packaged_dir().iterdir()}
    assert committed == files(), "run: sre dashboards generate sre_tools/data/dashboards"


def test_cli_writes_the_same_files(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["dashboards", "generate", str(tmp_path)])
    assert result.exit_code == 0, result.output
    written = {p.name: p.read_text(encoding="utf-8") for p in tmp_path.iterdir()}
    assert written == files()
    assert sorted(written) == sorted([*(f"{n}.json" for n in DASHBOARDS), "sre-tools.yml"])


def test_provisioning_file_is_a_file_provider() -> None:
    doc = yaml.safe_load(files("/srv/dash")["sre-tools.yml"])
    assert doc["apiVersion"] == 1
    [provider] = doc["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/srv/dash"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_fits_the_schema(name: str) -> None:
    jsonschema.Draft202012Validator(SCHEMA).validate(dashboards_json()[name])


def test_schema_rejects_what_we_must_not_emit() -> None:
    good = dashboards_json()["gpu-fleet"]
    validator = jsonschema.Draft202012Validator(SCHEMA)
    graph = json.loads(json.dumps(good))
    all_panels(graph)[0]["type"] = "graph"
    inputs = json.loads(json.dumps(good))
    inputs["__inputs"] = [{"name": "DS_PROMETHEUS"}]
    fixed_ds = json.loads(json.dumps(good))
    all_panels(fixed_ds)[0]["datasource"]["uid"] = "P1809F7CD0C75ACF3"
    for bad in (graph, inputs, fixed_ds):
        assert not validator.is_valid(bad)


def test_uids_fixed_and_unique_panel_ids_unique() -> None:
    dashboards = dashboards_json()
    uids = [d["uid"] for d in dashboards.values()]
    assert uids == ["sre-gpu-fleet", "sre-slos", "sre-reliability"]
    for d in dashboards.values():
        ids = [p["id"] for p in d["panels"]]
        ids += [p["id"] for row in d["panels"] if row["type"] == "row" for p in row["panels"]]
        assert len(ids) == len(set(ids))


def test_every_query_uses_the_datasource_variable_and_no_range_over_30_days() -> None:
    for d in dashboards_json().values():
        assert d["templating"]["list"][0]["type"] == "datasource"
        assert "__inputs" not in d
        for panel in all_panels(d):
            assert panel["type"] in ("timeseries", "stat", "table")
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}"
                for duration in builder.query_ranges(target["expr"]):
                    assert builder.range_seconds(duration) <= 30 * 86400, target["expr"]


def test_gpu_panels_legends_name_the_node() -> None:
    fleet = dashboards_json()["gpu-fleet"]
    for panel in all_panels(fleet):
        if panel["type"] == "table":
            continue
        for target in panel["targets"]:
            assert "{{instance}}" in target["legendFormat"], panel["title"]


def test_slo_rows_repeat_over_the_slo_variable() -> None:
    slos = dashboards_json()["slos"]
    rows = [p for p in slos["panels"] if p["type"] == "row"]
    assert [row["repeat"] for row in rows] == ["slo"]
    names = [v["name"] for v in slos["templating"]["list"]]
    assert names == ["datasource", "slo"]


# Metric names a query may use: the exporter's, the SLO rules', the reliability endpoint's, plus
# what Prometheus itself provides.
_KNOWN = (
    {spec.name for spec in m.METRICS}
    | {
        q.OBJECTIVE,
        q.ERROR_BUDGET,
        q.TIME_PERIOD_DAYS,
        q.CURRENT_BURN_RATE,
        q.PERIOD_BURN_RATE,
        q.PERIOD_BUDGET_REMAINING,
        q.SLO_INFO,
    }
    | {q.SLI_ERROR_RATIO.format(window=w) for w in ("5m", "30m", "1h", "2h", "6h", "1d", "3d")}
    | {
        r.INCIDENTS + "_total",
        r.INCIDENTS_OPEN,
        r.DRILL_RUNS + "_total",
        r.DRILL_LAST_RUN,
        r.DRILL_MEDIAN,
        r.DRILL_MAX,
    }
    | {
        f"{s}_{suffix}"
        for s in (r.INCIDENT_DETECT, r.INCIDENT_REPAIR)
        for suffix in ("sum", "count")
    }
    | {"up", "ALERTS"}
)
_FUNCTIONS = {
    "sum",
    "max",
    "rate",
    "increase",
    "time",
    "vector",
    "by",
    "on",
    "ignoring",
    "group_left",
    "or",
    "and",
    "label_values",
    "without",
}


def test_queries_use_only_metric_names_the_code_defines() -> None:
    seen: set[str] = set()
    label_names = set(m.GPU_LABELS) | {
        "instance",
        "job",
        "reason",
        "xid",
        "error_type",
        "cause",
        "error",
        "check",
        "action",
        "component",
        "drill",
        "status",
        "measure",
        q.LABEL_ID,
        q.LABEL_WINDOW,
    }
    for d in dashboards_json().values():
        for panel in all_panels(d):
            for target in panel["targets"]:
                expr = re.sub(r'"[^"]*"', '""', target["expr"])  # strip string literals
                expr = re.sub(r"\{[^}]*\}", "{}", expr)  # and label matchers
                expr = re.sub(r"\[[^\]]*\]", "[]", expr)  # and ranges
                # and the label lists of by (...), on (...), ignoring (...), without (...)
                expr = re.sub(r"\b(by|without|on|ignoring) ?\([^)]*\)", r"\1", expr)
                for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
                    if word in _FUNCTIONS or word in label_names or word == "on":
                        continue
                    seen.add(word)
    unknown = seen - _KNOWN
    assert not unknown, f"queries use names no module defines: {sorted(unknown)}"
    assert m.GPU_HEALTH_STATUS in seen and q.PERIOD_BUDGET_REMAINING in seen


def test_builder_refuses_graph_panels_long_ranges_and_bad_uids() -> None:
    with pytest.raises(DashboardError, match="graph"):
        Panel("graph", "old", [Target("up")])
    with pytest.raises(DashboardError, match="over 30 days"):
        Target("rate(up[31d])").to_json("A")
    with pytest.raises(DashboardError, match="over 30 days"):
        Target("max_over_time(up[5w:1h])").to_json("A")
    with pytest.raises(DashboardError, match="uid"):
        Dashboard("Not A UID", "t", "", [Row("r", [Panel("stat", "s", [Target("up")])])]).to_json()
    with pytest.raises(DashboardError, match="30 days"):
        Dashboard("ok", "t", "", [], time_from="now-90d").to_json()
