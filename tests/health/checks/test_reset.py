"""``reset.pending``: one aggregate of every reset/reboot the cycle's findings ask for."""

from __future__ import annotations

from sre_tools.health.model import Action, Severity
from tests.health.checks.conftest import H100, HGX, Runner, ok, only, patched


def test_healthy_node_has_nothing_pending(run: Runner) -> None:
    (f,) = only(run(H100), "reset.pending")
    assert (f.severity, f.action) == (Severity.OK, Action.NONE)


def test_aggregates_gpus_and_reasons_with_the_worst_action(run: Runner) -> None:
    rows = ok({"correctable": 1, "uncorrectable": 0, "pending": True, "failure": False})
    data = patched(
        HGX,
        {
            1: {"ecc_mode": ok([1, 0]), "mig_mode": ok([0, 1])},
            4: {"remapped_rows": rows},
        },
    )
    report = run(data, profile="h100-sxm-8")
    (f,) = only(report, "reset.pending")
    assert f.severity is Severity.CRIT  # remap.pending is CRIT
    assert f.action is Action.REBOOT  # ecc.mode asks for a reboot, the most disruptive here
    assert f.evidence["gpus"] == [1, 4]
    reasons = {(r["check"], r["gpu"], r["action"]) for r in f.evidence["reasons"]}
    assert reasons == {
        ("ecc.mode", 1, "reboot"),
        ("mig.pending", 1, "reset_gpu"),
        ("remap.pending", 4, "reset_gpu"),
    }
    assert "reset or reboot pending" in f.summary
    assert report.action is Action.REBOOT


def test_power_cycle_and_rma_are_not_resets(run: Runner) -> None:
    data = patched(
        H100,
        {
            0: {
                "remapped_rows": ok(
                    {"correctable": 0, "uncorrectable": 2, "pending": False, "failure": True}
                )
            }
        },
    )
    (f,) = only(run(data), "reset.pending")
    assert f.severity is Severity.OK


def test_reset_required_gpu_counts(run: Runner) -> None:
    data = patched(H100, {0: {"uuid": {"error": "RESET_REQUIRED"}}})
    report = run(data)
    (lost,) = only(report, "gpu.lost")
    assert lost.action is Action.RESET_GPU
    (f,) = only(report, "reset.pending")
    assert (f.severity, f.action) == (Severity.CRIT, Action.RESET_GPU)
    assert f.evidence["gpus"] == [0]
