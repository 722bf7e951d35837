"""Measured times: expectations with ``measures``, the journal's times, rows in the store,
``sre drill report`` and the drills section of ``sre reliability report``."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest

from sre_tools.chaos.journal import read_events
from sre_tools.chaos.model import parse_experiment
from sre_tools.chaos.results import drill_report, load_runs, record_run
from sre_tools.chaos.runner import Runner, RunResult
from sre_tools.chaos.safety import Safety, Targets
from sre_tools.exceptions import StoreError, ValidationError
from sre_tools.store import Store
from sre_tools.transport import Result
from tests.chaos.conftest import DrillEnv, experiment
from tests.chaos.test_runner import start_drill, tagged_lines, wait_for_injection

Sre = Any


def proc(name: str) -> dict[str, Any]:
    return {"type": "process", "path": name}


def check(name: str, measures: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": f"{name}-seen",
        "probe": {"type": "probe", "name": name, "provider": proc(name)},
        "tolerance": 0,
        "within": 30,
        "poll": 1,
    }
    if measures:
        out["measures"] = measures
    return out


# A node on a fake clock: the fault is seen by 'detect' 7 s after it is injected and by 'alert'
# after 3 s; the rollback takes 4 s; the steady state holds before the fault and after rollback.
TIMED = {
    "title": "timed",
    "steady-state-hypothesis": {
        "title": "no fault",
        "probes": [{"type": "probe", "name": "steady", "provider": proc("steady"), "tolerance": 0}],
    },
    "method": [{"type": "action", "name": "inject", "provider": proc("inject")}],
    "rollbacks": [{"type": "action", "name": "restore", "provider": proc("restore")}],
    "x-sre": {"expect": [check("detect", "detect"), check("alert", "alert"), check("plain")]},
}


class FakeNode:
    target = "fake"

    def __init__(self) -> None:
        self.now = 1_000_000.0
        self.injected: float | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def run(self, argv: Any, timeout: float, input: bytes | None = None) -> Result:
        name = argv[0]
        since = None if self.injected is None else self.now - self.injected
        ok = {
            "true": True,
            "steady": self.injected is None,
            "inject": True,
            "detect": since is not None and since >= 7,
            "alert": since is not None and since >= 3,
            "plain": True,
            "restore": True,
        }[name]
        if name == "inject":
            self.injected = self.now
        elif name == "restore":
            self.now += 4
            self.injected = None
        return Result(0 if ok else 1, b"", b"")

    def write_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        raise AssertionError("not used")

    def read_file(self, path: str, max_bytes: int = 0) -> bytes:
        raise AssertionError("not used")

    def close(self) -> None:
        pass

    def __enter__(self) -> FakeNode:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def timed_run(env: DrillEnv, doc: dict[str, Any] = TIMED) -> RunResult:
    node = FakeNode()
    safety = Safety(env.store)
    try:
        return Runner(
            parse_experiment(doc),
            Targets(("n1",), ("n1",)),
            safety=safety,
            journal_dir=env.journals,
            execute=True,
            transport_factory=lambda name: node,
            install_signals=False,
            clock=node.clock,
            sleep=node.sleep,
            source="drills/timed.yaml",
        ).run()
    finally:
        safety.close()


def test_measures_is_parsed_and_written_back() -> None:
    exp = parse_experiment(TIMED)
    assert [c.measures for c in exp.expect] == ["detect", "alert", None]
    assert parse_experiment(exp.to_ctk()) == exp
    assert "measures" not in exp.to_ctk()["x-sre"]["expect"][2]


@pytest.mark.parametrize(
    ("where", "message"),
    [
        pytest.param("expect", "x-sre.expect[0].measures: must be one of detect", id="unknown"),
        pytest.param("stop_conditions", "x-sre.stop_conditions[0].measures", id="stop"),
    ],
)
def test_bad_measures_names_the_field(where: str, message: str) -> None:
    doc = json.loads(json.dumps(TIMED))
    doc["x-sre"] = {
        where: [{**check("detect"), "measures": "bogus" if where == "expect" else "detect"}]
    }
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_experiment(doc)


def test_times_are_measured_from_the_fault_and_the_rollback(drill_env: DrillEnv) -> None:
    result = timed_run(drill_env)
    assert result.status == "passed", result.details
    events = read_events(result.journal)
    seen = {e["name"]: e for e in events if e["event"] == "expectation"}
    # Polled side by side: alert is seen at 3 s, not after detect's 7 s.
    assert seen["alert-seen"]["elapsed"] == 3.0 and seen["alert-seen"]["measures"] == "alert"
    assert seen["detect-seen"]["elapsed"] == 7.0 and seen["detect-seen"]["measures"] == "detect"
    assert seen["plain-seen"]["elapsed"] == 0.0 and seen["plain-seen"]["measures"] is None
    end = next(e for e in events if e["event"] == "run-end")
    assert end["recover_seconds"] == 4.0


def test_run_rows_in_the_store_and_the_report(drill_env: DrillEnv) -> None:
    timed_run(drill_env)
    second = timed_run(drill_env)
    with Store(drill_env.store) as store:
        assert record_run(store, read_events(second.journal))
        record_run(store, read_events(second.journal))  # rewritten, not doubled
        runs = load_runs(store)
    assert [r.run_id for r in runs] == [second.run_id]
    [row] = drill_report(runs)
    assert (row["drill"], row["runs"], row["statuses"]) == ("timed", 1, {"passed": 1})
    assert row["times"]["detect"] == {
        "count": 1, "median_seconds": 7.0, "max_seconds": 7.0, "mean_seconds": 7.0
    }  # fmt: skip
    assert row["times"]["recover"]["median_seconds"] == 4.0
    assert row["times"]["drain"]["count"] == 0
    assert {e["name"]: (e["passed"], e["failed"]) for e in row["expectations"]} == {
        "alert-seen": (1, 0),
        "detect-seen": (1, 0),
        "plain-seen": (1, 0),
    }


def test_a_dry_run_is_not_recorded(drill_env: DrillEnv, sre: Sre) -> None:
    code, _, _ = sre("drill", "run", "xid-inject", "--inventory", str(drill_env.inventory),
                     "--var", f"kernel_log={drill_env.kernel_log}")  # fmt: skip
    assert code == 0
    code, out, _ = sre("drill", "report", "--json")
    assert (code, json.loads(out)) == (0, [])


def measured_doc(env: DrillEnv) -> dict[str, Any]:
    doc = experiment(env.kernel_log)
    doc["x-sre"]["expect"][0]["measures"] = "detect"
    return doc


def test_cli_run_records_and_reports(drill_env: DrillEnv, sre: Sre) -> None:
    path = drill_env.write(measured_doc(drill_env), "xid-measured.yaml")
    run = ("drill", "run", str(path), "--inventory", str(drill_env.inventory), "--execute")
    assert sre(*run)[0] == 0
    missed = measured_doc(drill_env)
    missed["x-sre"]["expect"][0].update(within=0.2, tolerance={"type": "range", "range": [5, 9]})
    drill_env.write(missed, "xid-measured.yaml")
    assert sre(*run)[0] == 3

    code, out, err = sre("drill", "report", "--json", "--since", "1h")
    assert code == 0, err
    [row] = json.loads(out)
    assert row["drill"] == "xid-measured" and row["statuses"] == {"failed": 1, "passed": 1}
    assert row["expectations"][0]["passed"] == 1 and row["expectations"][0]["failed"] == 1
    assert row["times"]["detect"]["count"] == 1  # only the met one has a time
    # A met expectation's time lies within its deadline (what the time means, not a speed goal).
    within = measured_doc(drill_env)["x-sre"]["expect"][0]["within"]
    assert 0 <= row["times"]["detect"]["median_seconds"] <= within
    assert row["times"]["recover"]["count"] == 2

    code, out, _ = sre("drill", "report")
    assert code == 0 and "xid-measured" in out
    assert "failed 1, passed 1" in out
    code, out, _ = sre("drill", "report", "--json", "--drill", "other")
    assert json.loads(out) == []
    code, out, _ = sre("drill", "report", "--json", "--since", "2099-01-01")
    assert json.loads(out) == []


def test_reliability_report_keeps_drills_apart(drill_env: DrillEnv, sre: Sre) -> None:
    path = drill_env.write(measured_doc(drill_env), "xid-measured.yaml")
    run = ("drill", "run", str(path), "--inventory", str(drill_env.inventory), "--execute")
    assert sre(*run)[0] == 0
    code, out, err = sre("reliability", "report", "--since", "2026-01-01", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["fleet"]["failures"] == 0 and data["fleet"]["mttr_seconds"] is None
    drills = data["drills"]
    assert drills["runs"] == 1 and drills["detect"]["count"] == 1
    assert drills["mttd_seconds"] is not None and drills["mttr_seconds"] is not None
    code, out, _ = sre("reliability", "report", "--since", "2026-01-01")
    assert "Measured by 1 chaos drill run(s) (not incidents)" in out
    assert "MTTD (to detect)" in out


@pytest.mark.parametrize("since", ["yesterday", "7x", "", "2026-13-01"])
def test_bad_since_is_one_line_exit_2(drill_env: DrillEnv, sre: Sre, since: str) -> None:
    code, _, err = sre("drill", "report", "--since", since)
    assert code == 2 and err.count("\n") == 1
    assert "--since: expected a duration (7d, 12h) or a timestamp" in err


def test_a_store_without_the_drill_tables(drill_env: DrillEnv, sre: Sre) -> None:
    old = drill_env.root / "old.db"
    Store(old).close()
    conn = sqlite3.connect(old)
    # As an older sre_tools wrote it: schema version 1, no drill tables.
    conn.executescript(
        "DROP TABLE drill_expectations; DROP TABLE drill_runs; DROP TABLE drill_lock; "
        "DROP TABLE drill_aborts; UPDATE meta SET value = '1' WHERE key = 'schema_version';"
    )
    conn.execute("INSERT INTO incidents (started, resolved, component) VALUES (100, 200, 'gpu')")
    conn.commit()
    conn.close()
    code, out, err = sre("reliability", "report", "--store", str(old), "--until", "@1000",
                         "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["fleet"]["failures"] == 1 and data["drills"]["runs"] == 0
    code, out, _ = sre("drill", "report", "--store", str(old))
    assert code == 0 and "no drill runs recorded" in out
    # Opened by this sre_tools, the old store gained the tables and kept its data.
    tables = {r[0] for r in sqlite3.connect(old).execute("SELECT name FROM sqlite_master")}
    assert {"drill_runs", "drill_expectations", "incidents"} <= tables
    # Read without migrating (a read-only look): no tables, no runs.
    with Store(drill_env.root / "fresh.db") as store:
        store.conn.executescript("DROP TABLE drill_expectations; DROP TABLE drill_runs;")
        assert load_runs(store) == []


def test_recover_records_the_run(drill_env: DrillEnv, sre: Sre) -> None:
    proc_ = start_drill(drill_env, experiment(drill_env.kernel_log, pause_after=30))
    run_id = wait_for_injection(drill_env, proc_)
    proc_.kill()
    proc_.communicate(timeout=20)
    assert json.loads(sre("drill", "report", "--json")[1]) == []  # killed: no run-end yet
    assert sre("drill", "recover", run_id)[0] == 0
    assert tagged_lines(drill_env.kernel_log) == 0
    [row] = json.loads(sre("drill", "report", "--json")[1])
    assert row["statuses"] == {"recovered": 1}
    assert row["times"]["recover"]["count"] == 1


def test_a_store_that_cannot_take_the_rows_is_a_store_error(drill_env: DrillEnv) -> None:
    result = timed_run(drill_env)
    with Store(drill_env.root / "odd.db") as store:
        store.conn.executescript(
            "DROP TABLE drill_expectations; DROP TABLE drill_runs; CREATE TABLE drill_runs (x);"
        )
        with pytest.raises(StoreError, match="cannot record drill run drill-"):
            record_run(store, read_events(result.journal))
