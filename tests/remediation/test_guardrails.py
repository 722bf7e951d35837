"""The pure guardrails: plans, ownership, budget, cooldown, resume conditions."""

from __future__ import annotations

import pytest

from sre_tools.health.model import Action, GpuRef, HealthReport, Severity
from sre_tools.remediation import guardrails as g
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.model import RemediationRequest
from tests.helpers.reports import finding, node_report, report

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("action", "drain", "node_action", "notify", "refusal"),
    [
        (Action.NONE, False, None, False, "no_action"),
        (Action.RESTART_APP, False, None, False, "not_automated"),
        (Action.RESTART_FABRIC_MANAGER, True, Action.RESTART_FABRIC_MANAGER, False, None),
        (Action.RESET_GPU, True, Action.RESET_GPU, False, None),
        (Action.DRAIN_AND_RESET, True, Action.DRAIN_AND_RESET, False, None),
        (Action.REBOOT, True, Action.REBOOT, False, None),
        (Action.POWER_CYCLE, True, None, True, None),
        (Action.CHECK_MECHANICALS, True, None, True, None),
        (Action.CONTACT_SUPPORT, True, None, True, None),
        (Action.RMA_CANDIDATE, True, None, True, None),
    ],
    ids=lambda v: v.value if isinstance(v, Action) else None,
)
def test_plan(
    action: Action, drain: bool, node_action: Action | None, notify: bool, refusal: str | None
) -> None:
    plan = g.plan_for(action)
    assert plan.drain is drain
    assert plan.node_action is node_action
    assert plan.notify is notify
    assert (plan.refusal.code if plan.refusal else None) == refusal


def test_manual_plan_only_drains() -> None:
    plan = g.plan_for(Action.REBOOT, drain_only=True)
    assert (plan.drain, plan.node_action, plan.notify, plan.is_manual) == (True, None, False, True)


@pytest.mark.parametrize(
    ("drained", "down", "reason", "owner"),
    [
        (False, False, None, g.NodeOwner.FREE),
        (True, False, "sre: reset_gpu ev=1", g.NodeOwner.OURS),
        (False, True, "sre: reboot ev=1", g.NodeOwner.OURS),  # rebooting: down, still ours
        (True, False, "disk swap, ask bob", g.NodeOwner.OPERATOR),
        (True, False, "SRE: upper case is not ours", g.NodeOwner.OPERATOR),
        (True, False, " sre: leading space", g.NodeOwner.OPERATOR),
        (True, False, None, g.NodeOwner.OPERATOR),
        (False, True, "Not responding", g.NodeOwner.OPERATOR),
        (False, False, "sre: stale reason on a node in service", g.NodeOwner.OPERATOR),
    ],
)
def test_classify(drained: bool, down: bool, reason: str | None, owner: g.NodeOwner) -> None:
    assert g.classify(drained=drained, down=down, reason=reason, prefix="sre:") is owner


def test_drain_reason_has_the_prefix_and_fits() -> None:
    long_id = "ev-1" + "x" * 100
    req = RemediationRequest("gpu01", Action.RESET_GPU, long_id, reason="ECC " * 50)
    reason = g.drain_reason("sre:", req)
    assert reason.startswith(f"sre: reset_gpu ev={long_id}: ECC")
    assert len(reason) == g.MAX_SLURM_REASON_CHARS
    assert reason.endswith("...")
    assert g.drain_reason("sre:", req, manual=True).startswith("sre: drain ev=ev-1")
    bare = RemediationRequest("gpu01", Action.REBOOT, "ev-2")
    assert g.drain_reason("ops-bot/", bare) == "ops-bot/ reboot ev=ev-2"


@pytest.mark.parametrize(
    ("size", "percent", "limit"),
    [(16, 10, 1), (16, 25, 4), (100, 10, 10), (4, 10, 1), (3, 100, 3), (16, 0, 0), (0, 50, 0)],
)
def test_partition_limit(size: int, percent: float, limit: int) -> None:
    assert g.partition_limit(size, percent) == limit


def test_budget_by_count() -> None:
    cfg = RemediationConfig(max_drained_nodes=3, max_drained_percent=100)
    ok = g.check_budget(ours_total=2, ours_by_partition={}, node_partitions={"gpu": 16}, config=cfg)
    assert ok is None
    full = g.check_budget(
        ours_total=3, ours_by_partition={}, node_partitions={"gpu": 16}, config=cfg
    )
    assert full is not None and full.code == "budget_exhausted"
    assert "max_drained_nodes 3" in full.message


def test_budget_by_percent_of_each_partition() -> None:
    cfg = RemediationConfig(max_drained_nodes=100, max_drained_percent=25)
    # gpu has 16 nodes (limit 4), debug 4 (limit 1): the small partition is the binding one.
    assert (
        g.check_budget(
            ours_total=3,
            ours_by_partition={"gpu": 3},
            node_partitions={"gpu": 16},
            config=cfg,
        )
        is None
    )
    refused = g.check_budget(
        ours_total=1,
        ours_by_partition={"gpu": 1, "debug": 1},
        node_partitions={"gpu": 16, "debug": 4},
        config=cfg,
    )
    assert refused is not None and "partition debug" in refused.message


def test_budget_zero_disables_draining() -> None:
    cfg = RemediationConfig(max_drained_nodes=0)
    r = g.check_budget(ours_total=0, ours_by_partition={}, node_partitions={}, config=cfg)
    assert r is not None and r.code == "budget_exhausted"


def test_cooldown() -> None:
    assert g.check_cooldown(None, NOW, 600, "n") is None
    assert g.check_cooldown(NOW - 601, NOW, 600, "n") is None
    r = g.check_cooldown(NOW - 100, NOW, 600, "gpu01")
    assert r is not None and r.code == "cooldown" and "500s left" in r.message
    assert g.cooldown_left(NOW - 100, NOW, 600) == 500


def test_attempts() -> None:
    assert g.check_action_attempts(1, 2) is None
    r = g.check_action_attempts(2, 2)
    assert r is not None and r.code == "attempts_exhausted"


# --- resume --------------------------------------------------------------------------------------

CFG = RemediationConfig(max_report_age_seconds=600)


def _resume(rep: HealthReport, **kw: object) -> str | None:
    args: dict[str, object] = {
        "node": "gpu01",
        "report": rep,
        "now": NOW,
        "config": CFG,
        "drained_at": NOW - 3600,
        "checks": ("ecc.uncorrected_volatile",),
        "gpus": (3,),
    }
    args.update(kw)
    r = g.check_resume(**args)  # type: ignore[arg-type]
    return None if r is None else r.code


def test_resume_on_a_fresh_healthy_report() -> None:
    assert _resume(node_report("gpu01", NOW - 10)) is None
    # Within the clock skew allowed (a node's clock a little ahead of the controller's).
    assert _resume(node_report("gpu01", NOW + g.MAX_CLOCK_SKEW_SECONDS)) is None


def test_resume_tolerates_harmless_findings() -> None:
    rep = node_report("gpu01", NOW - 10, ("app.hint", Severity.WARN, Action.RESTART_APP, 0))
    assert _resume(rep) is None


@pytest.mark.parametrize(
    ("rep", "kw", "code"),
    [
        (node_report("gpu02", NOW - 10), {}, "report_mismatch"),
        (node_report("gpu01", NOW - 601), {}, "stale_report"),
        (node_report("gpu01", NOW - 100), {"drained_at": NOW - 50}, "stale_report"),
        # Dated in the future: its age is negative and would pass any max_report_age.
        (node_report("gpu01", NOW + 121), {}, "future_report"),
        (node_report("gpu01", NOW + 86400 * 365 * 70), {}, "future_report"),
        (
            node_report(
                "gpu01", NOW, ("ecc.uncorrected_volatile", Severity.CRIT, Action.RESET_GPU, 3)
            ),
            {},
            "still_unhealthy",
        ),
        (
            node_report("gpu01", NOW, ("pcie.width", Severity.WARN, Action.REBOOT, 5)),
            {},
            "still_unhealthy",
        ),
        (
            node_report(
                "gpu01", NOW, ("ecc.uncorrected_volatile", Severity.UNKNOWN, Action.NONE, 3)
            ),
            {},
            "still_unhealthy",
        ),
        (node_report("gpu01", NOW, gpus=3), {}, "gpu_missing"),  # GPU 3 did not come back
    ],
    ids=[
        "other-host",
        "too-old",
        "before-drain",
        "from-the-future",
        "from-2099",
        "same-finding",
        "any-disruptive-finding",
        "cause-unknown",
        "gpu-missing",
    ],
)
def test_resume_refused(rep: HealthReport, kw: dict[str, object], code: str) -> None:
    assert _resume(rep, **kw) == code


def test_resume_without_record_needs_only_a_fresh_healthy_report() -> None:
    f = finding("gpu.present", Severity.OK, gpu=GpuRef(0), summary="ok")
    rep = report(f, host="gpu01", at=NOW - 5)
    assert _resume(rep, drained_at=None, checks=(), gpus=()) is None


def test_action_in_reason() -> None:
    assert g.action_in_reason("sre: rma_candidate ev=1: x", "sre:") is Action.RMA_CANDIDATE
    assert g.action_in_reason("sre: drain ev=manual:1", "sre:") is None
    assert g.action_in_reason("ops: reboot", "sre:") is None
    assert g.action_in_reason("sre:", "sre:") is None
