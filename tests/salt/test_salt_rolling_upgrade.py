"""salt/orch/rolling_upgrade.sls on real daemons: a salt-master runs the orchestration, the
``sre_remediate`` runner drains and resumes nodes of the real Slurm test cluster through the
remediation engine, the minion applies the real nvidia_driver formula and answers the health gate
with ``gpu.health``.

What is not real, as in tests/ansible/test_playbooks.py's rolling upgrade: the formula runs with
package installs, the repository, the service and the module load switched off (pillar
``rolling_upgrade:nvidia_driver``), its pin, module options and check script written under the
test directory; ``nvidia-smi`` is a script that answers with the new driver; apt's cache update
reads an empty private configuration (APT_CONFIG). Reboots are off. The GPUs are recordings played
back by ``gpu.health`` (pillar ``rolling_upgrade:health:replay``), rewritten with the node's name as
their host, as the node would have recorded them. The minion is ``gpu01``; the
second batch's ``gpu02`` has no minion: the runner drains it on the master, so a rollout that did
not stop would show it drained. Salt or Slurm missing fails the test.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.salt import (
    FIXTURES,
    PAIR_COMMANDS,
    SaltPair,
    audit_records,
    node_recording,
    remediation_settings,
    show_states,
    state_args,
)
from tests.helpers.slurm import SlurmCluster
from tests.salt.conftest import started_pair

pytestmark = pytest.mark.integration

MINION = "gpu01"
HEALTHY = FIXTURES / "h100-capture.json"
DBE = FIXTURES / "faults" / "dbe-volatile.json"  # CRIT: fails the gate
NEW_DRIVER = "535.309.01"
ORCH_TIMEOUT = 300


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("salt-rolling")


@pytest.fixture(scope="module")
def pair(
    slurm_cluster: SlurmCluster, work: Path, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[SaltPair]:
    # The minion inherits this environment: the fake nvidia-smi first on PATH, apt's private
    # configuration.
    fake_bin = work / "bin"
    fake_bin.mkdir()
    smi = fake_bin / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho '0, {NEW_DRIVER}, Enabled'\n", encoding="utf-8")
    smi.chmod(0o755)
    apt = work / "apt"
    for sub in ("lists/partial", "cache/archives/partial", "sources.list.d", "preferences.d"):
        (apt / sub).mkdir(parents=True)
    (apt / "sources.list").write_text("", encoding="utf-8")
    (apt / "apt.conf").write_text(
        f'Dir::State::Lists "{apt}/lists";\nDir::Cache "{apt}/cache";\n'
        f'Dir::Etc::SourceList "{apt}/sources.list";\n'
        f'Dir::Etc::SourceParts "{apt}/sources.list.d";\n'
        f'Dir::Etc::PreferencesParts "{apt}/preferences.d";\n',
        encoding="utf-8",
    )
    monkeypatch_module.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch_module.setenv("APT_CONFIG", str(apt / "apt.conf"))
    with started_pair(
        work / "salt",
        commands=(*PAIR_COMMANDS, "salt-run"),
        minion_id=MINION,
        master_extra=remediation_settings(work, slurm_cluster.conf),
    ) as salt_pair:
        yield salt_pair


def orchestrate(
    pair: SaltPair, node_dir: Path, source: Path, **rolling: Any
) -> tuple[int, dict[str, Any]]:
    """``salt-run state.orchestrate orch.rolling_upgrade``: (exit status, states by id). The
    minion's gate plays ``source`` back as the node would have recorded it (its host)."""
    node_dir.mkdir(parents=True)
    replay = node_recording(source, node_dir / "recording.json", MINION)
    pillar = {
        "rolling_upgrade": {
            "version": NEW_DRIVER,
            "reboot": False,
            "drain_poll": 1,
            "drain_timeout": 30,
            "health": {"replay": str(replay)},
            "nvidia_driver": {
                "install_packages": False,
                "add_repo": False,
                "manage_service": False,
                "load_module": False,
                "verify_method": "nvidia_smi",
                "verify_gpu_count": 1,
                "module_options": {"NVreg_RestrictProfilingToAdminUsers": 0},
                "pin_file": str(node_dir / "nvidia-driver.pref"),
                "module_options_file": str(node_dir / "nvidia.conf"),
                "verify_script": str(node_dir / "nvidia-driver-verify.py"),
            },
            **rolling,
        }
    }
    return pair.orchestrate("orch.rolling_upgrade", pillar, timeout=ORCH_TIMEOUT)


def test_healthy_batch_is_drained_upgraded_gated_and_resumed(
    pair: SaltPair, cluster: SlurmCluster, work: Path, tmp_path: Path
) -> None:
    code, states = orchestrate(pair, tmp_path / "node", HEALTHY, targets=[MINION])
    assert code == 0 and all(s["result"] for s in states.values()), show_states(states)
    prefix = f"sre-orch-rolling-upgrade-{MINION}"
    drain = states[f"{prefix}-runner-drain"]["changes"]["return"]
    assert (drain["outcome"], drain["code"]) == ("acted", "drained"), drain
    resume = states[f"{prefix}-runner-resume"]["changes"]["return"]
    assert (resume["outcome"], resume["code"]) == ("acted", "resumed"), resume
    # The formula ran on the minion with the new version.
    pin = (tmp_path / "node" / "nvidia-driver.pref").read_text(encoding="utf-8")
    assert f"Pin: version {NEW_DRIVER}-*" in pin
    assert (
        "NVreg_RestrictProfilingToAdminUsers=0" in (tmp_path / "node" / "nvidia.conf").read_text()
    )
    # Resumed: idle, not drained. Slurm may still flag it not responding (``idle*``) until its
    # ping after the resume is answered, which with the suite cluster's SlurmdTimeout=0 (its
    # simulated nodes have no slurmd) can take longer than settled_states waits.
    state = cluster.settled_states()[MINION]
    assert state.rstrip("*") == "idle", cluster.scontrol("show", "node", MINION).stdout
    codes = [r["code"] for r in audit_records(work) if r.get("node") == MINION]
    assert codes[-2:] == ["drained", "resumed"], codes


def test_failing_gate_stops_the_rollout_and_leaves_the_node_drained(
    pair: SaltPair, cluster: SlurmCluster, work: Path, tmp_path: Path
) -> None:
    code, states = orchestrate(pair, tmp_path / "node", DBE, targets=[MINION, "gpu02"], batch=1)
    assert code != 0, show_states(states)
    first = f"sre-orch-rolling-upgrade-{MINION}"
    assert states[f"{first}-state-nvidia-driver"]["result"] is True, show_states(states)
    gate = states[f"{first}-runner-resume"]
    assert gate["result"] is False, show_states(states)
    assert gate["changes"]["return"]["code"] == "still_unhealthy", gate
    # Upgraded, failed the gate, stays drained with our reason.
    pin = (tmp_path / "node" / "nvidia-driver.pref").read_text(encoding="utf-8")
    assert f"Pin: version {NEW_DRIVER}-*" in pin
    assert "drain" in cluster.settled_states()[MINION]
    reason = cluster.drain_reasons()[MINION]
    assert reason.startswith("sre: ") and f"rolling upgrade: NVIDIA driver {NEW_DRIVER}" in reason
    # The second batch never started: gpu02 neither drained nor touched.
    second = "sre-orch-rolling-upgrade-gpu02"
    assert states[f"{second}-runner-drain"]["result"] is False
    assert "requisite" in str(states[f"{second}-runner-drain"]["comment"]).lower()
    assert (
        "changes" not in states[f"{second}-runner-drain"]
        or not states[f"{second}-runner-drain"]["changes"]
    )
    assert cluster.settled_states()["gpu02"] == "idle"
    assert not [r for r in audit_records(work) if r.get("node") == "gpu02"]


def test_operators_drain_stops_the_rollout_before_anything_changes(
    pair: SaltPair, cluster: SlurmCluster, work: Path, tmp_path: Path
) -> None:
    cluster.scontrol("update", f"nodename={MINION}", "state=drain", "reason=ticket 4711")
    code, states = orchestrate(pair, tmp_path / "node", HEALTHY, targets=[MINION, "gpu02"])
    assert code != 0, show_states(states)
    first = f"sre-orch-rolling-upgrade-{MINION}"
    drain = states[f"{first}-runner-drain"]
    assert drain["result"] is False and drain["changes"]["return"]["code"] == "operator_drain"
    for step in ("runner-wait-drained", "state-nvidia-driver", "runner-resume"):
        assert states[f"{first}-{step}"]["result"] is False, step
    assert not (tmp_path / "node" / "nvidia-driver.pref").exists()
    assert cluster.drain_reasons()[MINION] == "ticket 4711"
    assert cluster.settled_states()["gpu02"] == "idle"


def test_batches_requisites_and_reboot_render(pair: SaltPair) -> None:
    """Five targets at 40%: batches of two; each batch waits for every gate of the one before;
    the reboot (on by default) follows a changed upgrade and the gate waits for the minion."""
    targets = [f"gpu{i:02d}" for i in range(1, 6)]
    pillar = {"rolling_upgrade": {"targets": targets, "batch": "40%", "branch": "570"}}
    code, out = pair.salt_run(
        "state.orchestrate_show_sls", "orch.rolling_upgrade", f"pillar={json.dumps(pillar)}"
    )
    assert code == 0, out
    [high] = out.values()

    def args(state_id: str, module: str) -> dict[str, Any]:
        return state_args(high[state_id], module)

    def gates(required: list[dict[str, str]]) -> list[str]:
        return sorted(r["salt"] for r in required)

    gate = "sre-orch-rolling-upgrade-{}-runner-resume"
    assert "require" not in args("sre-orch-rolling-upgrade-gpu02-runner-drain", "salt")
    assert gates(args("sre-orch-rolling-upgrade-gpu03-runner-drain", "salt")["require"]) == [
        gate.format("gpu01"),
        gate.format("gpu02"),
    ]
    assert gates(args("sre-orch-rolling-upgrade-gpu05-runner-drain", "salt")["require"]) == [
        gate.format("gpu03"),
        gate.format("gpu04"),
    ]
    drain = args("sre-orch-rolling-upgrade-gpu01-runner-drain", "salt")
    assert drain["reason"] == "rolling upgrade: NVIDIA driver 570.x"
    upgrade = args("sre-orch-rolling-upgrade-gpu01-state-nvidia-driver", "salt")
    assert upgrade["pillar"] == {"nvidia_driver": {"branch": "570"}}
    reboot = args("sre-orch-rolling-upgrade-gpu01-function-reboot", "salt")
    assert reboot["name"] == "system.reboot" and reboot["tgt"] == "gpu01"
    assert reboot["onchanges"] == [{"salt": "sre-orch-rolling-upgrade-gpu01-state-nvidia-driver"}]
    start = args("sre-orch-rolling-upgrade-gpu01-wait-for-event-start", "salt")
    assert start["name"] == "salt/minion/gpu01/start"
    assert {"salt": "sre-orch-rolling-upgrade-gpu01-wait-for-event-start"} in args(
        gate.format("gpu01"), "salt"
    )["require"]


def test_slo_gate_renders_first_and_holds_every_first_drain(pair: SaltPair) -> None:
    """pillar rolling_upgrade:slo_gate: `sre slo gate` on the master, required by the first
    batch's drains (the later batches wait for those already)."""
    gate = {"specs": ["/srv/slo/a b.yaml"], "store": "/var/lib/sre/store.db", "min_budget": 25}
    pillar = {
        "rolling_upgrade": {"targets": ["gpu01", "gpu02", "gpu03"], "batch": 2, "slo_gate": gate}
    }
    code, out = pair.salt_run(
        "state.orchestrate_show_sls", "orch.rolling_upgrade", f"pillar={json.dumps(pillar)}"
    )
    assert code == 0, out
    [high] = out.values()
    step = "sre-orch-rolling-upgrade-slo-gate-cmd-run"
    found = state_args(high[step], "cmd")
    assert found["name"] == (
        "sre slo gate '/srv/slo/a b.yaml' --store /var/lib/sre/store.db --min-budget 25"
    )
    assert found["python_shell"] is False

    def requires(state_id: str) -> list[dict[str, str]]:
        for item in high[state_id]["salt"]:
            if isinstance(item, dict) and "require" in item:
                return list(item["require"])
        return []

    for minion in ("gpu01", "gpu02"):
        assert requires(f"sre-orch-rolling-upgrade-{minion}-runner-drain") == [{"cmd": step}]
    assert {"cmd": step} not in requires("sre-orch-rolling-upgrade-gpu03-runner-drain")


@pytest.mark.parametrize(
    ("rolling", "message"),
    [
        pytest.param({}, "rolling_upgrade:targets must be a non-empty list", id="no-targets"),
        pytest.param(
            {"targets": "gpu01"}, "rolling_upgrade:targets must be a non-empty list", id="string"
        ),
        pytest.param(
            {"targets": ["gpu01"], "batch": "0"}, "rolling_upgrade:batch must be", id="zero-batch"
        ),
        pytest.param(
            {"targets": ["gpu01"], "slo_gate": {"specs": ["s.yaml"]}},
            "rolling_upgrade:slo_gate needs specs and exactly one of store and prometheus",
            id="slo-gate-no-source",
        ),
    ],
)
def test_bad_pillar_fails_the_render(pair: SaltPair, rolling: dict[str, Any], message: str) -> None:
    _, out = pair.salt_run(
        "state.orchestrate_show_sls",
        "orch.rolling_upgrade",
        f"pillar={json.dumps({'rolling_upgrade': rolling})}",
    )
    # Nothing renders, so nothing runs; the error names the pillar key.
    [errors] = out.values()
    assert isinstance(errors, list) and "Rendering SLS" in errors[0], out
    assert message in errors[0], errors[0]
