"""``sre report``: the Quick start's main job on the bundled example data."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from sre_tools.cli.main import main

AT = "2026-11-20T12:00:00Z"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("report") / "store.db"


def test_examples_report_json(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys,
        "report",
        "--examples",
        "--store",
        str(seeded),
        "--at",
        AT,
        "--gpus",
        "128",
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert data["examples_seeded"] is True
    status = {r["id"]: r["status"] for r in data["slos"]}
    # The example's story: a launch-failure storm pages, the API's slow burn opens a ticket.
    assert status == {
        "slurm-scheduler-job-launch-success": "page",
        "slurm-scheduler-gpu-node-availability": "ok",
        "training-api-availability": "ticket",
        "training-api-checkpoint-writes": "ok",
    }
    launch = next(r for r in data["slos"] if r["id"] == "slurm-scheduler-job-launch-success")
    assert "page-quick" in launch["firing"]
    assert 0 < launch["budget_remaining"] < 1
    fleet = data["reliability"]["fleet"]
    assert fleet["failures"] > 0
    assert fleet["failures_per_gpu_day"] == pytest.approx(
        fleet["failures"] / (128 * data["reliability"]["window_seconds"] / 86400)
    )
    assert any(i["xid"] == 79 for i in data["open_incidents"])
    assert "driver_present" in data["gpu"]


def test_examples_seed_once(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows_before = sqlite3.connect(seeded).execute("SELECT COUNT(*) FROM sli_buckets").fetchone()
    code, out, _ = run(
        capsys, "report", "--examples", "--store", str(seeded), "--at", AT, "--no-gpu", "--json"
    )
    assert code == 0
    assert json.loads(out)["examples_seeded"] is False
    rows_after = sqlite3.connect(seeded).execute("SELECT COUNT(*) FROM sli_buckets").fetchone()
    assert rows_before == rows_after == (4 * 30 * 1440,)


def test_examples_report_human(seeded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "report", "--examples", "--store", str(seeded), "--at", AT)
    assert code == 0
    assert "PAGE: slurm-scheduler-job-launch-success" in out
    assert "TICKET: training-api-availability" in out
    assert "Reliability" in out
    assert "GPU health:" in out


def test_no_driver_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sre_tools.gpu import probe as probe_mod

    class NoDriver:
        class NVMLError(Exception):
            pass

        def nvmlInit(self) -> None:
            raise self.NVMLError("Driver Not Loaded")

    original = probe_mod.probe
    monkeypatch.setattr(
        probe_mod,
        "probe",
        lambda: original(NoDriver(), proc_version=tmp_path / "absent"),
    )
    code, out, _ = run(capsys, "report", "--store", str(tmp_path / "s.db"))
    assert code == 0
    assert "GPU health: no NVIDIA driver on this machine" in out
    assert "No SLO specs given" in out
