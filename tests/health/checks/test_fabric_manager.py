"""``fabric.manager``: the fabric manager's unit on NVSwitch nodes, read through systemctl.

The systemctl here is a stand-in script that answers as ``systemctl show`` does (KEY=VALUE lines,
the same exit codes), so every state the check distinguishes can be produced without systemd.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sre_tools.cli.health import run_fast
from sre_tools.health.model import Action, Severity
from tests.health.checks.conftest import H100, HGX, Runner, only

UNIT = "nvidia-fabricmanager.service"


def stand_in(tmp_path: Path, body: str) -> str:
    """A systemctl that runs ``body`` (sh) and logs its argv to ``argv.log``."""
    path = tmp_path / "systemctl"
    path.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{tmp_path}/argv.log"\n{body}\n')
    path.chmod(0o755)
    return str(path)


def answer(load: str, active: str, sub: str) -> str:
    return f"printf 'LoadState={load}\\nActiveState={active}\\nSubState={sub}\\n'"


@pytest.mark.parametrize(
    ("load", "active", "sub", "severity", "action"),
    [
        ("loaded", "active", "running", Severity.OK, Action.NONE),
        ("loaded", "activating", "start", Severity.WARN, Action.NONE),
        ("loaded", "inactive", "dead", Severity.CRIT, Action.RESTART_FABRIC_MANAGER),
        ("loaded", "failed", "failed", Severity.CRIT, Action.RESTART_FABRIC_MANAGER),
        ("not-found", "inactive", "dead", Severity.CRIT, Action.RESTART_FABRIC_MANAGER),
    ],
)
def test_unit_states_on_an_nvswitch_node(
    run: Runner,
    tmp_path: Path,
    load: str,
    active: str,
    sub: str,
    severity: Severity,
    action: Action,
) -> None:
    systemctl = stand_in(tmp_path, answer(load, active, sub))
    report = run(HGX, profile="h100-sxm-8", systemctl=systemctl)
    (finding,) = only(report, "fabric.manager")
    assert (finding.severity, finding.action) == (severity, action)
    assert finding.evidence["unit"] == UNIT
    assert finding.evidence["ActiveState"] == active
    # An argv, the unit after "--": never a shell string, never an option.
    argv = (tmp_path / "argv.log").read_text().split("\n")
    assert argv[:4] == ["show", "--property=LoadState,ActiveState,SubState", "--", UNIT]
    if severity is Severity.CRIT:
        assert report.severity is Severity.CRIT


@pytest.mark.parametrize(
    ("body", "piece"),
    [
        (
            "echo 'System has not been booted with systemd as init system (PID 1).' >&2; exit 1",
            "System has not been booted with systemd",
        ),
        ("echo Id=x", "no ActiveState"),
        ("sleep 30", "did not answer within"),
    ],
)
def test_unreadable_unit_state_is_unknown(
    run: Runner, tmp_path: Path, body: str, piece: str
) -> None:
    systemctl = stand_in(tmp_path, body)
    report = run(HGX, profile="h100-sxm-8", systemctl=systemctl)
    (finding,) = only(report, "fabric.manager")
    assert finding.severity is Severity.UNKNOWN
    assert piece in finding.summary


def test_missing_systemctl_is_unknown(run: Runner, tmp_path: Path) -> None:
    report = run(HGX, profile="h100-sxm-8", systemctl=str(tmp_path / "nope"))
    (finding,) = only(report, "fabric.manager")
    assert finding.severity is Severity.UNKNOWN
    assert "cannot run" in finding.summary


def test_not_read_where_no_fabric_is_expected_or_on_a_replay(run: Runner, tmp_path: Path) -> None:
    systemctl = stand_in(tmp_path, answer("loaded", "failed", "failed"))
    (finding,) = only(run(H100, profile="h100", systemctl=systemctl), "fabric.manager")
    assert finding.severity is Severity.SKIPPED and "nvswitch: false" in finding.summary
    (finding,) = only(run(HGX, profile="generic", systemctl=systemctl), "fabric.manager")
    assert finding.severity is Severity.SKIPPED and "nvswitch: auto" in finding.summary
    assert not (tmp_path / "argv.log").exists()  # neither asked systemd anything
    (finding,) = only(run(HGX, profile="h100-sxm-8"), "fabric.manager")
    assert finding.severity is Severity.SKIPPED and "--systemctl" in finding.summary


def test_site_file_names_another_unit_or_turns_it_off(run: Runner, tmp_path: Path) -> None:
    systemctl = stand_in(tmp_path, answer("loaded", "active", "running"))

    def site(unit: str) -> str:
        return f"profile: h100-sxm-8\nfabric_manager:\n  unit: {unit}\n"

    (finding,) = only(
        run(HGX, config=site("nv-fm@fabric0.service"), systemctl=systemctl), "fabric.manager"
    )
    assert finding.severity is Severity.OK and finding.evidence["unit"] == "nv-fm@fabric0.service"
    (finding,) = only(run(HGX, config=site("''"), systemctl=systemctl), "fabric.manager")
    assert finding.severity is Severity.SKIPPED
    (finding,) = only(run(HGX, config=site("'-x; reboot'"), systemctl=systemctl), "fabric.manager")
    assert finding.severity is Severity.UNKNOWN and "is not a service" in finding.summary


def test_sre_health_systemctl_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    systemctl = stand_in(tmp_path, answer("loaded", "inactive", "dead"))
    argv = ["--replay", str(HGX), "--profile", "h100-sxm-8", "--systemctl", systemctl, "--json"]
    code = run_fast(argv)
    assert code == 2  # CRITICAL
    assert '"check": "fabric.manager"' in capsys.readouterr().out
    # As a separate process too (the way Slurm and the drills run it).
    sre = Path(os.environ.get("VIRTUAL_ENV", "")) / "bin" / "sre"
    if sre.exists():
        done = subprocess.run(
            [str(sre), "health", *argv[:-1], "--format", "nhc"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 2
        assert "fabric.manager" in done.stdout and "restart_fabric_manager" in done.stdout
