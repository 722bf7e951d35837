"""The Salt reactor path: reactor and orchestration render the event as data, and the runner
lets a minion report only on itself before the guardrails decide. Every refusal is audited."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sre_tools.remediation.audit import read_audit
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.slurm import SlurmClient
from tests.remediation.fakes import Clock, FakeSlurm, Notes, RecordingRunner

SALT = Path(__file__).parents[2] / "salt"
TAG = "salt/beacon/{minion}/gpu_health/sre/gpu/health/crit"


def load_runner() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sre_remediate", SALT / "_runners" / "sre_remediate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUNNER = load_runner()


def event(minion: str = "gpu01", node: str = "gpu01", **extra: Any) -> dict[str, Any]:
    return {
        "minion": minion,
        "severity": "crit",
        "remediation": {
            "node": node,
            "action": "reset_gpu",
            "event_id": f"salt:{node}:1:reset_gpu",
            "source": "salt-beacon",
            "checks": ["ecc.uncorrected_volatile"],
            "gpus": [0],
            "reason": "ECC uncorrectable",
        },
        **extra,
    }


@pytest.fixture
def engine(tmp_path: Path) -> Remediator:
    fake = FakeSlurm.cluster({"gpu": [f"gpu{i:02d}" for i in range(1, 9)]})
    return Remediator(
        RemediationConfig(node_exec="local"),
        SlurmClient(fake, timeout=5),
        tmp_path / "state.db",
        tmp_path / "audit.jsonl",
        clock=Clock(),
        runner=RecordingRunner(),
        notifier=Notes(),
        dry_run=True,
    )


@pytest.mark.parametrize(
    ("tag", "data", "ok", "why"),
    [
        pytest.param(TAG.format(minion="gpu01"), event(), True, "", id="self-report"),
        pytest.param(
            TAG.format(minion="gpu01.cluster.local"),
            event(minion="gpu01.cluster.local"),
            True,
            "",
            id="fqdn-minion-short-node",
        ),
        pytest.param(
            TAG.format(minion="gpu01"),
            event(node="gpu02"),
            False,
            "may only report on node 'gpu01'",
            id="claims-other-node",
        ),
        pytest.param(
            TAG.format(minion="gpu01"),
            event(minion="gpu02"),
            False,
            "event claims minion 'gpu02'",
            id="claims-other-minion",
        ),
        pytest.param(
            "salt/job/1/ret/gpu01", event(), False, "not a gpu_health beacon tag", id="wrong-tag"
        ),
        pytest.param(
            TAG.format(minion="gpu01"), ["not", "a", "dict"], False, "not a mapping", id="garbage"
        ),
        pytest.param(
            TAG.format(minion="gpu01"),
            {"minion": "gpu01"},
            False,
            "no remediation request",
            id="no-request",
        ),
    ],
)
def test_check_origin(tag: str, data: Any, ok: bool, why: str) -> None:
    minion, reason = RUNNER.check_origin(tag, data, {})
    assert (minion is not None) == ok
    assert why in reason


def test_node_map_overrides_the_short_name() -> None:
    minion, _ = RUNNER.check_origin(
        TAG.format(minion="n17"), event(minion="n17", node="gpu17"), {"n17": "gpu17"}
    )
    assert minion == "n17"


def test_valid_event_goes_through_the_guardrails(engine: Remediator, tmp_path: Path) -> None:
    decision = RUNNER.handle_with({}, TAG.format(minion="gpu01"), event(), remediator=engine)
    assert decision["outcome"] == "dry_run"
    records = read_audit(tmp_path / "audit.jsonl", strict=True)
    assert records[-1]["node"] == "gpu01"


def test_forged_event_is_refused_and_audited(engine: Remediator, tmp_path: Path) -> None:
    decision = RUNNER.handle_with(
        {}, TAG.format(minion="gpu01"), event(node="gpu05"), remediator=engine
    )
    assert decision["outcome"] == "refused"
    assert decision["code"] == "invalid_event"
    records = read_audit(tmp_path / "audit.jsonl", strict=True)
    assert records[-1]["outcome"] == "refused"
    assert "may only report on node 'gpu01'" in records[-1]["message"]


def _render(path: Path, **context: Any) -> Any:
    import salt.config  # the test command installs salt; missing salt fails here, never skips
    import salt.loader
    import salt.template

    opts = salt.config.minion_config(None)
    opts["file_client"] = "local"
    renderers = salt.loader.render(opts, {"pillar.get": lambda k, d=None: context.get(k, d)})
    return salt.template.compile_template(
        ":string:", renderers, "jinja|yaml", [], [], input_data=path.read_text(), **context
    )


def test_reactor_passes_the_event_as_data_not_text() -> None:
    hostile = event()
    hostile["remediation"]["reason"] = "x'; rm -rf / #{{ 7*7 }}"
    out = _render(SALT / "reactor" / "gpu_health.sls", tag=TAG.format(minion="gpu01"), data=hostile)
    state = out["sre-reactor-gpu-health-runner-orchestrate"]["runner.state.orchestrate"]
    args = json.loads(json.dumps(state))[0]["args"]
    pillar = args[1]["pillar"]
    assert args[0] == {"mods": "orch.gpu_remediate"}
    assert pillar["sre_event_data"]["remediation"]["reason"] == "x'; rm -rf / #{{ 7*7 }}"
    assert pillar["sre_event_tag"] == TAG.format(minion="gpu01")


# --- rolling upgrade steps ------------------------------------------------------------------------


class NodeStates:
    """``show_node`` answering with the given (state, flags) in turn, then the last one."""

    def __init__(self, *states: tuple[str, frozenset[str]]):
        self.states = list(states)
        self.asked = 0

    def show_node(self, node: str) -> Any:
        from sre_tools.remediation.slurm import NodeInfo

        state, flags = self.states[min(self.asked, len(self.states) - 1)]
        self.asked += 1
        return NodeInfo(node, state, flags, "sre: drain")


DRAIN = frozenset({"DRAIN"})


@pytest.mark.parametrize(
    ("states", "drained", "asked"),
    [
        pytest.param([("MIXED", DRAIN), ("IDLE", DRAIN)], True, 2, id="jobs-end"),
        pytest.param([("DOWN", DRAIN)], True, 1, id="down"),
        pytest.param([("ALLOCATED", DRAIN)], False, 4, id="jobs-outlast-the-timeout"),
        pytest.param([("IDLE", frozenset())], False, 4, id="resumed-by-someone"),
    ],
)
def test_wait_until_drained(
    states: list[tuple[str, frozenset[str]]], drained: bool, asked: int
) -> None:
    slurm = NodeStates(*states)
    now = [0.0]
    result = RUNNER.wait_until_drained(
        slurm,
        "gpu01",
        timeout=30,
        poll=10,
        clock=lambda: now[0],
        sleep=lambda s: now.__setitem__(0, now[0] + s),
    )
    assert result["drained"] is drained and result["node"] == "gpu01"
    assert slurm.asked == asked
