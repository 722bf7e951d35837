"""validate.yml, remediate.yml and rolling_upgrade.yml run for real, without containers.

Every "node" is an inventory host with ``ansible_connection: local`` and its own
inventory_hostname; its GPUs are a recorded NVML session (tests/fixtures/gpu) played back by the
gpu_health module's ``replay`` option. remediate.yml and rolling_upgrade.yml drain and resume
nodes of a real Slurm 22.05 (munged, slurmctld and one slurmd per node on loopback,
tests/helpers/slurm.py) through the real ``sre remediation`` engine; the "controller" is one more
local host.

What is not real, and why:

- Node-side commands of the engine (``nvidia-smi --gpu-reset``, ``systemctl reboot``) go through
  ``ssh``; a recording ``ssh`` first on PATH writes their argv to a file and runs nothing. No GPU
  is ever touched.
- rolling_upgrade.yml includes the real nvidia_driver role with package installs switched off
  (``nvidia_driver_install_packages: false``, no repository, no service, no reboot): its pin
  file, module options file, ``/proc/driver/nvidia/version`` and nouveau sysfs paths point into
  the test directory; ``modinfo`` and ``nvidia-smi`` are small scripts that answer with the new
  driver version; apt's cache update reads an empty private apt configuration (APT_CONFIG), so
  nothing on this machine changes.

Missing Slurm/munge or Ansible fails these tests; they never skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.conftest import PLAYBOOKS_DIR, ROLES_DIR, ROOT, tool, tool_env
from tests.helpers.slo_gate import write_gate_data
from tests.helpers.slurm import SlurmCluster

FIXTURES = ROOT / "tests" / "fixtures" / "gpu"
HEALTHY = FIXTURES / "h100-capture.json"
DBE = FIXTURES / "faults" / "dbe-volatile.json"  # CRIT, reset_gpu (GPU 0)
REMAP_FAILURE = FIXTURES / "faults" / "remap-failure.json"  # CRIT, rma_candidate
THERMAL = FIXTURES / "faults" / "thermal-slowdown.json"  # CRIT, check_mechanicals
MIG_PENDING = FIXTURES / "faults" / "mig-pending.json"  # WARN, reset_gpu
SRE = str(Path(sys.executable).parent / "sre")
NODES = [f"gpu{i:02d}" for i in range(1, 7)]
CONTROLLER = "slurmctl"
OLD_DRIVER = "535.261.03"
NEW_DRIVER = "535.309.01"
PLAY_TIMEOUT = 600


# --- running ansible-playbook --------------------------------------------------------------------


class PlayResult:
    """ansible-playbook's exit status and its ansible.posix.json output, per task and host."""

    def __init__(self, proc: subprocess.CompletedProcess[str]):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        try:
            self.data = json.loads(proc.stdout[proc.stdout.index("{") :])
        except ValueError:
            pytest.fail(f"no JSON from ansible-playbook:\n{proc.stdout}\n{proc.stderr}")

    def __str__(self) -> str:
        """The failed tasks (name, host, message), then stderr: what a failing test shows."""
        lines = [f"rc={self.rc}"]
        for play in self.data.get("plays", []):
            for task in play["tasks"]:
                for host, res in task["hosts"].items():
                    if res.get("failed") or res.get("unreachable"):
                        detail = res.get("msg") or res.get("stderr") or res
                        lines.append(f"{task['task']['name']} [{host}]: {str(detail)[:3000]}")
        return "\n".join(lines) + "\n" + self.stderr[-4000:]

    __repr__ = __str__

    def results(self, task_name: str) -> dict[str, dict[str, Any]]:
        """Host to result of every task with this name (later plays and batches win)."""
        out: dict[str, dict[str, Any]] = {}
        for play in self.data["plays"]:
            for task in play["tasks"]:
                if task["task"]["name"] == task_name:
                    out.update(task["hosts"])
        return out

    @property
    def stats(self) -> dict[str, dict[str, int]]:
        return self.data["stats"]


def run_playbook(
    playbook: str,
    inventory: dict[str, Any],
    tmp_path: Path,
    *args: str,
    extra_vars: dict[str, Any] | None = None,
    env_update: dict[str, str] | None = None,
) -> PlayResult:
    inv = tmp_path / "inventory.yml"
    inv.write_text(yaml.safe_dump(inventory), encoding="utf-8")
    argv = [tool("ansible-playbook"), "-i", str(inv), str(PLAYBOOKS_DIR / playbook), *args]
    if extra_vars:
        ev = tmp_path / "extra-vars.json"
        ev.write_text(json.dumps(extra_vars), encoding="utf-8")
        argv += ["-e", f"@{ev}"]
    env = tool_env()
    env.update(
        {
            "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
            "ANSIBLE_ROLES_PATH": str(ROLES_DIR),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            "ANSIBLE_FORKS": "8",
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_REMOTE_TEMP": str(tmp_path / "ansible-remote"),
            **(env_update or {}),
        }
    )
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=PLAY_TIMEOUT
    )
    (tmp_path / f"{Path(playbook).stem}.out.json").write_text(proc.stdout, encoding="utf-8")
    return PlayResult(proc)


def node_vars(replay: Path, **more: Any) -> dict[str, Any]:
    return {"gpu_health_replay": str(replay), **more}


def base_inventory(nodes: dict[str, dict[str, Any]], **all_vars: Any) -> dict[str, Any]:
    """GPU nodes (local connection, their own names) and a local Slurm controller."""
    return {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "sre_become": False,
                "gpu_health_sre_command": SRE,
                **all_vars,
            },
            "children": {
                "gpu_nodes": {"hosts": nodes},
                "slurm_controller": {"hosts": {CONTROLLER: {}}},
            },
        }
    }


# --- the module ----------------------------------------------------------------------------------


def test_gpu_health_module_documents_its_options() -> None:
    """ansible-doc reads the module, and DOCUMENTATION lists exactly the argument_spec options."""
    proc = subprocess.run(
        [tool("ansible-doc"), "-M", str(PLAYBOOKS_DIR / "library"), "--json", "gpu_health"],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)["gpu_health"]
    source = (PLAYBOOKS_DIR / "library" / "gpu_health.py").read_text(encoding="utf-8")
    spec_block = source[source.index("argument_spec={") : source.index("supports_check_mode")]
    spec_names = {
        line.split('"')[1] for line in spec_block.splitlines() if line.strip().startswith('"')
    }
    assert set(doc["doc"]["options"]) == spec_names
    returned = set(
        yaml.safe_load(doc["return"]) if isinstance(doc["return"], str) else doc["return"]
    )
    assert {"worst", "actions", "findings", "summary", "report", "action"} <= returned


# --- validate.yml --------------------------------------------------------------------------------

VALIDATE_NODES = {
    "gpu01": node_vars(HEALTHY),
    "gpu02": node_vars(DBE),
    "gpu03": node_vars(MIG_PENDING, gpu_health_method="python"),
    "gpu04": node_vars(HEALTHY, gpu_health_method="python"),
    "gpu05": node_vars(FIXTURES / "faults" / "no-such-recording.json"),
}
SUMMARY = "Print the summary of every node."
GATE = "Fail the nodes that did not pass the gate."


def summary_lines(result: PlayResult) -> dict[str, str]:
    printed = result.results(SUMMARY)
    assert len(printed) == 1, result  # run_once
    (res,) = printed.values()
    lines = res["msg"]
    assert lines[0].split()[:2] == ["node", "worst"]
    return {line.split()[0]: line for line in lines[1:]}


@pytest.mark.parametrize("check_mode", [False, True], ids=["run", "check-mode"])
def test_validate_gate(tmp_path: Path, check_mode: bool) -> None:
    args = ["--check"] if check_mode else []
    result = run_playbook("validate.yml", base_inventory(VALIDATE_NODES), tmp_path, *args)
    assert result.rc == 2, result  # some hosts failed
    stats = result.stats
    assert {h for h, s in stats.items() if s["failures"]} == {"gpu02", "gpu05"}, result
    assert stats["gpu01"]["failures"] == stats["gpu03"]["failures"] == 0

    lines = summary_lines(result)
    assert set(lines) == set(VALIDATE_NODES)
    assert lines["gpu01"].split()[1:6] == ["OK", "0", "0", "0", "24"], lines
    assert lines["gpu02"].split()[1:3] == ["CRIT", "2"] and lines["gpu02"].endswith("reset_gpu")
    assert lines["gpu03"].split()[1] == "WARN" and lines["gpu03"].endswith("reset_gpu")
    assert lines["gpu05"].split()[1] == "ERROR" and "cannot read recording" in lines["gpu05"]

    gate = result.results(GATE)
    assert gate["gpu02"]["failed"]
    message = gate["gpu02"]["msg"]
    assert message.startswith("gpu02: CRIT, required action(s): reset_gpu;"), message
    assert "ecc.uncorrected_volatile (GPU 0)" in message and "-> reset_gpu" in message
    assert "the health checks did not run" in gate["gpu05"]["msg"]
    assert not gate["gpu03"].get("failed") and "WARN, passed" in gate["gpu03"]["msg"]

    health = result.results("Run the GPU health checks.")
    assert health["gpu01"]["method"] == "cli" and health["gpu04"]["method"] == "python"
    assert health["gpu02"]["changed"] is False
    assert health["gpu02"]["host"] == "gpu02"  # the report names the node, not the recording
    assert health["gpu02"]["report"]["host"] == "gpu02"
    assert health["gpu02"]["actions"] == ["reset_gpu"]
    assert {f["severity"] for f in health["gpu02"]["findings"]} == {"crit"}
    assert health["gpu02"]["summary"]["crit"] == 2
    assert health["gpu02"]["summary"]["total"] == len(health["gpu02"]["report"]["findings"])


def test_validate_fails_warn_when_asked_and_applies_policy(tmp_path: Path) -> None:
    """validate_fail_severities, expected_gpus and a policy file plus overrides, both methods."""
    policy = tmp_path / "health.yaml"
    policy.write_text("profile: generic\nthermal:\n  hbm_warn_c: 80\n", encoding="utf-8")
    nodes = {
        # One GPU recorded, eight expected: gpu.count is CRIT.
        "gpu01": node_vars(
            HEALTHY,
            gpu_health_expected_gpus=8,
            gpu_health_policy_file=str(policy),
            gpu_health_policy={"thermal": {"hbm_crit_c": 90}},
        ),
        "gpu02": node_vars(
            HEALTHY,
            gpu_health_expected_gpus=8,
            gpu_health_method="python",
            gpu_health_policy_file=str(policy),
        ),
        "gpu03": node_vars(MIG_PENDING),
        "gpu04": node_vars(HEALTHY, gpu_health_policy={"no_such_key": 1}),
        # sre_agent_policy as the example inventory passes it: the profile expects 8 GPUs.
        "gpu05": node_vars(HEALTHY, gpu_health_policy={"profile": "h100-sxm-8"}),
    }
    result = run_playbook(
        "validate.yml",
        base_inventory(nodes),
        tmp_path,
        extra_vars={"validate_fail_severities": "crit, warn"},  # as `sre ansible -e` passes it
    )
    gate = result.results(GATE)
    assert {h for h, r in gate.items() if r.get("failed")} == set(nodes), result
    for host in ("gpu01", "gpu02", "gpu05"):
        assert "gpu.count" in gate[host]["msg"] and "1 of 8 expected GPUs" in gate[host]["msg"]
    assert gate["gpu03"]["msg"].startswith("gpu03: WARN, required action(s): reset_gpu")
    assert "no_such_key" in gate["gpu04"]["msg"] and "unknown policy key" in gate["gpu04"]["msg"]


EXAMPLE_INVENTORY = ROOT / "inventory" / "example" / "hosts.yml"


def test_validate_with_the_example_inventory(tmp_path: Path) -> None:
    """The example inventory's per-SKU policy reaches the gate: an 8-GPU HGX recording passes
    the H100 SXM nodes, a 1-GPU recording fails them on the GPU count."""
    overrides = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "sre_become": False,
        "gpu_health_sre_command": SRE,
    }
    listed = subprocess.run(
        [tool("ansible-inventory"), "-i", str(EXAMPLE_INVENTORY), "--list"],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    h100 = json.loads(listed.stdout)["gpu_h100_sxm"]["hosts"]
    assert len(h100) >= 2
    for recording, passes in ((FIXTURES / "hgx-h100-8-synthetic.json", True), (HEALTHY, False)):
        ev = tmp_path / "vars.json"
        ev.write_text(json.dumps({**overrides, "gpu_health_replay": str(recording)}))
        proc = subprocess.run(
            [
                tool("ansible-playbook"),
                "-i",
                str(EXAMPLE_INVENTORY),
                "--limit",
                "gpu_h100_sxm",
                "-e",
                f"@{ev}",
                str(PLAYBOOKS_DIR / "validate.yml"),
            ],
            cwd=ROOT,
            env={**tool_env(), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json"},
            capture_output=True,
            text=True,
            timeout=PLAY_TIMEOUT,
        )
        result = PlayResult(proc)
        gate = result.results(GATE)
        assert set(gate) == set(h100), result
        health = result.results("Run the GPU health checks.")
        for host in h100:
            assert health[host]["report"]["findings"], host
            if passes:
                assert not gate[host].get("failed"), result
            else:
                assert "1 of 8 expected GPUs" in gate[host]["msg"], result
        assert (result.rc == 0) is passes, result


# --- a real Slurm cluster ------------------------------------------------------------------------


@pytest.fixture
def fake_bin(tmp_path: Path) -> Path:
    """ssh that records its argv (one JSON list a line) and runs nothing."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ssh = bin_dir / "ssh"
    log = tmp_path / "ssh.log"
    ssh.write_text(
        f"#!{sys.executable}\nimport json, sys\n"
        f"with open({str(log)!r}, 'a') as f:\n    f.write(json.dumps(sys.argv[1:]) + '\\n')\n",
        encoding="utf-8",
    )
    ssh.chmod(0o755)
    return bin_dir


def ssh_calls(tmp_path: Path) -> list[list[str]]:
    log = tmp_path / "ssh.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


def engine_vars(cluster: SlurmCluster, tmp_path: Path, **config: Any) -> dict[str, Any]:
    cfg = tmp_path / "remediation.yaml"
    settings = {"max_drained_nodes": 2, "max_drained_percent": 50, **config}
    cfg.write_text(yaml.safe_dump({"remediation": settings}), encoding="utf-8")
    return {
        "sre_remediation_command": SRE,
        "sre_remediation_config": str(cfg),
        "sre_remediation_state": str(tmp_path / "remediation.db"),
        "sre_remediation_audit": str(tmp_path / "audit.jsonl"),
        "sre_remediation_environment": {"SLURM_CONF": str(cluster.conf)},
    }


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "audit.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def path_env(fake_bin: Path) -> dict[str, str]:
    return {"PATH": os.pathsep.join([str(fake_bin), tool_env()["PATH"]])}


# --- remediate.yml -------------------------------------------------------------------------------

DECIDE = "Decide on the report's action, and act when asked (on the controller)."


@pytest.mark.integration
def test_remediate_is_a_dry_run_by_default(cluster, tmp_path, fake_bin) -> None:
    nodes = {"gpu01": node_vars(DBE), "gpu02": node_vars(HEALTHY)}
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path))
    result = run_playbook("remediate.yml", inv, tmp_path, env_update=path_env(fake_bin))
    assert result.rc == 0, result
    decision = json.loads(result.results(DECIDE)["gpu01"]["stdout"])
    assert decision["outcome"] == "dry_run" and decision["code"] == "would_drain", decision
    assert ["nvidia-smi", "--gpu-reset", "-i", "0"] in decision["commands"]
    assert result.results(DECIDE)["gpu02"].get("skipped"), "a healthy node asks for nothing"
    assert cluster.settled_states()["gpu01"] == "idle"
    assert ssh_calls(tmp_path) == []
    assert [r["outcome"] for r in audit(tmp_path)] == ["dry_run"]


@pytest.mark.integration
def test_remediate_execute_guardrails(cluster, tmp_path, fake_bin) -> None:
    """Drain with our prefix, an operator's drain left alone, the budget refusing the third."""
    cluster.scontrol("update", "nodename=gpu03", "state=drain", "reason=bad PSU (bob)")
    nodes = {
        "gpu01": node_vars(REMAP_FAILURE),  # rma_candidate: drain and notify
        "gpu02": node_vars(THERMAL),  # check_mechanicals: drain and notify
        "gpu03": node_vars(DBE),  # an operator's node
        "gpu04": node_vars(REMAP_FAILURE),  # over the budget of 2
    }
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path, max_drained_nodes=2))
    result = run_playbook(
        "remediate.yml",
        inv,
        tmp_path,
        "--forks",
        "1",  # one at a time, so which node meets the exhausted budget is known
        extra_vars={"remediate_execute": True},
        env_update=path_env(fake_bin),
    )
    assert result.rc == 0, result  # refusals are normal outcomes
    decisions = {h: json.loads(r["stdout"]) for h, r in result.results(DECIDE).items()}
    assert (decisions["gpu01"]["outcome"], decisions["gpu01"]["code"]) == (
        "acted",
        "drained_notify",
    )
    assert decisions["gpu02"]["code"] == "drained_notify"
    assert (decisions["gpu03"]["outcome"], decisions["gpu03"]["code"]) == (
        "refused",
        "operator_drain",
    )
    assert (decisions["gpu04"]["outcome"], decisions["gpu04"]["code"]) == (
        "refused",
        "budget_exhausted",
    )
    assert result.results(DECIDE)["gpu01"]["changed"] is True
    assert result.results(DECIDE)["gpu04"]["changed"] is False
    reasons = cluster.drain_reasons()
    assert reasons["gpu01"].startswith("sre: rma_candidate ev=report:gpu01:"), reasons
    assert reasons["gpu02"].startswith("sre: check_mechanicals"), reasons
    assert reasons["gpu03"] == "bad PSU (bob)"
    assert "gpu04" not in reasons
    assert ssh_calls(tmp_path) == []  # hands-on actions run nothing on the node
    codes = sorted(r["code"] for r in audit(tmp_path))
    assert codes == sorted(
        ["drained_notify", "drained_notify", "operator_drain", "budget_exhausted"]
    )


@pytest.mark.integration
def test_remediate_reset_then_resume(cluster, tmp_path, fake_bin) -> None:
    """A GPU reset runs on the node (recorded ssh), then a healthy report resumes the node."""
    inv = base_inventory({"gpu01": node_vars(DBE)}, **engine_vars(cluster, tmp_path))
    env = path_env(fake_bin)
    result = run_playbook(
        "remediate.yml", inv, tmp_path, extra_vars={"remediate_execute": True}, env_update=env
    )
    assert result.rc == 0, result
    decision = json.loads(result.results(DECIDE)["gpu01"]["stdout"])
    assert decision["code"] == "drained_and_acted", decision
    calls = ssh_calls(tmp_path)
    assert len(calls) == 1 and calls[0][-2:] == ["gpu01", "nvidia-smi --gpu-reset -i 0"], calls
    assert cluster.drain_reasons()["gpu01"].startswith("sre: reset_gpu")

    # The resume runs `sre diag run --level 2` on the node: a stand-in dcgmi prints a recorded
    # result (tests/fixtures/diag/dcgm), first a failing one.
    dcgmi = fake_bin / "dcgmi"
    dcgm = ROOT / "tests" / "fixtures" / "diag" / "dcgm"
    dcgmi.write_text(f"#!/bin/sh\ncat {dcgm}/level2-memory-fail-gpu3.json\n", encoding="utf-8")
    dcgmi.chmod(0o755)

    # Still unhealthy: no resume.
    resume = "Resume the node through the engine (on the controller)."
    result = run_playbook(
        "remediate.yml",
        inv,
        tmp_path,
        extra_vars={"remediate_execute": True, "remediate_resume": True},
        env_update=env,
    )
    assert json.loads(result.results(resume)["gpu01"]["stdout"])["code"] == "still_unhealthy"
    assert "drain" in cluster.settled_states()["gpu01"]

    # Healthy again, but the level-2 diagnostic after the reset fails: still no resume.
    inv = base_inventory({"gpu01": node_vars(HEALTHY)}, **engine_vars(cluster, tmp_path))
    resuming = {"remediate_execute": True, "remediate_resume": True}
    result = run_playbook("remediate.yml", inv, tmp_path, extra_vars=resuming, env_update=env)
    answer = json.loads(result.results(resume)["gpu01"]["stdout"])
    assert (answer["outcome"], answer["code"]) == ("refused", "diag_failed"), answer
    assert "diag.dcgm.memory is crit" in answer["message"], answer
    assert "drain" in cluster.settled_states()["gpu01"]

    # Without the diagnostic (remediate_resume_diag_level 0) the engine asks for one.
    result = run_playbook(
        "remediate.yml",
        inv,
        tmp_path,
        extra_vars={**resuming, "remediate_resume_diag_level": 0},
        env_update=env,
    )
    answer = json.loads(result.results(resume)["gpu01"]["stdout"])
    assert answer["code"] == "diag_required" and "passing level 2" in answer["message"], answer

    dcgmi.write_text(f"#!/bin/sh\ncat {dcgm}/level2-pass.json\n", encoding="utf-8")
    result = run_playbook("remediate.yml", inv, tmp_path, extra_vars=resuming, env_update=env)
    assert result.rc == 0, result
    answer = json.loads(result.results(resume)["gpu01"]["stdout"])
    assert (answer["outcome"], answer["code"]) == ("acted", "resumed"), answer
    assert cluster.settled_states()["gpu01"] == "idle"


@pytest.mark.integration
def test_remediate_explicit_action_is_an_event(cluster, tmp_path, fake_bin) -> None:
    inv = base_inventory({"gpu02": node_vars(HEALTHY)}, **engine_vars(cluster, tmp_path))
    result = run_playbook(
        "remediate.yml",
        inv,
        tmp_path,
        extra_vars={
            "remediate_execute": True,
            "remediate_action": "reboot",
            "remediate_reason": "stuck after maintenance",
            "remediate_event_id": "ansible-test-1",
        },
        env_update=path_env(fake_bin),
    )
    assert result.rc == 0, result
    task = "Ask for a given action, as an event (on the controller)."
    decision = json.loads(result.results(task)["gpu02"]["stdout"])
    assert decision["code"] == "drained_and_acted", decision
    assert ssh_calls(tmp_path)[0][-2:] == ["gpu02", "systemctl reboot"]
    assert cluster.drain_reasons()["gpu02"].startswith("sre: reboot ev=ansible-test-1")


# --- rolling_upgrade.yml -------------------------------------------------------------------------


@pytest.fixture
def driver_sandbox(tmp_path: Path, fake_bin: Path) -> dict[str, Any]:
    """nvidia_driver with installs off and every file it writes or reads under tmp_path."""
    for name in NODES:
        (tmp_path / "nodes" / name).mkdir(parents=True)
        (tmp_path / "nodes" / name / "proc-version").write_text(
            f"NVRM version: NVIDIA UNIX x86_64 Kernel Module  {OLD_DRIVER}  Wed Jun 25 2025\n",
            encoding="utf-8",
        )
    for name, text in {
        "modinfo": f"{NEW_DRIVER}\n",
        "nvidia-smi": f"0, GPU-11111111-2222-3333-4444-555555555555, NVIDIA H100 80GB HBM3, "
        f"{NEW_DRIVER}, Enabled\n",
    }.items():
        path = fake_bin / name
        path.write_text(f"#!/bin/sh\ncat <<'EOF'\n{text}EOF\n", encoding="utf-8")
        path.chmod(0o755)
    apt = tmp_path / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
        (apt / sub).mkdir(parents=True)
    (apt / "apt.conf").write_text(
        f'Dir::State::Lists "{apt}/lists";\n'
        f'Dir::Cache "{apt}/cache";\n'
        f'Dir::Etc::SourceList "{apt}/sources.list";\n'
        f'Dir::Etc::SourceParts "{apt}/sources.list.d";\n'
        f'Dir::Etc::PreferencesParts "{apt}/preferences.d";\n',
        encoding="utf-8",
    )
    (apt / "sources.list").write_text("", encoding="utf-8")
    node_dir = str(tmp_path / "nodes") + "/{{ inventory_hostname }}"
    return {
        "extra_vars": {
            "nvidia_driver_install_packages": False,
            "nvidia_driver_add_repo": False,
            "nvidia_driver_manage_service": False,
            "nvidia_driver_load_module": False,
            "nvidia_driver_verify_method": "nvidia_smi",
            "nvidia_driver_verify_gpu_count": 1,
            "nvidia_driver_module_options": {"NVreg_RestrictProfilingToAdminUsers": 0},
            "_nvidia_driver_pin_file": f"{node_dir}/nvidia-driver.pref",
            "_nvidia_driver_module_options_file": f"{node_dir}/nvidia-driver-options.conf",
            "_nvidia_driver_proc_version": f"{node_dir}/proc-version",
            "_nvidia_driver_nouveau_sysfs": f"{node_dir}/no-nouveau",
            "rolling_upgrade_driver_version": NEW_DRIVER,
            "rolling_upgrade_reboot": False,
            "rolling_upgrade_drain_poll": 1,
            "rolling_upgrade_drain_timeout": 30,
        },
        "env": {**path_env(fake_bin), "APT_CONFIG": str(apt / "apt.conf")},
    }


def pinned(tmp_path: Path, node: str) -> str | None:
    pin = tmp_path / "nodes" / node / "nvidia-driver.pref"
    return pin.read_text() if pin.exists() else None


ROLLING_NODE_VARS = {"nvidia_driver_branch": "535", "nvidia_driver_version": OLD_DRIVER}


@pytest.mark.integration
def test_rolling_upgrade_stops_at_a_failing_batch(cluster, tmp_path, driver_sandbox) -> None:
    nodes = {n: node_vars(HEALTHY, **ROLLING_NODE_VARS) for n in NODES}
    nodes["gpu04"] = node_vars(DBE, **ROLLING_NODE_VARS)  # fails the gate after its upgrade
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path))
    result = run_playbook(
        "rolling_upgrade.yml",
        inv,
        tmp_path,
        extra_vars={**driver_sandbox["extra_vars"], "rolling_upgrade_batch": 2},
        env_update=driver_sandbox["env"],
    )
    assert result.rc != 0, result
    states = cluster.settled_states()
    reasons = cluster.drain_reasons()
    # Batches 1 and 2: upgraded (the pin names the new version), gated, resumed.
    for node in ("gpu01", "gpu02", "gpu03"):
        assert states[node] == "idle", (node, states, str(result))
        assert f"Pin: version {NEW_DRIVER}-*" in (pinned(tmp_path, node) or ""), node
    # The failing node: upgraded, failed the gate, stays drained with our reason.
    assert f"Pin: version {NEW_DRIVER}-*" in (pinned(tmp_path, "gpu04") or "")
    assert "drain" in states["gpu04"]
    assert reasons["gpu04"].startswith("sre: drain ev=manual:gpu04:"), reasons
    assert f"rolling upgrade: NVIDIA driver {NEW_DRIVER}" in reasons["gpu04"]
    gate = result.results("Fail the nodes that did not pass, so no later batch starts.")
    assert gate["gpu04"]["failed"], gate
    assert "failed the health gate" in gate["gpu04"]["msg"]
    assert "ecc.uncorrected_volatile" in gate["gpu04"]["msg"]
    # Batch 3 never started: untouched, not drained, no pin written.
    for node in ("gpu05", "gpu06"):
        assert states[node] == "idle" and pinned(tmp_path, node) is None, node
        assert node not in result.results(
            "Drain the node in Slurm with our reason (on the controller)."
        )
    # The role saw the old module loaded and the new one installed, and did not reboot (off).
    reboot_note = result.results(
        "nvidia_driver : Report that a reboot is needed and rebooting is off."
    )
    assert (
        f"module {OLD_DRIVER} is loaded, {NEW_DRIVER} is installed" in reboot_note["gpu01"]["msg"]
    )
    options = (tmp_path / "nodes" / "gpu01" / "nvidia-driver-options.conf").read_text()
    assert "NVreg_RestrictProfilingToAdminUsers=0" in options
    records = audit(tmp_path)
    assert [r["code"] for r in records if r["node"] == "gpu04"] == ["drained"]
    assert sorted(r["node"] for r in records if r["code"] == "resumed") == [
        "gpu01",
        "gpu02",
        "gpu03",
    ]


@pytest.mark.integration
def test_rolling_upgrade_skips_an_operators_node(cluster, tmp_path, driver_sandbox) -> None:
    cluster.scontrol("update", "nodename=gpu02", "state=drain", "reason=ticket 4711")
    nodes = {n: node_vars(HEALTHY, **ROLLING_NODE_VARS) for n in NODES[:3]}
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path))
    result = run_playbook(
        "rolling_upgrade.yml",
        inv,
        tmp_path,
        extra_vars={**driver_sandbox["extra_vars"], "rolling_upgrade_batch": "100%"},
        env_update=driver_sandbox["env"],
    )
    assert result.rc == 0, result
    states = cluster.settled_states()
    assert states["gpu01"] == states["gpu03"] == "idle", states
    assert cluster.drain_reasons()["gpu02"] == "ticket 4711"
    assert pinned(tmp_path, "gpu02") is None
    assert pinned(tmp_path, "gpu03") is not None
    note = result.results("Report the node an operator holds.")
    assert "gpu02 skipped, not upgraded" in note["gpu02"]["msg"]


@pytest.mark.integration
def test_rolling_upgrade_check_mode_changes_nothing(cluster, tmp_path, driver_sandbox) -> None:
    nodes = {n: node_vars(HEALTHY, **ROLLING_NODE_VARS) for n in NODES[:2]}
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path))
    result = run_playbook(
        "rolling_upgrade.yml",
        inv,
        tmp_path,
        "--check",
        extra_vars={**driver_sandbox["extra_vars"], "rolling_upgrade_batch": 2},
        env_update=driver_sandbox["env"],
    )
    assert result.rc == 0, result
    drains = result.results("Drain the node in Slurm with our reason (on the controller).")
    assert {json.loads(r["stdout"])["code"] for r in drains.values()} == {"would_drain"}
    states = cluster.settled_states()
    assert all(states[n] == "idle" for n in cluster.nodes), states
    assert pinned(tmp_path, "gpu01") is None


@pytest.mark.integration
def test_rolling_upgrade_stops_at_a_blocking_slo_gate(cluster, tmp_path, driver_sandbox) -> None:
    """The pre-flight gate on a store whose SLO pages: nothing is drained, nothing upgraded."""
    spec, store = write_gate_data(tmp_path, at=time.time())
    nodes = {n: node_vars(HEALTHY, **ROLLING_NODE_VARS) for n in NODES[:2]}
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path))
    result = run_playbook(
        "rolling_upgrade.yml",
        inv,
        tmp_path,
        extra_vars={
            **driver_sandbox["extra_vars"],
            "rolling_upgrade_slo_gate_spec": spec,
            "rolling_upgrade_slo_gate_store": store,
            "rolling_upgrade_slo_gate_command": SRE,
        },
        env_update=driver_sandbox["env"],
    )
    assert result.rc != 0, result
    gate = result.results("Stop the rollout while an SLO blocks.")["localhost"]
    assert gate["failed"], gate
    assert "Rollout stopped before any node was drained" in gate["msg"], gate
    assert "blocked: jobs-paging: paging: page-quick" in gate["msg"], gate
    assert "blocked: jobs-spent: budget remaining 5.0% < 10%" in gate["msg"], gate
    assert not result.results("Drain the node in Slurm with our reason (on the controller).")
    states = cluster.settled_states()
    for node in NODES[:2]:
        assert states[node] == "idle" and pinned(tmp_path, node) is None, (node, states)
    assert audit(tmp_path) == []
