"""``sre reliability metrics``: incidents and drill results from the store as metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from sre_tools.cli.main import cli
from sre_tools.reliability.exposition import Snapshot, format_snapshot
from sre_tools.store import Store
from tests.helpers.monitoring import make_store


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_once_exposes_incidents_and_drills(tmp_path: Path) -> None:
    store = make_store(tmp_path / "store.db")
    result = CliRunner().invoke(cli, ["reliability", "metrics", "--once", "--store", str(store)])
    assert result.exit_code == 0, result.output
    got = _samples(result.output)
    assert got[("sre_incidents_total", (("component", "gpu"), ("planned", "false")))] == 1
    assert got[("sre_incidents_total", (("component", "fabric"), ("planned", "true")))] == 1
    assert got[("sre_incidents_open", (("component", "node"),))] == 1
    assert got[("sre_incidents_open", (("component", "gpu"),))] == 0
    # detected - started: 200 s (gpu) and 60 s (node); the planned incident is left out.
    assert got[("sre_incident_detect_seconds_sum", (("component", "gpu"),))] == 200
    assert got[("sre_incident_detect_seconds_count", (("component", "node"),))] == 1
    assert ("sre_incident_detect_seconds_count", (("component", "fabric"),)) not in got
    assert got[("sre_incident_repair_seconds_sum", (("component", "gpu"),))] == 3600
    assert ("sre_incident_repair_seconds_count", (("component", "node"),)) not in got  # open
    assert got[("sre_drill_runs_total", (("drill", "xid-inject"), ("status", "completed")))] == 1
    drill = (("drill", "xid-inject"),)
    assert got[("sre_drill_measured_median_seconds", (*drill, ("measure", "detect")))] == 12.5
    assert got[("sre_drill_measured_max_seconds", (*drill, ("measure", "recover")))] == 95


def test_an_empty_store_exposes_families_without_samples(tmp_path: Path) -> None:
    with Store(tmp_path / "empty.db"):
        pass
    result = CliRunner().invoke(
        cli, ["reliability", "metrics", "--once", "--store", str(tmp_path / "empty.db")]
    )
    assert result.exit_code == 0, result.output
    assert "# TYPE sre_incidents_open gauge" in result.output
    assert _samples(result.output) == {}


def test_a_missing_store_is_refused_before_serving(tmp_path: Path, sre: Any) -> None:
    code, out, err = sre("reliability", "metrics", "--store", str(tmp_path / "none.db"))
    assert code == 1
    assert out == ""
    assert "store does not exist" in err


def test_format_snapshot_is_pure() -> None:
    snap = Snapshot((("gpu", False, 2),), (("gpu", 1),), (), (), (), (), ())
    names = [f.name for f in format_snapshot(snap)]
    assert names[:2] == ["sre_incidents", "sre_incidents_open"]
    assert len(names) == 8
