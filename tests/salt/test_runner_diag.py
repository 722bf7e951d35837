"""The runner's recovery after a GPU reset (salt/_runners/sre_remediate.py): the engine needs a
passing level-2 DCGM diagnostic, so the recovery asks the minion for ``gpu.diag`` (a recording
stand-in here), with the master's node name, and hands the answer to ``try_resume``. A recovery
that needs no diagnostic never asks for one. Engine over the fake Slurm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sre_tools.health.model import Action
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.model import RemediationRequest
from sre_tools.remediation.slurm import SlurmClient
from tests.helpers.reports import diag_run, node_report
from tests.remediation.fakes import Clock, FakeSlurm, Notes, RecordingRunner
from tests.salt.test_reactor import RUNNER

RECOVERED = "salt/beacon/gpu01/gpu_health/sre/gpu/health/ok"
RECOVERY = {"minion": "gpu01", "severity": "ok", "remediation": None, "node": "gpu01"}


def rig(tmp_path: Path) -> tuple[Remediator, Clock]:
    clock = Clock()
    engine = Remediator(
        RemediationConfig(node_exec="local", cooldown_seconds=0),
        SlurmClient(FakeSlurm.cluster({"gpu": [f"gpu{i:02d}" for i in range(1, 9)]}), timeout=5),
        tmp_path / "state.db",
        tmp_path / "audit.jsonl",
        clock=clock,
        runner=RecordingRunner(),
        notifier=Notes(),
        dry_run=False,
    )
    return engine, clock


def drain_for(engine: Remediator, action: Action) -> None:
    request = RemediationRequest(
        node="gpu01", action=action, event_id=f"ev-{action.value}", gpus=(0,), source="test"
    )
    assert engine.handle(request).acted


class Minion:
    """gpu.health and gpu.diag answers of a minion; records what was asked."""

    def __init__(self, clock: Clock, diag: str | None = "ok"):
        self.clock = clock
        self.diag = diag
        self.asked: list[tuple[str, dict[str, Any]]] = []

    def health(self, minion: str) -> tuple[dict[str, Any] | None, str]:
        self.asked.append(("gpu.health", {}))
        return node_report("gpu01", self.clock()).to_dict(), ""

    def run_diag(self, minion: str, kwargs: Any) -> tuple[dict[str, Any] | None, str]:
        self.asked.append(("gpu.diag", dict(kwargs)))
        if self.diag is None:
            return None, "minion 'gpu01' did not answer gpu.diag"
        run = diag_run(str(kwargs["node"]), self.clock(), int(kwargs["level"]), severity=self.diag)
        return {**run, "runs": [run]}, ""


def recover(engine: Remediator, minion: Minion, **settings: Any) -> dict[str, Any]:
    return RUNNER.handle_with(
        {"resume": True, **settings},
        RECOVERED,
        RECOVERY,
        remediator=engine,
        fresh_check=minion.health,
        diag_check=minion.run_diag,
    )


@pytest.mark.parametrize(
    ("diag", "code"),
    [("ok", "resumed"), ("crit", "diag_failed"), (None, "no_diagnostic")],
)
def test_recovery_after_a_reset_runs_level_2_first(
    tmp_path: Path, diag: str | None, code: str
) -> None:
    engine, clock = rig(tmp_path)
    drain_for(engine, Action.RESET_GPU)
    clock.advance(60)
    minion = Minion(clock, diag)
    decision = recover(engine, minion, resume_diag={"profile": "h100-sxm-8"})
    assert decision["code"] == code, decision
    asked = dict(minion.asked)
    assert asked["gpu.diag"] == {"profile": "h100-sxm-8", "level": 2, "node": "gpu01"}
    if code == "no_diagnostic":
        assert "did not answer gpu.diag" in decision["message"]
        assert "gpu.health" not in asked


def test_recovery_without_a_reset_asks_for_no_diagnostic(tmp_path: Path) -> None:
    engine, clock = rig(tmp_path)
    drain_for(engine, Action.POWER_CYCLE)
    clock.advance(60)
    minion = Minion(clock)
    assert recover(engine, minion)["code"] == "resumed"
    assert [name for name, _ in minion.asked] == ["gpu.health"]


def test_bad_resume_diag_setting_is_refused_and_audited(tmp_path: Path) -> None:
    engine, clock = rig(tmp_path)
    drain_for(engine, Action.RESET_GPU)
    minion = Minion(clock)
    decision = recover(engine, minion, resume_diag={"level": 1, "rm": "-rf"})
    assert decision["code"] == "no_diagnostic"
    assert "sre_remediation:resume_diag: expected a mapping with keys from" in decision["message"]
    assert minion.asked == []


def test_a_minions_garbage_is_no_evidence(tmp_path: Path) -> None:
    engine, clock = rig(tmp_path)
    drain_for(engine, Action.RESET_GPU)

    def garbage(minion: str, kwargs: Any) -> tuple[dict[str, Any], str]:
        return {"kind": "dcgm", "level": "2; reboot"}, ""

    decision = RUNNER.handle_with(
        {"resume": True},
        RECOVERED,
        RECOVERY,
        remediator=engine,
        fresh_check=Minion(clock).health,
        diag_check=garbage,
    )
    assert decision["code"] == "no_diagnostic", decision
    assert "gpu.diag on 'gpu01' returned no valid result" in decision["message"]
