"""Probes of the drill catalog, called as ``python`` providers (see :mod:`.actions`)."""

from __future__ import annotations

from sre_tools.chaos.actions import DRILL_TAG
from sre_tools.chaos.transport import Transport, TransportError


def drill_xid_lines(transport: Transport, kernel_log: str, timeout: float = 30.0) -> int:
    """How many drill-tagged lines ``kernel_log`` holds (0 when the file does not exist)."""
    result = transport.run(["grep", "-c", "-F", f"[{DRILL_TAG} ", kernel_log], timeout)
    if result.rc in (0, 1):
        return int(result.stdout.strip() or 0)
    if "No such file" in result.stderr:
        return 0
    raise TransportError(f"{transport.node}: cannot read {kernel_log}: {result.stderr.strip()}")


def node_state(transport: Transport, node: str, sinfo: str = "sinfo", timeout: float = 30.0) -> str:
    """Slurm's state of ``node`` (``idle``, ``mixed``, ``drained``, ...)."""
    result = transport.run([sinfo, "-h", "-N", "-n", node, "-o", "%T"], timeout)
    if result.rc != 0:
        raise TransportError(f"{node}: sinfo failed: {result.stderr.strip()}")
    return result.stdout.strip()
