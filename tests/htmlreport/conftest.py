"""One store for the HTML report tests: the bundled example SLIs and incidents, recorded drill
runs, an open incident and health reports whose stored text is hostile (markup, quotes, ESC,
NUL, bidi overrides), and three nodes' ``sre health --json`` files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sre_tools import examples
from sre_tools.chaos.results import record_run
from sre_tools.health.model import Action, Severity
from sre_tools.reliability.incidents import open_incident
from sre_tools.store import Store
from sre_tools.timeutil import iso, parse_time
from tests.helpers.reports import finding, report

AT = "2026-11-20T12:00:00Z"
AT_TS = int(parse_time(AT).timestamp())
# Stored text that must come out as text, never as markup or terminal control.
HOSTILE = "<script>alert('x')</script>\"q\" & \x1b[31mred\x00\u202egnp.exe"
HOSTILE_HOST = "<b>node</b>\x1b]0;t\x07"


@dataclass(frozen=True)
class ReportEnv:
    store: Path
    health: tuple[Path, ...]
    reports: tuple[dict[str, Any], ...]


def drill_events(
    run_id: str, drill: str, started: int, status: str, expectations: list[tuple[str, bool, str]]
) -> list[dict[str, Any]]:
    """A run's journal as the runner writes it (the fields record_run reads)."""
    events: list[dict[str, Any]] = [
        {
            "event": "run-start",
            "run_id": run_id,
            "ts": iso(started),
            "execute": True,
            "source": f"/catalog/{drill}.yaml",
        },
        {"event": "targets-resolved", "nodes": ["gpu-node-03"]},
    ]
    for k, (name, met, measures) in enumerate(expectations):
        events.append(
            {
                "event": "expectation",
                "name": name,
                "node": "gpu-node-03",
                "met": met,
                "measures": measures,
                "elapsed": 20.0 + 10 * k if met else None,
                "status": "met" if met else "missed",
            }
        )
    events.append(
        {"event": "run-end", "ts": iso(started + 300), "status": status, "recover_seconds": 95.0}
    )
    return events


def health_reports() -> tuple[dict[str, Any], ...]:
    sick = report(
        finding("ecc.uncorrected_volatile", Severity.CRIT, Action.RESET_GPU, gpu=1),
        finding("ecc.uncorrected_volatile", Severity.OK, gpu=0),
        finding("thermal.gpu", Severity.WARN, Action.NONE, gpu=0, summary=HOSTILE),
        finding("xid.recent", Severity.CRIT, Action.POWER_CYCLE, gpu=1),
        finding("xid.recent", Severity.WARN, Action.RESTART_APP, gpu=0),
        host="gpu-node-07",
        at=AT_TS - 120,
    )
    healthy = report(
        finding("ecc.uncorrected_volatile", Severity.OK, gpu=0),
        finding("thermal.gpu", Severity.OK, gpu=0),
        finding("xid.recent", Severity.OK, gpu=0),
        finding("nvlink.state", Severity.SKIPPED, gpu=0),
        host="gpu-node-01",
        at=AT_TS - 100,
    )
    odd = report(
        finding("thermal.gpu", Severity.UNKNOWN, gpu=0),
        finding("pcie.link", Severity.WARN, Action.DRAIN_AND_RESET, gpu=0),
        host=HOSTILE_HOST,
        at=AT_TS - 90,
    )
    return tuple(r.to_dict() for r in (sick, healthy, odd))


@pytest.fixture(scope="package")
def report_env(tmp_path_factory: pytest.TempPathFactory) -> ReportEnv:
    root = tmp_path_factory.mktemp("htmlreport")
    path = root / "store.db"
    with Store(path) as store:
        examples.seed(store, AT_TS)
        open_incident(
            store,
            component="node",
            started=AT_TS - 3600,
            host=HOSTILE_HOST,
            cause=HOSTILE,
        )
        runs = [
            ("r1", "xid-inject", 10, "passed", [("alert-fires", True, "alert")]),
            ("r2", "xid-inject", 5, "passed", [("alert-fires", True, "alert")]),
            ("r3", "node-drain", 3, "failed", [("drained", False, "drain"), (HOSTILE, True, "")]),
        ]
        for run_id, drill, days_ago, status, expectations in runs:
            started = AT_TS - days_ago * 86400
            assert record_run(store, drill_events(run_id, drill, started, status, expectations))
    reports = health_reports()
    files = []
    for i, data in enumerate(reports):
        file = root / f"health-{i}.json"
        file.write_text(json.dumps(data), encoding="utf-8")
        files.append(file)
    return ReportEnv(path, tuple(files), reports)
