"""The verified fix through the CLI against the real Slurm test cluster: ``sre remediation
decide`` drains a node and resets its GPU (a stand-in ``nvidia-smi`` on PATH records the reset;
``node_exec: local``), the resume is refused until ``sre diag run --level 2`` (the real CLI, a
stand-in ``dcgmi`` printing a recorded result from tests/fixtures/diag/dcgm) has recorded a
passing run in the store since the reset, and ``sre remediation resume --diag-store`` finds it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.cli.main import main
from sre_tools.health.model import Action, Severity
from tests.helpers.reports import node_report
from tests.helpers.slurm import SlurmCluster

ROOT = Path(__file__).resolve().parents[2]
DCGM = ROOT / "tests" / "fixtures" / "diag" / "dcgm"
NODE = "gpu11"


def sre(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr().out
    return code, json.loads(out) if out.strip().startswith("{") else out


@pytest.mark.integration
def test_resume_after_a_reset_waits_for_a_stored_level_2(
    cluster: SlurmCluster,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "resets"}\n', encoding="utf-8")
    smi.chmod(0o755)
    dcgmi = bin_dir / "dcgmi"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    config = tmp_path / "remediation.yaml"
    config.write_text(
        yaml.safe_dump({"remediation": {"node_exec": "local", "max_drained_percent": 50}}),
        encoding="utf-8",
    )
    engine = ["--config", str(config), "--state", str(tmp_path / "state.db"),
              "--audit", str(tmp_path / "audit.jsonl"), "--json"]  # fmt: skip
    store = tmp_path / "diag.db"

    def fake_dcgmi(result: str) -> None:
        dcgmi.write_text(f"#!/bin/sh\ncat {DCGM / result}.json\n", encoding="utf-8")
        dcgmi.chmod(0o755)

    def diag_run() -> int:
        code, _ = sre(capsys, "diag", "run", "--level", "2", "--node", NODE, "--store", str(store))
        return code

    def fresh_report() -> str:
        path = tmp_path / "report.json"
        path.write_text(json.dumps(node_report(NODE, time.time()).to_dict()), encoding="utf-8")
        return str(path)

    # A level-2 pass from before the reset does not count.
    fake_dcgmi("level2-pass")
    assert diag_run() == 0
    time.sleep(1.1)  # whole seconds: the reset comes strictly later
    sick = tmp_path / "sick.json"
    problem = ("ecc.uncorrected_volatile", Severity.CRIT, Action.RESET_GPU, 3)
    sick.write_text(json.dumps(node_report(NODE, time.time(), problem).to_dict()))
    code, d = sre(capsys, "remediation", "decide", "--report", str(sick), "--execute", *engine)
    assert code == 0 and d["code"] == "drained_and_acted", d
    assert (tmp_path / "resets").read_text().split() == ["--gpu-reset", "-i", "3"]
    time.sleep(1.1)

    resume = ["remediation", "resume", "--node", NODE, "--diag-store", str(store), "--execute"]
    code, d = sre(capsys, *resume, "--report", fresh_report(), *engine)
    assert (code, d["code"]) == (0, "diag_required"), d
    assert "nor found in the diagnostic store" in d["message"], d

    fake_dcgmi("level2-memory-fail-gpu3")  # the reset did not fix it
    assert diag_run() == 2
    code, d = sre(capsys, *resume, "--report", fresh_report(), *engine)
    assert d["code"] == "diag_failed" and "diag.dcgm.memory is crit" in d["message"], d
    assert "drain" in cluster.settled_states()[NODE]

    fake_dcgmi("level2-pass")
    assert diag_run() == 0
    code, d = sre(capsys, *resume, "--report", fresh_report(), *engine)
    assert (code, d["outcome"], d["code"]) == (0, "acted", "resumed"), d
    # Resumed; the not-responding flag (idle*) may linger after a resume on the suite cluster
    # (SlurmdTimeout=0), as tests/salt/test_salt_rolling_upgrade.py notes.
    assert cluster.settled_states()[NODE].rstrip("*") == "idle"
    codes = [json.loads(x)["code"] for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert codes == ["drained_and_acted", "diag_required", "diag_failed", "resumed"]
