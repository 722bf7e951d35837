"""``Remediator.annotate`` (``sre remediation annotate``): a drain we hold says why the node
stays drained (a failed acceptance); an operator's drain is never touched. Fake Slurm."""

from __future__ import annotations

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action
from sre_tools.remediation.guardrails import reworded_reason
from sre_tools.remediation.model import Outcome, RemediationRequest
from tests.remediation.conftest import RigFactory


def drain(rig, node: str = "gpu04") -> str:  # type: ignore[no-untyped-def]
    d = rig.engine.drain(node, "acceptance: DCGM level 3, nvbandwidth")
    assert d.code == "drained", d
    return str(rig.slurm.nodes[node].reason)


def test_our_drain_says_why_it_stays(make_rig: RigFactory) -> None:
    rig = make_rig()
    before = drain(rig)
    head = before.split(": acceptance", 1)[0]
    assert head.startswith("sre: drain ev=manual:gpu04:")
    d = rig.engine.annotate("gpu04", "acceptance failed: nvbandwidth h2d on GPU 4 below 48 GB/s")
    assert (d.outcome, d.code) == (Outcome.ACTED, "annotated"), d
    node = rig.slurm.nodes["gpu04"]
    assert node.drain
    assert node.reason == f"{head}: acceptance failed: nvbandwidth h2d on GPU 4 below 48 GB/s"
    last = rig.audit()[-1]
    assert (last["code"], last["source"], last["node"]) == ("annotated", "annotate", "gpu04")


def test_an_event_id_with_colons_keeps_its_head() -> None:
    reason = "sre: diag ev=prolog:gpu07:4242: level 1 CRIT: GPU 0: persistence mode off"
    assert reworded_reason("sre:", reason, "acceptance failed: level 3 WARNING") == (
        "sre: diag ev=prolog:gpu07:4242: acceptance failed: level 3 WARNING"
    )
    long = reworded_reason("sre:", reason, "x" * 400)
    assert len(long) == 256 and long.endswith("...")


@pytest.mark.parametrize(
    ("setup", "code"),
    [("operator", "operator_drain"), ("idle", "not_drained"), ("missing", "unknown_node")],
)
def test_anything_but_our_drain_is_left_alone(make_rig: RigFactory, setup: str, code: str) -> None:
    rig = make_rig()
    node = "gpu99" if setup == "missing" else "gpu05"
    if setup == "operator":
        rig.slurm.nodes[node].drain, rig.slurm.nodes[node].reason = True, "bad PSU (ann)"
    d = rig.engine.annotate(node, "acceptance failed")
    assert (d.outcome, d.code) == (Outcome.REFUSED, code), d
    if setup == "operator":
        assert rig.slurm.nodes[node].reason == "bad PSU (ann)"


def test_dry_run_changes_nothing(make_rig: RigFactory) -> None:
    rig = make_rig()
    before = drain(rig)
    rig.engine.dry_run = True
    d = rig.engine.annotate("gpu04", "acceptance failed")
    assert d.outcome is Outcome.DRY_RUN and d.code == "would_annotate"
    assert rig.slurm.nodes["gpu04"].reason == before


def test_text_is_validated(make_rig: RigFactory) -> None:
    rig = make_rig(max_drained_percent=50)
    drain(rig)
    with pytest.raises(ValidationError, match="reason: contains control or format characters"):
        rig.engine.annotate("gpu04", "failed\x1b[2J")
    request = RemediationRequest(node="gpu06", action=Action.REBOOT, event_id="e1", source="t")
    assert rig.engine.handle(request).acted
    d = rig.engine.annotate("gpu06", "reboot did not help")
    assert rig.slurm.nodes["gpu06"].reason == "sre: reboot ev=e1: reboot did not help", d
