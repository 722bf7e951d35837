"""Per-check edge cases the fixtures do not cover: one table per module."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sre_tools.health.checks.clocks import decode
from sre_tools.health.checks.fabric import decode_health
from sre_tools.health.checks.pcie import expected_replays_per_second
from sre_tools.health.model import Action, Severity
from tests.health.checks.conftest import H100, HGX, NOT_SUPPORTED, T0, Runner, ok, only, patched

A, S = Action, Severity
VOLTA = 5
# degraded bandwidth, route recovery, route unhealthy, access-timeout recovery all FALSE (2);
# incorrect configuration NONE (1)
HEALTHY_MASK = 2 | (2 << 2) | (2 << 4) | (2 << 6) | (1 << 8)


def _sram(**over: Any) -> dict[str, Any]:
    base = {
        "threshold_exceeded": False,
        "aggregate_uncorrectable_parity": 0,
        "aggregate_uncorrectable_sec_ded": 0,
        "aggregate_correctable": 0,
        "volatile_uncorrectable_parity": 0,
        "volatile_uncorrectable_sec_ded": 0,
        "volatile_correctable": 0,
    }
    return ok({**base, **over})


def _pre_ampere(sbe: int, dbe: int, pending: bool) -> dict[str, Any]:
    return {
        "architecture": ok(VOLTA),
        "retired_pages(sbe)": ok(sbe),
        "retired_pages(dbe)": ok(dbe),
        "retired_pages_pending": ok(pending),
        "remapped_rows": NOT_SUPPORTED,
        "remapper_histogram": NOT_SUPPORTED,
    }


# (readings changed on the H100 fixture, check, severity, action)
# Absolute thresholds as drivers that report them give them (H100 SXM: nvidia-smi -q of other
# H100 boards); the real capture's driver answers NotSupported there.
ABSOLUTE = {
    "temperature_threshold_c(shutdown)": ok(92),
    "temperature_threshold_c(slowdown)": ok(89),
    "temperature_threshold_c(mem_max)": ok(95),
    "temperature_threshold_c(gpu_max)": ok(87),
}

CASES = [
    pytest.param({"ecc_mode": ok([0, 0])}, "ecc.mode", S.WARN, A.NONE, id="ecc-off"),
    pytest.param({"ecc_mode": ok([0, 1])}, "ecc.mode", S.WARN, A.REBOOT, id="ecc-on-pending"),
    pytest.param(_pre_ampere(10, 2, False), "retired_pages", S.OK, A.NONE, id="retired-few"),
    pytest.param(
        _pre_ampere(1, 1, True), "retired_pages", S.CRIT, A.RESET_GPU, id="retired-pending"
    ),
    pytest.param(
        _pre_ampere(2, 15, False), "retired_pages", S.WARN, A.CONTACT_SUPPORT, id="retired-dbe-15"
    ),
    pytest.param(
        _pre_ampere(45, 15, True), "retired_pages", S.CRIT, A.RMA_CANDIDATE, id="retired-60"
    ),
    pytest.param(
        {"sram_ecc_status": _sram(threshold_exceeded=True, aggregate_uncorrectable_parity=5)},
        "sram.threshold",
        S.CRIT,
        A.CONTACT_SUPPORT,
        id="sram-threshold",
    ),
    pytest.param(
        {"repair_status": ok({"channel_repair_pending": True, "tpc_repair_pending": False})},
        "repair.status",
        S.CRIT,
        A.RESET_GPU,
        id="channel-repair-pending",
    ),
    pytest.param(
        {"repair_status": ok({"channel_repair_pending": False, "tpc_repair_pending": True})},
        "repair.status",
        S.CRIT,
        A.RESET_GPU,
        id="tpc-repair-pending",
    ),
    pytest.param(
        {**ABSOLUTE, "temperature_c": ok(80)},
        "thermal.gpu",
        S.WARN,
        A.CHECK_MECHANICALS,
        id="gpu-80c",
    ),
    pytest.param(
        {**ABSOLUTE, "temperature_c": ok(86)},
        "thermal.gpu",
        S.CRIT,
        A.CHECK_MECHANICALS,
        id="gpu-86c",
    ),
    pytest.param(
        {**ABSOLUTE, "temperature_threshold_c(slowdown)": NOT_SUPPORTED, "temperature_c": ok(78)},
        "thermal.gpu",
        S.WARN,
        A.CHECK_MECHANICALS,
        id="gpu-max-fallback",
    ),
    pytest.param(
        {"temperature_c": ok(79), "margin_temperature_c": ok(8)},
        "thermal.gpu",
        S.WARN,
        A.CHECK_MECHANICALS,
        id="tlimit-margin-8",
    ),
    pytest.param(
        {"temperature_c": ok(85), "margin_temperature_c": ok(2)},
        "thermal.gpu",
        S.CRIT,
        A.CHECK_MECHANICALS,
        id="tlimit-margin-2",
    ),
    pytest.param(
        {"temperature_c": ok(90), "margin_temperature_c": ok(-3)},
        "thermal.gpu",
        S.CRIT,
        A.CHECK_MECHANICALS,
        id="past-tlimit",
    ),
    pytest.param(
        # A driver that answers T.Limit offsets (or 0) where absolute thresholds belong: the
        # readings are not thresholds; the margin (50 C) judges instead of "37 C >= -2 C".
        {
            "temperature_threshold_c(slowdown)": ok(-2),
            "temperature_threshold_c(shutdown)": ok(-8),
            "temperature_threshold_c(gpu_max)": ok(0),
        },
        "thermal.gpu",
        S.OK,
        A.NONE,
        id="implausible-thresholds-use-margin",
    ),
    pytest.param(
        {"memory_temperature_c": ok(88)}, "thermal.hbm", S.WARN, A.CHECK_MECHANICALS, id="hbm-88c"
    ),
    pytest.param(
        {"memory_temperature_c": ok(95)}, "thermal.hbm", S.CRIT, A.CHECK_MECHANICALS, id="hbm-95c"
    ),
    pytest.param(
        {"power_usage_mw": ok(712000)}, "power.draw", S.WARN, A.NONE, id="power-over-limit"
    ),
    pytest.param(
        {"clock_event_reasons": ok(0x4)}, "clocks.events", S.OK, A.NONE, id="sw-power-cap"
    ),
    pytest.param({"clock_event_reasons": ok(0x13)}, "clocks.events", S.OK, A.NONE, id="benign-mix"),
    pytest.param(
        {"clock_event_reasons": ok(0x20)},
        "clocks.events",
        S.WARN,
        A.CHECK_MECHANICALS,
        id="sw-thermal",
    ),
    pytest.param(
        {"clock_event_reasons": ok(0x88)},
        "clocks.events",
        S.CRIT,
        A.CHECK_MECHANICALS,
        id="power-brake",
    ),
    pytest.param(
        {"clock_event_reasons": ok(0x8)},
        "clocks.events",
        S.CRIT,
        A.CHECK_MECHANICALS,
        id="hw-slowdown",
    ),
    pytest.param(
        {"pcie_link_width": ok(16), "pcie_max_link_width": ok(8)},
        "pcie.width",
        S.OK,
        A.NONE,
        id="x8-slot",
    ),
    pytest.param({"mig_mode": ok([1, 1])}, "mig.pending", S.OK, A.NONE, id="mig-on"),
    pytest.param(
        {"mig_mode": ok([1, 0])}, "mig.pending", S.WARN, A.RESET_GPU, id="mig-off-pending"
    ),
    pytest.param(
        {"inforom_valid": {"error": "CORRUPTED_INFOROM"}},
        "inforom.valid",
        S.CRIT,
        A.CONTACT_SUPPORT,
        id="inforom-corrupt",
    ),
    pytest.param(
        {"inforom_valid": ok(False)}, "inforom.valid", S.CRIT, A.CONTACT_SUPPORT, id="inforom-false"
    ),
]


@pytest.mark.parametrize(("readings", "check", "severity", "action"), CASES)
def test_check_outcome(
    run: Runner, readings: dict[str, Any], check: str, severity: S, action: A
) -> None:
    report = run(patched(H100, {0: readings}))
    (f,) = only(report, check)
    assert (f.severity, f.action) == (severity, action)
    others = {x.check for x in report.problems()} - {check, "reset.pending"}
    if check.startswith("thermal") or check == "clocks.events":
        others -= {"thermal.gpu", "thermal.hbm", "clocks.events"}
    assert others == set()


def test_uncorrected_volatile_evidence_includes_remap_state(run: Runner) -> None:
    rows = ok({"correctable": 0, "uncorrectable": 1, "pending": True, "failure": False})
    report = run(
        patched(H100, {0: {"ecc_errors(uncorrected,volatile)": ok(1), "remapped_rows": rows}})
    )
    (f,) = only(report, "ecc.uncorrected_volatile")
    assert f.evidence == {
        "uncorrected_volatile": 1,
        "remap_pending": True,
        "uncorrected_aggregate": 0,
    }


@pytest.mark.parametrize(
    ("mask", "benign", "bad", "unknown"),
    [
        (0x0, [], [], []),
        (0x1, ["gpu_idle"], [], []),
        (
            0x2 | 0x4 | 0x10 | 0x100,
            ["applications_clocks", "sw_power_cap", "sync_boost", "display_clocks"],
            [],
            [],
        ),
        (0x48, [], ["hw_slowdown", "hw_thermal_slowdown"], []),
        (0x88, [], ["hw_slowdown", "hw_power_brake_slowdown"], []),
        (0x20 | 0x1, ["gpu_idle"], ["sw_thermal_slowdown"], []),
        (0x400, [], [], ["0x400"]),
    ],
)
def test_decode_clock_events(
    mask: int, benign: list[str], bad: list[str], unknown: list[str]
) -> None:
    assert decode(mask) == (benign, bad, unknown)


@pytest.mark.parametrize(
    ("gen", "lanes", "per_second"),
    [
        (5, 16, 0.512),
        (4, 16, 0.256),
        (3, 16, 0.128),
        (3, 8, 0.064),
        (2, 16, 0.08),
        (1, 1, 0.0025),
    ],
)
def test_expected_replays_per_second(gen: int, lanes: int, per_second: float) -> None:
    assert expected_replays_per_second(1e-12, lanes, gen) == pytest.approx(per_second)


def test_decode_fabric_health() -> None:
    healthy = decode_health(HEALTHY_MASK)
    assert healthy == {
        "degraded_bandwidth": False,
        "route_recovery": False,
        "route_unhealthy": False,
        "access_timeout_recovery": False,
        "incorrect_configuration": "none",
    }
    assert decode_health(0) == {
        "degraded_bandwidth": None,
        "route_recovery": None,
        "route_unhealthy": None,
        "access_timeout_recovery": None,
        "incorrect_configuration": "not_supported",
    }
    assert decode_health(1)["degraded_bandwidth"] is True
    assert decode_health(1 << 4)["route_unhealthy"] is True
    assert decode_health(5 << 8)["incorrect_configuration"] == "insufficient_nvlinks"


@pytest.mark.parametrize(
    ("fabric", "severity", "action"),
    [
        pytest.param({"state": 3, "status": 0}, S.OK, A.NONE, id="completed"),
        pytest.param({"state": 1, "status": 0}, S.CRIT, A.RESTART_FABRIC_MANAGER, id="not-started"),
        pytest.param({"state": 3, "status": 17}, S.CRIT, A.RESTART_FABRIC_MANAGER, id="failed"),
        pytest.param({"state": 3, "status": 0, "health_mask": 1}, S.WARN, A.NONE, id="degraded-bw"),
        pytest.param(
            {"state": 3, "status": 0, "health_mask": 1 << 4}, S.WARN, A.NONE, id="route-unhealthy"
        ),
        # h100-sxm-8 expects a fabric: "not supported" there is a fault, not "not applicable".
        pytest.param(
            {"state": 0, "status": 0}, S.CRIT, A.RESTART_FABRIC_MANAGER, id="state-not-supported"
        ),
    ],
)
def test_fabric_outcome(run: Runner, fabric: dict[str, Any], severity: S, action: A) -> None:
    value = {"state": 3, "status": 0, "clique_id": 0, "health_mask": HEALTHY_MASK, **fabric}
    report = run(patched(HGX, {5: {"fabric": ok(value)}}), profile="h100-sxm-8")
    (f,) = [x for x in only(report, "fabric.state") if x.gpu and x.gpu.index == 5]
    assert (f.severity, f.action) == (severity, action)


def test_mixed_firmware_warns_once_for_the_node(run: Runner) -> None:
    report = run(patched(HGX, {6: {"vbios_version": ok("96.00.74.00.11")}}), profile="h100-sxm-8")
    (f,) = only(report, "versions.consistency")
    assert (f.severity, f.action, f.gpu) == (S.WARN, A.NONE, None)
    assert f.evidence["vbios_version"] == {
        "96.00.DA.00.0C": [0, 1, 2, 3, 4, 5, 7],
        "96.00.74.00.11": [6],
    }
    assert f.evidence["driver_version"] == "580.159.04"
    assert "GPU 6" in f.summary
    assert {x.check for x in report.problems()} == {"versions.consistency"}


def test_inforom_validation_runs_on_expensive_cycles_and_is_cached(run: Runner) -> None:
    corrupt = patched(H100, {0: {"inforom_valid": {"error": "CORRUPTED_INFOROM"}}})
    first = run(corrupt, now=T0)
    (f1,) = only(first, "inforom.valid")
    assert f1.severity is S.CRIT and f1.evidence["cached"] is False
    # Ten minutes later: not an expensive cycle; the last result is repeated, not re-read.
    fine_now = patched(H100, {0: {"inforom_valid": ok(True)}})
    second = run(fine_now, now=T0 + 600)
    (f2,) = only(second, "inforom.valid")
    assert f2.severity is S.CRIT
    assert f2.evidence == {"validated_at": T0, "cached": True}
    # An hour later it is validated again.
    third = run(fine_now, now=T0 + 3600)
    (f3,) = only(third, "inforom.valid")
    assert f3.severity is S.OK and f3.evidence["cached"] is False


def test_inforom_validated_at_first_sight_of_a_gpu(run: Runner, state_path: Path) -> None:
    state_path.parent.mkdir(parents=True)
    state_path.write_text(
        json.dumps({"version": 1, "samples": {}, "meta": {"inforom_validated_at": T0 - 60}})
    )
    (f,) = only(run(patched(H100, {0: {"inforom_valid": ok(True)}}), now=T0), "inforom.valid")
    assert f.severity is S.OK and f.evidence["cached"] is False


def test_failed_inforom_validation_is_kept_until_the_next(run: Runner) -> None:
    first = run(patched(H100, {0: {"inforom_valid": {"error": "TIMEOUT"}}}), now=T0)
    (f1,) = only(first, "inforom.valid")
    assert f1.severity is S.UNKNOWN and f1.evidence["nvml_error"] == "TIMEOUT"
    # The next run is not an expensive cycle: the failure is repeated, not "deferred".
    fine_now = patched(H100, {0: {"inforom_valid": ok(True)}})
    (f2,) = only(run(fine_now, now=T0 + 600), "inforom.valid")
    assert f2.severity is S.UNKNOWN
    assert f2.evidence == {"validated_at": T0, "cached": True, "nvml_error": "TIMEOUT"}
    (f3,) = only(run(fine_now, now=T0 + 3600), "inforom.valid")
    assert f3.severity is S.OK and f3.evidence["cached"] is False


def test_inforom_results_written_before_failures_were_kept_still_read(
    run: Runner, state_path: Path
) -> None:
    state_path.parent.mkdir(parents=True)
    uuid = "GPU-e4292390-eeff-c8ae-fc0f-56d4f7804ee2"
    meta = {"inforom_validated_at": T0 - 60, "inforom_results": {uuid: [False, T0 - 60]}}
    state_path.write_text(json.dumps({"version": 1, "samples": {}, "meta": meta}))
    (f,) = only(run(H100, now=T0), "inforom.valid")
    assert f.severity is S.CRIT and f.evidence == {"validated_at": T0 - 60, "cached": True}
