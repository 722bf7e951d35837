"""salt/orch/acceptance.sls on real daemons: a salt-master runs the orchestration, the
``sre_remediate`` runner drains and resumes nodes of the real Slurm test cluster through the
remediation engine, and the minion answers with ``gpu.diag`` (the real ``sre diag run`` of this
checkout) and ``gpu.health``.

What is not real: ``dcgmi`` and ``nvbandwidth`` on the minion's PATH are stand-ins that print a
recorded output (tests/fixtures/diag, built from the tools' sources: see its README), chosen per
test through a file next to them; the GPUs are named from a recording (``gpu.diag``'s
``replay``) and the health gate plays one back (``gpu.health``'s ``replay``). The minion is
``gpu01``; ``gpu02`` has no minion, so its acceptance can never pass. Salt or Slurm missing fails
the test.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.salt import (
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

ROOT = Path(__file__).resolve().parents[2]
DIAG = ROOT / "tests" / "fixtures" / "diag"
HGX = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"
MINION = "gpu01"
ORCH_TIMEOUT = 300

# Prints the output named in outputs.json next to it for its own name; records its argv.
TOOL = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
name = os.path.basename(sys.argv[0])
with open(os.path.join(here, "calls.log"), "a") as fh:
    fh.write(json.dumps([name] + sys.argv[1:]) + "\\n")
sys.stdout.write(open(json.load(open(os.path.join(here, "outputs.json")))[name]).read())
"""


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("salt-acceptance")


@pytest.fixture(scope="module")
def pair(
    slurm_cluster: SlurmCluster, work: Path, monkeypatch_module: pytest.MonkeyPatch
) -> Iterator[SaltPair]:
    tools = work / "tools"
    tools.mkdir()
    for name in ("dcgmi", "nvbandwidth"):
        path = tools / name
        path.write_text(TOOL.format(python=sys.executable), encoding="utf-8")
        path.chmod(0o755)
    # The minion inherits this environment: the stand-in tools first on its PATH.
    monkeypatch_module.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    with started_pair(
        work / "salt",
        commands=(*PAIR_COMMANDS, "salt-run"),
        minion_id=MINION,
        master_extra=remediation_settings(work, slurm_cluster.conf),
    ) as salt_pair:
        yield salt_pair


@pytest.fixture
def tools(work: Path) -> Iterator[Path]:
    bin_dir = work / "tools"
    (bin_dir / "calls.log").unlink(missing_ok=True)
    yield bin_dir
    (bin_dir / "calls.log").unlink(missing_ok=True)


def outputs(bin_dir: Path, dcgm: str, nvbandwidth: str = "h100-8-pass") -> None:
    table = {
        "dcgmi": str(DIAG / "dcgm" / f"{dcgm}.json"),
        "nvbandwidth": str(DIAG / "nvbandwidth" / f"{nvbandwidth}.json"),
    }
    (bin_dir / "outputs.json").write_text(json.dumps(table), encoding="utf-8")


def calls(bin_dir: Path) -> list[list[str]]:
    log = bin_dir / "calls.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def orchestrate(pair: SaltPair, tmp_path: Path, **acceptance: Any) -> tuple[int, dict[str, Any]]:
    replay = node_recording(HGX, tmp_path / "recording.json", MINION)
    pillar = {
        "acceptance": {
            "drain_poll": 1,
            "drain_timeout": 30,
            "diag": {"replay": str(HGX), "store": str(tmp_path / "diag.db"), "timeout": 120},
            "health": {"replay": str(replay)},
            **acceptance,
        }
    }
    return pair.orchestrate("orch.acceptance", pillar, timeout=ORCH_TIMEOUT)


def test_a_passing_minion_is_drained_tested_and_resumed(
    pair: SaltPair, cluster: SlurmCluster, work: Path, tmp_path: Path, tools: Path
) -> None:
    outputs(tools, "level3-pass")
    code, states = orchestrate(pair, tmp_path, targets=[MINION], nvbandwidth=True)
    assert code == 0 and all(s["result"] for s in states.values()), show_states(states)
    prefix = f"sre-orch-acceptance-{MINION}"
    drain = states[f"{prefix}-runner-drain"]["changes"]["return"]
    assert (drain["outcome"], drain["code"]) == ("acted", "drained"), drain
    accepted = states[f"{prefix}-runner-accept"]["changes"]["return"]
    assert (accepted["outcome"], accepted["code"]) == ("acted", "resumed"), accepted
    assert [c[:4] for c in calls(tools)] == [["dcgmi", "diag", "-r", "3"], calls(tools)[1][:4]]
    assert calls(tools)[1][0] == "nvbandwidth"
    assert cluster.settled_states()[MINION].rstrip("*") == "idle"
    codes = [r["code"] for r in audit_records(work) if r.get("node") == MINION]
    assert codes[-2:] == ["drained", "resumed"], codes


def test_a_failing_minion_stays_drained_with_the_reason(
    pair: SaltPair, cluster: SlurmCluster, work: Path, tmp_path: Path, tools: Path
) -> None:
    """nvbandwidth below the floor on GPU 4: not resumed, drained with our reason; gpu02 (no
    minion) is still tried (stop_on_failure off) and stays drained too: no answer, no resume."""
    outputs(tools, "level3-pass", "h100-8-h2d-low-gpu4")
    code, states = orchestrate(pair, tmp_path, targets=[MINION, "gpu02"], nvbandwidth=True)
    assert code != 0, show_states(states)
    accepted = states[f"sre-orch-acceptance-{MINION}-runner-accept"]
    assert accepted["result"] is False, show_states(states)
    decision = accepted["changes"]["return"]
    assert (decision["outcome"], decision["code"]) == ("refused", "diag_failed"), decision
    assert "nvbandwidth diagnostic of gpu01 did not pass" in decision["message"], decision
    assert "GPU 4" in decision["message"], decision
    reasons = cluster.drain_reasons()
    # Our drain says why it stays (Remediator.annotate): the engine's refusal.
    assert reasons[MINION].startswith("sre: drain ev=manual:gpu01:"), reasons
    assert (
        ": acceptance failed: the nvbandwidth diagnostic of gpu01 did not pass" in reasons[MINION]
    )
    assert decision["annotated"]["code"] == "annotated", decision
    other = states["sre-orch-acceptance-gpu02-runner-accept"]
    assert other["result"] is False
    assert other["changes"]["return"]["code"] == "no_diagnostic", show_states(states)
    assert "did not answer gpu.diag" in other["changes"]["return"]["message"]
    assert "drain" in cluster.settled_states()["gpu02"]
    mine = [(r["code"], r.get("source")) for r in audit_records(work) if r.get("node") == MINION]
    assert mine[-3:] == [
        ("drained", "salt-orch"),
        ("diag_failed", "resume"),
        ("annotated", "annotate"),
    ], mine
    assert "did not answer gpu.diag" in reasons["gpu02"], reasons


def test_stop_on_failure_leaves_the_next_minion_alone(
    pair: SaltPair, cluster: SlurmCluster, work: Path, tmp_path: Path, tools: Path
) -> None:
    outputs(tools, "level3-thermal-fail-gpu6")
    before = len(audit_records(work))
    code, states = orchestrate(pair, tmp_path, targets=[MINION, "gpu02"], stop_on_failure=True)
    assert code != 0, show_states(states)
    decision = states[f"sre-orch-acceptance-{MINION}-runner-accept"]["changes"]["return"]
    assert decision["code"] == "diag_failed" and "GPU 6" in decision["message"], decision
    nxt = states["sre-orch-acceptance-gpu02-runner-drain"]
    assert nxt["result"] is False and "requisite" in str(nxt["comment"]).lower(), show_states(
        states
    )
    assert cluster.settled_states()["gpu02"] == "idle"
    assert not [r for r in audit_records(work)[before:] if r.get("node") == "gpu02"]


def test_pillar_errors_name_the_key(pair: SaltPair) -> None:
    for pillar, words in (
        ({"acceptance": {"targets": "gpu01"}}, "acceptance:targets must be a non-empty list"),
        ({"acceptance": {"targets": ["gpu01"], "level": 2}}, "acceptance:level must be 3 or 4"),
        ({"acceptance": {"targets": ["gpu01"], "diag": "x"}}, "acceptance:diag must be a mapping"),
    ):
        # state.orchestrate_show_sls exits 0 and answers the render error as the master's data.
        _, out = pair.salt_run(
            "state.orchestrate_show_sls", "orch.acceptance", f"pillar={json.dumps(pillar)}"
        )
        [answer] = out.values()
        assert isinstance(answer, list) and answer[0].startswith("Rendering SLS"), out
        assert words in answer[0], out


def test_render_passes_the_options(pair: SaltPair) -> None:
    pillar = {
        "acceptance": {
            "targets": ["gpu03", "gpu04"],
            "level": 4,
            "nccl": True,
            "diag": {"profile": "h100-sxm-8"},
        }
    }
    code, out = pair.salt_run(
        "state.orchestrate_show_sls", "orch.acceptance", f"pillar={json.dumps(pillar)}"
    )
    assert code == 0, out
    [high] = out.values()
    accept = state_args(high["sre-orch-acceptance-gpu03-runner-accept"], "salt")
    assert (accept["level"], accept["nccl"], accept["nvbandwidth"]) == (4, True, False)
    assert accept["diag"] == {"profile": "h100-sxm-8"}
    drain = state_args(high["sre-orch-acceptance-gpu04-runner-drain"], "salt")
    assert drain["reason"] == "acceptance: DCGM level 4, NCCL"
    assert "require" not in drain  # stop_on_failure off: gpu04 does not wait for gpu03
