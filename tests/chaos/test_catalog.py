"""The catalog's drills, dry run and executed with the local transport on a stand-in node.

The node's tools are shell stand-ins and its monitoring a fake Prometheus and exporter
(:mod:`tests.chaos.catalog_stubs`); ``sre health`` is the real one on a recorded GPU tree. Each
drill must pass on a node that reacts as the site should, leave the node as it found it, and
fail (exit 3) where the reaction is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sre_tools.chaos import actions, catalog
from sre_tools.chaos.model import Experiment
from sre_tools.chaos.runner import Runner, RunResult, call_activity, local_factory
from sre_tools.chaos.safety import Safety, Targets
from sre_tools.cli.drill import exit_code
from sre_tools.exceptions import ValidationError
from sre_tools.transport import LocalTransport
from tests.chaos.catalog_stubs import (
    GPU0_PCI,
    FakeMonitoring,
    StubNode,
    fake_monitoring,
    make_stub_node,
)
from tests.chaos.conftest import DrillEnv

ONE = Targets(("n1",), ("n1",))
DRILLS = (
    "dcgm-inject",
    "exporter-down",
    "fabricmanager-stop",
    "node-drain",
    "slurmd-kill",
    "xid-inject",
)


@pytest.fixture
def node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StubNode:
    return make_stub_node(tmp_path, monkeypatch)


@pytest.fixture
def monitoring(node: StubNode) -> Iterator[FakeMonitoring]:
    with fake_monitoring(node) as fake:
        yield fake


def variables(node: StubNode, monitoring: FakeMonitoring) -> dict[str, Any]:
    """The configuration a site sets, pointed at the stand-ins."""
    return {
        "kernel_log": str(node.kernel_log),
        "acks_file": str(node.acks_file),
        "pci": GPU0_PCI,
        "state_dir": str(node.root / "run"),
        "prometheus_url": monitoring.url,
        "exporter_url": f"{monitoring.url}/metrics",
        "sre": str(node.bin / "sre"),
    }


class VirtualClock:
    """The runner's clock and sleep: a missed expectation ends at its deadline without waiting
    for it."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def run(
    env: DrillEnv,
    exp: Experiment,
    extra: dict[str, Any],
    *,
    execute: bool = True,
) -> RunResult:
    safety = Safety(env.store)
    clock = VirtualClock()
    try:
        return Runner(
            exp,
            ONE,
            safety=safety,
            journal_dir=env.journals,
            execute=execute,
            operator="tester",
            reason="catalog test",
            variables=extra,
            install_signals=False,
            poll_interval=0.01,
            clock=clock,
            sleep=clock.sleep,
        ).run()
    finally:
        safety.close()


def drill(name: str) -> Experiment:
    return catalog.resolve(name)[1]


def test_the_catalog_lists_every_drill() -> None:
    assert tuple(catalog.names()) == DRILLS


@pytest.mark.parametrize("name", DRILLS)
def test_dry_run_touches_nothing(
    name: str, drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    result = run(drill_env, drill(name), variables(node, monitoring), execute=False)
    assert (result.status, exit_code(result)) == ("dry-run", 0)
    for tool in ("systemctl", "scontrol", "dcgmi", "sre"):
        assert node.log(tool) == [], tool
    assert monitoring.queries == []
    assert node.kernel_log.read_text() == ""
    assert node.node() == ("idle", "none")


def test_xid_inject_is_seen_everywhere_and_undone(
    drill_env: DrillEnv,
    node: StubNode,
    monitoring: FakeMonitoring,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REMEDIATE_LOG", str(node.kernel_log))  # the site's remediation drains
    result = run(drill_env, drill("xid-inject"), variables(node, monitoring))
    assert (result.status, result.rollbacks_ok, result.restored) == ("passed", True, True)
    events = drill_env.journal_events(result.run_id)
    met = {e["name"]: e["met"] for e in events if e["event"] == "expectation"}
    assert met == {
        "xid-line-in-kernel-log": True,
        "health-xid-finding": True,
        "exporter-xid-counter": True,
        "gpu-xid-alert-firing": True,
        "drained-by-remediation": True,
    }
    assert node.drill_lines() == 0
    assert node.node() == ("idle", "none")  # resumed on a healthy report
    assert monitoring.xid_events == 1
    resumed = [
        e for e in events if e["event"] == "rollback-end" and e["name"] == "resume-if-healthy"
    ]
    assert resumed[0]["output"].startswith("resumed (reason was 'sre: remediation")


def test_xid_inject_fails_when_nothing_drains_the_node(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    result = run(drill_env, drill("xid-inject"), variables(node, monitoring))
    # No remediation here: every expectation but the drain is met; the node was never drained.
    assert (result.status, exit_code(result)) == ("failed", 3)
    events = drill_env.journal_events(result.run_id)
    missed = [e["name"] for e in events if e["event"] == "expectation" and not e["met"]]
    assert missed == ["drained-by-remediation"]
    assert result.restored is True and node.drill_lines() == 0


def test_xid_inject_health_expectation_is_what_sre_health_says_for_that_xid(
    node: StubNode,
) -> None:
    """The expectation's SEVERITY:ACTION is the XID catalog's decision, as ``sre health``
    reports it for the drill's line (not a copy that could drift)."""
    from sre_tools.chaos.actions import inject_xid
    from sre_tools.chaos.probes import health_finding

    exp = drill("xid-inject")
    check = next(c for c in exp.expect if c.name == "health-xid-finding")
    inject_xid(str(node.kernel_log), xid=exp.configuration["xid"], pci=GPU0_PCI, run_id="t")
    seen = health_finding("xid", sre=str(node.bin / "sre"), kernel_log=str(node.kernel_log))
    assert seen == check.tolerance.value == "crit:reboot"


def test_exporter_down_fires_the_alert_and_restarts_the_unit(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    result = run(drill_env, drill("exporter-down"), variables(node, monitoring))
    assert (result.status, result.rollbacks_ok, result.restored) == ("passed", True, True)
    assert node.unit("sre-exporter.service") == "active"
    assert node.log("systemctl").count("stop sre-exporter.service") == 1
    assert node.log("systemctl").count("start sre-exporter.service") == 1
    assert any("GpuExporterDown" in q for q in monitoring.queries)
    assert not list((node.root / "run").iterdir())  # the drill's note is gone


def test_exporter_down_never_starts_a_unit_an_operator_stopped(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    node.set_unit("sre-exporter.service", "inactive")
    result = run(drill_env, drill("exporter-down"), variables(node, monitoring))
    assert result.status == "failed" and result.rollbacks_ok
    assert node.unit("sre-exporter.service") == "inactive"
    assert not any(line.startswith(("stop", "start")) for line in node.log("systemctl"))


def test_fabricmanager_stop_sees_the_fabric_check_and_restarts(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    result = run(drill_env, drill("fabricmanager-stop"), variables(node, monitoring))
    assert (result.status, result.rollbacks_ok, result.restored) == ("passed", True, True)
    assert node.unit("nvidia-fabricmanager.service") == "active"


def test_fabricmanager_stop_refuses_a_node_with_jobs(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    node.set_node("allocated")
    result = run(drill_env, drill("fabricmanager-stop"), variables(node, monitoring))
    assert result.status == "failed"
    assert node.log("systemctl") and "stop" not in " ".join(node.log("systemctl"))
    assert node.unit("nvidia-fabricmanager.service") == "active"


def test_slurmd_kill_is_seen_not_responding_and_recovers(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    result = run(drill_env, drill("slurmd-kill"), variables(node, monitoring))
    assert (result.status, result.rollbacks_ok, result.restored) == ("passed", True, True)
    events = drill_env.journal_events(result.run_id)
    seen = [e["value"] for e in events if e["event"] == "probe-result" and e["phase"] == "expect"]
    assert seen == ["idle*"]
    assert node.unit("slurmd.service") == "active"


def test_dcgm_inject_reports_and_restores(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    result = run(drill_env, drill("dcgm-inject"), variables(node, monitoring))
    assert (result.status, result.rollbacks_ok, result.restored) == ("passed", True, True)
    injected = [line for line in node.log("dcgmi") if line.startswith("test ")]
    assert injected == [
        "test --inject --gpuid 0 -f 311 -v 1",
        "test --inject --gpuid 0 -f 311 -v 0",
    ]


def test_dcgm_inject_without_dcgmi_is_a_skip_with_a_reason(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    node.remove("dcgmi")
    exp = drill("dcgm-inject")
    reason = catalog.skip_reason(exp, ["n1"], local_factory, "r", exp.configuration)
    assert reason == (
        "n1: requires-dcgmi: dcgmi is not installed there; drill dcgm-inject does not apply"
    )
    node_with_dcgmi = catalog.skip_reason(exp, ["n1"], local_factory, "r", {"dcgmi": "sh"})
    assert node_with_dcgmi is None
    result = run(drill_env, exp, variables(node, monitoring))
    # The runner asks catalog.skip_reason before the steady state: skipped, exit 0.
    assert (result.status, result.details, result.restored) == ("skipped", [reason], None)
    assert exit_code(result) == 0
    assert result.rollbacks_ok
    events = drill_env.journal_events(result.run_id)
    # Nothing was injected, so nothing is rolled back (not even a harmless-looking restore).
    assert not [e for e in events if e["event"].startswith(("action-", "rollback-"))]
    assert node.log("dcgmi") == []


def test_node_drain_with_an_sli_dips(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    extra = {
        **variables(node, monitoring),
        "sli_query": "gpu:availability:ratio",
        "sli_below": 0.99,
    }
    monitoring.values["gpu:availability:ratio"] = [0.875]
    result = run(drill_env, drill("node-drain"), extra)
    assert (result.status, result.rollbacks_ok, result.restored) == ("passed", True, True)
    assert node.node() == ("idle", "none")
    assert "gpu:availability:ratio" in monitoring.queries


def test_node_drain_without_an_slo_skips_that_expectation(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    result = run(drill_env, drill("node-drain"), {})
    assert result.status == "passed"
    events = drill_env.journal_events(result.run_id)
    sli = [
        e["value"] for e in events if e.get("name") == "gpu-availability-sli-dip" and "value" in e
    ]
    assert sli == ["not-configured"] and monitoring.queries == []


@pytest.mark.parametrize("name", DRILLS)
def test_rollbacks_are_safe_on_a_node_never_faulted_and_twice(
    name: str, node: StubNode, monitoring: FakeMonitoring
) -> None:
    """Every rollback of every drill, twice, on a healthy node the fault never reached: nothing
    is stopped, started, drained or resumed, and the node is as it was."""
    exp = drill(name)
    config = {**exp.configuration, **variables(node, monitoring)}
    outputs = []
    for _ in range(2):
        for activity in exp.rollbacks:
            outputs.append(call_activity(activity, "n1", LocalTransport(), "r", config))
    assert node.node() == ("idle", "none")
    for unit in ("sre-exporter.service", "nvidia-fabricmanager.service", "slurmd.service"):
        assert node.unit(unit) == "active"
    assert not [line for line in node.log("systemctl") if line.startswith(("start", "stop"))]
    assert node.log("scontrol") == []
    assert node.kernel_log.read_text() == ""
    assert outputs[: len(outputs) // 2] == outputs[len(outputs) // 2 :]


def test_a_requirement_that_cannot_be_checked_is_an_error_not_a_skip(
    drill_env: DrillEnv, node: StubNode, monitoring: FakeMonitoring
) -> None:
    """A requirement probe that fails (here: a dcgmi path that is no command name) says nothing
    about whether the drill applies: the run is an error (exit 1), never a harmless skip."""
    exp = drill("dcgm-inject")
    result = run(drill_env, exp, {**variables(node, monitoring), "dcgmi": "dcgmi; reboot"})
    assert result.status == "error" and exit_code(result) == 1
    assert "requirement not checked" in result.details[0]
    assert node.log("dcgmi") == []


def test_dcgm_restore_undoes_only_what_a_drill_injected(node: StubNode) -> None:
    state = str(node.root / "run")
    actions.dcgm_inject(0, 311, 1, state_dir=state, transport=LocalTransport(), run_id="r1")
    assert actions.dcgm_restore(0, 311, 0, state_dir=state, transport=LocalTransport())
    again = actions.dcgm_restore(0, 311, 0, state_dir=state, transport=LocalTransport())
    assert again == "no drill injection noted: nothing to undo"
    injected = [line for line in node.log("dcgmi") if line.startswith("test ")]
    assert injected == [
        "test --inject --gpuid 0 -f 311 -v 1",
        "test --inject --gpuid 0 -f 311 -v 0",
    ]


@pytest.mark.parametrize("name", ["gpu[1-8]", "a,b", "-n", "x y"])
def test_slurm_actions_take_one_node_name_only(name: str, node: StubNode) -> None:
    with pytest.raises(ValidationError, match="single Slurm node name"):
        actions.drain_node(transport=LocalTransport(), node=name, run_id="r1")
    assert node.log("scontrol") == []
