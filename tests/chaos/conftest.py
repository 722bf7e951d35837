"""Drill tests: local transport, files in a temporary directory, a private store and journal dir.

``drill_env`` gives each test its own kernel-log file, allowlist inventory, store and journal
directory; :func:`experiment` builds a drill (the catalog's xid-inject shape) as a Chaos Toolkit
document whose fault is a tagged line in that file.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.chaos.catalog import path_of

INVENTORY = """\
all:
  children:
    gpu_nodes:
      children:
        chaos_targets:
          vars:
            ansible_connection: local
          hosts:
            n1:
            n2:
            n3:
    login:
      hosts:
        login-01:
"""


@dataclass
class DrillEnv:
    root: Path
    kernel_log: Path
    inventory: Path
    store: Path
    journals: Path

    def write(self, doc: dict[str, Any], name: str = "drill.yaml") -> Path:
        path = self.root / name
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return path

    def journal_events(self, run_id: str) -> list[dict[str, Any]]:
        text = (self.journals / f"{run_id}.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def drill_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DrillEnv:
    env = DrillEnv(
        root=tmp_path,
        kernel_log=tmp_path / "kern.log",
        inventory=tmp_path / "hosts.yml",
        store=tmp_path / "store.db",
        journals=tmp_path / "drills",
    )
    env.inventory.write_text(INVENTORY)
    monkeypatch.setenv("SRE_STORE", str(env.store))
    monkeypatch.setenv("SRE_DRILL_DIR", str(env.journals))
    return env


def unacknowledged_lines(kernel_log: Path, acks_file: Path) -> int:
    """Drill-tagged lines in ``kernel_log`` whose run is not in ``acks_file``: the ones that
    still count (a rollback acknowledges its run; it never edits the log)."""
    from sre_tools.health.xid.model import drill_run_of, parse_drill_acks

    if not kernel_log.exists():
        return 0
    acked = parse_drill_acks(acks_file.read_bytes()) if acks_file.exists() else set()
    runs = [drill_run_of(line) for line in kernel_log.read_text().splitlines()]
    return sum(1 for r in runs if r is not None and r not in acked)


def catalog_doc(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path_of(name).read_text())
    return data


def experiment(kernel_log: Path, *, pause_after: float = 0, within: float = 2) -> dict[str, Any]:
    """The kernel-log part of the catalog's xid-inject drill (its line, expectation and
    rollback; not the health, exporter, Prometheus and Slurm parts) pointed at ``kernel_log``,
    with a short expectation."""
    doc = copy.deepcopy(catalog_doc("xid-inject"))
    doc["steady-state-hypothesis"]["probes"] = [
        p for p in doc["steady-state-hypothesis"]["probes"] if p["name"] == "no-drill-xid-lines"
    ]
    doc["rollbacks"] = [a for a in doc["rollbacks"] if a["name"] == "acknowledge-drill-xid"]
    doc["x-sre"]["expect"] = [
        c for c in doc["x-sre"]["expect"] if c["name"] == "xid-line-in-kernel-log"
    ]
    doc["configuration"]["kernel_log"] = str(kernel_log)
    doc["configuration"]["acks_file"] = str(kernel_log.with_name("drill-acks"))
    doc["configuration"]["pci"] = "0000:3b:00"  # given: no `sre health` to resolve it from
    doc["x-sre"]["expect"][0]["within"] = within
    doc["x-sre"]["expect"][0]["poll"] = 0.05
    if pause_after:
        doc["method"][0]["pauses"] = {"after": pause_after}
    return doc


def failing_action() -> dict[str, Any]:
    return {
        "type": "action",
        "name": "fails",
        "provider": {"type": "process", "path": "false"},
    }
