"""Run the health engine over recorded fixtures: one place for the boilerplate."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from sre_tools.gpu.backend import RecordedBackend
from sre_tools.health.model import Finding, HealthReport, Severity
from sre_tools.health.policy import load_policy
from sre_tools.health.runner import run_health
from sre_tools.health.state import CounterState

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "gpu"
H100 = FIXTURES / "h100-capture.json"
HGX = FIXTURES / "hgx-h100-8-synthetic.json"
FAULTS = FIXTURES / "faults"
T0 = 1_700_000_000.0


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def problems(report: HealthReport) -> list[Finding]:
    return [f for f in report.findings if f.severity in (Severity.WARN, Severity.CRIT)]


def only(report: HealthReport, check: str) -> list[Finding]:
    return [f for f in report.findings if f.check == check]


Runner = Callable[..., HealthReport]


@pytest.fixture
def sysfs(tmp_path: Path) -> Path:
    root = tmp_path / "sys"
    root.mkdir()
    return root


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "health-state.json"


@pytest.fixture
def run(sysfs: Path, state_path: Path) -> Runner:
    """``run(fixture_path_or_dict, profile=..., config=..., now=..., kernel_log_lines=...)``.

    Every call loads the state file afresh (as separate CLI runs would), so two calls with later
    ``now`` values measure rates.
    """

    def go(
        source: Path | dict[str, Any],
        *,
        profile: str | None = None,
        config: str | None = None,
        now: float = T0,
        kernel_log_lines: list[str] | None = None,
        timeout: float | None = None,
        systemctl: str | None = None,
    ) -> HealthReport:
        backend = (
            RecordedBackend.load(source)
            if isinstance(source, Path)
            else RecordedBackend(source, "<test>")
        )
        return run_health(
            backend,
            load_policy(profile, config),
            state=CounterState(state_path),
            now=now,
            sysfs=sysfs,
            kernel_log_lines=[] if kernel_log_lines is None else kernel_log_lines,
            host="node1",
            timeout=timeout,
            systemctl=systemctl,
        )

    return go


def ok(value: Any) -> dict[str, Any]:
    return {"value": value}


NOT_SUPPORTED: dict[str, Any] = {"error": "NOT_SUPPORTED"}


def patched(path: Path, changes: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """The fixture at ``path`` with ``{gpu index: {reading key: recorded entry}}`` replaced."""
    data = load(path)
    for index, readings in changes.items():
        data["devices"][index]["readings"].update(readings)
    return data
