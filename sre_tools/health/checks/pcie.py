"""The GPU's PCIe link: trained width, speed under load, replay rate.

- ``pcie.width``: NVIDIA GPUs do not narrow their link to save power (they lower its speed), so a
  link narrower than expected trained badly: a lane failed at link-up. A reset or power cycle
  retrains it, and a link that lost lanes once usually loses them again (riser, cable, connector,
  seating), so the action is CHECK_MECHANICALS, CRIT because host transfers run at a fraction.
- ``pcie.gen``: an idle GPU drops its link to Gen1 legitimately; a lower generation only matters
  while the GPU is busy (``utilization.gpu_percent >= pcie.load_utilization_percent``).
- ``pcie.replay``: every replayed TLP is a link-level retransmission after a bit error. The PCIe
  spec bounds the bit error rate at 1e-12, so a healthy link sees at most
  ``replay_ber x lanes x GT/s x 1e9`` replays per second (Gen5 x16: 0.512/s, 1843/h). Measured
  above that (over up to an hour of samples), the link is marginal: WARN, check the mechanics.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check

GT_PER_SECOND = {1: 2.5, 2: 5.0, 3: 8.0, 4: 16.0, 5: 32.0, 6: 64.0}
RATE_WINDOW_SECONDS = 3600.0


def expected_replays_per_second(ber: float, lanes: int, gen: int) -> float:
    """Replays per second a link at bit error rate ``ber`` produces at most.

    Each bit error costs at most one replay; a lane carries ``GT/s x 1e9`` bits per second
    (Gen3+ encoding is 128b/130b, close enough to one bit per transfer).
    """
    return ber * lanes * GT_PER_SECOND.get(gen, GT_PER_SECOND[max(GT_PER_SECOND)]) * 1e9


@gpu_check("pcie.width")
def pcie_width(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    width = int(ctx.read(gpu, "pcie_link_width"))
    policy = ctx.policy.get("pcie.expected_width")
    max_width = ctx.optional(gpu, "pcie_max_link_width")
    expected = int(policy) if policy is not None else max_width
    ev = {"width": width, "max_width": max_width, "expected_width": expected}
    if expected is None:
        yield Finding("pcie.width", Severity.OK, f"PCIe link x{width}", gpu=gpu, evidence=ev)
    elif width < int(expected):
        yield Finding(
            "pcie.width",
            Severity.CRIT,
            f"PCIe link trained at x{width} of x{expected}: reseat/inspect the GPU, riser, cable",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "pcie.width",
            Severity.OK,
            f"PCIe link x{width} (expected x{expected})",
            gpu=gpu,
            evidence=ev,
        )


@gpu_check("pcie.gen")
def pcie_gen(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    gen = int(ctx.read(gpu, "pcie_link_gen"))
    policy = ctx.policy.get("pcie.expected_gen")
    max_gen = ctx.optional(gpu, "pcie_max_link_gen")
    expected = int(policy) if policy is not None else max_gen
    util = ctx.optional(gpu, "utilization")
    busy_at = int(ctx.policy.get("pcie.load_utilization_percent"))
    load = int(util["gpu_percent"]) if isinstance(util, dict) else None
    ev = {
        "gen": gen,
        "max_gen": max_gen,
        "expected_gen": expected,
        "gpu_utilization_percent": load,
        "load_utilization_percent": busy_at,
    }
    if expected is None or gen >= int(expected):
        yield Finding("pcie.gen", Severity.OK, f"PCIe Gen{gen}", gpu=gpu, evidence=ev)
    elif load is None or load < busy_at:
        yield Finding(
            "pcie.gen",
            Severity.OK,
            f"PCIe Gen{gen} of Gen{expected} while idle (links downclock when idle)",
            gpu=gpu,
            evidence=ev,
        )
    else:
        yield Finding(
            "pcie.gen",
            Severity.WARN,
            f"PCIe link at Gen{gen} of Gen{expected} under load ({load}% busy)",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )


@gpu_check("pcie.replay")
def pcie_replay(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    count = int(ctx.read(gpu, "pcie_replay_counter"))
    width = ctx.optional(gpu, "pcie_link_width")
    # The link's top generation, not the current one: replays counted at Gen5 must not be judged
    # against the Gen1 an idle link shows now.
    gen = ctx.optional(gpu, "pcie_max_link_gen") or ctx.optional(gpu, "pcie_link_gen")
    ber = float(ctx.policy.get("pcie.replay_ber"))
    key = gpu.uuid or f"index{gpu.index}"
    rate_h = ctx.state.rate_per_hour(f"pcie.replay:{key}", count, ctx.now, RATE_WINDOW_SECONDS)
    ev: dict[str, object] = {"replay_counter": count, "width": width, "gen": gen, "ber": ber}
    if width is None or gen is None:
        expected = None
    else:
        expected = expected_replays_per_second(ber, int(width), int(gen))
        ev["expected_per_second"] = round(expected, 6)
    if rate_h is None:
        yield Finding(
            "pcie.replay",
            Severity.OK,
            "PCIe replay rate unknown yet (first sample)",
            gpu=gpu,
            evidence={**ev, "rate_per_second": None, "note": "rate unknown yet"},
        )
        return
    rate = rate_h / 3600.0
    ev["rate_per_second"] = round(rate, 6)
    if expected is not None and rate > expected:
        yield Finding(
            "pcie.replay",
            Severity.WARN,
            f"PCIe replays at {rate:.3g}/s, above the {expected:.3g}/s a Gen{gen} x{width} link "
            f"at BER {ber:g} allows",
            Action.CHECK_MECHANICALS,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "pcie.replay", Severity.OK, f"PCIe replays at {rate:.3g}/s", gpu=gpu, evidence=ev
        )
