"""``sre remediation``: output, exit codes (0 ok or refused, 1 runtime failure, 2 bad input)."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from sre_tools.cli import main as cli_main
from sre_tools.health.model import Action, Severity
from sre_tools.remediation.audit import append_audit, read_audit
from tests.helpers.reports import node_report
from tests.helpers.slurm import SlurmCluster

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def sre(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``sre remediation ...`` in-process with its own state and audit files."""
    monkeypatch.setitem(
        cli_main.COMMANDS,
        "remediation",
        ("sre_tools.cli.remediation", "remediation", "Remediation within guardrails."),
    )
    monkeypatch.setenv("SRE_REMEDIATION_STATE", str(tmp_path / "state.db"))
    monkeypatch.setenv("SRE_REMEDIATION_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.delenv("SRE_REMEDIATION_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = cli_main.main(["remediation", *args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def write_report(path: Path, host: str, *problems: tuple[str, Severity, Action, int | None]) -> str:
    import time

    path.write_text(json.dumps(node_report(host, time.time(), *problems).to_dict()))
    return str(path)


# --- no Slurm needed -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema_version": 1}', "host: missing"),
        (
            '{"schema_version": 1, "host": "a b", "at": "2026-01-01T00:00:00Z", "findings": []}',
            "invalid node name",
        ),
    ],
    ids=["garbage", "no-host", "bad-host"],
)
def test_bad_report_exits_2(sre: Run, tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(content)
    code, _out, err = sre("decide", "--report", str(path))
    assert code == 2
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_bad_options_exit_2(sre: Run, tmp_path: Path) -> None:
    rep = write_report(tmp_path / "r.json", "gpu01")
    assert sre("decide", "--report", rep, "--node", "gpu01;reboot")[0] == 2
    assert sre("drain", "--node", "gpu01", "--reason", "a\nb")[0] == 2
    assert sre("decide", "--report", rep, "--controller", "-oProxyCommand=x")[0] == 2
    cfg = tmp_path / "c.yaml"
    cfg.write_text("max_drained_nodes: -1\n")
    code, _out, err = sre("decide", "--report", rep, "--config", str(cfg))
    assert code == 2 and "max_drained_nodes" in err
    cfg.write_text("max_drained_nodez: 1\n")
    assert sre("status", "--config", str(cfg))[0] == 2
    assert sre("audit", "--since", "last tuesday")[0] == 2


def test_garbage_event_exits_2_and_is_audited(sre: Run, tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text('{"node": "gpu01", "action": "reboot", "event_id": "x", "sudo": true}')
    code, out, _err = sre("event", "--event", str(path), "--json")
    assert code == 2
    assert json.loads(out)["code"] == "invalid_event"
    (rec,) = read_audit(tmp_path / "audit.jsonl")
    assert rec["code"] == "invalid_event" and rec["node"] is None


def test_audit_view(sre: Run, tmp_path: Path) -> None:
    import time

    now = time.time()
    audit = tmp_path / "audit.jsonl"
    rows = [
        (now - 7200, "gpu01", "acted", "drained_and_acted"),
        (now - 60, "gpu02", "refused", "budget_exhausted"),
        (now - 30, "gpu01", "refused", "cooldown"),
    ]
    for at, node, outcome, reason_code in rows:
        append_audit(
            audit,
            {
                "at": at,
                "ts": "t",
                "node": node,
                "outcome": outcome,
                "code": reason_code,
                "message": "[bold]not markup[/]",
                "dry_run": False,
            },
        )
    code, out, _ = sre("audit")
    assert code == 0
    assert "drained_and_acted" in out and "budget_exhausted" in out
    assert "[bold]not markup[/]" in out  # untrusted text is shown, not interpreted
    code, out, _ = sre("audit", "--json", "--since", "1h", "--node", "gpu01")
    assert [r["code"] for r in json.loads(out)] == ["cooldown"]
    code, out, _ = sre("audit", "--json", "--limit", "1")
    assert [r["code"] for r in json.loads(out)] == ["cooldown"]


def test_audit_view_when_empty(sre: Run) -> None:
    code, out, _ = sre("audit")
    assert code == 0 and "no decisions recorded" in out


# --- with a real Slurm ---------------------------------------------------------------------------


@pytest.mark.integration
def test_decide_is_a_dry_run_by_default(
    sre: Run, cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    rep = write_report(
        tmp_path / "r.json",
        "gpu11",
        ("ecc.uncorrected_volatile", Severity.CRIT, Action.RESET_GPU, 2),
    )
    code, out, _ = sre("decide", "--report", rep)
    assert code == 0
    assert "DRY RUN would_drain gpu11" in out
    assert "would run: nvidia-smi --gpu-reset -i 2" in out
    assert cluster.drain_reasons() == {}
    (rec,) = read_audit(tmp_path / "audit.jsonl")
    assert (rec["outcome"], rec["dry_run"]) == ("dry_run", True)


@pytest.mark.integration
def test_execute_drain_status_resume(
    sre: Run, cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    rep = write_report(
        tmp_path / "r.json", "gpu12", ("thermal.fan", Severity.CRIT, Action.CHECK_MECHANICALS, 1)
    )
    code, out, _ = sre("decide", "--report", rep, "--execute", "--json")
    assert code == 0
    decision = json.loads(out)
    assert (decision["outcome"], decision["code"]) == ("acted", "drained_notify")
    assert cluster.drain_reasons()["gpu12"].startswith("sre: check_mechanicals ev=report:gpu12:")
    # The same report again: a duplicate, refused, still exit 0.
    code, out, _ = sre("decide", "--report", rep, "--execute")
    assert code == 0 and "REFUSED duplicate_event gpu12" in out
    # Budget (10% of 16 nodes = 1): a manual drain of another node is refused.
    code, out, _ = sre("drain", "--node", "gpu13", "--reason", "fan noise", "--execute")
    assert code == 0 and "budget_exhausted" in out
    code, out, _ = sre("status", "--json")
    status = json.loads(out)
    assert [d["node"] for d in status["drains"]] == ["gpu12"]
    assert status["budget"]["drained_by_us"] == 1
    code, out, _ = sre("status")
    assert code == 0 and "gpu12" in out and "drained by us: 1" in out
    healthy = write_report(tmp_path / "ok.json", "gpu12")
    code, out, _ = sre("resume", "--node", "gpu12", "--report", healthy)
    assert code == 0 and "would_resume" in out
    code, out, _ = sre("resume", "--node", "gpu12", "--report", healthy, "--execute")
    assert code == 0 and "ACTED resumed gpu12" in out
    assert cluster.drain_reasons() == {}
    code, out, _ = sre("audit", "--node", "gpu12", "--json")
    assert [r["code"] for r in json.loads(out)] == [
        "drained_notify",
        "duplicate_event",
        "would_resume",
        "resumed",
    ]


@pytest.mark.integration
def test_manual_drain_uses_the_prefix(
    sre: Run, cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))
    code, out, _ = sre("drain", "--node", "gpu14", "--reason", "fan noise", "--execute")
    assert code == 0 and "ACTED drained gpu14" in out
    assert cluster.drain_reasons()["gpu14"].endswith(": fan noise")
    assert cluster.drain_reasons()["gpu14"].startswith("sre: drain ev=manual:gpu14:")


@pytest.mark.integration
def test_unreachable_controller_exits_1(
    sre: Run, cluster: SlurmCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    text = cluster.conf.read_text()
    conf = tmp_path / "slurm.conf"
    conf.write_text(
        "\n".join(
            f"SlurmctldPort={dead}" if line.startswith("SlurmctldPort=") else line
            for line in text.splitlines()
        )
        + "\n"
    )
    monkeypatch.setenv("SLURM_CONF", str(conf))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("slurm_timeout_seconds: 3\n")
    code, _out, err = sre(
        "drain", "--node", "gpu15", "--reason", "x", "--execute", "--config", str(cfg)
    )
    assert code == 1, err
    assert err.startswith("sre: error: ") and "Traceback" not in err
    assert read_audit(tmp_path / "audit.jsonl")[-1]["outcome"] == "failed"
