"""Behaviour of the sre_agent role on a Debian 12 systemd container (both scenarios).

Expectations follow the role's variables (``role_vars``: defaults plus the scenario's).
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
import yaml

JOURNAL_UNITS = ("sre-health", "gpu-health")
FIXTURES = (
    Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY", "."))
    / ".."
    / ".."
    / "tests"
    / "fixtures"
    / "gpu"
)


def _units(v):
    return f"/etc/systemd/system/{v['sre_agent_service_name']}"


def _policy_path(v):
    return f"{v['sre_agent_config_dir']}/{v['sre_agent_config_file']}"


def test_sre_cli_runs_from_the_virtualenv(host, role_vars):
    venv = role_vars["sre_agent_venv"]
    result = host.run("%s/bin/sre --help", venv)
    assert result.rc == 0, result.stderr
    assert "health" in result.stdout and "exporter" in result.stdout
    # Installed from the copied wheels, at the checkout's version.
    version = host.check_output("%s/bin/sre --version", venv)
    wheels = host.check_output("ls %s", role_vars["sre_agent_wheel_dir"]).split()
    built = [w for w in wheels if w.startswith("sre_tools-")]
    assert built and built[0].split("-")[1] in version
    # The manifest that lets a re-run skip the copy names exactly the wheels there, correctly.
    check = host.run("cd %s && sha1sum -c MANIFEST.sha1", role_vars["sre_agent_wheel_dir"])
    assert check.rc == 0, check.stdout + check.stderr
    listed = {line.rsplit(": ", 1)[0] for line in check.stdout.splitlines()}
    assert listed == {w for w in wheels if w.endswith(".whl")}, check.stdout


def test_venv_python_is_the_requested_interpreter(host, role_vars):
    python = role_vars["sre_agent_python"] or "/usr/bin/python3"
    venv = role_vars["sre_agent_venv"]
    cfg = host.file(f"{venv}/pyvenv.cfg").content_string
    assert f"command = {python} -m venv {venv}" in cfg, cfg


def test_policy_is_the_inventory_policy_and_loads(host, role_vars):
    policy = host.file(_policy_path(role_vars))
    assert policy.exists and policy.mode == 0o644
    assert yaml.safe_load(policy.content_string) == role_vars["sre_agent_policy"]
    # sre-tools on the node accepts it (the same check the role's validate ran).
    check = host.run(
        "%s/bin/python -c %s %s",
        role_vars["sre_agent_venv"],
        "import sys, pathlib; from sre_tools.health.policy import load_policy_file; "
        "print(load_policy_file(pathlib.Path(sys.argv[1])).name)",
        _policy_path(role_vars),
    )
    assert check.rc == 0, check.stderr
    assert check.stdout.strip() == role_vars["sre_agent_policy"]["profile"]


def test_timer_state(host, role_vars):
    name = role_vars["sre_agent_service_name"]
    timer = host.service(f"{name}.timer")
    assert timer.is_enabled == role_vars["sre_agent_timer_enabled"]
    assert timer.is_running == role_vars["sre_agent_timer_enabled"]
    shown = host.check_output("systemctl show %s.timer --property TimersCalendar,Unit", name)
    assert f"Unit={name}.service" in shown
    assert "OnCalendar=" in shown


def test_service_unit_is_hardened_and_points_at_the_policy(host, role_vars):
    name = role_vars["sre_agent_service_name"]
    shown = host.check_output(
        "systemctl show %s.service --property ExecStart,NoNewPrivileges,ProtectSystem,Type", name
    )
    assert f"{role_vars['sre_agent_venv']}/bin/sre health --json --config " in shown
    assert _policy_path(role_vars) in shown
    assert "NoNewPrivileges=yes" in shown and "ProtectSystem=strict" in shown
    assert "Type=oneshot" in shown


def test_a_health_run_reports(host, role_vars):
    """Start the service once, as the timer would."""
    name = role_vars["sre_agent_service_name"]
    result = host.run("systemctl start %s.service", name)
    if not role_vars["sre_agent_health_replay_src"]:
        # No GPU and no recording: NVML cannot initialise, a CRITICAL finding (exit 2), which
        # the unit counts as a completed check; the report goes to the journal (no output file).
        assert result.rc == 0, result.stderr
        log = host.check_output("journalctl --no-pager -o cat -u %s.service", name)
        assert '"source": "nvml"' in log and '"exit_code": 2' in log, log[-2000:]
        return
    assert result.rc == 0, result.stderr
    report = json.loads(host.file(role_vars["sre_agent_output"]).content_string)
    assert report["schema_version"] == 1
    assert report["source"].startswith("replay:")
    assert report["status"] == "ok" and report["exit_code"] == 0


def test_slurm_healthcheck_wiring(host, role_vars):
    program = host.file(role_vars["sre_agent_slurm_healthcheck_program"])
    fragment = host.file(role_vars["sre_agent_slurm_conf_fragment"])
    if not role_vars["sre_agent_slurm_healthcheck"]:
        assert not program.exists and not fragment.exists
        return
    assert program.mode == 0o755
    lines = fragment.content_string.splitlines()
    assert f"HealthCheckProgram={program.path}" in lines
    assert f"HealthCheckInterval={role_vars['sre_agent_slurm_healthcheck_interval']}" in lines
    # A healthy node: no output, exit 0, nobody drained.
    result = host.run(program.path)
    assert (result.rc, result.stdout) == (0, ""), result.stderr


def test_slurm_healthcheck_drains_on_a_critical_finding(host, role_vars):
    """Swap in a recording with a double-bit ECC error; a stand-in scontrol records its argv."""
    if not (role_vars["sre_agent_slurm_healthcheck"] and role_vars["sre_agent_health_replay_src"]):
        pytest.skip("the scenario has no Slurm wiring with a replay")
    replay = f"{role_vars['sre_agent_state_dir']}/replay.json"
    scontrol = role_vars["sre_agent_slurm_scontrol"]
    record = "/root/sre-test-scontrol.argv"
    host.run_expect([0], "cp %s %s.orig", replay, replay)
    try:
        # The recorded fixture with 2 volatile uncorrectable ECC errors on GPU 0 (CRITICAL).
        fault = FIXTURES / "faults" / "dbe-volatile.json"
        encoded = base64.b64encode(fault.read_bytes()).decode()
        host.run_expect([0], "echo %s | base64 -d > %s", encoded, replay)
        stub = f'#!/bin/sh\nfor a in "$@"; do printf \'%s\\n\' "$a"; done > {record}\n'
        encoded = base64.b64encode(stub.encode()).decode()
        host.run_expect(
            [0], "echo %s | base64 -d > %s && chmod 0755 %s", encoded, scontrol, scontrol
        )
        result = host.run(role_vars["sre_agent_slurm_healthcheck_program"])
        assert result.rc == 2, result.stdout + result.stderr
        assert result.stdout.startswith("ERROR: nhc: Health check failed: ")
        argv = host.file(record).content_string.splitlines()
        assert argv[0] == "update" and argv[2] == "State=DRAIN"
        assert argv[1].startswith("NodeName=")
        assert argv[3].startswith("Reason=sre health: ")
    finally:
        host.run("mv %s.orig %s; rm -f %s %s", replay, replay, scontrol, record)
