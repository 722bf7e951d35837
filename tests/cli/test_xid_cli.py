"""``sre xid explain`` and ``sre xid show``."""

from __future__ import annotations

import gzip
import io
import json
import sys
from pathlib import Path

import pytest

from sre_tools.cli.main import main

FELL = (
    "[ 1234.567890] NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, "
    "GPU has fallen off the bus."
)
DBE = "NVRM: Xid (PCI:0000:3b:00): 48, pid='<unknown>', name=<unknown>, An uncorrectable DBE"
REMAP = "NVRM: Xid (PCI:0000:3b:00): 64, pid='<unknown>', name=<unknown>, remap failure"
MIG = "NVRM: Xid (PCI:0000:18:00 GPU-I:05): 43, pid=9, name=x, Ch 00000008"


def explain_json(capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    assert main(["xid", "explain", "--json", *args]) == 0
    data: dict = json.loads(capsys.readouterr().out)  # type: ignore[type-arg]
    return data


def test_explain_args_json(capsys: pytest.CaptureFixture[str]) -> None:
    data = explain_json(capsys, FELL, DBE, REMAP, "not an xid")
    assert set(data) >= {"events", "gpus"}
    assert [e["xid"] for e in data["events"]] == [79, 48, 64]
    fell = data["events"][0]
    for key in (
        "xid",
        "pci_bus_id",
        "gpu_instance",
        "mnemonic",
        "catalog_immediate",
        "catalog_investigatory",
        "action",
    ):
        assert key in fell
    assert fell["catalog_immediate"] == "RESTART_BM"
    assert fell["action"] == "reboot"
    gpus = {g["pci_bus_id"]: g for g in data["gpus"]}
    assert set(gpus["0000:3b:00"]) >= {
        "pci_bus_id",
        "gpu_instance",
        "action",
        "severity",
        "xids",
        "reason",
    }
    assert gpus["0000:3b:00"]["action"] == "drain_and_reset"
    assert gpus["0000:3b:00"]["xids"] == [48, 64]
    assert gpus["0000:18:00"]["severity"] == "crit"


def test_explain_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xid", "explain", FELL, MIG]) == 0
    out = capsys.readouterr().out
    assert "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS" in out
    assert "RESTART_BM" in out
    assert "GPU-I:05" in out
    assert "Decision per GPU" in out
    assert "+1234.567890s" in out


def test_explain_none_found(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xid", "explain", "just a line", "another"]) == 0
    assert "no XID events found in 2 line(s)" in capsys.readouterr().out
    assert explain_json(capsys, "nothing here") == {"lines": 1, "events": [], "gpus": []}


def test_explain_file_and_gz(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plain = tmp_path / "kern.log"
    plain.write_bytes(f"{DBE}\n\xff\xfe binary junk\n{REMAP}\n".encode("latin-1"))
    packed = tmp_path / "kern.log.gz"
    packed.write_bytes(gzip.compress(f"{FELL}\n".encode()))
    data = explain_json(capsys, "--file", str(plain), "-f", str(packed))
    assert [e["xid"] for e in data["events"]] == [48, 64, 79]


def test_explain_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(f"{MIG}\n{DBE}\n".encode())))
    data = explain_json(capsys, "-f", "-")
    assert [e["gpu_instance"] for e in data["events"]] == ["GPU-I:05", None]
    monkeypatch.setattr(sys, "stdin", io.StringIO(f"{FELL}\n"))
    data = explain_json(capsys, "-")
    assert [e["xid"] for e in data["events"]] == [79]


def test_explain_unreadable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xid", "explain", "--file", str(tmp_path / "missing.log")]) == 2
    err = capsys.readouterr().err
    assert "missing.log" in err and "cannot read" in err
    assert main(["xid", "explain", "--file", str(tmp_path)]) == 2  # a directory


def test_explain_without_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xid", "explain"]) == 2
    assert "nothing to explain" in capsys.readouterr().err


def test_explain_markup_in_lines_is_not_interpreted(capsys: pytest.CaptureFixture[str]) -> None:
    line = "NVRM: Xid (PCI:0000:18:00): 999, pid=1, name=[bold]x[/bold], [red]odd[/red]"
    assert main(["xid", "explain", line]) == 0
    out = capsys.readouterr().out
    assert "unknown to catalog" in out


def test_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xid", "show", "48", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["immediate_action"] == "WORKFLOW_XID_48"
    assert "DRAIN_AND_RESET" in data["immediate_action_text"]
    assert data["action_when_solo"] == "reset_gpu"
    assert main(["xid", "show", "79"]) == 0
    out = capsys.readouterr().out
    assert "RESTART_BM" in out and "reboot" in out


def test_show_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["xid", "show", "99999"]) == 2
    assert "not in the catalog" in capsys.readouterr().err
    assert main(["xid", "show", "abc"]) == 2
