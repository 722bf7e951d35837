"""``sre ansible``: real ansible-runner running the real playbooks/validate.yml.

The "nodes" are inventory hosts with ``ansible_connection: local`` (one process, different
inventory names), each replaying a recorded NVML session from tests/fixtures/gpu through the
gpu_health module's ``replay`` option: a healthy H100, a volatile double-bit ECC error (CRIT,
reset_gpu) and a remapper histogram running low (WARN). The ``sre`` process is the installed
console script, as an operator runs it. The event folding (exit-code precedence) is also tested
on hand-written events, without Ansible.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_tools.provision.model import ExitCode, RunTracker
from tests.helpers.procs import closed_port

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "gpu"
HOSTS = {
    "node1": FIX / "h100-capture.json",
    "node2": FIX / "faults" / "dbe-volatile.json",
    "node3": FIX / "faults" / "remapper-histogram-low.json",
}


def sre_argv() -> list[str]:
    script = shutil.which("sre", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("the sre console script is not installed: pip install -e .", pytrace=False)
    return [script]


def run_sre(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "220", "XDG_STATE_HOME": str(cwd / "state")}
    env.pop("ANSIBLE_CONFIG", None)
    env.pop("SRE_PLAYBOOK_DIR", None)
    return subprocess.run(
        [*sre_argv(), *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout
    )


def write_inventory(path: Path, hosts: dict[str, dict[str, Any]]) -> Path:
    data = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                # The module imports sre_tools in this interpreter (method auto -> python).
                "ansible_python_interpreter": sys.executable,
                "sre_become": False,
            },
            "children": {"gpu_nodes": {"hosts": hosts}},
        }
    }
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("fleet")
    return write_inventory(
        tmp / "hosts.yml", {h: {"gpu_health_replay": str(f)} for h, f in HOSTS.items()}
    )


@pytest.fixture(scope="module")
def table_run(fleet: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    run_dir = fleet.parent / "run-table"
    proc = run_sre(
        "ansible", "validate", "-i", str(fleet), "--run-dir", str(run_dir), cwd=fleet.parent
    )
    return proc, run_dir


@pytest.fixture(scope="module")
def json_run(fleet: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = run_sre(
        "ansible",
        "validate",
        "-i",
        str(fleet),
        "--json",
        "-e",
        "sre_secret_token=hunter2",
        cwd=fleet.parent,
    )
    assert proc.stdout, proc.stderr
    return proc, json.loads(proc.stdout)


def test_table_lists_every_host_and_the_findings(table_run) -> None:
    proc, _ = table_run
    assert proc.returncode == ExitCode.CRIT, proc.stdout + proc.stderr
    rows = {
        line.split("│")[1].strip(): line for line in proc.stdout.splitlines() if "│ node" in line
    }
    assert set(rows) == {"node1", "node2", "node3"}
    host_rows = [line for line in proc.stdout.splitlines() if line.count("│") == 10]
    status = {r.split("│")[1].strip(): r.split("│")[2].strip() for r in host_rows}
    assert status == {"node1": "ok", "node2": "CRIT", "node3": "WARN"}
    assert "ecc.uncorrected_volatile" in proc.stdout
    assert "reset_gpu" in proc.stdout
    assert "remap.histogram" in proc.stdout
    assert "health gate failed: node2 (CRIT)" in proc.stdout
    # The progress bars went to stderr, one per host, with its task counts.
    for host in HOSTS:
        assert host in proc.stderr
    assert "failed=1" in proc.stderr


def test_run_directory_is_kept(table_run) -> None:
    proc, run_dir = table_run
    artifacts = list((run_dir / "artifacts").iterdir())
    assert len(artifacts) == 1
    art = artifacts[0]
    assert f"run directory: {art}" in proc.stdout
    assert (art / "rc").read_text().strip() == "2"  # ansible-playbook: a host failed
    assert (art / "status").read_text().strip() == "failed"
    assert "PLAY RECAP" in (art / "stdout").read_text()
    assert len(list((art / "job_events").glob("*.json"))) > 10
    summary = json.loads((art / "summary.json").read_text())
    assert summary["exit_code"] == 3
    assert [h["host"] for h in summary["hosts"]] == ["node1", "node2", "node3"]


def test_json_document(json_run) -> None:
    proc, doc = json_run
    assert proc.returncode == 3
    assert doc["schema_version"] == 1
    assert doc["kind"] == "sre.ansible.run"
    assert doc["playbook"] == "validate.yml"
    assert doc["status"] == "crit"
    assert doc["exit_code"] == 3
    assert doc["runner"] == {"status": "failed", "rc": 2}
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert {h: v["status"] for h, v in hosts.items()} == {
        "node1": "ok",
        "node2": "crit",
        "node3": "warn",
    }
    assert hosts["node1"]["health"]["worst"] == "ok"
    assert hosts["node1"]["health"]["problems"] == []
    assert hosts["node1"]["tasks"]["failed"] == 0
    crit = hosts["node2"]
    assert crit["health"]["actions"] == ["reset_gpu"]
    assert crit["tasks"]["failed"] == 1
    checks = {f["check"]: f for f in crit["health"]["problems"]}
    assert checks["ecc.uncorrected_volatile"]["severity"] == "crit"
    assert checks["ecc.uncorrected_volatile"]["gpu"]["index"] == 0
    assert crit["failures"][0]["task"] == "Fail the nodes that did not pass the gate."
    assert "reset_gpu" in crit["failures"][0]["msg"]
    assert hosts["node3"]["health"]["worst"] == "warn"
    assert hosts["node3"]["health"]["summary"]["warn"] == 1
    # Machine output on stdout only; the run directory on stderr, and it exists.
    assert f"run directory: {doc['run_dir']}" in proc.stderr
    assert Path(doc["artifact_dir"], "summary.json").is_file()
    assert str(Path(doc["run_dir"])).startswith(str(Path(doc["artifact_dir"]).parents[1]))


def test_extra_vars_and_environment_stay_out_of_the_run_directory(json_run) -> None:
    _, doc = json_run
    art = Path(doc["artifact_dir"])
    command = json.loads((art / "command").read_text())
    assert "hunter2" not in json.dumps(command)
    assert "<extra vars: sre_secret_token>" in command["command"]
    assert all(k.startswith(("ANSIBLE_", "RUNNER_")) for k in command["env"])
    assert "ANSIBLE_HOST_KEY_CHECKING" in command["env"]
    assert not (Path(doc["run_dir"]) / "env" / "extravars").exists()


def test_healthy_hosts_exit_zero(fleet: Path) -> None:
    proc = run_sre(
        "ansible", "validate", "-i", str(fleet), "--limit", "node1", "--json", cwd=fleet.parent
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "ok"
    assert doc["reason"] == "1 host(s) healthy"
    assert [h["host"] for h in doc["hosts"]] == ["node1"]


def test_unreachable_host_exits_4(tmp_path: Path) -> None:
    with closed_port() as port:
        inv = write_inventory(
            tmp_path / "hosts.yml",
            {
                "node1": {"gpu_health_replay": str(HOSTS["node1"])},
                "gone": {
                    "ansible_connection": "ssh",
                    "ansible_host": "127.0.0.1",
                    "ansible_port": port,
                    "ansible_ssh_common_args": "-o ConnectTimeout=5 -o BatchMode=yes",
                },
            },
        )
        proc = run_sre("ansible", "validate", "-i", str(inv), "--json", cwd=tmp_path)
    assert proc.returncode == ExitCode.UNREACHABLE, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts["gone"]["status"] == "unreachable"
    assert hosts["gone"]["tasks"]["unreachable"] is True
    assert "Connection refused" in hosts["gone"]["failures"][0]["msg"]
    assert hosts["node1"]["status"] == "ok"
    assert doc["reason"] == "unreachable: gone"


def test_health_checks_that_cannot_run_are_a_playbook_failure(tmp_path: Path) -> None:
    inv = write_inventory(
        tmp_path / "hosts.yml", {"node1": {"gpu_health_replay": str(tmp_path / "missing.json")}}
    )
    proc = run_sre("ansible", "validate", "-i", str(inv), cwd=tmp_path)
    assert proc.returncode == ExitCode.FAILED, proc.stdout + proc.stderr
    assert "playbook failed on node1" in proc.stdout
    assert "missing.json" in proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(
            ["-i", "{tmp}/nope.yml"], "nope.yml: --inventory: does not exist", id="no-inventory"
        ),
        pytest.param(
            ["-i", "{tmp}/bad.yml"], "bad.yml: --inventory: YAML parsing failed", id="bad-yaml"
        ),
        pytest.param(
            ["-i", "{tmp}/empty.yml"], "empty.yml: --inventory: has no hosts", id="no-hosts"
        ),
        pytest.param(
            ["-i", "{tmp}/good.yml", "--limit", "nomatch"],
            "--limit nomatch: matches no host",
            id="limit",
        ),
        pytest.param(
            ["-i", "{tmp}/good.yml", "-e", "novalue"],
            "-e: expected KEY=VALUE, got 'novalue'",
            id="e-no-equals",
        ),
        pytest.param(
            ["-i", "{tmp}/good.yml", "-e", "9x=1"], "-e 9x: not a variable name", id="e-bad-key"
        ),
        pytest.param(
            ["-i", "{tmp}/good.yml", "-e", "k=[1, 2]"], "-e k: VALUE must be a scalar", id="e-list"
        ),
        pytest.param(
            ["-i", "{tmp}/good.yml", "--playbook-dir", "{tmp}"],
            "--playbook-dir: validate.yml not found",
            id="playbook-dir",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "bad.yml").write_text("all:\n  hosts:\n    a: {x: [\n")
    (tmp_path / "empty.yml").write_text("all:\n  hosts: {}\n")
    write_inventory(tmp_path / "good.yml", {"node1": {}})
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = run_sre("ansible", "validate", *argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("sre: error: ")
    assert needle in lines[0]
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "state").exists()  # nothing ran, no run directory


def test_debug_adds_the_traceback(tmp_path: Path) -> None:
    proc = run_sre("--debug", "ansible", "validate", "-i", str(tmp_path / "nope.yml"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].endswith("--inventory: does not exist")


def test_help_names_the_exit_codes(tmp_path: Path) -> None:
    proc = run_sre("ansible", "--help", cwd=tmp_path)
    assert proc.returncode == 0
    for word in ("validate", "remediate", "upgrade", "3 CRIT", "4 unreachable"):
        assert word in proc.stdout


# ---- event folding, without Ansible -------------------------------------------------------


def ev(kind: str, host: str, action: str = "command", **res: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"host": host, "task": f"{action} task", "task_action": action}
    data["res"] = res
    if res.pop("_ignore", False):
        data["ignore_errors"] = True
    return {"event": kind, "event_data": data}


HEALTH_CRIT = {
    "worst": "crit",
    "actions": ["reset_gpu"],
    "summary": {"crit": 1},
    "findings": [
        {
            "check": "ecc.uncorrected_volatile",
            "severity": "crit",
            "action": "reset_gpu",
            "summary": "x",
        }
    ],
}
HEALTH_OK = {"worst": "ok", "actions": [], "summary": {"ok": 3}, "findings": []}


@pytest.mark.parametrize(
    ("events", "status", "code"),
    [
        pytest.param(
            [ev("runner_on_ok", "a", "gpu_health", **HEALTH_OK)], "successful", ExitCode.OK, id="ok"
        ),
        pytest.param(
            [
                ev("runner_on_ok", "a", "gpu_health", **HEALTH_CRIT),
                ev("runner_on_failed", "a", "assert"),
            ],
            "failed",
            ExitCode.CRIT,
            id="crit-gate",
        ),
        pytest.param(
            [ev("runner_on_ok", "a", "gpu_health", **HEALTH_CRIT)],
            "successful",
            ExitCode.CRIT,
            id="crit-without-gate",
        ),
        pytest.param(
            [
                ev("runner_on_unreachable", "a", msg="refused"),
                ev("runner_on_failed", "a", "assert"),
            ],
            "failed",
            ExitCode.UNREACHABLE,
            id="unreachable-then-gate",
        ),
        pytest.param(
            [
                ev("runner_on_unreachable", "a", msg="refused"),
                ev("runner_on_ok", "b", "gpu_health", **HEALTH_CRIT),
                ev("runner_on_failed", "b", "assert"),
            ],
            "failed",
            ExitCode.UNREACHABLE,
            id="unreachable-beats-crit",
        ),
        pytest.param(
            [
                ev("runner_on_ok", "a", "gpu_health", **HEALTH_CRIT),
                ev("runner_on_failed", "a", "assert"),
                ev("runner_on_ok", "b", "gpu_health", **HEALTH_OK),
                ev("runner_on_failed", "b", "apt", msg="E"),
            ],
            "failed",
            ExitCode.FAILED,
            id="broken-task-beats-crit",
        ),
        pytest.param(
            [
                ev("runner_on_failed", "a", "apt", _ignore=True, msg="ignored"),
                ev("runner_on_ok", "a"),
            ],
            "successful",
            ExitCode.OK,
            id="ignored-failure",
        ),
        pytest.param([], "failed", ExitCode.FAILED, id="syntax-error-no-events"),
        pytest.param([ev("runner_on_ok", "a")], "timeout", ExitCode.FAILED, id="timeout"),
    ],
)
def test_exit_code_precedence(events: list[dict[str, Any]], status: str, code: ExitCode) -> None:
    tracker = RunTracker(["a", "b"])
    for event in events:
        tracker.feed(event)
    assert tracker.result(status, 0 if status == "successful" else 2).exit_code() is code


def test_fqcn_action_and_delegated_host_are_folded() -> None:
    tracker = RunTracker(["a"])
    event = ev("runner_on_ok", "a", "sre.tools.gpu_health", **HEALTH_CRIT)
    event["event_data"]["resolved_action"] = "sre.tools.gpu_health"
    tracker.feed(event)
    tracker.feed(ev("runner_on_ok", "localhost", changed=True))
    result = tracker.result("successful", 0)
    assert tracker.hosts["a"].health is not None
    assert [o.host for o in result.inventory_hosts] == ["a"]
    assert result.to_dict()["other_hosts"][0]["tasks"]["changed"] == 1


@pytest.mark.parametrize(
    ("command", "playbook"),
    [("remediate", "remediate.yml"), ("upgrade", "rolling_upgrade.yml")],
)
def test_commands_run_their_playbook(tmp_path: Path, command: str, playbook: str) -> None:
    # A stand-in playbook in --playbook-dir: this checks which file each command runs and that
    # -e values arrive typed (YAML scalars); the real playbooks have tests of their own.
    (tmp_path / playbook).write_text(
        "- hosts: gpu_nodes\n  gather_facts: false\n  tasks:\n"
        "    - ansible.builtin.assert:\n"
        "        that: [flag is sameas true, batch == '10%', count == 3]\n"
    )
    inv = write_inventory(tmp_path / "hosts.yml", {"node1": {}})
    proc = run_sre(
        "ansible",
        command,
        "-i",
        str(inv),
        "--playbook-dir",
        str(tmp_path),
        "--json",
        "-e",
        "flag=true",
        "-e",
        "batch=10%",
        "-e",
        "count=3",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["playbook"] == playbook
    assert doc["hosts"][0]["tasks"]["ok"] == 1
    assert doc["hosts"][0]["health"] is None


def test_playbook_syntax_error_is_a_failure(tmp_path: Path) -> None:
    (tmp_path / "validate.yml").write_text("- hosts: all\n  tasks:\n    - no_such_module_x: {}\n")
    inv = write_inventory(tmp_path / "hosts.yml", {"node1": {}})
    proc = run_sre(
        "ansible", "validate", "-i", str(inv), "--playbook-dir", str(tmp_path), cwd=tmp_path
    )
    assert proc.returncode == ExitCode.FAILED, proc.stdout + proc.stderr
    assert "ansible-playbook failed (rc 4)" in proc.stdout
    assert "not run" in proc.stdout
