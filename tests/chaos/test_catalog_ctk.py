"""Chaos Toolkit both ways: ``chaos validate`` (the real CLI of the ``chaostoolkit`` package)
accepts every catalog drill as ``sre drill show NAME --json`` exports it, and a hand-written
Chaos Toolkit experiment runs under ``sre drill run --execute`` with its rollback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from sre_tools.chaos import catalog
from tests.chaos.conftest import DrillEnv

REPO = Path(__file__).resolve().parents[2]
HANDWRITTEN = REPO / "tests/fixtures/chaos/ctk-handwritten.json"
CHAOS = Path(sys.executable).parent / "chaos"

Sre = Callable[..., tuple[int, str, str]]


def chaos(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    if not CHAOS.exists():
        pytest.fail(
            f"{CHAOS} missing: install the test extra (pip install -e '.[dev,chaos]')",
            pytrace=False,
        )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [str(CHAOS), "--no-log-file", "--no-version-check", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("name", catalog.names())
def test_chaos_validate_accepts_the_exported_drill(name: str, sre: Sre, tmp_path: Path) -> None:
    code, out, _ = sre("drill", "show", name, "--json")
    assert code == 0
    path = tmp_path / f"{name}.json"
    path.write_text(out)
    assert "x-sre" in json.loads(out)
    done = chaos("validate", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "experiment syntax and semantic look valid" in done.stdout + done.stderr


def test_chaos_validate_accepts_the_handwritten_experiment(tmp_path: Path) -> None:
    done = chaos("validate", str(HANDWRITTEN), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_handwritten_experiment_runs_under_sre_drill_with_its_rollback(
    drill_env: DrillEnv, sre: Sre
) -> None:
    allowlist = drill_env.root / "targets.yml"
    allowlist.write_text("chaos_targets: [n1]\n")
    workdir = drill_env.root / "work"
    workdir.mkdir()
    code, out, err = sre(
        "drill",
        "run",
        str(HANDWRITTEN),
        "--inventory",
        str(allowlist),
        "--execute",
        "--reason",
        "ctk compatibility",
        "--var",
        f"workdir={workdir}",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert (result["status"], result["rollbacks_ok"], result["restored"]) == (
        "passed",
        True,
        True,
    )
    assert not (workdir / "fault").exists()
    events = drill_env.journal_events(result["run_id"])
    ends = {
        (e["event"], e["name"]): e["status"]
        for e in events
        if e["event"] in ("action-end", "rollback-end")
    }
    assert ends == {
        ("action-end", "create-fault-file"): "succeeded",
        ("action-end", "touch-is-installed"): "succeeded",
        ("rollback-end", "remove-fault-file"): "succeeded",
    }


def test_chaos_run_runs_our_python_provider_on_the_local_machine(tmp_path: Path) -> None:
    """The other way: ``chaos run`` imports and calls ``sre_tools.chaos.probes`` (no transport
    given: the local machine). Chaos Toolkit checks the steady state again before its rollbacks,
    with the fault still in place, so it reports ``deviated``; ``sre drill`` judges it after."""
    done = chaos("run", "--var", f"workdir={tmp_path}", str(HANDWRITTEN), cwd=tmp_path)
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "completed" and journal["deviated"] is True, done.stderr
    statuses = {r["activity"]["name"]: r["status"] for r in journal["run"] + journal["rollbacks"]}
    assert statuses == {
        "create-fault-file": "succeeded",
        "touch-is-installed": "succeeded",
        "remove-fault-file": "succeeded",
    }
    touch = next(r for r in journal["run"] if r["activity"]["name"] == "touch-is-installed")
    assert touch["output"] is True
    assert not (tmp_path / "fault").exists()
