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
    audit_path: Path | str
    state_path: Path | str

    def audit(self) -> list[dict[str, Any]]:
        from sre_tools.remediation.audit import read_audit

        return read_audit(self.audit_path, strict=True)

    def raw_audit(self) -> bytes:
        """What the audit log holds, as stored: the file's bytes, or the rows' text."""
        if isinstance(self.audit_path, Path):
            return self.audit_path.read_bytes()
        rows = self.engine.audit.db.query("SELECT record FROM audit_log ORDER BY id")
        return "\n".join(str(r[0]) for r in rows).encode()


RigFactory = Callable[..., Rig]


@pytest.fixture
def make_rig(tmp_path: Path, store_location: Path | str) -> RigFactory:
    """An engine over a fake 16-node cluster (partition ``gpu``; ``gpu01..04`` also ``debug``),
    once per engine: state in a SQLite file and audit in a JSON-lines file, or both in one
    PostgreSQL database."""
    if isinstance(store_location, Path):
        state_path: Path | str = tmp_path / "state.db"
        audit_path: Path | str = tmp_path / "audit.jsonl"
    else:
        state_path = audit_path = store_location

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
            state_path,
            audit_path,
            clock=clk,
            runner=runner,
            notifier=notes,
            dry_run=dry_run,
        )
        return Rig(engine, fake, runner, clk, notes, audit_path, state_path)

    return make
