"""Allowlist, blast radius, the fleet lock (seen by a second connection and process) and abort."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from sre_tools.chaos.model import BlastMode, BlastRadius
from sre_tools.chaos.safety import (
    ALL_RUNS,
    DrillRefused,
    Safety,
    allowlist_from_data,
    check_preconditions,
    load_allowlist,
    resolve_targets,
)
from sre_tools.exceptions import ValidationError
from tests.chaos.conftest import DrillEnv

NODES = ("n1", "n2", "n3", "n4")


def test_allowlist_from_nested_inventory_group(drill_env: DrillEnv) -> None:
    assert load_allowlist(str(drill_env.inventory)) == ("n1", "n2", "n3")


def test_allowlist_from_config_file() -> None:
    assert allowlist_from_data({"chaos_targets": ["a", "b", "a"]}, "cfg.yml") == ("a", "b")


def test_inventory_without_the_group_is_refused(tmp_path: Path) -> None:
    inv = tmp_path / "hosts.yml"
    inv.write_text("all:\n  children:\n    gpu_nodes:\n      hosts:\n        n1:\n")
    with pytest.raises(ValidationError, match="no chaos_targets group"):
        load_allowlist(str(inv))


def test_targets_outside_the_allowlist_are_refused() -> None:
    with pytest.raises(ValidationError, match="not in the chaos_targets allowlist: login-01"):
        resolve_targets(["n1", "login-01"], NODES, BlastRadius(BlastMode.ALL, max_nodes=4))


@pytest.mark.parametrize(
    ("blast", "count"),
    [
        pytest.param(BlastRadius(BlastMode.ALL, max_nodes=4), 4, id="all"),
        pytest.param(BlastRadius(BlastMode.COUNT, 2, max_nodes=2), 2, id="count"),
        pytest.param(BlastRadius(BlastMode.PERCENT, 50, max_nodes=4), 2, id="percent"),
        pytest.param(BlastRadius(BlastMode.PERCENT, 1, max_nodes=1), 1, id="percent-at-least-one"),
    ],
)
def test_blast_radius_selects(blast: BlastRadius, count: int) -> None:
    targets = resolve_targets(None, NODES, blast, rng=random.Random(7))
    assert len(targets.selected) == count
    assert set(targets.selected) <= set(NODES)
    assert targets.candidates == NODES


def test_hard_cap_refuses_extra_targets() -> None:
    with pytest.raises(ValidationError, match="above the blast radius cap of 1") as info:
        resolve_targets(["n1", "n2"], NODES, BlastRadius(BlastMode.ALL, max_nodes=1))
    assert info.value.field == "x-sre.blast_radius"


def test_lock_refuses_a_second_run_and_is_released(store_location: Path | str) -> None:
    first, second = Safety(store_location), Safety(store_location)
    try:
        first.acquire("run-a", "alice")
        with pytest.raises(DrillRefused, match="another drill holds the fleet lock: run run-a"):
            second.acquire("run-b", "bob")
        first.release("run-a")
        second.acquire("run-b", "bob")
    finally:
        first.close()
        second.close()


def test_a_second_process_sees_the_lock(store_location: Path | str) -> None:
    safety = Safety(store_location)
    try:
        safety.acquire("run-a", "alice")
        code = (
            "import sys; from sre_tools.chaos.safety import Safety\n"
            "h = Safety(sys.argv[1]).holder(); print(h.run_id, h.stale)"
        )
        out = subprocess.run(
            [sys.executable, "-c", code, str(store_location)],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
        assert out.split() == ["run-a", "False"]
    finally:
        safety.close()


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_stale_lock_is_reported_not_stolen(store_location: Path | str) -> None:
    safety = Safety(store_location)
    try:
        with safety.store.transaction() as cur:
            cur.execute(
                "INSERT INTO drill_lock VALUES ('fleet', 'run-dead', ?, ?, 'alice', 0)",
                (_dead_pid(), safety.host),
            )
        holder = safety.holder()
        assert holder is not None and holder.stale
        with pytest.raises(DrillRefused, match=r"stale.*sre drill recover run-dead.*--break-stale"):
            safety.acquire("run-b", "bob")
        replaced = safety.acquire("run-b", "bob", break_stale=True)
        assert replaced is not None and replaced.run_id == "run-dead"
    finally:
        safety.close()


def test_lock_held_on_another_host_is_never_stale(drill_env: DrillEnv) -> None:
    """SQLite: a pid on another host cannot be checked, so its lock is never stale. (On
    PostgreSQL a holder's liveness is its session: tests/store, the dead holder.)"""
    safety = Safety(drill_env.store)
    try:
        with safety.store.transaction() as cur:
            cur.execute(
                "INSERT INTO drill_lock VALUES ('fleet', 'run-x', ?, 'other-host', 'a', 0)",
                (_dead_pid(),),
            )
        with pytest.raises(DrillRefused, match="another drill holds"):
            safety.acquire("run-b", "bob", break_stale=True)
    finally:
        safety.close()


def test_abort_flags(store_location: Path | str) -> None:
    safety = Safety(store_location)
    try:
        safety.set_abort("run-a", "pager fired", "alice")
        assert safety.abort_for("run-a") is not None
        assert safety.abort_for("run-b") is None
        safety.set_abort(ALL_RUNS, "stop everything", "alice")
        assert safety.abort_for("run-b") is not None
        safety.clear_abort(ALL_RUNS)
        assert safety.abort_for("run-b") is None
    finally:
        safety.close()


def test_preconditions() -> None:
    check_preconditions([lambda: None])
    with pytest.raises(DrillRefused, match="precondition failed: budget low"):
        check_preconditions([lambda: None, lambda: "budget low"])
