"""InfiniBand ports from sysfs (no NVML needed) and link flaps from the kernel log.

Per InfiniBand port (link layer ``InfiniBand``; RoCE ports are Ethernet and left to the network's
own monitoring): ``ib.port_state`` (ACTIVE and LinkUp, else CRIT), ``ib.rate`` (below
``infiniband.expected_rate_gbps``: WARN, a lane or speed lost at training), ``ib.errors`` (symbol
errors, link downs, link error recoveries, receive errors as rates: WARN above
``infiniband.error_rate_warn_per_hour``). Per node: ``ib.flaps``, mlx5 "Link down" messages in the
kernel log lines the caller passes (WARN above ``infiniband.flaps_warn``). Every problem here is
on the cable, transceiver, HCA seating or switch port: CHECK_MECHANICALS.

No InfiniBand port, or ``infiniband.enabled: false``: one SKIPPED ``ib.port_state`` finding.
"""

from __future__ import annotations

from collections.abc import Iterator

from sre_tools.health.model import Action, Finding, Severity
from sre_tools.health.registry import Context, check

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from sre_tools.health.ib_ports import IbPort

RATE_WINDOW_SECONDS = 3600.0


def _where(port: IbPort) -> dict[str, object]:
    return {"device": port.device, "port": port.port}


def _port_state(port: IbPort) -> Finding:
    ev = {**_where(port), "state": port.state, "phys_state": port.phys_state}
    if port.up:
        return Finding("ib.port_state", Severity.OK, f"{port.name} ACTIVE/LinkUp", evidence=ev)
    return Finding(
        "ib.port_state",
        Severity.CRIT,
        f"{port.name} is {port.state or 'unknown'}/{port.phys_state or 'unknown'}: check the "
        "cable, transceiver and switch port",
        Action.CHECK_MECHANICALS,
        evidence=ev,
    )


def _rate(ctx: Context, port: IbPort) -> Finding:
    expected = ctx.policy.get("infiniband.expected_rate_gbps")
    ev = {
        **_where(port),
        "rate": port.rate_text,
        "rate_gbps": port.rate_gbps,
        "expected_gbps": expected,
    }
    if expected is not None and port.up and (port.rate_gbps or 0.0) < float(expected):
        return Finding(
            "ib.rate",
            Severity.WARN,
            f"{port.name} runs at {port.rate_text or 'unknown rate'}, expected {expected} Gb/s",
            Action.CHECK_MECHANICALS,
            evidence=ev,
        )
    return Finding("ib.rate", Severity.OK, f"{port.name} at {port.rate_text}", evidence=ev)


def _errors(ctx: Context, port: IbPort) -> Finding:
    if not port.counters:
        return Finding(
            "ib.errors",
            Severity.SKIPPED,
            f"{port.name} has no readable error counters",
            evidence=_where(port),
        )
    limit = float(ctx.policy.get("infiniband.error_rate_warn_per_hour"))
    rates: dict[str, float | None] = {}
    for name, value in sorted(port.counters.items()):
        rate = ctx.state.rate_per_hour(
            f"ib.{name}:{port.device}:{port.port}", value, ctx.now, RATE_WINDOW_SECONDS
        )
        rates[name] = None if rate is None else round(rate, 3)
    from sre_tools.health.ib_ports import COUNTER_MAX

    saturated = [n for n, v in port.counters.items() if v >= COUNTER_MAX.get(n, 1 << 64)]
    ev = {
        **_where(port),
        "counters": dict(port.counters),
        "rates_per_hour": rates,
        "warn_per_hour": limit,
        "saturated": saturated,
    }
    over = {n: r for n, r in rates.items() if r is not None and r > limit}
    if over:
        what = ", ".join(f"{n} {r:.0f}/h" for n, r in over.items())
        return Finding(
            "ib.errors",
            Severity.WARN,
            f"{port.name} errors rising: {what} (warn above {limit:g}/h)",
            Action.CHECK_MECHANICALS,
            evidence=ev,
        )
    if all(r is None for r in rates.values()):
        return Finding(
            "ib.errors",
            Severity.OK,
            f"{port.name} error rates unknown yet (first sample)",
            evidence={**ev, "note": "rate unknown yet"},
        )
    return Finding("ib.errors", Severity.OK, f"{port.name} error rates normal", evidence=ev)


def _flaps(ctx: Context) -> Finding:
    if ctx.kernel_log_lines is None:
        return Finding(
            "ib.flaps", Severity.SKIPPED, "no kernel log lines given: link flaps not counted"
        )
    from sre_tools.health.ib_ports import count_link_flaps

    limit = int(ctx.policy.get("infiniband.flaps_warn"))
    counts = count_link_flaps(ctx.kernel_log_lines)
    ev = {"link_down_by_pci": counts, "flaps_warn": limit}
    over = {pci: n for pci, n in counts.items() if n > limit}
    if over:
        what = ", ".join(f"{pci} {n}x" for pci, n in sorted(over.items()))
        return Finding(
            "ib.flaps",
            Severity.WARN,
            f"mlx5 links flapping ({what} down; warn above {limit})",
            Action.CHECK_MECHANICALS,
            evidence=ev,
        )
    return Finding(
        "ib.flaps", Severity.OK, f"{sum(counts.values())} mlx5 link-down message(s)", evidence=ev
    )


@check("ib.port_state", needs_nvml=False)
def infiniband(ctx: Context) -> Iterator[Finding]:
    if not ctx.policy.get("infiniband.enabled"):
        yield Finding("ib.port_state", Severity.SKIPPED, "InfiniBand checks disabled by policy")
        return
    if not (ctx.sysfs / "class" / "infiniband").is_dir():
        # No RDMA device (and every replay): the port reader and its model are not loaded.
        yield Finding("ib.port_state", Severity.SKIPPED, "no InfiniBand ports on this node",
                      evidence={"other_rdma_ports": []})  # fmt: skip
        return
    from sre_tools.health.ib_ports import read_ports

    all_ports = read_ports(ctx.sysfs)
    ports = [p for p in all_ports if p.link_layer.lower() == "infiniband"]
    if not ports:
        yield Finding(
            "ib.port_state",
            Severity.SKIPPED,
            "no InfiniBand ports on this node",
            evidence={"other_rdma_ports": [p.name for p in all_ports]},
        )
        return
    for port in ports:
        yield _port_state(port)
        yield _rate(ctx, port)
        yield _errors(ctx, port)
    yield _flaps(ctx)
