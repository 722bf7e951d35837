"""End to end on real daemons: a minion's beacon plays a lost-GPU recording, the master's reactor
runs the orchestration and the ``sre_remediate`` runner, and real Slurm drains that node with a
reason in our prefix. Hands-on actions (power_cycle) only drain and notify: no command runs."""

from __future__ import annotations

import json
import time

import pytest

from tests.helpers.salt import FIXTURES, SALT_DIR, remediation_master
from tests.helpers.slurm import SlurmCluster
from tests.salt.conftest import started_pair

pytestmark = pytest.mark.integration

NODE = "gpu01"
LOST = FIXTURES / "faults" / "gpu-lost.json"
DRAIN_TIMEOUT_SECONDS = 60.0


def test_beacon_event_drains_the_node_through_reactor_and_guardrails(
    cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("reactor")
    remediation_conf = work / "remediation.yaml"
    remediation_conf.write_text("max_drained_nodes: 2\nmax_drained_percent: 50\nnode_exec: local\n")
    audit = work / "audit.jsonl"
    master_extra = {
        **remediation_master(work, config=remediation_conf, slurm_conf=cluster.conf, execute=True),
        "reactor": [
            {
                "salt/beacon/*/gpu_health/sre/gpu/health/*": [
                    str(SALT_DIR / "reactor" / "gpu_health.sls")
                ]
            }
        ],
    }
    beacons = {"gpu_health": [{"interval": 1}, {"replay": str(LOST)}, {"node": NODE}]}
    with started_pair(work, minion_id=NODE, beacons=beacons, master_extra=master_extra) as pair:
        started = time.monotonic()
        deadline = started + DRAIN_TIMEOUT_SECONDS
        state = ""
        while time.monotonic() < deadline:
            out = cluster.scontrol("show", "node", "-o", NODE).stdout
            state = out
            if "Reason=sre:" in out:
                break
            time.sleep(0.5)
        else:
            pytest.fail(
                f"{NODE} was not drained by the reactor within {DRAIN_TIMEOUT_SECONDS:g}s:"
                f"\n{state}\n--- audit ---\n{audit.read_text() if audit.exists() else ''}"
                f"\n--- logs ---\n{pair.logs()[-6000:]}"
            )
        assert "DRAIN" in state
        others = cluster.scontrol("show", "node", "-o", "gpu02").stdout
        assert "Reason=" not in others or "sre:" not in others
        records = [json.loads(line) for line in audit.read_text().splitlines()]
        acted = [r for r in records if r.get("outcome") == "acted"]
        assert acted and acted[0]["node"] == NODE
        assert acted[0]["action"] == "power_cycle"
        commands = acted[0].get("commands") or []
        # Only the drain ran: a hands-on action never runs a command on the node.
        assert commands and all(c[0] == "scontrol" for c in commands), commands
        took = time.monotonic() - started
        print(f"beacon -> reactor -> drain: {took:.1f}s after the beacon code was synced")
