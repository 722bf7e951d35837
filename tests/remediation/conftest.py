"""Fixtures: an engine over a fake Slurm (unit tests) and a real Slurm cluster (integration)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.slurm import SlurmClient
from tests.helpers.slurm import SERVED_NODES
from tests.remediation.fakes import Clock, FakeSlurm, Notes, RecordingRunner

NODES = SERVED_NODES


@dataclass
class Rig:
    engine: Remediator
    slurm: FakeSlurm
    node_runner: RecordingRunner
    clock: Clock
    notes: Notes
    audit_path: Path
    state_path: Path

    def audit(self) -> list[dict[str, Any]]:
        from sre_tools.remediation.audit import read_audit

        return read_audit(self.audit_path, strict=True)


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path) -> RigFactory:
    """An engine over a fake 16-node cluster (partition ``gpu``; ``gpu01..04`` also ``debug``)."""

    def make(
        *,
        dry_run: bool = False,
        partitions: dict[str, list[str]] | None = None,
        slurm: FakeSlurm | None = None,
        clock: Clock | None = None,
        **config: Any,
    ) -> Rig:
        fake = slurm or FakeSlurm.cluster(partitions or {"gpu": NODES, "debug": NODES[:4]})
        runner = RecordingRunner()
        clk = clock or Clock()
        notes = Notes()
        cfg = RemediationConfig(**{"node_exec": "local", **config})
        engine = Remediator(
            cfg,
            SlurmClient(fake, timeout=5),
            tmp_path / "state.db",
            tmp_path / "audit.jsonl",
            clock=clk,
            runner=runner,
            notifier=notes,
            dry_run=dry_run,
        )
        return Rig(
            engine, fake, runner, clk, notes, tmp_path / "audit.jsonl", tmp_path / "state.db"
        )

    return make
