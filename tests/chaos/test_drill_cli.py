"""``sre drill``: list, show, validate, run, abort, status, journal on the catalog."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.conftest import DrillEnv, experiment

Sre = Any


def test_list_show_validate_the_catalog(drill_env: DrillEnv, sre: Sre) -> None:
    code, out, _ = sre("drill", "list", "--json")
    assert code == 0
    assert {"node-drain", "xid-inject"} <= {d["name"] for d in json.loads(out)}
    for name in ("node-drain", "xid-inject"):
        code, out, _ = sre("drill", "show", name)
        assert code == 0 and "rollbacks:" in out
        code, out, _ = sre("drill", "validate", name)
        assert code == 0 and ": ok (" in out
    code, out, _ = sre("drill", "show", "xid-inject", "--json")
    assert json.loads(out)["x-sre"]["blast_radius"]["max_nodes"] == 1


def test_unknown_drill_and_bad_file_exit_2_with_one_line(drill_env: DrillEnv, sre: Sre) -> None:
    code, _, err = sre("drill", "show", "no-such-drill")
    assert code == 2 and "no drill named 'no-such-drill'" in err
    doc = experiment(drill_env.kernel_log)
    doc["x-sre"]["blast_radius"]["max_nodes"] = -1
    bad = drill_env.write(doc, "bad.yaml")
    code, _, err = sre("drill", "validate", str(bad))
    assert code == 2
    assert err.count("\n") == 1
    assert f"{bad}: x-sre.blast_radius.max_nodes: must be an integer >= 1" in err


def test_dry_run_prints_targets_first_and_exits_0(drill_env: DrillEnv, sre: Sre) -> None:
    code, out, _ = sre(
        "drill",
        "run",
        "xid-inject",
        "--inventory",
        str(drill_env.inventory),
        "--targets",
        "n2",
        "--var",
        f"kernel_log={drill_env.kernel_log}",
    )
    assert code == 0
    assert out.splitlines()[0] == "drill xid-inject (dry run) on: n2"
    assert "dry-run" in out and not drill_env.kernel_log.exists()


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        pytest.param("login-01", "not in the chaos_targets allowlist: login-01", id="allowlist"),
        pytest.param("n1,n2", "above the blast radius cap of 1", id="blast-radius"),
    ],
)
def test_targets_refused(drill_env: DrillEnv, sre: Sre, targets: str, message: str) -> None:
    doc = experiment(drill_env.kernel_log)
    doc["x-sre"]["blast_radius"] = {"mode": "ALL", "max_nodes": 1}
    path = drill_env.write(doc)
    code, _, err = sre(
        "drill",
        "run",
        str(path),
        "--inventory",
        str(drill_env.inventory),
        "--targets",
        targets,
        "--execute",
    )
    assert code == 2 and message in err
    assert not drill_env.kernel_log.exists() and not drill_env.journals.exists()


def test_execute_json_journal_and_ctk_export(drill_env: DrillEnv, sre: Sre) -> None:
    path = drill_env.write(experiment(drill_env.kernel_log))
    code, out, err = sre(
        "drill",
        "run",
        str(path),
        "--inventory",
        str(drill_env.inventory),
        "--targets",
        "n1",
        "--execute",
        "--json",
        "--reason",
        "game day",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "passed" and result["targets"] == ["n1"]
    code, out, _ = sre("drill", "journal", result["run_id"])
    events = [json.loads(line) for line in out.splitlines()]
    assert events[0]["reason"] == "game day" and events[-1]["event"] == "run-end"
    code, out, _ = sre("drill", "journal", result["run_id"], "--ctk")
    assert json.loads(out)["status"] == "completed"
    code, out, _ = sre("drill", "status", "--json")
    status = json.loads(out)
    assert status["lock"] is None and status["runs"][0]["status"] == "passed"


@pytest.mark.parametrize(
    "run_id",
    ["../escape", "a/b", "run\n", "_x", "r" * 65, ""],
    ids=["dotdot", "slash", "newline", "underscore-first", "too-long", "empty"],
)
def test_journal_refuses_a_run_id_that_is_not_one(
    drill_env: DrillEnv, sre: Sre, run_id: str
) -> None:
    code, out, err = sre("drill", "journal", run_id)
    assert code == 2 and out == "", err
    assert err.startswith("sre: error: RUN_ID: not a valid run id") and err.count("\n") == 1, err


def test_failed_drill_exits_3(drill_env: DrillEnv, sre: Sre) -> None:
    drill_env.kernel_log.write_text("leftover [sre-drill run=old]\n")
    path = drill_env.write(experiment(drill_env.kernel_log))
    code, out, _ = sre(
        "drill", "run", str(path), "--inventory", str(drill_env.inventory), "--execute"
    )
    assert code == 3 and "failed" in out


def test_abort_all_refuses_new_runs_until_cleared(drill_env: DrillEnv, sre: Sre) -> None:
    code, _, err = sre("drill", "abort", "--all")
    assert code == 2 and "--reason" in err
    code, out, _ = sre("drill", "abort", "--all", "--reason", "incident in progress")
    assert code == 0
    args = ("drill", "run", "xid-inject", "--inventory", str(drill_env.inventory))
    code, _, err = sre(*args)
    assert code == 1 and "abort switch is set (incident in progress" in err
    code, out, _ = sre("drill", "status")
    assert "abort flag: *: incident in progress" in out
    assert sre("drill", "abort", "--all", "--clear")[0] == 0
    assert sre(*args)[0] == 0


def fake_slurm(bin_dir: Path, state: Path) -> tuple[Path, Path]:
    """sinfo and scontrol stand-ins that keep one node's state and reason in ``state``."""
    bin_dir.mkdir()
    state.write_text("idle|none\n")
    sinfo = bin_dir / "sinfo"
    sinfo.write_text(
        "#!/bin/sh\nIFS='|' read -r s r < " + str(state) + "\n"
        'case "$*" in *%T*) echo "$s";; *) echo "$r";; esac\n'
    )
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(
        "#!/bin/sh\n"
        'case "$*" in *State=DRAIN*) r=$(echo "$*" | sed "s/.*Reason=//"); '
        'echo "drained|$r" > ' + str(state) + ";;\n"
        "  *State=RESUME*) echo 'idle|none' > " + str(state) + ";;\nesac\n"
    )
    for f in (sinfo, scontrol):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    return sinfo, scontrol


def test_node_drain_executes_and_resumes(drill_env: DrillEnv, sre: Sre) -> None:
    state = drill_env.root / "slurm-state"
    sinfo, scontrol = fake_slurm(drill_env.root / "bin", state)
    code, out, err = sre(
        "drill",
        "run",
        "node-drain",
        "--inventory",
        str(drill_env.inventory),
        "--targets",
        "n3",
        "--execute",
        "--json",
        "--var",
        f"sinfo={sinfo}",
        "--var",
        f"scontrol={scontrol}",
    )
    assert code == 0, err
    assert json.loads(out)["status"] == "passed"
    assert state.read_text() == "idle|none\n"
    code, out, _ = sre("drill", "journal", json.loads(out)["run_id"])
    drained = [json.loads(x) for x in out.splitlines() if '"drain-node"' in x]
    assert drained[-1]["output"].startswith("sre:drill run=drill-")


@pytest.mark.parametrize(
    "damage",
    [
        {"experiment": 5},
        {"nodes": "n1"},
        {"ts": 7},
        {"status": ["passed"]},
    ],
    ids=["experiment-not-an-object", "nodes-not-a-list", "ts-not-text", "status-not-text"],
)
def test_a_damaged_journal_is_skipped_by_status_and_refused_by_journal(
    drill_env: DrillEnv, sre: Sre, damage: dict[str, object]
) -> None:
    """A journal edited by hand or damaged: `drill status` lists the other runs (was: an
    AttributeError for them all), `drill journal` says which line, in one line, exit 2."""
    path = drill_env.write(experiment(drill_env.kernel_log))
    runs = []
    for _ in range(2):
        code, out, err = sre("drill", "run", str(path), "--inventory", str(drill_env.inventory),
                             "--targets", "n1", "--execute", "--json")  # fmt: skip
        assert code == 0, err
        runs.append(json.loads(out)["run_id"])
    journal = next(drill_env.journals.glob(f"{runs[0]}.jsonl"))
    lines = journal.read_text().splitlines()
    first = json.loads(lines[0])
    target = 0 if "experiment" in damage or "ts" in damage else None
    if "nodes" in damage:
        target = next(i for i, x in enumerate(lines) if '"targets-resolved"' in x)
    if "status" in damage:
        target = next(i for i, x in enumerate(lines) if '"run-end"' in x)
    assert target is not None and first["event"] == "run-start"
    record = json.loads(lines[target])
    record.update(damage)
    lines[target] = json.dumps(record)
    journal.write_text("\n".join(lines) + "\n")
    code, out, err = sre("drill", "status", "--json")
    assert code == 0, err
    assert [r["run_id"] for r in json.loads(out)["runs"]] == [runs[1]]
    code, out, err = sre("drill", "journal", runs[0], "--ctk")
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert f"line {target + 1}: " in err and "Traceback" not in err
