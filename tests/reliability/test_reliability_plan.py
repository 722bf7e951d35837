"""Checkpoint planning against published figures (Young 1974, Daly 2006)."""

from __future__ import annotations

import math

import pytest

from sre_tools.exceptions import ValidationError
from sre_tools.reliability import plan

MIN = 60.0
HOUR = 3600.0


# Daly (2006), worked examples with a 5-minute checkpoint: tau_opt in minutes and tolerance.
@pytest.mark.parametrize(
    ("mtbf", "expected_minutes", "tolerance"),
    [
        pytest.param(24 * HOUR, 117.0, 0.5, id="M=24h-C=5m-gives-117min"),
        pytest.param(6 * HOUR, 57.0, 0.5, id="M=6h-C=5m-gives-57min"),
        pytest.param(15 * MIN, 9.1, 0.1, id="M=15min-C=5m-gives-9.1min"),
    ],
)
def test_daly_eq37_matches_published_figures(
    mtbf: float, expected_minutes: float, tolerance: float
) -> None:
    tau = plan.daly_interval(5 * MIN, mtbf)
    assert abs(tau / MIN - expected_minutes) <= tolerance


@pytest.mark.parametrize(
    ("cost", "mtbf", "expected"),
    [
        pytest.param(5 * MIN, 24 * HOUR, 120 * MIN, id="sqrt(2*5m*24h)=2h"),
        pytest.param(5 * MIN, 6 * HOUR, 60 * MIN, id="sqrt(2*5m*6h)=1h"),
        pytest.param(2.0, 1.0, 2.0, id="sqrt(2*2*1)=2"),
        pytest.param(18.0, 1.0, 6.0, id="sqrt(2*18*1)=6"),
    ],
)
def test_young(cost: float, mtbf: float, expected: float) -> None:
    assert plan.young_interval(cost, mtbf) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("cost", "mtbf"),
    [
        pytest.param(2 * HOUR, 1 * HOUR, id="C=2M"),
        pytest.param(10 * HOUR, 1 * HOUR, id="C=10M"),
    ],
)
def test_daly_falls_back_to_mtbf_when_checkpoint_cost_is_at_least_twice_mtbf(
    cost: float, mtbf: float
) -> None:
    assert plan.daly_interval(cost, mtbf) == mtbf


def test_daly_tends_to_young_minus_cost_for_cheap_checkpoints() -> None:
    cost, mtbf = 1.0, 1e9
    assert plan.daly_interval(cost, mtbf) == pytest.approx(
        plan.young_interval(cost, mtbf) - cost, rel=1e-4
    )


@pytest.mark.parametrize(
    ("gpu_mtbf", "gpus", "expected"),
    [
        pytest.param(50_000 * HOUR, 16_384, 50_000 * HOUR / 16_384, id="50000h-over-16384-GPUs"),
        pytest.param(10 * HOUR, 1, 10 * HOUR, id="one-GPU"),
        pytest.param(8 * HOUR, 8, HOUR, id="8-GPUs-in-series"),
    ],
)
def test_job_mtbf_is_gpu_mtbf_over_n(gpu_mtbf: float, gpus: int, expected: float) -> None:
    assert plan.job_mtbf(gpu_mtbf, gpus) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("run", "mtbf", "expected"),
    [
        pytest.param(24 * HOUR, 24 * HOUR, 1 - math.exp(-1), id="T=M-gives-63.2%"),
        pytest.param(0.0, 24 * HOUR, 0.0, id="zero-length-run"),
        pytest.param(1.0, 1e12, 1e-12, id="tiny-probability-stays-accurate"),
        pytest.param(1000 * HOUR, HOUR, 1.0, id="near-certain"),
    ],
)
def test_interruption_probability(run: float, mtbf: float, expected: float) -> None:
    assert plan.interruption_probability(run, mtbf) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize(
    ("tau", "cost", "restart", "mtbf", "expected"),
    [
        # goodput = tau / (M e^{R/M} (e^{(tau+C)/M} - 1))
        pytest.param(HOUR, 0.0, 0.0, HOUR, 1 / (math.e - 1), id="tau=M-no-costs"),
        pytest.param(
            HOUR, 0.0, HOUR, HOUR, 1 / (math.e * (math.e - 1)), id="restart-cost-scales-by-e^(R/M)"
        ),
        pytest.param(100.0, 5.0, 0.0, 1e15, 100 / 105, id="no-failures-gives-tau/(tau+C)"),
    ],
)
def test_goodput_daly_wall_clock_model(
    tau: float, cost: float, restart: float, mtbf: float, expected: float
) -> None:
    assert plan.goodput(tau, cost, restart, mtbf) == pytest.approx(expected, rel=1e-9)


def test_expected_wall_time_is_solve_time_over_goodput() -> None:
    m, c, r, tau = 6 * HOUR, 5 * MIN, 10 * MIN, 57 * MIN
    direct = m * math.exp(r / m) * (math.exp((tau + c) / m) - 1) * (100 * HOUR) / tau
    assert plan.expected_wall_time(100 * HOUR, tau, c, r, m) == pytest.approx(direct, rel=1e-12)


def test_hopeless_plan_gives_zero_goodput_not_overflow() -> None:
    assert plan.goodput(1e6, 1e6, 0.0, 1.0) == 0.0
    assert plan.expected_wall_time(HOUR, 1e6, 1e6, 0.0, 1.0) == math.inf


@pytest.mark.parametrize(
    "mtbf", [pytest.param(m * HOUR, id=f"M={m}h") for m in (0.25, 1, 3, 6, 24, 240)]
)
def test_daly_interval_is_near_the_optimum_of_the_wall_clock_model(mtbf: float) -> None:
    cost, restart = 5 * MIN, 10 * MIN
    daly = plan.daly_interval(cost, mtbf)
    best = max(
        plan.goodput(tau, cost, restart, mtbf)
        for tau in (daly * f / 1000 for f in range(200, 3000))
    )
    assert plan.goodput(daly, cost, restart, mtbf) >= best * 0.999
    young = plan.young_interval(cost, mtbf)
    assert plan.goodput(daly, cost, restart, mtbf) >= plan.goodput(young, cost, restart, mtbf)


def test_plan_from_gpu_count_llama3_scale() -> None:
    result = plan.plan_checkpoints(
        checkpoint_cost=5 * MIN, gpus=16_384, gpu_mtbf=50_000 * HOUR, restart_cost=10 * MIN
    )
    assert result.job_mtbf_seconds == pytest.approx(50_000 * HOUR / 16_384)
    assert result.young_seconds == pytest.approx(math.sqrt(2 * 5 * MIN * result.job_mtbf_seconds))
    assert result.daly_seconds < result.young_seconds
    assert 0 < result.goodput_daly < 1
    assert result.waste_daly == pytest.approx(1 - result.goodput_daly)
    assert result.interruption_probability == pytest.approx(
        1 - math.exp(-24 * HOUR / result.job_mtbf_seconds)
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"checkpoint_cost": 300.0}, "--mtbf", id="no-mtbf-at-all"),
        pytest.param(
            {"checkpoint_cost": 300.0, "mtbf": 3600.0, "gpus": 8}, "--mtbf", id="mtbf-and-gpus"
        ),
        pytest.param({"checkpoint_cost": 300.0, "gpus": 8}, "--mtbf", id="gpus-without-gpu-mtbf"),
        pytest.param({"checkpoint_cost": 0.0, "mtbf": 3600.0}, "--checkpoint-cost", id="zero-C"),
        pytest.param({"checkpoint_cost": 300.0, "mtbf": -1.0}, "--mtbf", id="negative-mtbf"),
        pytest.param(
            {"checkpoint_cost": 300.0, "mtbf": 3600.0, "restart_cost": math.nan},
            "--restart-cost",
            id="nan-restart",
        ),
        pytest.param(
            {"checkpoint_cost": 300.0, "gpus": 0, "gpu_mtbf": 3600.0}, "--gpus", id="zero-gpus"
        ),
    ],
)
def test_plan_rejects_bad_input(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        plan.plan_checkpoints(**kwargs)  # type: ignore[arg-type]
    assert info.value.field == field
