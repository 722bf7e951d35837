r"""Checkpoint planning for a training job. Pure math: no I/O.

Notation (all times in seconds): ``M`` the job's MTBF, ``C`` the time to write one checkpoint,
``R`` the restart cost (reschedule, reload the last checkpoint), ``tau`` the compute time between
checkpoints, ``T`` a run length, ``T_s`` the failure-free solve time.

- Job MTBF of ``N`` GPUs in series, each with MTBF ``M_gpu`` (exponential failures, any one GPU
  failing interrupts the job): ``M = M_gpu / N``.
- Probability of at least one interruption during ``T``: ``P = 1 - exp(-T / M)``.
- Young (1974), first order: ``tau_young = sqrt(2 C M)``.
- Daly (2006), eq. 37, higher order::

      tau_daly = sqrt(2 C M) * [1 + (1/3) sqrt(C / (2M)) + (1/9) (C / (2M))] - C   if C < 2M
      tau_daly = M                                                                otherwise

- Daly's expected wall-clock time for a job of solve time ``T_s`` checkpointed every ``tau``::

      T_wall = M e^{R/M} (e^{(tau + C)/M} - 1) T_s / tau

  so the goodput (useful fraction of wall-clock time) is
  ``T_s / T_wall = tau / (M e^{R/M} (e^{(tau + C)/M} - 1))`` and the waste is ``1 - goodput``.
  With no failures (``M`` -> infinity) the goodput tends to ``tau / (tau + C)``.

References: J. W. Young, "A first order approximation to the optimum checkpoint interval",
CACM 17(9), 1974; J. T. Daly, "A higher order estimate of the optimum checkpoint interval for
restart dumps", Future Generation Computer Systems 22(3), 2006.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sre_tools.exceptions import ValidationError

DEFAULT_RUN_LENGTH = 24 * 3600.0


def _positive(value: float, field: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise ValidationError(f"must be a positive finite number, got {value!r}", field=field)
    return value


def _non_negative(value: float, field: str) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValidationError(f"must be zero or more, got {value!r}", field=field)
    return value


def job_mtbf(gpu_mtbf: float, gpus: int) -> float:
    """MTBF of a job on ``gpus`` GPUs in series: ``M_gpu / N``."""
    _positive(gpu_mtbf, "--gpu-mtbf")
    if gpus < 1:
        raise ValidationError(f"must be at least 1, got {gpus}", field="--gpus")
    return gpu_mtbf / gpus


def interruption_probability(run_length: float, mtbf: float) -> float:
    """``1 - exp(-T / M)``: the chance of at least one interruption during ``run_length``."""
    _non_negative(run_length, "--run-length")
    _positive(mtbf, "--mtbf")
    return -math.expm1(-run_length / mtbf)


def young_interval(checkpoint_cost: float, mtbf: float) -> float:
    """Young's first-order optimum checkpoint interval ``sqrt(2 C M)``."""
    _positive(checkpoint_cost, "--checkpoint-cost")
    _positive(mtbf, "--mtbf")
    return math.sqrt(2 * checkpoint_cost * mtbf)


def daly_interval(checkpoint_cost: float, mtbf: float) -> float:
    """Daly's higher-order optimum checkpoint interval (2006, eq. 37).

    ``sqrt(2CM) [1 + (1/3) sqrt(C/2M) + (1/9) (C/2M)] - C`` for ``C < 2M``, else ``M``.
    """
    c = _positive(checkpoint_cost, "--checkpoint-cost")
    m = _positive(mtbf, "--mtbf")
    if c >= 2 * m:
        return m
    ratio = c / (2 * m)
    return math.sqrt(2 * c * m) * (1 + math.sqrt(ratio) / 3 + ratio / 9) - c


def goodput(interval: float, checkpoint_cost: float, restart_cost: float, mtbf: float) -> float:
    """``tau / (M e^{R/M} (e^{(tau + C)/M} - 1))``: the useful fraction of wall-clock time.

    Computed in log space, so a hopeless plan gives 0.0 instead of overflowing.
    """
    tau = _positive(interval, "interval")
    c = _non_negative(checkpoint_cost, "--checkpoint-cost")
    r = _non_negative(restart_cost, "--restart-cost")
    m = _positive(mtbf, "--mtbf")
    x = (tau + c) / m
    if x < 1e-8:
        # M (e^x - 1) = (tau + C) (1 + x/2 + ...): the failure-free limit, without underflow.
        log_denominator = math.log(tau + c) + r / m + math.log1p(x / 2)
    else:
        log_expm1 = x + math.log1p(-math.exp(-x)) if x > 1 else math.log(math.expm1(x))
        log_denominator = math.log(m) + r / m + log_expm1
    log_goodput = math.log(tau) - log_denominator
    return min(1.0, math.exp(log_goodput)) if log_goodput > -745 else 0.0


def expected_wall_time(
    solve_time: float, interval: float, checkpoint_cost: float, restart_cost: float, mtbf: float
) -> float:
    """Daly's ``T_wall = M e^{R/M} (e^{(tau + C)/M} - 1) T_s / tau`` (``inf`` if hopeless)."""
    _non_negative(solve_time, "solve time")
    fraction = goodput(interval, checkpoint_cost, restart_cost, mtbf)
    if solve_time == 0:
        return 0.0
    return math.inf if fraction == 0 else solve_time / fraction


@dataclass(frozen=True, slots=True)
class CheckpointPlan:
    """Everything ``sre reliability plan`` prints (seconds, probabilities and fractions)."""

    job_mtbf_seconds: float
    gpus: int | None
    gpu_mtbf_seconds: float | None
    run_length_seconds: float
    checkpoint_cost_seconds: float
    restart_cost_seconds: float
    interruption_probability: float
    expected_interruptions: float
    young_seconds: float
    daly_seconds: float
    goodput_young: float
    goodput_daly: float
    waste_daly: float
    expected_wall_seconds: float


def plan_checkpoints(
    *,
    checkpoint_cost: float,
    mtbf: float | None = None,
    gpus: int | None = None,
    gpu_mtbf: float | None = None,
    restart_cost: float = 0.0,
    run_length: float = DEFAULT_RUN_LENGTH,
) -> CheckpointPlan:
    """Plan from either the job's ``mtbf`` or ``gpus`` and the per-GPU ``gpu_mtbf``.

    The expected wall time is for a job whose failure-free solve time is ``run_length``,
    checkpointed at the Daly interval.
    """
    if mtbf is not None and (gpus is not None or gpu_mtbf is not None):
        raise ValidationError(
            "give either --mtbf or --gpus with --gpu-mtbf, not both", field="--mtbf"
        )
    if mtbf is None:
        if gpus is None or gpu_mtbf is None:
            raise ValidationError(
                "give either --mtbf or both --gpus and --gpu-mtbf", field="--mtbf"
            )
        m = job_mtbf(gpu_mtbf, gpus)
    else:
        m = _positive(mtbf, "--mtbf")
    _non_negative(restart_cost, "--restart-cost")
    young = young_interval(checkpoint_cost, m)
    daly = daly_interval(checkpoint_cost, m)
    good_daly = goodput(daly, checkpoint_cost, restart_cost, m)
    return CheckpointPlan(
        job_mtbf_seconds=m,
        gpus=gpus,
        gpu_mtbf_seconds=gpu_mtbf,
        run_length_seconds=run_length,
        checkpoint_cost_seconds=checkpoint_cost,
        restart_cost_seconds=restart_cost,
        interruption_probability=interruption_probability(run_length, m),
        expected_interruptions=run_length / m,
        young_seconds=young,
        daly_seconds=daly,
        goodput_young=goodput(young, checkpoint_cost, restart_cost, m),
        goodput_daly=good_daly,
        waste_daly=1.0 - good_daly,
        expected_wall_seconds=expected_wall_time(
            run_length, daly, checkpoint_cost, restart_cost, m
        ),
    )
