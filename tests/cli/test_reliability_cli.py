"""``sre incident`` and ``sre reliability`` through ``sre_tools.cli.main.main``."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.reliability_helpers import Result, assert_one_line_error, csv_text

Sre = Callable[..., Result]


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store.db"


GOOD = "2026-11-01T10:00:00Z,2026-11-01T12:00:00Z,gpu,node-01,3,hardware,false"

STAT_KEYS = {
    "failures",
    "open",
    "mtbf_seconds",
    "mttr_seconds",
    "mttd_seconds",
    "availability",
    "failures_per_gpu_day",
    "failures_per_node_day",
    "planned",
}


def test_open_prints_id_then_resolve_and_list(sre: Sre, store_path: Path) -> None:
    store = ("--store", str(store_path))
    code, out, err = sre("incident", "open", "--component", "gpu", "--host", "n1", "--xid", "79",
                         "--started", "2026-11-01T10:00:00Z", *store)  # fmt: skip
    assert (code, out, err) == (0, "1\n", "")
    code, out, _ = sre("incident", "open", "--component", "psu", "--planned", "--json", *store)
    assert code == 0
    opened = json.loads(out)
    assert opened["id"] == 2
    assert opened["planned"] is True
    assert opened["resolved"] is None
    code, out, _ = sre("incident", "list", "--open", "--json", *store)
    assert [i["id"] for i in json.loads(out)["incidents"]] == [1, 2]
    code, out, err = sre("incident", "resolve", "1", "--at", "2026-11-01T11:30:00Z", *store)
    assert code == 0, err
    assert "resolved incident 1" in out
    assert "90.0m" in out
    code, out, _ = sre("incident", "list", "--json", "--until", "2026-11-02", *store)
    [listed] = json.loads(out)["incidents"]
    assert listed["duration_seconds"] == 5400
    assert listed["resolved"] == "2026-11-01T11:30:00Z"
    code, out, _ = sre("incident", "list", *store)
    assert code == 0
    assert "n1" in out
    assert "psu" in out


def test_import_file_stdin_and_example(
    sre: Sre, store_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ("--store", str(store_path))
    path = tmp_path / "incidents.csv"
    path.write_text(csv_text(GOOD))
    code, out, err = sre("incident", "import", str(path), "--json", *store)
    assert code == 0, err
    data = json.loads(out)
    assert data["imported"] == 1
    assert len(data["sha256"]) == 64
    code, out, err = sre("incident", "import", str(path), *store)
    assert code == 2
    assert_one_line_error(err, str(path), "already imported", "--force")
    code, out, err = sre("incident", "import", str(path), "--force", *store)
    assert code == 0, err
    monkeypatch.setattr("sys.stdin", io.StringIO(csv_text(GOOD.replace("node-01", "node-02"))))
    code, out, err = sre("incident", "import", "-", *store)
    assert code == 0, err
    assert "from <stdin>" in out
    code, out, err = sre("incident", "import", "--example", *store)
    assert code == 0, err
    code, out, _ = sre("incident", "list", "--json", *store)
    assert len(json.loads(out)["incidents"]) == 3 + 31


def test_quick_start_report_on_the_example(sre: Sre, store_path: Path) -> None:
    store = ("--store", str(store_path))
    assert sre("incident", "import", "--example", *store)[0] == 0
    args = ("reliability", "report", "--until", "2026-11-21", "--gpus", "128", *store)
    code, out, err = sre(*args, "--json")
    assert code == 0, err
    data = json.loads(out)
    assert {"since", "until", "window_seconds", "gpus", "nodes", "fleet", "components"} <= set(data)
    assert set(data["fleet"]) == STAT_KEYS
    assert set(data["fleet"]["planned"]) == {"count", "downtime_seconds"}
    assert set(data["components"]) == {"gpu", "host", "infiniband", "nvlink", "psu", "software"}
    for stats in data["components"].values():
        assert set(stats) == STAT_KEYS
    assert data["nodes"] == 16
    assert data["nodes_source"] == "derived"
    assert data["fleet"]["planned"]["count"] > 0
    assert data["fleet"]["failures"] + data["fleet"]["planned"]["count"] == 31
    code, out, err = sre(*args)
    assert code == 0, err
    assert "fleet" in out
    assert "MTBF" in out


def test_report_zero_failures_shows_no_failures(sre: Sre, store_path: Path) -> None:
    store = ("--store", str(store_path))
    sre("incident", "open", "--component", "host", "--planned",
        "--started", "2026-11-01T00:00:00Z", *store)  # fmt: skip
    args = ("reliability", "report", "--since", "2026-11-01", "--until", "2026-11-08", *store)
    code, out, err = sre(*args)
    assert code == 0, err
    assert "no failures" in out
    code, out, _ = sre(*args, "--json")
    fleet = json.loads(out)["fleet"]
    assert fleet["mtbf_seconds"] is None
    assert fleet["availability"] == 1.0
    assert "NaN" not in out
    assert "Infinity" not in out


def test_plan_json_keys_and_values(sre: Sre) -> None:
    code, out, err = sre("reliability", "plan", "--mtbf", "24h", "--checkpoint-cost", "5m",
                         "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert {"young_seconds", "daly_seconds", "job_mtbf_seconds", "interruption_probability",
            "goodput_daly", "run_length_seconds"} <= set(data)  # fmt: skip
    assert data["young_seconds"] == pytest.approx(7200)
    assert abs(data["daly_seconds"] / 60 - 117) <= 0.5
    assert data["run_length_seconds"] == 86400
    code, out, err = sre("reliability", "plan", "--gpus", "16384", "--gpu-mtbf", "50000h",
                         "--checkpoint-cost", "90s", "--restart-cost", "0", "--run-length", "7d",
                         "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["job_mtbf_seconds"] == pytest.approx(50000 * 3600 / 16384)
    assert data["restart_cost_seconds"] == 0
    code, out, err = sre("reliability", "plan", "--mtbf", "6h", "--checkpoint-cost", "5m")
    assert code == 0, err
    assert "Daly" in out
    assert "Young" in out


def test_plan_takes_the_component_mtbf_from_the_store(sre: Sre, store_path: Path) -> None:
    """--component plans with the MTBF `sre reliability report` shows for that component."""
    store = ("--store", str(store_path))
    window = ("--since", "2026-09-22T03:14:00Z", "--until", "2026-11-21")
    code, _, err = sre("incident", "import", "--example", *store)
    assert code == 0, err
    code, out, err = sre("reliability", "report", *window, "--json", *store)
    assert code == 0, err
    gpu = json.loads(out)["components"]["gpu"]
    code, out, err = sre("reliability", "plan", "--component", "gpu", *window,
                         "--checkpoint-cost", "5m", "--json", *store)  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["job_mtbf_seconds"] == gpu["mtbf_seconds"]
    assert data["mtbf_from"] == {
        "component": "gpu",
        "since": "2026-09-22T03:14:00Z",
        "until": "2026-11-21T00:00:00Z",
        "failures": gpu["failures"],
        "mtbf_seconds": gpu["mtbf_seconds"],
    }
    code, out, err = sre("reliability", "plan", "--mtbf", f"{gpu['mtbf_seconds']:g}s",
                         "--checkpoint-cost", "5m", "--json")  # fmt: skip
    assert code == 0, err
    typed = json.loads(out)
    assert typed["daly_seconds"] == pytest.approx(data["daly_seconds"])
    assert typed["mtbf_from"] is None
    code, out, err = sre("reliability", "plan", "--component", "gpu", *window,
                         "--checkpoint-cost", "5m", *store)  # fmt: skip
    assert code == 0, err
    assert "MTBF from" in out and f"{gpu['failures']} failures" in out


@pytest.mark.parametrize(
    ("component", "window"),
    [
        pytest.param("dimm", (), id="component-never-failed"),
        pytest.param("gpu", ("--since", "2026-11-20", "--until", "2026-11-21"), id="quiet-window"),
        pytest.param("host", ("--since", "2026-11-03", "--until", "2026-11-04"), id="planned-only"),
    ],
)
def test_plan_component_without_failures_is_one_line_error(
    sre: Sre, store_path: Path, component: str, window: tuple[str, ...]
) -> None:
    store = ("--store", str(store_path))
    sre("incident", "open", "--component", "host", "--planned", "--started",
        "2026-11-03T10:00:00Z", *store)  # fmt: skip
    code, _, err = sre("incident", "import", "--example", *store)
    assert code == 0, err
    code, out, err = sre("reliability", "plan", "--component", component, *window,
                         "--checkpoint-cost", "5m", *store)  # fmt: skip
    assert (code, out) == (2, "")
    assert_one_line_error(
        err, "--component", f"no unplanned incidents of component {component!r}", "--mtbf"
    )


@pytest.mark.parametrize(
    ("args", "code", "needles"),
    [
        pytest.param(
            ("reliability", "plan", "--checkpoint-cost", "5m"), 2, ("--mtbf",), id="plan-no-mtbf"
        ),
        pytest.param(
            ("reliability", "plan", "--mtbf", "3h", "--gpus", "8", "--checkpoint-cost", "5m"),
            2, ("not both",), id="plan-mtbf-and-gpus",
        ),
        pytest.param(
            ("reliability", "plan", "--mtbf", "3h", "--component", "gpu", "--checkpoint-cost",
             "5m"),
            2, ("not both",), id="plan-mtbf-and-component",
        ),
        pytest.param(
            ("reliability", "plan", "--mtbf", "3h", "--since", "2026-11-01", "--checkpoint-cost",
             "5m"),
            2, ("--since", "--component"), id="plan-window-without-component",
        ),
        pytest.param(
            ("reliability", "plan", "--component", "gpu", "--checkpoint-cost", "5m"),
            2, ("no incidents",), id="plan-component-empty-store",
        ),
        pytest.param(
            ("reliability", "plan", "--component", "gpu", "--since", "x", "--checkpoint-cost",
             "5m"),
            2, ("--since",), id="plan-component-bad-since",
        ),
        pytest.param(
            ("reliability", "plan", "--gpus", "8", "--checkpoint-cost", "5m"),
            2, ("--gpu-mtbf",), id="plan-gpus-without-gpu-mtbf",
        ),
        pytest.param(
            ("reliability", "plan", "--mtbf", "3 hours", "--checkpoint-cost", "5m"),
            2, ("--mtbf", "invalid duration"), id="plan-bad-duration",
        ),
        pytest.param(
            ("reliability", "plan", "--mtbf", "3h"), 2, ("--checkpoint-cost",),
            id="plan-missing-checkpoint-cost",
        ),
        pytest.param(
            ("reliability", "plan", "--gpus", "0", "--gpu-mtbf", "1h", "--checkpoint-cost", "5m"),
            2, ("--gpus",), id="plan-zero-gpus",
        ),
        pytest.param(
            ("incident", "open", "--component", "gpu", "--started", "soon"),
            2, ("--started", "invalid timestamp 'soon'"), id="open-bad-started",
        ),
        pytest.param(
            ("incident", "open", "--component", "gpu", "--xid", "0"),
            2, ("--xid",), id="open-bad-xid",
        ),
        pytest.param(
            ("incident", "open", "--component", "gpu", "--started", "2026-11-02",
             "--detected", "2026-11-01"),
            2, ("--detected", "before started"), id="open-detected-before-started",
        ),
        pytest.param(("incident", "open"), 2, ("--component",), id="open-no-component"),
        pytest.param(("incident", "resolve", "42"), 2, ("no incident with id 42",),
                     id="resolve-unknown-id"),
        pytest.param(("incident", "resolve", "abc"), 2, ("ID",), id="resolve-non-integer-id"),
        pytest.param(("incident", "list", "--since", "x"), 2, ("--since",), id="list-bad-since"),
        pytest.param(("incident", "import"), 2, ("--example",), id="import-nothing"),
        pytest.param(("incident", "import", "/nonexistent/incidents.csv"), 2,
                     ("/nonexistent/incidents.csv", "cannot read"), id="import-missing-file"),
        pytest.param(("reliability", "report", "--since", "2026-11-02", "--until", "2026-11-01"),
                     2, ("--since", "window is empty"), id="report-reversed-window"),
        pytest.param(("reliability", "report", "--gpus", "-3"), 2, ("--gpus",),
                     id="report-negative-gpus"),
        pytest.param(("reliability", "report"), 2, ("no incidents",), id="report-empty-store"),
    ],
)  # fmt: skip
def test_errors_are_one_line_with_exit_code(
    sre: Sre, store_path: Path, args: tuple[str, ...], code: int, needles: tuple[str, ...]
) -> None:
    from sre_tools.store import Store

    Store(store_path).close()  # an empty store
    if args[0] == "incident" or args[1] == "report" or "--component" in args:
        args = (*args, "--store", str(store_path))
    got, out, err = sre(*args)
    assert got == code, (out, err)
    if err.startswith("Usage:"):
        # click usage errors: its usage line and hint, then one "Error: ..." line
        assert "Traceback" not in err
        [error] = [line for line in err.splitlines() if line.startswith("Error: ")]
        assert all(n in error for n in needles), err
        return
    assert_one_line_error(err, *needles)


def test_bad_csv_exit_2_names_file_row_field(sre: Sre, store_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "incidents.csv"
    path.write_text(csv_text(GOOD, GOOD, "2026-11-01T10:00:00Z,,gpu,n,0,hw,perhaps"))
    code, _, err = sre("incident", "import", str(path), "--store", str(store_path))
    assert code == 2
    assert_one_line_error(err, f"{path}: row 4: planned: invalid value 'perhaps'")
    path.write_bytes(b"started,resolved\xff\n")
    code, _, err = sre("incident", "import", str(path), "--store", str(store_path))
    assert code == 2
    assert_one_line_error(err, str(path), "not UTF-8")


def test_missing_store_is_runtime_failure(sre: Sre, tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    for args in (("incident", "list"), ("incident", "resolve", "1"), ("reliability", "report")):
        code, _, err = sre(*args, "--store", str(missing))
        assert code == 1
        assert_one_line_error(err, "store does not exist")
    assert not missing.exists()


def test_default_store_path_from_environment(
    sre: Sre, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SRE_STORE", str(tmp_path / "env.db"))
    assert sre("incident", "open", "--component", "gpu")[0] == 0
    assert (tmp_path / "env.db").exists()
