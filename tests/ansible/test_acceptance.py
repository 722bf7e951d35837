"""acceptance.yml for real: nodes of a real Slurm 22.05 (tests/helpers/slurm.py) drained and
resumed through the real ``sre remediation`` engine, ``sre diag run`` (this checkout) on every
node, the health gate on a recorded NVML session, as tests/ansible/test_playbooks.py runs
rolling_upgrade.yml.

Not real: ``dcgmi``, ``nvbandwidth`` and ``all_reduce_perf`` are stand-ins, one set per node (on
the node's PATH through sre_diag_environment), printing recorded outputs (tests/fixtures/diag,
built from the tools' sources: see its README) and recording their argv. No GPU here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.ansible.test_playbooks import (
    CONTROLLER,
    audit,
    base_inventory,
    engine_vars,
    fake_bin,  # noqa: F401 - a fixture
    node_vars,
    path_env,
    run_playbook,
)
from tests.helpers.slurm import SlurmCluster

ROOT = Path(__file__).resolve().parents[2]
DIAG = ROOT / "tests" / "fixtures" / "diag"
HGX = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"
DRAIN = "Drain the node in Slurm with our reason (on the controller)."
GATE = "Fail the nodes that did not pass; they stay drained."

TOOL = """#!{python}
# Test STAND-IN for a GPU tool: prints a recorded output (tests/fixtures/diag), tests no GPU.
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "calls.log"), "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
sys.stdout.write(open({output!r}).read())
"""


def tools(tmp_path: Path, node: str, dcgm: str, nvbandwidth: str, nccl: str) -> dict[str, Any]:
    """Stand-in tools for ``node``, and the host variables that put them on its PATH."""
    bin_dir = tmp_path / "tools" / node
    bin_dir.mkdir(parents=True)
    for name, output in (
        ("dcgmi", DIAG / "dcgm" / f"{dcgm}.json"),
        ("nvbandwidth", DIAG / "nvbandwidth" / f"{nvbandwidth}.json"),
        ("all_reduce_perf", DIAG / "nccl" / f"{nccl}.txt"),
    ):
        path = bin_dir / name
        path.write_text(TOOL.format(python=sys.executable, output=str(output)), encoding="utf-8")
        path.chmod(0o755)
    return {
        "sre_diag_environment": {"PATH": f"{bin_dir}:/usr/bin:/bin"},
        "sre_diag_replay": str(HGX),
        "sre_diag_store": str(tmp_path / "diag.db"),
    }


def tool_calls(tmp_path: Path, node: str) -> list[list[str]]:
    log = tmp_path / "tools" / node / "calls.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def accept(
    cluster: SlurmCluster,
    tmp_path: Path,
    fake_bin: Path,  # noqa: F811
    nodes: dict[str, dict[str, Any]],
    **extra: Any,
) -> Any:
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path))
    return run_playbook(
        "acceptance.yml",
        inv,
        tmp_path,
        extra_vars={"acceptance_drain_poll": 1, "acceptance_drain_timeout": 30, **extra},
        env_update=path_env(fake_bin),
    )


@pytest.mark.integration
def test_acceptance_resumes_only_the_nodes_that_pass(
    cluster: SlurmCluster,
    tmp_path: Path,
    fake_bin: Path,  # noqa: F811
) -> None:
    cluster.scontrol("update", "nodename=gpu03", "state=drain", "reason=waiting for a PSU (ann)")
    nodes = {
        "gpu01": node_vars(
            HGX, **tools(tmp_path, "gpu01", "level3-pass", "h100-8-pass", "h100-8-pass")
        ),
        "gpu02": node_vars(
            HGX, **tools(tmp_path, "gpu02", "level3-pass", "h100-8-h2d-low-gpu4", "h100-8-pass")
        ),
        "gpu03": node_vars(
            HGX, **tools(tmp_path, "gpu03", "level3-pass", "h100-8-pass", "h100-8-pass")
        ),
    }
    result = accept(
        cluster,
        tmp_path,
        fake_bin,
        nodes,
        acceptance_batch="100%",
        acceptance_nvbandwidth=True,
        acceptance_nccl=True,
    )
    assert result.rc == 2, result  # gpu02 failed
    states = cluster.settled_states()
    reasons = cluster.drain_reasons()
    # gpu01 passed: back in service, through the engine, with the diagnostic as evidence.
    # Resumed: idle. Slurm may still flag it not responding (idle*) until its ping after the
    # resume is answered, which with the suite cluster's SlurmdTimeout=0 can take longer than
    # settled_states waits (as tests/salt/test_salt_rolling_upgrade.py notes).
    assert states["gpu01"].rstrip("*") == "idle", (states, str(result))
    assert [c[:4] for c in tool_calls(tmp_path, "gpu01")] == [
        ["dcgmi", "diag", "-r", "3"],
        ["nvbandwidth", "-j", "-t", tool_calls(tmp_path, "gpu01")[1][3]],
        ["all_reduce_perf", "-b", tool_calls(tmp_path, "gpu01")[2][2], "-e"],
    ]
    # gpu02 failed on nvbandwidth: stays drained with our reason, the finding in the message.
    assert "drain" in states["gpu02"], states
    # Our drain now says why it stays (sre remediation annotate): the first failing finding.
    assert reasons["gpu02"].startswith("sre: drain ev=manual:gpu02:"), reasons
    assert ": acceptance failed: CRIT diag.nvbandwidth" in reasons["gpu02"], reasons
    assert "GPU 4" in reasons["gpu02"], reasons
    gate = result.results(GATE)
    assert gate["gpu02"]["failed"], gate
    message = gate["gpu02"]["msg"]
    assert message.startswith("gpu02 failed acceptance (DCGM level 3, nvbandwidth, NCCL)"), message
    assert "CRITICAL" in message and "(GPU 4)" in message and "nvbandwidth" in message, message
    assert "passed acceptance" in gate["gpu01"]["msg"]
    # gpu03: an operator's drain, left alone, never tested.
    assert reasons["gpu03"] == "waiting for a PSU (ann)"
    assert tool_calls(tmp_path, "gpu03") == []
    assert (
        "gpu03 skipped, not tested"
        in result.results("Report the node an operator holds.")["gpu03"]["msg"]
    )
    records = audit(tmp_path)
    assert [(r["node"], r["code"]) for r in records if r["node"] == "gpu01"] == [
        ("gpu01", "drained"),
        ("gpu01", "resumed"),
    ]
    assert [r["code"] for r in records if r["node"] == "gpu02"] == ["drained", "annotated"]
    assert [r["code"] for r in records if r["node"] == "gpu03"] == ["operator_drain"]
    # The diagnostics are stored with the node's name, as `sre diag history` shows them.
    from sre_tools.diag import history
    from sre_tools.store import Store

    store = Store(tmp_path / "diag.db", create=False)
    assert history.passed(store, "gpu01", level=3)
    last = history.latest(store, "gpu02", kind="nvbandwidth")
    assert last is not None and last.status == "crit"


@pytest.mark.integration
def test_acceptance_takes_a_node_the_prolog_drained_and_the_engine_judges_warnings(
    cluster: SlurmCluster,
    tmp_path: Path,
    fake_bin: Path,  # noqa: F811
) -> None:
    """A node the Slurm prolog drained (an sre: reason) is ours to test; level 3 passes and it
    goes back. A level-3 warning keeps the other one drained."""
    for node in ("gpu04", "gpu05"):
        cluster.scontrol(
            "update",
            f"nodename={node}",
            "state=drain",
            f"reason=sre: diag ev=prolog:{node}:77: level 1 CRIT: GPU 0: persistence mode off",
        )
    nodes = {
        "gpu04": node_vars(
            HGX, **tools(tmp_path, "gpu04", "level3-pass", "h100-8-pass", "h100-8-pass")
        ),
        "gpu05": node_vars(
            HGX,
            **tools(
                tmp_path, "gpu05", "level3-persistence-warn-gpu6", "h100-8-pass", "h100-8-pass"
            ),
        ),
    }
    result = accept(cluster, tmp_path, fake_bin, nodes, acceptance_batch=1)
    assert result.rc == 2, result
    drains = {h: json.loads(r["stdout"]) for h, r in result.results(DRAIN).items()}
    assert drains["gpu04"]["code"] == drains["gpu05"]["code"] == "already_drained", drains
    assert cluster.settled_states()["gpu04"].rstrip("*") == "idle"  # resumed (see above)
    reasons = cluster.drain_reasons()
    assert reasons["gpu05"].startswith("sre: diag ev=prolog:gpu05:77: acceptance failed: WARN")
    message = result.results(GATE)["gpu05"]["msg"]
    assert "WARNING" in message and "(GPU 6)" in message, message
    assert [c[:4] for c in tool_calls(tmp_path, "gpu05")] == [["dcgmi", "diag", "-r", "3"]]


@pytest.mark.integration
def test_acceptance_check_mode_changes_nothing(
    cluster: SlurmCluster,
    tmp_path: Path,
    fake_bin: Path,  # noqa: F811
) -> None:
    nodes = {
        "gpu06": node_vars(
            HGX, **tools(tmp_path, "gpu06", "level3-pass", "h100-8-pass", "h100-8-pass")
        )
    }
    inv = base_inventory(nodes, **engine_vars(cluster, tmp_path))
    result = run_playbook("acceptance.yml", inv, tmp_path, "--check", env_update=path_env(fake_bin))
    assert result.rc == 0, result
    drains = result.results(DRAIN)
    assert json.loads(drains["gpu06"]["stdout"])["code"] == "would_drain"
    assert cluster.settled_states()["gpu06"] == "idle"
    assert tool_calls(tmp_path, "gpu06") == []
    assert CONTROLLER not in result.stats or result.stats[CONTROLLER]["failures"] == 0


def test_acceptance_refuses_levels_1_and_2(
    cluster: SlurmCluster,
    tmp_path: Path,
    fake_bin: Path,  # noqa: F811
) -> None:
    nodes = {"gpu07": node_vars(HGX)}
    result = accept(cluster, tmp_path, fake_bin, nodes, acceptance_level=2)
    assert result.rc == 2, result
    check = result.results("Check the acceptance options.")["gpu07"]
    assert check["failed"] and "acceptance_level must be 3 or 4 (got 2" in check["msg"]
    assert not result.results(DRAIN)
    assert cluster.settled_states()["gpu07"] == "idle"
