"""Every panel query of every dashboard against a real Prometheus that scrapes three
``sre exporter --replay`` nodes (one with ECC errors, one with an XID), ``sre reliability metrics``
and a synthetic service, and evaluates the generated SLO rules and the packaged GPU rules.

Each query must parse and run (status success), and return series, except the few listed in
``NO_DATA_HERE`` with the reason the test's data has none; those must stay empty, so the list
cannot go stale.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sre_tools.dashboards.generate import dashboards_json
from tests.dashboards.test_generate import all_panels
from tests.helpers.monitoring import MIG_INSTANCES, NODES, Stack, get_json, monitoring_stack

pytestmark = pytest.mark.integration

SLO_IDS = ("api-fast", "api-slow")
# (dashboard, panel title, refId) -> why the test's data legitimately has no series.
NO_DATA_HERE = {
    ("gpu-fleet", "Row remap pending or failed", "B"): (
        "no recording has a failed row remap (the ECC node's remap is pending, shown by A)"
    ),
    ("gpu-fleet", "PCIe links below their maximum width", "A"): (
        "every recorded link trained at its full width"
    ),
    ("gpu-fleet", "InfiniBand checks", "A"): (
        "replays read no sysfs, so the ib.* checks are skipped (skipped findings are not exported)"
    ),
}


def _substitute(expr: str, slo: str) -> str:
    return expr.replace("$instance", ".*").replace("$slo", slo).replace("$__rate_interval", "5s")


def _targets() -> Iterator[tuple[str, str, str, dict[str, Any]]]:
    for name, dashboard in dashboards_json().items():
        for panel in all_panels(dashboard):
            for target in panel["targets"]:
                yield name, panel["title"], target["refId"], target


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with monitoring_stack(tmp_path_factory.mktemp("dash-stack")) as stack:
        # Rates need two samples and the SLO meta rules need the SLI recordings: wait for both.
        assert stack.wait_for("rate(gpu_pcie_replays_total[5s])")
        for name in ("current_burn_rate", "period_error_budget_remaining"):
            assert stack.wait_for(f"count(slo:{name}:ratio) == {len(SLO_IDS)}")
        assert stack.wait_for("increase(sre_incidents_total[1d])")
        yield stack


def _run(stack: Stack, expr: str, instant: bool) -> dict[str, Any]:
    if instant:
        return stack.query(expr)
    now = time.time()
    params = {"query": expr, "start": now - 30, "end": now, "step": 1}
    return get_json(f"{stack.prometheus.url}/api/v1/query_range?{urllib.parse.urlencode(params)}")


def test_every_panel_query_runs_and_returns_series_where_data_exists(stack: Stack) -> None:
    empty, errors, checked = [], [], 0
    for dashboard, title, ref, target in _targets():
        slos = SLO_IDS if dashboard == "slos" else ("",)
        for slo in slos:
            expr = _substitute(target["expr"], slo)
            answer = _run(stack, expr, target["instant"])
            checked += 1
            if answer.get("status") != "success":
                errors.append(f"{dashboard} / {title} / {ref}: {answer}")
            elif not answer["data"]["result"]:
                empty.append((dashboard, title, ref))
    assert not errors, "\n".join(errors)
    assert sorted(set(empty)) == sorted(NO_DATA_HERE), (
        f"panels without data: {sorted(set(empty))}; expected only {sorted(NO_DATA_HERE)}"
    )
    assert checked > 50


def test_fleet_panels_show_every_node_and_the_faults(stack: Stack) -> None:
    health = stack.query('gpu_health_status{instance=~".*"}')["data"]["result"]
    by_node = {s["metric"]["node"]: float(s["value"][1]) for s in health}
    assert set(by_node) == set(NODES)
    assert by_node["gpu-ecc"] == 3  # crit: uncorrected ECC
    xids = stack.query("sum by (node, xid) (gpu_xid_events_total)")["data"]["result"]
    assert {(s["metric"]["node"], s["metric"]["xid"]) for s in xids} == {("gpu-xid", "79")}
    mig = stack.query("gpu_mig_instance_info")["data"]["result"]
    assert sorted(
        (s["metric"]["node"], s["metric"]["gpu"], s["metric"]["mig_uuid"]) for s in mig
    ) == [("gpu-ok", "1", instance["uuid"]) for instance in MIG_INSTANCES]


def test_slo_panels_see_the_burning_slo(stack: Stack) -> None:
    burn = stack.query("slo:current_burn_rate:ratio")["data"]["result"]
    rates = {s["metric"]["sre_id"]: float(s["value"][1]) for s in burn}
    assert rates["api-fast"] > 100  # 50 % errors against a 0.1 % budget
    assert 1 < rates["api-slow"] < 14.4
    windows = stack.query(
        '{__name__=~"slo:sli_error:ratio_rate.+", sre_id="api-fast"} '
        "/ on(sre_id) group_left slo:error_budget:ratio"
    )["data"]["result"]
    assert {s["metric"]["sre_window"] for s in windows} >= {"5m", "1h", "30d"}


def test_variables_list_the_nodes_and_slos(stack: Stack, tmp_path: Path) -> None:
    del tmp_path
    for dashboard in dashboards_json().values():
        for var in dashboard["templating"]["list"]:
            if var["type"] != "query":
                continue
            # label_values(METRIC, LABEL) is what Grafana asks /api/v1/series for.
            inner = var["query"]["query"].removeprefix("label_values(").removesuffix(")")
            metric, label = (part.strip() for part in inner.split(","))
            url = f"{stack.prometheus.url}/api/v1/series?" + urllib.parse.urlencode(
                {"match[]": metric}
            )
            values = {s[label] for s in get_json(url)["data"]}
            expected = set(SLO_IDS) if var["name"] == "slo" else None
            if expected is None:
                assert len(values) == len(NODES), values
            else:
                assert values == expected
