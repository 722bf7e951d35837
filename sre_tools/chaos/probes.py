"""Probes of the drill catalog, called as ``python`` providers (see :mod:`.actions`)."""

from __future__ import annotations

from sre_tools.chaos.actions import DRILL_TAG, command
from sre_tools.transport import Transport


def drill_xid_lines(transport: Transport, kernel_log: str, timeout: float = 30.0) -> int:
    """How many drill-tagged lines ``kernel_log`` holds (0 when the file does not exist)."""
    if command(transport, ["test", "-e", kernel_log], timeout, ok=(0, 1))[0] == 1:
        return 0
    argv = ["grep", "-c", "-F", f"[{DRILL_TAG} ", kernel_log]
    _, out = command(transport, argv, timeout, ok=(0, 1), what=f"reading {kernel_log}")
    return int(out.strip() or 0)


def node_state(transport: Transport, node: str, sinfo: str = "sinfo", timeout: float = 30.0) -> str:
    """Slurm's state of ``node`` (``idle``, ``mixed``, ``drained``, ...)."""
    _, out = command(transport, [sinfo, "-h", "-N", "-n", node, "-o", "%T"], timeout)
    return out.strip()
