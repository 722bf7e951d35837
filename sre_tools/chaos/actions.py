"""Actions of the drill catalog, called as ``python`` providers.

The runner passes ``node``, ``transport`` and ``run_id`` to a function whose signature names them;
every other argument comes from the experiment (after ``${name}`` substitution from its
``configuration``). Rollback actions are idempotent: running one twice, or on a node the fault
never reached, changes nothing. Drills never reset, reboot or power-cycle a GPU or node.
"""

from __future__ import annotations

from sre_tools.transport import Transport, TransportError


def command(
    transport: Transport,
    argv: list[str],
    timeout: float,
    *,
    ok: tuple[int, ...] = (0,),
    what: str = "",
) -> tuple[int, str]:
    """Run ``argv`` on the node; return ``(rc, stdout)`` when ``rc`` is in ``ok``, else raise
    :class:`TransportError` with the command's stderr."""
    result = transport.run(argv, timeout)
    if result.rc not in ok:
        err = result.stderr.decode(errors="replace").strip()
        raise TransportError(
            f"{what or argv[0]} exited {result.rc}: {err}", target=transport.target
        )
    return result.rc, result.stdout.decode(errors="replace")


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
    transport: Transport,
    run_id: str,
    kernel_log: str,
    xid: int = 79,
    pci: str = "0000:00:00.0",
    timeout: float = 30.0,
) -> str:
    """Append a tagged NVRM Xid line to ``kernel_log`` (a file the node's kernel-log source reads;
    tests and container nodes point it at a file, never at the host's ``/dev/kmsg``)."""
    line = xid_line(xid, pci, run_id)
    # Appended by `tee -a` with the line on stdin (no shell): a kernel-log file keeps its inode
    # for a reader that follows it, and /dev/kmsg takes one record per write.
    result = transport.run(["tee", "-a", kernel_log], timeout, input=(line + "\n").encode())
    if result.rc != 0:
        err = result.stderr.decode(errors="replace").strip()
        raise TransportError(f"cannot append to {kernel_log}: {err}", target=transport.target)
    return line


def clear_xid(transport: Transport, kernel_log: str, timeout: float = 30.0) -> int:
    """Remove every drill-tagged line from ``kernel_log``; a missing file is already clear."""
    rc, out = command(
        transport, ["grep", "-c", "-F", f"[{DRILL_TAG} ", kernel_log], timeout, ok=(0, 1, 2)
    )
    if rc != 0:  # 1: no tagged line, 2: no file
        return 0
    command(
        transport,
        ["sed", "-i", f"/\\[{DRILL_TAG} /d", kernel_log],
        timeout,
        what=f"clearing {kernel_log}",
    )
    return int(out.strip() or 0)


def drain_node(
    transport: Transport, node: str, run_id: str, scontrol: str = "scontrol", timeout: float = 30.0
) -> str:
    """Drain ``node`` in Slurm with an ``sre:drill`` reason naming the run."""
    reason = f"{DRILL_REASON_PREFIX} run={run_id}"
    argv = [scontrol, "update", f"NodeName={node}", "State=DRAIN", f"Reason={reason}"]
    command(transport, argv, timeout, what=f"scontrol drain {node}")
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
    _, reason = command(transport, [sinfo, "-h", "-N", "-n", node, "-o", "%E"], timeout)
    if not reason.strip().startswith(DRILL_REASON_PREFIX):
        return False
    argv = [scontrol, "update", f"NodeName={node}", "State=RESUME"]
    command(transport, argv, timeout, what=f"scontrol resume {node}")
    return True
