"""Counters become rates across runs through the state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from sre_tools.health.model import Action, Severity
from tests.health.checks.conftest import FAULTS, H100, HGX, T0, Runner, load, ok, only, patched
from tests.health.checks.test_infiniband import make_port

HOUR = 3600.0


def test_replay_storm_pair_warns_on_the_second_sample(run: Runner) -> None:
    first_data = load(FAULTS / "replay-storm-0.json")
    interval = float(first_data["sample_interval_seconds"])
    first = run(FAULTS / "replay-storm-0.json", now=T0)
    (f1,) = only(first, "pcie.replay")
    assert f1.severity is Severity.OK
    assert f1.evidence["note"] == "rate unknown yet"

    second = run(FAULTS / "replay-storm-1.json", now=T0 + interval)
    (f2,) = only(second, "pcie.replay")
    assert (f2.severity, f2.action) == (Severity.WARN, Action.CHECK_MECHANICALS)
    assert f2.evidence["rate_per_second"] == pytest.approx(10.0)
    # 1e-12 x 16 lanes x 32e9 bit/s (Gen5) = 0.512 replays/s
    assert f2.evidence["expected_per_second"] == pytest.approx(0.512)
    assert {f.check for f in second.problems()} == {"pcie.replay"}


def test_replays_within_the_ber_budget_are_ok(run: Runner) -> None:
    run(patched(H100, {0: {"pcie_replay_counter": ok(0)}}), now=T0)
    # 1000 replays in an hour: 0.28/s, under Gen5 x16's 0.512/s
    later = run(patched(H100, {0: {"pcie_replay_counter": ok(1000)}}), now=T0 + HOUR)
    (f,) = only(later, "pcie.replay")
    assert f.severity is Severity.OK


@pytest.mark.parametrize(
    ("increase", "config", "severity"),
    [
        pytest.param(2000, None, Severity.WARN, id="2000-per-hour-over-1000"),
        pytest.param(500, None, Severity.OK, id="500-per-hour-under-1000"),
        pytest.param(
            2000,
            "ecc:\n  corrected_rate_warn_per_hour: 5000\n",
            Severity.OK,
            id="site-raises-limit",
        ),
    ],
)
def test_corrected_ecc_rate(
    run: Runner, increase: int, config: str | None, severity: Severity
) -> None:
    key = "ecc_errors(corrected,volatile)"
    first = run(patched(H100, {0: {key: ok(10)}}), now=T0, config=config)
    (f1,) = only(first, "ecc.corrected_rate")
    assert f1.severity is Severity.OK and f1.evidence["note"] == "rate unknown yet"
    second = run(patched(H100, {0: {key: ok(10 + increase)}}), now=T0 + HOUR, config=config)
    (f2,) = only(second, "ecc.corrected_rate")
    assert f2.severity is severity
    assert f2.evidence["rate_per_hour"] == pytest.approx(increase)


def test_corrected_counter_reset_restarts_the_series(run: Runner) -> None:
    key = "ecc_errors(corrected,volatile)"
    run(patched(H100, {0: {key: ok(5000)}}), now=T0)
    after_reset = run(patched(H100, {0: {key: ok(3)}}), now=T0 + HOUR)
    (f,) = only(after_reset, "ecc.corrected_rate")
    assert f.severity is Severity.OK
    assert f.evidence["rate_per_hour"] is None


@pytest.mark.parametrize(
    ("policy", "seconds", "severity"),
    [
        pytest.param("thermal", 120, Severity.WARN, id="thermal-120s-per-hour"),
        pytest.param("reliability", 90, Severity.WARN, id="reliability-90s-per-hour"),
        pytest.param("thermal", 30, Severity.OK, id="thermal-30s-per-hour"),
        pytest.param("power", 3000, Severity.OK, id="power-capping-is-benign"),
    ],
)
def test_violation_time_rate(run: Runner, policy: str, seconds: int, severity: Severity) -> None:
    key = f"violation_ns({policy})"
    run(patched(H100, {0: {key: ok(5 * 10**9)}}), now=T0)
    later = run(patched(H100, {0: {key: ok((5 + seconds) * 10**9)}}), now=T0 + HOUR)
    (f,) = only(later, "clocks.events")
    assert f.severity is severity
    assert f.evidence["violation_seconds_per_hour"][policy] == pytest.approx(seconds)


def test_nvlink_error_rate_warns_per_link(run: Runner) -> None:
    base = load(HGX)["devices"][2]["readings"]["nvlink_errors(5)"]["value"]
    run(HGX, now=T0, profile="h100-sxm-8")
    bumped = {**base, "crc_flit": base["crc_flit"] + 500}
    later = run(
        patched(HGX, {2: {"nvlink_errors(5)": ok(bumped)}}), now=T0 + HOUR, profile="h100-sxm-8"
    )
    warned = [f for f in only(later, "nvlink.errors") if f.severity is Severity.WARN]
    assert len(warned) == 1 and warned[0].gpu is not None and warned[0].gpu.index == 2
    assert warned[0].evidence["over"] == [
        {"link": 5, "counter": "crc_flit", "rate_per_hour": pytest.approx(500.0)}
    ]
    assert {f.check for f in later.problems()} == {"nvlink.errors"}


def test_ib_error_rate(run: Runner, sysfs: Path) -> None:
    make_port(sysfs, "mlx5_0", 1, counters={"symbol_error": 3, "link_downed": 1})
    first = run(H100, now=T0)
    (f1,) = only(first, "ib.errors")
    assert f1.severity is Severity.OK and f1.evidence["note"] == "rate unknown yet"
    make_port(sysfs, "mlx5_0", 1, counters={"symbol_error": 103, "link_downed": 1})
    second = run(H100, now=T0 + HOUR)
    (f2,) = only(second, "ib.errors")
    assert (f2.severity, f2.action) == (Severity.WARN, Action.CHECK_MECHANICALS)
    assert f2.evidence["rates_per_hour"]["symbol_error"] == pytest.approx(100.0)
    assert f2.evidence["rates_per_hour"]["link_downed"] == pytest.approx(0.0)
