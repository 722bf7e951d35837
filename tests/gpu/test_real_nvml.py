"""The real NVML path, on a machine with a GPU (``pytest -m gpu``). Read-only: nothing on the
GPU changes (no reset, persistence, power, clocks, ECC or MIG writes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sre_tools.gpu.backend import RealBackend, RecordedBackend, capture
from sre_tools.health.model import Severity
from sre_tools.health.policy import load_policy
from sre_tools.health.runner import run_health
from sre_tools.health.state import CounterState

pytestmark = pytest.mark.gpu


def test_capture_records_every_reading_and_replays_the_same_findings(tmp_path: Path) -> None:
    data = capture(RealBackend(), host="gpu-test")
    assert data["devices"], "NVML reported GPUs but the capture has none"
    dev = data["devices"][0]["readings"]
    assert "value" in dev["uuid"] and dev["uuid"]["value"].startswith("GPU-")
    assert "value" in dev["temperature_c"]
    path = tmp_path / "capture.json"
    path.write_text(json.dumps(data))
    live = run_health(
        RealBackend(), load_policy(), state=CounterState(), host="gpu-test", kernel_log_lines=[]
    )
    replay = run_health(
        RecordedBackend.load(path),
        load_policy(),
        state=CounterState(),
        host="gpu-test",
        kernel_log_lines=[],
    )
    live_checks = {(f.check, f.gpu.index if f.gpu else None) for f in live.findings}
    replay_checks = {(f.check, f.gpu.index if f.gpu else None) for f in replay.findings}
    # Dynamic readings (temperature, power) may move between the two; the set of checks may not.
    assert live_checks == replay_checks


def test_health_cli_json_on_the_real_gpu() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sre_tools.cli.main", "health", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    data = json.loads(proc.stdout)
    assert data["schema_version"] == 1
    assert proc.returncode == data["exit_code"]
    init = [f for f in data["findings"] if f["check"] == "nvml.init"]
    assert init and init[0]["severity"] == Severity.OK.value
    assert any(f["gpu"] and f["gpu"]["uuid"].startswith("GPU-") for f in data["findings"])


def test_real_gpu_reports_what_the_capture_showed() -> None:
    """Memory v2 (reserved apart), the T.Limit margin, and thermal.gpu judged, not skipped."""
    backend = RealBackend()
    backend.init()
    try:
        memory = backend.read(0, "memory")
        margin = backend.read(0, "margin_temperature_c")
    finally:
        backend.shutdown()
    assert "reserved_bytes" in memory and memory["reserved_bytes"] > 0
    assert -50 <= margin <= 150
    report = run_health(
        RealBackend(), load_policy(), state=CounterState(), host="gpu-test", kernel_log_lines=[]
    )
    thermal = [f for f in report.findings if f.check == "thermal.gpu"]
    assert thermal and all(f.severity is not Severity.SKIPPED for f in thermal)
