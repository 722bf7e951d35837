"""NVLink: links up against the expected count, and error counters as rates.

Expected links: ``nvlink.expected_links`` when the policy sets it, else the most links this GPU
was ever seen with active (kept in the state file), so a link that drops after the first run is
noticed even without a profile. A GPU without NVLink (every link NotSupported) is SKIPPED,
unless the profile expects links (``nvlink.expected_links``): then ``nvlink.state`` is CRIT and
``nvlink.errors`` UNKNOWN.

A link that is down is reported once, by ``nvlink.state`` (CRIT, drain and reset: every peer's
traffic through that GPU is affected, and a reset retrains the link; a link that stays down after
a reset is a mechanical or RMA case). ``nvlink.errors`` judges the counters of active links.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.gpu.errors import NotSupported, ReadError
from sre_tools.gpu.readings import NVLINK_MAX_LINKS
from sre_tools.health.model import Action, Finding, GpuRef, Severity
from sre_tools.health.registry import Context, gpu_check

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

RATE_WINDOW_SECONDS = 3600.0
SEEN_META = "nvlink_links_seen"


def _link(ctx: Context, gpu: GpuRef, name: str, link: int) -> Any:
    """A per-link reading, or None where the link does not exist on this GPU."""
    try:
        return ctx.read(gpu, name, link)
    except NotSupported:
        return None
    except ReadError as exc:
        if exc.code == "INVALID_ARGUMENT":  # link index beyond this GPU's links
            return None
        raise


def link_states(ctx: Context, gpu: GpuRef) -> dict[int, bool]:
    """Link -> active, for every link NVML knows on this GPU (cached for this cycle)."""
    cache_key = f"nvlink_states:{gpu.index}"
    if cache_key not in ctx.cache:
        states = {}
        for link in range(NVLINK_MAX_LINKS):
            value = _link(ctx, gpu, "nvlink_state", link)
            if value is not None:
                states[link] = bool(value)
        ctx.cache[cache_key] = states
    states = ctx.cache[cache_key]
    if not states:
        raise NotSupported("no NVLink on this GPU")
    return dict(states)


def expected_links(ctx: Context) -> int:
    policy = ctx.policy.get("nvlink.expected_links")
    return int(policy) if policy is not None else 0


@gpu_check("nvlink.state")
def nvlink_state(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    try:
        states = link_states(ctx, gpu)
    except NotSupported as exc:
        want = expected_links(ctx)
        if not want:
            raise
        # The profile says this node has NVLink: a GPU that reports none is a fault, not "n/a".
        yield Finding(
            "nvlink.state",
            Severity.CRIT,
            f"no NVLink reported ({exc}); profile {ctx.policy.name} expects {want} per GPU",
            Action.DRAIN_AND_RESET,
            gpu,
            {"active": 0, "expected": want, "expected_from": "policy", "nvml": str(exc)},
        )
        return
    active = sorted(link for link, up in states.items() if up)
    inactive = sorted(link for link, up in states.items() if not up)
    key = gpu.uuid or f"index{gpu.index}"
    seen_all = ctx.state.meta.setdefault(SEEN_META, {})
    if not isinstance(seen_all, dict):
        seen_all = ctx.state.meta[SEEN_META] = {}
    seen = max(int(seen_all.get(key, 0) or 0), len(active))
    seen_all[key] = seen
    policy = ctx.policy.get("nvlink.expected_links")
    expected = int(policy) if policy is not None else seen
    ev = {
        "active": len(active),
        "expected": expected,
        "expected_from": "policy" if policy is not None else "most seen active",
        "inactive_links": inactive,
    }
    if len(active) < expected:
        yield Finding(
            "nvlink.state",
            Severity.CRIT,
            f"{expected - len(active)} NVLink(s) down ({len(active)} of {expected} active"
            + (f"; inactive: {', '.join(map(str, inactive))}" if inactive else "")
            + ")",
            Action.DRAIN_AND_RESET,
            gpu,
            ev,
        )
    else:
        yield Finding(
            "nvlink.state", Severity.OK, f"{len(active)} NVLink(s) active", gpu=gpu, evidence=ev
        )


@gpu_check("nvlink.errors")
def nvlink_errors(ctx: Context, gpu: GpuRef) -> Iterator[Finding]:
    try:
        states = link_states(ctx, gpu)
    except NotSupported as exc:
        if not expected_links(ctx):
            raise
        yield Finding(
            "nvlink.errors",
            Severity.UNKNOWN,
            f"NVLink error counters unreadable ({exc}); profile {ctx.policy.name} expects NVLink",
            gpu=gpu,
            evidence={"nvml": str(exc)},
        )
        return
    limit = float(ctx.policy.get("nvlink.error_rate_warn_per_hour"))
    key = gpu.uuid or f"index{gpu.index}"
    over: list[dict[str, Any]] = []
    totals: dict[str, int] = {}
    unknown = True
    for link, up in sorted(states.items()):
        if not up:
            continue
        counters = _link(ctx, gpu, "nvlink_errors", link)
        if not isinstance(counters, dict):
            continue
        for name, value in counters.items():
            totals[name] = totals.get(name, 0) + int(value)
            rate = ctx.state.rate_per_hour(
                f"nvlink.{name}:{key}:{link}", int(value), ctx.now, RATE_WINDOW_SECONDS
            )
            if rate is None:
                continue
            unknown = False
            if rate > limit:
                over.append({"link": link, "counter": name, "rate_per_hour": round(rate, 3)})
    if not totals:
        raise NotSupported("no NVLink error counters")
    ev = {"totals": totals, "warn_per_hour": limit, "over": over}
    if over:
        worst = max(over, key=lambda o: o["rate_per_hour"])
        yield Finding(
            "nvlink.errors",
            Severity.WARN,
            f"NVLink errors rising on {len({o['link'] for o in over})} link(s): link "
            f"{worst['link']} {worst['counter']} at {worst['rate_per_hour']:.0f}/h "
            f"(warn above {limit:g}/h)",
            Action.NONE,
            gpu,
            ev,
        )
    elif unknown:
        yield Finding(
            "nvlink.errors",
            Severity.OK,
            "NVLink error rates unknown yet (first sample)",
            gpu=gpu,
            evidence={**ev, "note": "rate unknown yet"},
        )
    else:
        yield Finding(
            "nvlink.errors", Severity.OK, "NVLink error rates normal", gpu=gpu, evidence=ev
        )
