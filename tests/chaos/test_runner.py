"""The runner: dry run, rollbacks however a run ends, signals, SIGKILL and recover, the journal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sre_tools.chaos import journal as journal_module
from sre_tools.chaos.journal import read_events, to_ctk_journal
from sre_tools.chaos.model import parse_experiment
from sre_tools.chaos.runner import Runner, RunResult, recover
from sre_tools.chaos.safety import ALL_RUNS, FLEET_SESSION_LOCK, DrillRefused, Safety, Targets
from tests.chaos.conftest import DrillEnv, experiment, failing_action, unacknowledged_lines
from tests.helpers.postgres import PostgresServer

ONE = Targets(("n1",), ("n1",))


def tagged_lines(path: Path) -> int:
    """Drill lines that still count (see tests/chaos/conftest.py's experiment: its acks file)."""
    return unacknowledged_lines(path, path.with_name("drill-acks"))


def run(
    env: DrillEnv, doc: dict[str, Any], *, execute: bool = True, **kwargs: Any
) -> tuple[RunResult, list[dict[str, Any]]]:
    safety = Safety(env.store)
    try:
        runner = Runner(
            parse_experiment(doc),
            ONE,
            safety=safety,
            journal_dir=env.journals,
            execute=execute,
            operator="tester",
            reason="test",
            install_signals=False,
            poll_interval=0.02,
            **kwargs,
        )
        result = runner.run()
    finally:
        safety.close()
    return result, read_events(result.journal)


def events_of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_dry_run_touches_nothing_and_marks_everything_skipped(drill_env: DrillEnv) -> None:
    result, events = run(drill_env, experiment(drill_env.kernel_log), execute=False)
    assert result.status == "dry-run"
    assert not drill_env.kernel_log.exists()
    ends = events_of(events, "action-end") + events_of(events, "rollback-end")
    assert ends and {e["status"] for e in ends} == {"skipped"}
    assert not [e for e in events if e.get("status") == "succeeded"]
    assert events_of(events, "run-start")[0]["execute"] is False


def test_execute_injects_expects_and_rolls_back(drill_env: DrillEnv) -> None:
    result, events = run(drill_env, experiment(drill_env.kernel_log))
    assert (result.status, result.rollbacks_ok, result.restored) == ("passed", True, True)
    assert tagged_lines(drill_env.kernel_log) == 0
    assert events_of(events, "expectation")[0]["met"] is True
    assert events_of(events, "targets-resolved")[0]["nodes"] == ["n1"]
    kinds = [e["event"] for e in events]
    assert kinds.index("action-end") < kinds.index("rollback-end") < kinds.index("run-end")


def test_failed_hypothesis_skips_the_method_and_touches_nothing(drill_env: DrillEnv) -> None:
    """Nothing injected, nothing to roll back: a rollback on a node the method never reached
    could undo someone else's work (a real fault's drain, DCGM's real value)."""
    drill_env.kernel_log.write_text("NVRM: Xid (PCI:0000:3b:00): 79, old [sre-drill run=x]\n")
    result, events = run(drill_env, experiment(drill_env.kernel_log))
    assert result.status == "failed"
    assert not events_of(events, "action-start")
    assert not events_of(events, "rollback-start") and not events_of(events, "rollback-end")
    assert result.restored is None and result.rollbacks_ok
    assert tagged_lines(drill_env.kernel_log) == 1  # the old line is left as it was


def test_failed_action_rolls_back(drill_env: DrillEnv) -> None:
    doc = experiment(drill_env.kernel_log)
    doc["method"].append(failing_action())
    result, events = run(drill_env, doc)
    assert result.status == "error"
    assert events_of(events, "action-error")[0]["name"] == "fails"
    assert events_of(events, "rollback-end")[0]["status"] == "succeeded"
    assert tagged_lines(drill_env.kernel_log) == 0


def test_missed_expectation_fails_the_drill(drill_env: DrillEnv) -> None:
    doc = experiment(drill_env.kernel_log, within=0.2)
    doc["x-sre"]["expect"][0]["tolerance"] = {"type": "range", "range": [5, 10]}
    result, events = run(drill_env, doc)
    assert result.status == "failed"
    assert events_of(events, "expectation")[0]["met"] is False
    assert tagged_lines(drill_env.kernel_log) == 0


def test_abort_flag_stops_the_run_and_rolls_back(drill_env: DrillEnv) -> None:
    safety = Safety(drill_env.store)

    def on_event(record: dict[str, Any]) -> None:
        if record["event"] == "action-end":
            safety.set_abort(record["run_id"], "pager fired", "oncall")

    try:
        result, events = run(
            drill_env, experiment(drill_env.kernel_log, pause_after=30), on_event=on_event
        )
    finally:
        safety.close()
    assert result.status == "aborted"
    assert events_of(events, "abort")[0]["reason"] == "pager fired"
    assert events_of(events, "rollback-end")[0]["status"] == "succeeded"
    assert tagged_lines(drill_env.kernel_log) == 0


def test_fleet_abort_refuses_new_runs(drill_env: DrillEnv) -> None:
    safety = Safety(drill_env.store)
    try:
        safety.set_abort(ALL_RUNS, "freeze", "oncall")
    finally:
        safety.close()
    with pytest.raises(DrillRefused, match="abort switch is set"):
        run(drill_env, experiment(drill_env.kernel_log))
    assert not drill_env.journals.exists()


def test_stop_condition_stops_the_run(drill_env: DrillEnv) -> None:
    doc = experiment(drill_env.kernel_log, pause_after=30)
    probe = doc["x-sre"]["expect"][0]["probe"]
    doc["x-sre"]["stop_conditions"] = [{"name": "no-drill-lines", "probe": probe, "tolerance": 0}]
    result, events = run(drill_env, doc)
    assert result.status == "aborted"
    assert events_of(events, "stop-condition")[0]["name"] == "no-drill-lines"
    assert tagged_lines(drill_env.kernel_log) == 0


def test_precondition_refuses_before_anything_is_written(drill_env: DrillEnv) -> None:
    with pytest.raises(DrillRefused, match="budget"):
        run(drill_env, experiment(drill_env.kernel_log), preconditions=[lambda: "budget low"])
    assert not drill_env.journals.exists()


def test_every_event_is_fsynced(drill_env: DrillEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync

    def counting(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").endswith(".jsonl"):  # not the kernel-log writes
            synced.append(fd)
        real(fd)

    monkeypatch.setattr(journal_module.os, "fsync", counting)
    result, events = run(drill_env, experiment(drill_env.kernel_log))
    assert len(synced) == len(events)
    lines = result.journal.read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == [e["event"] for e in events]


def test_ctk_export(drill_env: DrillEnv) -> None:
    _, events = run(drill_env, experiment(drill_env.kernel_log))
    ctk = to_ctk_journal(events)
    assert ctk["status"] == "completed" and ctk["deviated"] is False
    assert ctk["experiment"]["title"] == "xid-inject"
    assert [r["status"] for r in ctk["run"]] == ["succeeded"]
    assert [r["status"] for r in ctk["rollbacks"]] == ["succeeded"]
    assert ctk["steady_states"]["before"]["steady_state_met"] is True
    assert ctk["steady_states"]["after"]["steady_state_met"] is True
    json.dumps(ctk)


def test_a_torn_last_line_is_ignored(drill_env: DrillEnv) -> None:
    result, events = run(drill_env, experiment(drill_env.kernel_log))
    with result.journal.open("a") as fh:
        fh.write('{"event": "rollback-')
    assert read_events(result.journal) == events


# --- real processes and signals --------------------------------------------------------------


def start_drill(env: DrillEnv, doc: dict[str, Any]) -> subprocess.Popen[str]:
    path = env.write(doc)
    argv = [sys.executable, "-m", "sre_tools.cli.main", "drill", "run", str(path)]
    argv += ["--inventory", str(env.inventory), "--targets", "n1", "--execute"]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy()
    )


def wait_for_injection(env: DrillEnv, proc: subprocess.Popen[str]) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for path in env.journals.glob("*.jsonl") if env.journals.exists() else ():
            if '"action-end"' in path.read_text():
                return path.stem
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    raise AssertionError("the drill never injected")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_rolls_back(drill_env: DrillEnv, signum: int) -> None:
    proc = start_drill(drill_env, experiment(drill_env.kernel_log, pause_after=30))
    run_id = wait_for_injection(drill_env, proc)
    assert tagged_lines(drill_env.kernel_log) == 1
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 4, err
    events = read_events(drill_env.journals / f"{run_id}.jsonl")
    end = events_of(events, "run-end")[0]
    assert end["status"] == "interrupted" and end["restored"] is True
    assert tagged_lines(drill_env.kernel_log) == 0
    safety = Safety(drill_env.store)
    try:
        assert safety.holder() is None
    finally:
        safety.close()


def test_recover_after_sigkill(drill_env: DrillEnv, sre: Any) -> None:
    proc = start_drill(drill_env, experiment(drill_env.kernel_log, pause_after=30))
    run_id = wait_for_injection(drill_env, proc)
    proc.kill()
    proc.communicate(timeout=20)
    assert tagged_lines(drill_env.kernel_log) == 1
    assert not events_of(read_events(drill_env.journals / f"{run_id}.jsonl"), "run-end")

    code, out, err = sre("drill", "run", "xid-inject", "--inventory", str(drill_env.inventory))
    assert code == 1 and f"sre drill recover {run_id}" in err  # the stale lock, reported

    code, out, _ = sre("drill", "recover", run_id)
    assert code == 0, out
    assert tagged_lines(drill_env.kernel_log) == 0
    events = read_events(drill_env.journals / f"{run_id}.jsonl")
    assert events_of(events, "recover") and events_of(events, "run-end")[0]["restored"] is True

    code, out, _ = sre("drill", "recover", run_id)
    assert code == 0 and "nothing-to-recover" in out


def test_recover_is_a_no_op_after_a_clean_run(drill_env: DrillEnv) -> None:
    result, events = run(drill_env, experiment(drill_env.kernel_log))
    safety = Safety(drill_env.store)
    try:
        again = recover(result.journal, safety=safety)
    finally:
        safety.close()
    assert again.status == "nothing-to-recover"
    assert read_events(result.journal) == events


def test_a_run_that_loses_its_lock_session_stops_and_rolls_back(
    drill_env: DrillEnv, pg_server: PostgresServer
) -> None:
    """PostgreSQL: the run's lock session ends mid-run (a network cut, a DBA's
    pg_terminate_backend). Another run could now take the lock, so this one stops at its next
    abort poll and rolls back, journaled."""
    import psycopg

    url = pg_server.database()
    safety = Safety(url)

    def on_event(record: dict[str, Any]) -> None:
        if record["event"] == "action-end":
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                    "AND granted AND objid = %s",
                    (FLEET_SESSION_LOCK & 0xFFFFFFFF,),
                )

    try:
        runner = Runner(
            parse_experiment(experiment(drill_env.kernel_log, pause_after=30)),
            ONE,
            safety=safety,
            journal_dir=drill_env.journals,
            execute=True,
            operator="tester",
            reason="test",
            install_signals=False,
            poll_interval=0.02,
            on_event=on_event,
        )
        started = time.monotonic()
        result = runner.run()
    finally:
        safety.close()
    events = read_events(result.journal)
    assert time.monotonic() - started < 20
    assert result.status == "aborted"
    assert "lock's database session was lost" in events_of(events, "abort")[0]["reason"]
    assert events_of(events, "rollback-end")[0]["status"] == "succeeded"
    assert tagged_lines(drill_env.kernel_log) == 0
