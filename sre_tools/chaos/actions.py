"""Actions of the drill catalog, called as ``python`` providers.

The runner passes ``node``, ``transport`` and ``run_id`` to a function whose signature names them;
every other argument comes from the experiment (after ``${name}`` substitution from its
``configuration``). Rollback actions are idempotent: running one twice, or on a node the fault
never reached, changes nothing. Drills never reset, reboot or power-cycle a GPU or node.
"""

from __future__ import annotations

from sre_tools.chaos.transport import Transport, TransportError

# Every line or reason a drill writes carries this tag, so the toolkit (and a person reading a
# kernel log or ``sinfo -R``) knows it came from a drill and which run.
DRILL_TAG = "sre-drill"
DRILL_REASON_PREFIX = "sre:drill"


def drill_marker(run_id: str) -> str:
    return f"[{DRILL_TAG} run={run_id}]"


def xid_line(xid: int, pci: str, run_id: str) -> str:
    """A kernel-log line that the XID parser reads like the driver's own, tagged as a drill."""
    return (
        f"NVRM: Xid (PCI:{pci}): {int(xid)}, pid='<unknown>', name=<unknown>, "
        f"injected by a chaos drill {drill_marker(run_id)}"
    )


def inject_xid(
    transport: Transport, run_id: str, kernel_log: str, xid: int = 79, pci: str = "0000:00:00.0"
) -> str:
    """Append a tagged NVRM Xid line to ``kernel_log`` (a file the node's kernel-log source reads;
    tests and container nodes point it at a file, never at the host's ``/dev/kmsg``)."""
    line = xid_line(xid, pci, run_id)
    transport.write_file(kernel_log, (line + "\n").encode(), append=True)
    return line


def clear_xid(transport: Transport, kernel_log: str, timeout: float = 30.0) -> int:
    """Remove every drill-tagged line from ``kernel_log``; a missing file is already clear."""
    probe = transport.run(["grep", "-c", "-F", f"[{DRILL_TAG} ", kernel_log], timeout)
    if probe.rc != 0:  # 1: no tagged line, 2: no file
        return 0
    result = transport.run(["sed", "-i", f"/\\[{DRILL_TAG} /d", kernel_log], timeout)
    if result.rc != 0:
        raise TransportError(
            f"{transport.node}: cannot clear {kernel_log}: {result.stderr.strip()}"
        )
    return int(probe.stdout.strip() or 0)


def drain_node(
    transport: Transport, node: str, run_id: str, scontrol: str = "scontrol", timeout: float = 30.0
) -> str:
    """Drain ``node`` in Slurm with an ``sre:drill`` reason naming the run."""
    reason = f"{DRILL_REASON_PREFIX} run={run_id}"
    argv = [scontrol, "update", f"NodeName={node}", "State=DRAIN", f"Reason={reason}"]
    result = transport.run(argv, timeout)
    if result.rc != 0:
        raise TransportError(f"{node}: scontrol drain failed: {result.stderr.strip()}")
    return reason


def resume_node(
    transport: Transport,
    node: str,
    sinfo: str = "sinfo",
    scontrol: str = "scontrol",
    timeout: float = 30.0,
) -> bool:
    """Resume ``node`` if a drill drained it (its reason starts ``sre:drill``); otherwise leave it
    as it is. Returns whether it resumed the node."""
    reason = transport.run([sinfo, "-h", "-N", "-n", node, "-o", "%E"], timeout)
    if reason.rc != 0:
        raise TransportError(f"{node}: sinfo failed: {reason.stderr.strip()}")
    if not reason.stdout.strip().startswith(DRILL_REASON_PREFIX):
        return False
    result = transport.run([scontrol, "update", f"NodeName={node}", "State=RESUME"], timeout)
    if result.rc != 0:
        raise TransportError(f"{node}: scontrol resume failed: {result.stderr.strip()}")
    return True
