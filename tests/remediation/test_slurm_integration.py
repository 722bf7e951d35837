"""The engine against a real Slurm 22.05 (munged, slurmctld, 16 slurmd on loopback).

Node-side commands never run here: the node runner records them. Only Slurm is real.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sre_tools.health.model import Action, Severity
from sre_tools.remediation.audit import read_audit
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.model import Outcome, RemediationRequest, diag_from_dict
from sre_tools.remediation.slurm import SlurmClient
from tests.helpers.reports import diag_run, node_report
from tests.helpers.slurm import SlurmCluster
from tests.remediation.conftest import NODES
from tests.remediation.fakes import RecordingRunner

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def engine(
    cluster: SlurmCluster, tmp_path: Path, runner: RecordingRunner | None = None, **config: object
) -> Remediator:
    cfg = RemediationConfig(**{"node_exec": "local", **config})  # type: ignore[arg-type]
    return Remediator(
        cfg,
        SlurmClient(timeout=10, slurm_conf=cluster.conf),
        tmp_path / "state.db",
        tmp_path / "audit.jsonl",
        runner=runner or RecordingRunner(),
        dry_run=False,
    )


def request(
    node: str, action: Action = Action.RESET_GPU, event: str = "ev-1"
) -> RemediationRequest:
    return RemediationRequest(
        node=node,
        action=action,
        event_id=event,
        reason="ECC uncorrectable, GPU 3",
        source="test",
        checks=("ecc.uncorrected_volatile",),
        gpus=(3,),
    )


def show(cluster: SlurmCluster, node: str) -> str:
    return cluster.scontrol("show", "node", "-o", node).stdout


def test_drain_shows_in_sinfo_and_scontrol(cluster: SlurmCluster, tmp_path: Path) -> None:
    runner = RecordingRunner()
    rem = engine(cluster, tmp_path, runner, max_drained_percent=50)
    d = rem.handle(request("gpu07"))
    assert (d.outcome, d.code) == (Outcome.ACTED, "drained_and_acted")
    reasons = cluster.drain_reasons()
    assert reasons["gpu07"].startswith("sre: reset_gpu ev=ev-1: ECC uncorrectable, GPU 3")
    line = show(cluster, "gpu07")
    assert "State=IDLE+DRAIN" in line and "Reason=sre: reset_gpu ev=ev-1" in line
    # The reset ran (recorded) only after Slurm showed the node drained and idle.
    assert runner.calls == [("nvidia-smi", "--gpu-reset", "-i", "3")]
    info = rem.slurm.show_node("gpu07")
    assert info.drained and info.idle and info.partitions == ("gpu",)


def test_operator_drain_stays(cluster: SlurmCluster, tmp_path: Path) -> None:
    cluster.scontrol("update", "nodename=gpu02", "state=drain", "reason=bad PSU (bob)")
    rem = engine(cluster, tmp_path, max_drained_percent=100, max_drained_nodes=16)
    for i, action in enumerate((Action.REBOOT, Action.RMA_CANDIDATE, Action.RESET_GPU)):
        assert rem.handle(request("gpu02", action, f"op-{i}")).code == "operator_drain"
    healthy = node_report("gpu02", time.time())
    assert rem.try_resume("gpu02", healthy).code == "operator_drain"
    assert cluster.drain_reasons()["gpu02"] == "bad PSU (bob)"
    assert "drain" in cluster.node_states()["gpu02"]


def test_resume_after_a_healthy_fresh_report(cluster: SlurmCluster, tmp_path: Path) -> None:
    rem = engine(cluster, tmp_path, max_drained_percent=50)
    assert rem.handle(request("gpu09")).acted
    sick = node_report(
        "gpu09", time.time(), ("ecc.uncorrected_volatile", Severity.CRIT, Action.RESET_GPU, 3)
    )
    assert rem.try_resume("gpu09", sick).code == "still_unhealthy"
    assert "gpu09" in cluster.drain_reasons()
    # After the GPU reset: the health report alone is not enough, a passing level 2 is.
    assert rem.try_resume("gpu09", node_report("gpu09", time.time())).code == "diag_required"
    passing = [diag_from_dict(diag_run("gpu09", time.time(), 2))]
    d = rem.try_resume("gpu09", node_report("gpu09", time.time()), passing)
    assert (d.outcome, d.code) == (Outcome.ACTED, "resumed")
    assert "gpu09" not in cluster.drain_reasons()
    assert "Reason=" not in show(cluster, "gpu09")
    assert rem.state.drains() == []


STORM = r"""
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from sre_tools.remediation.config import load_config
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.slurm import SlurmClient
from tests.remediation.fakes import RecordingRunner

conf, state, audit, events_file, config_file = sys.argv[1:6]
events = json.loads(open(events_file).read())
cfg = load_config(Path(config_file))
runner = RecordingRunner()
rem = Remediator(cfg, SlurmClient(timeout=20, slurm_conf=conf), state, audit, runner=runner,
                 dry_run=False)
with ThreadPoolExecutor(max_workers=6) as pool:
    codes = list(pool.map(lambda e: rem.handle_event(e).code, events))
print(json.dumps({"codes": codes, "node_commands": [list(c) for c in runner.calls]}))
"""


# Two controllers (say two Salt masters), each with its own configuration file and the same
# budget, sharing one state: drains hold per cluster, not per controller.
CONTROLLER_CONFIG = (
    "max_drained_nodes: 3\nmax_drained_percent: 50\ncooldown_seconds: 3600\nnode_exec: local\n"
)


def test_a_storm_of_1000_events_stays_within_budget(
    cluster: SlurmCluster, tmp_path: Path, store_location: Path | str
) -> None:
    """1,000 events from four processes through two controllers into one state and audit log:
    a SQLite file (processes on one machine) or a PostgreSQL database (any machines)."""
    rng = random.Random(7)
    actions = ["reset_gpu", "reboot", "drain_and_reset", "rma_candidate", "restart_fabric_manager"]
    events = []
    for i in range(1000):
        # About one event in five repeats an earlier id (Salt re-fires, Ansible re-runs).
        n = rng.randrange(i) if i and rng.random() < 0.2 else i
        node = NODES[(n * 7) % 16]
        events.append(
            {
                "node": node,
                "action": actions[n % len(actions)],
                "event_id": f"storm-{n}",
                "source": "salt",
                "gpus": [n % 8],
            }
        )
    processes = 4
    files = []
    for p in range(processes):
        path = tmp_path / f"events-{p}.json"
        path.write_text(json.dumps(events[p::processes]))
        files.append(path)
    if isinstance(store_location, Path):
        state, audit = str(tmp_path / "state.db"), str(tmp_path / "audit.jsonl")
    else:
        state = audit = store_location
    configs = []
    for name in ("controller-a", "controller-b"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(CONTROLLER_CONFIG)
        configs.append(path)
    start = time.monotonic()
    procs = [
        subprocess.Popen(
            [
                *(sys.executable, "-c", STORM, str(cluster.conf), state, audit, str(f)),
                str(configs[i % 2]),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **cluster.env},
        )
        for i, f in enumerate(files)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(json.loads(out))
    elapsed = time.monotonic() - start
    assert elapsed < 60, f"the storm took {elapsed:.0f}s"

    # Slurm: exactly the budget (3 nodes, and at most 2 of the 4-node debug partition).
    ours = {n: r for n, r in cluster.drain_reasons().items() if r.startswith("sre:")}
    assert len(ours) == 3, ours
    assert len(set(ours) & set(NODES[:4])) <= 2

    records = read_audit(audit, strict=True)
    assert len(records) == 1000  # every decision audited, none lost or torn
    by_id = Counter(r["event_id"] for r in records)
    assert by_id == Counter(e["event_id"] for e in events)
    codes = Counter(r["code"] for r in records)
    assert codes["duplicate_event"] == sum(by_id.values()) - len(by_id)
    assert codes["budget_exhausted"] > 0
    assert "failed" not in Counter(r["outcome"] for r in records)

    # No duplicate action: one drain per node, at most one node command set per node.
    drains = [
        r["node"]
        for r in records
        for c in r["commands"]
        if c[:2] == ["scontrol", "update"] and "state=drain" in c
    ]
    assert sorted(drains) == sorted(ours)
    acted = [r["node"] for r in records if r["outcome"] == "acted"]
    assert sorted(acted) == sorted(ours)  # one acted decision per drained node
    node_commands = [c for res in results for c in res["node_commands"]]
    assert len(node_commands) <= 3
    with_node_commands = Counter(
        r["node"] for r in records if any(c[0] != "scontrol" for c in r["commands"])
    )
    assert all(n == 1 for n in with_node_commands.values()), with_node_commands
    assert set(with_node_commands) <= set(ours)
