"""Actions of the drill catalog, called as ``python`` providers.

The runner passes ``node``, ``transport`` and ``run_id`` to a function whose signature names them;
every other argument comes from the experiment (after ``${name}`` substitution from its
``configuration``). Those three have defaults (the local machine, its short host name, ``manual``)
so that Chaos Toolkit's own ``chaos validate`` and ``chaos run`` accept the catalog: run by
``chaos``, an activity acts on the machine it runs on.

Rollback actions are idempotent: running one twice, or on a node the fault never reached, changes
nothing. Drills never reset, reboot or power-cycle a GPU or node. Commands are argv lists, never
shell strings; unit names, command names and label names are checked against strict patterns.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sre_tools.exceptions import SreError, ValidationError
from sre_tools.health.model import SERVICE_UNIT_RE
from sre_tools.health.xid.model import DRILL_RUN_ID_RE, drill_marker
from sre_tools.transport import LocalTransport, Transport, TransportError


class DrillActionError(SreError):
    """An action could not bring the node to the state it promises (within its wait)."""


def local_or(transport: Transport | None) -> Transport:
    """``transport``, or the local machine when an activity runs outside the runner (``chaos``)."""
    return transport if transport is not None else LocalTransport()


def node_or_host(node: str) -> str:
    """``node``, or this machine's short host name (Slurm's usual NodeName) when none is given."""
    return node or socket.gethostname().split(".")[0]


def command(
    transport: Transport,
    argv: list[str],
    timeout: float,
    *,
    ok: tuple[int, ...] = (0,),
    what: str = "",
    input: bytes | None = None,
) -> tuple[int, str]:
    """Run ``argv`` on the node; return ``(rc, stdout)`` when ``rc`` is in ``ok``, else raise
    :class:`TransportError` with the command's stderr. ``argv[0]`` (often from a drill's
    configuration: ``systemctl``, ``sinfo``...) must be a plain command name or path."""
    validate_command(argv[0], "command")
    result = transport.run(argv, timeout, input=input)
    if result.rc not in ok:
        err = result.stderr.decode(errors="replace").strip()
        raise TransportError(
            f"{what or argv[0]} exited {result.rc}: {err}", target=transport.target
        )
    return result.rc, result.stdout.decode(errors="replace")


def poll_until(
    probe: Callable[[], Any],
    done: Callable[[Any], bool],
    within: float,
    poll: float,
    what: str,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Call ``probe`` every ``poll`` seconds until ``done(value)``; return that value, or raise
    :class:`DrillActionError` naming ``what`` and the last value after ``within`` seconds."""
    deadline = clock() + float(within)
    while True:
        value = probe()
        if done(value):
            return value
        left = deadline - clock()
        if left <= 0:
            raise DrillActionError(
                f"{what}: not reached within {float(within):g}s (last: {value!r})"
            )
        sleep(min(float(poll), left))


# Every line or reason a drill writes carries a tag (DRILL_TAG, drill_marker: defined with the XID
# event model, which reads them back), so the toolkit (and a person reading a kernel log or
# ``sinfo -R``) knows it came from a drill and which run.
DRILL_REASON_PREFIX = "sre:drill"
# Where a rollback acknowledges a drill's XID lines; the health policy's xid.drill_acks_file
# default (the two must name the same file on a node).
DEFAULT_DRILL_ACKS_FILE = "/var/lib/sre-tools/drill-acks"
KMSG = "/dev/kmsg"
# What the site's remediation (sre_tools.remediation, reason_prefix) and the drills put in front of
# a Slurm reason: a node drained with it was drained by this toolkit.
SRE_REASON_PREFIX = "sre:"
# Where stop_service notes which units a drill stopped (tmpfs: gone after a reboot, with the fault).
DEFAULT_STATE_DIR = "/run/sre-drill"

_COMMAND_RE = re.compile(r"^(/[A-Za-z0-9_.+/-]+|[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127})$")


def validate_unit(unit: str) -> str:
    """A systemd service name (``name.service``, ``name@inst.service``); anything else refused."""
    if not isinstance(unit, str) or not SERVICE_UNIT_RE.fullmatch(unit):
        raise ValidationError(
            f"not a systemd service name: {unit!r} (expected NAME.service)", field="unit"
        )
    return unit


def validate_command(name: str, field: str = "command") -> str:
    """A command name or absolute path without spaces or shell characters."""
    if not isinstance(name, str) or not _COMMAND_RE.match(name) or ".." in name.split("/"):
        raise ValidationError(f"not a command name or absolute path: {name!r}", field=field)
    return name


def validate_path(path: str, field: str) -> str:
    """An absolute path on the node (never read as an option), without ``..``, NUL or newline."""
    if (
        not isinstance(path, str)
        or not path.startswith("/")
        or any(c in path for c in "\0\n\r")
        or ".." in path.split("/")
    ):
        raise ValidationError(f"not an absolute path: {path!r}", field=field)
    return path


def slurm_node(node: str) -> str:
    """``node`` as a Slurm node name: one name, never a hostlist (``gpu[1-8]``, ``a,b``), so a
    drill's ``NodeName=`` reaches exactly the node the blast radius chose."""
    from sre_tools.remediation.model import NODE_RE

    if not NODE_RE.fullmatch(node):
        raise ValidationError(f"not a single Slurm node name: {node!r}", field="node")
    return node


def xid_line(xid: int, pci: str, run_id: str) -> str:
    """A kernel-log line that the XID parser reads like the driver's own, tagged as a drill."""
    return (
        f"NVRM: Xid (PCI:{pci}): {int(xid)}, pid='<unknown>', name=<unknown>, "
        f"injected by a chaos drill {drill_marker(run_id)}"
    )


# --- XID lines in the kernel log -------------------------------------------------------------


def _bus_id(pci: str) -> str:
    """``pci`` in the kernel's form (``0000:18:00``); anything that is not a PCI address is
    refused (the text goes into a kernel-log line)."""
    from sre_tools.health.xid.parser import normalize_bus_id

    bus = normalize_bus_id(str(pci))
    if bus is None:
        raise ValidationError(f"not a PCI address: {pci!r}", field="pci")
    return bus


def gpu_bus_id(
    gpu: int = 0,
    sre: str = "sre",
    profile: str = "",
    replay: str = "",
    config: str = "",
    timeout: float = 120.0,
    transport: Transport | None = None,
) -> str:
    """The PCI address of GPU ``gpu`` (NVML index) on the node, as the health engine sees it
    there (``sre health --json``: the same GPUs, a recording's on a replay)."""
    from sre_tools.chaos.probes import health_report

    report = health_report(
        sre=sre, profile=profile, replay=replay, config=config, timeout=timeout,
        transport=transport,
    )  # fmt: skip
    for finding in report.get("findings") or ():
        ref = finding.get("gpu") if isinstance(finding, Mapping) else None
        if isinstance(ref, Mapping) and ref.get("index") == int(gpu) and ref.get("pci_bus_id"):
            return _bus_id(str(ref["pci_bus_id"]))
    raise TransportError(
        f"no GPU {int(gpu)} with a PCI address in the node's health report",
        target=local_or(transport).target,
    )


def inject_xid(
    kernel_log: str = KMSG,
    xid: int = 79,
    pci: str = "",
    gpu: int = 0,
    sre: str = "sre",
    profile: str = "",
    replay: str = "",
    config: str = "",
    timeout: float = 30.0,
    transport: Transport | None = None,
    run_id: str = "",
) -> str:
    """Append a drill-tagged NVRM Xid line for one GPU to ``kernel_log``: ``/dev/kmsg`` on a
    real node (the kernel's log, where the health checks and the exporter read it), or a file
    that the node's kernel-log source reads (test and container nodes: never the host's kmsg).
    ``pci`` empty: GPU ``gpu``'s address, resolved on the node (:func:`gpu_bus_id`). Outside the
    runner (``chaos run``) the line gets a run id of its own (``manual-<time>-<random>``)."""
    transport = local_or(transport)
    validate_path(kernel_log, "kernel_log")
    run_id = run_id or _manual_run_id()
    bus = _bus_id(pci) if pci else gpu_bus_id(gpu, sre, profile, replay, config, 120.0, transport)
    line = xid_line(xid, bus, run_id)
    # Appended by `tee -a` with the line on stdin (no shell): a kernel-log file keeps its inode
    # for a reader that follows it, and /dev/kmsg takes the one write as one record.
    data = (line + "\n").encode()
    command(transport, ["tee", "-a", "--", kernel_log], timeout,
            what=f"appending to {kernel_log}", input=data)  # fmt: skip
    return line


def _manual_run_id() -> str:
    import secrets

    return f"manual-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{secrets.token_hex(3)}"


def drill_runs_in_log(
    kernel_log: str, timeout: float, transport: Transport, max_bytes: int = 16 << 20
) -> list[str]:
    """The drill run of every drill-tagged line in ``kernel_log``, in order. ``/dev/kmsg`` is
    read through ``dmesg`` (a kmsg reader waits for new records forever); a file through the
    transport, capped; a missing file has none."""
    from sre_tools.health.xid.model import drill_run_of

    validate_path(kernel_log, "kernel_log")
    if kernel_log == KMSG:
        _, text = command(transport, ["dmesg"], timeout, what="dmesg")
    elif command(transport, ["test", "-e", kernel_log], timeout, ok=(0, 1))[0] == 1:
        return []
    else:
        text = transport.read_file(kernel_log, max_bytes).decode("utf-8", "replace")
    return [r for line in text.splitlines() if (r := drill_run_of(line)) is not None]


def acknowledged_runs(acks_file: str, timeout: float, transport: Transport) -> set[str]:
    """Run ids in the node's acknowledgment file, read as the health engine reads it."""
    from sre_tools.health.xid.model import MAX_DRILL_ACKS_BYTES, parse_drill_acks

    validate_path(acks_file, "acks_file")
    if command(transport, ["test", "-e", acks_file], timeout, ok=(0, 1))[0] == 1:
        return set()
    return parse_drill_acks(transport.read_file(acks_file, 64 * MAX_DRILL_ACKS_BYTES))


def acknowledge_xid(
    kernel_log: str = KMSG,
    acks_file: str = DEFAULT_DRILL_ACKS_FILE,
    timeout: float = 30.0,
    transport: Transport | None = None,
    run_id: str = "",
) -> str:
    """Make the run's XID lines stop counting: its run id is appended to ``acks_file`` (the
    health engine's ``xid.drill_acks_file``), which the health checks and the exporter honour.
    The log itself is never edited: ``/dev/kmsg`` cannot be, and a file another process writes
    (rsyslog) must keep its inode and every real line. Outside the runner (no ``run_id``), every
    drill run in the log that is not acknowledged yet is. Idempotent."""
    transport = local_or(transport)
    validate_path(acks_file, "acks_file")
    if run_id:
        if not DRILL_RUN_ID_RE.fullmatch(run_id):
            raise ValidationError(f"not a drill run id: {run_id!r}", field="run_id")
        wanted = [run_id]
    else:
        wanted = list(dict.fromkeys(drill_runs_in_log(kernel_log, timeout, transport)))
    acked = acknowledged_runs(acks_file, timeout, transport)
    new = [r for r in wanted if r not in acked]
    if new:
        parent = acks_file.rsplit("/", 1)[0] or "/"
        command(transport, ["mkdir", "-p", "--", parent], timeout, what=f"creating {parent}")
        data = "".join(f"{r}\n" for r in new).encode()
        command(transport, ["tee", "-a", "--", acks_file], timeout,
                what=f"appending to {acks_file}", input=data)  # fmt: skip
    return f"acknowledged in {acks_file}: {', '.join(wanted) or 'no drill run'}"


# --- Slurm -----------------------------------------------------------------------------------


def drain_node(
    scontrol: str = "scontrol",
    timeout: float = 30.0,
    transport: Transport | None = None,
    node: str = "",
    run_id: str = "manual",
) -> str:
    """Drain ``node`` in Slurm with an ``sre:drill`` reason naming the run."""
    transport, node = local_or(transport), node_or_host(node)
    reason = f"{DRILL_REASON_PREFIX} run={run_id}"
    argv = [scontrol, "update", f"NodeName={slurm_node(node)}", "State=DRAIN", f"Reason={reason}"]
    command(transport, argv, timeout, what=f"scontrol drain {node}")
    return reason


def _resume(transport: Transport, node: str, scontrol: str, timeout: float) -> None:
    argv = [scontrol, "update", f"NodeName={slurm_node(node)}", "State=RESUME"]
    command(transport, argv, timeout, what=f"scontrol resume {node}")


def resume_node(
    sinfo: str = "sinfo",
    scontrol: str = "scontrol",
    timeout: float = 30.0,
    transport: Transport | None = None,
    node: str = "",
) -> bool:
    """Resume ``node`` if a drill drained it (its reason starts ``sre:drill``); otherwise leave it
    as it is. Returns whether it resumed the node."""
    from sre_tools.chaos.probes import node_reason

    transport, node = local_or(transport), node_or_host(node)
    if not node_reason(sinfo=sinfo, timeout=timeout, transport=transport, node=node).startswith(
        DRILL_REASON_PREFIX
    ):
        return False
    _resume(transport, node, scontrol, timeout)
    return True


def resume_if_healthy(
    sre: str = "sre",
    kernel_log: str = "",
    profile: str = "",
    replay: str = "",
    config: str = "",
    healthy: Sequence[str] = ("ok",),
    sinfo: str = "sinfo",
    scontrol: str = "scontrol",
    timeout: float = 120.0,
    transport: Transport | None = None,
    node: str = "",
) -> str:
    """Undo a drain that this toolkit made (reason ``sre:...``: the drill's, or the site's
    remediation reacting to the drill's fault), and only on a fresh healthy report: ``sre health``
    runs on the node now, and its status must be in ``healthy``. A node drained for another
    reason, or still unhealthy, is left as it is (the steady state after the rollbacks then says
    the node is out of service). Returns what it did."""
    from sre_tools.chaos.probes import health_report, node_reason

    transport, node = local_or(transport), node_or_host(node)
    reason = node_reason(sinfo=sinfo, timeout=timeout, transport=transport, node=node)
    if not reason.startswith(SRE_REASON_PREFIX):
        return f"left as is (reason {reason!r} is not the toolkit's)"
    report = health_report(
        sre=sre,
        kernel_log=kernel_log,
        profile=profile,
        replay=replay,
        config=config,
        timeout=timeout,
        transport=transport,
    )
    status = str(report.get("status"))
    if status not in healthy:
        return f"left drained: health is {status} (action {report.get('action')})"
    _resume(transport, node, scontrol, timeout)
    return f"resumed (reason was {reason!r}, health {status})"


def wait_node_responding(
    within: float = 120.0,
    poll: float = 2.0,
    sinfo: str = "sinfo",
    timeout: float = 30.0,
    transport: Transport | None = None,
    node: str = "",
) -> str:
    """Wait until Slurm no longer marks ``node`` not responding (no ``*`` after its state);
    :class:`DrillActionError` after ``within`` seconds. Returns the state."""
    from sre_tools.chaos.probes import node_state

    transport, node = local_or(transport), node_or_host(node)
    state: str = poll_until(
        lambda: node_state(sinfo=sinfo, timeout=timeout, transport=transport, node=node),
        lambda s: bool(s) and not s.endswith("*"),
        within,
        poll,
        f"slurm node {node} responding",
    )
    return state


# --- systemd ---------------------------------------------------------------------------------


def _marker(state_dir: str, unit: str) -> str:
    return f"{validate_path(state_dir, 'state_dir').rstrip('/')}/{validate_unit(unit)}.stopped"


def stop_service(
    unit: str,
    systemctl: str = "systemctl",
    state_dir: str = DEFAULT_STATE_DIR,
    timeout: float = 90.0,
    transport: Transport | None = None,
    run_id: str = "manual",
) -> str:
    """Stop ``unit`` and note on the node (``STATE_DIR/UNIT.stopped``, written before the stop)
    that a drill stopped it, so that :func:`start_service` starts only what a drill stopped.
    Returns the unit's state before the stop."""
    from sre_tools.chaos.probes import unit_state

    transport = local_or(transport)
    validate_unit(unit)
    before = unit_state(unit, systemctl=systemctl, timeout=timeout, transport=transport)
    command(transport, ["mkdir", "-p", "--", state_dir], timeout, what=f"creating {state_dir}")
    transport.write_file(_marker(state_dir, unit), f"{run_id} {before}\n".encode())
    command(transport, [systemctl, "stop", unit], timeout, what=f"systemctl stop {unit}")
    return before


def start_service(
    unit: str,
    systemctl: str = "systemctl",
    state_dir: str = DEFAULT_STATE_DIR,
    within: float = 60.0,
    poll: float = 1.0,
    timeout: float = 90.0,
    transport: Transport | None = None,
) -> str:
    """Rollback of :func:`stop_service`: when a drill's note says it stopped ``unit`` while it
    was active, start it, wait until systemd reports it ``active`` (:class:`DrillActionError`
    after ``within`` seconds) and remove the note. Without a note (never faulted, or already
    rolled back), or when the unit was not active before the drill, it is left as it is: a unit
    an operator stopped is not started by a drill. Returns what it did."""
    from sre_tools.chaos.probes import unit_state

    transport = local_or(transport)
    validate_unit(unit)
    marker = _marker(state_dir, unit)
    if command(transport, ["test", "-e", marker], timeout, ok=(0, 1))[0] == 1:
        state = unit_state(unit, systemctl=systemctl, timeout=timeout, transport=transport)
        return f"not stopped by a drill: left {state}"
    note = transport.read_file(marker, max_bytes=4096).decode(errors="replace").split()
    before = note[1] if len(note) > 1 else "active"
    if before != "active":
        command(transport, ["rm", "-f", marker], timeout, what=f"removing {marker}")
        return f"was {before} before the drill: left as is"
    command(transport, [systemctl, "start", unit], timeout, what=f"systemctl start {unit}")
    poll_until(
        lambda: unit_state(unit, systemctl=systemctl, timeout=timeout, transport=transport),
        lambda s: s == "active",
        within,
        poll,
        f"{unit} active",
    )
    command(transport, ["rm", "-f", marker], timeout, what=f"removing {marker}")
    return "started"


# --- Prometheus (from the controller) --------------------------------------------------------


def wait_alert_resolved(
    prometheus_url: str,
    alert: str,
    labels: Mapping[str, Any] | None = None,
    node_label: str = "",
    within: float = 300.0,
    poll: float = 5.0,
    timeout: float = 10.0,
    unit: str = "",
    systemctl: str = "systemctl",
    transport: Transport | None = None,
    node: str = "",
) -> str:
    """Wait until ``alert`` no longer fires (see :func:`~sre_tools.chaos.probes.alert_firing`;
    this queries Prometheus from the controller, not through the node's transport);
    :class:`DrillActionError` after ``within`` seconds. With ``unit`` (the service whose absence
    fires the alert), it waits only while that unit is active on the node: a unit the drill did
    not start cannot resolve the alert, and the steady state says so without a long wait."""
    from sre_tools.chaos.probes import alert_firing, unit_state

    if unit:
        state = unit_state(unit, systemctl=systemctl, transport=local_or(transport))
        if state != "active":
            return f"{unit} is {state}: not waiting for {alert} to resolve"
    poll_until(
        lambda: alert_firing(
            prometheus_url, alert, labels=labels, node_label=node_label, timeout=timeout, node=node
        ),
        lambda firing: firing is False,
        within,
        poll,
        f"alert {alert} resolved",
    )
    return "resolved"


# --- DCGM ------------------------------------------------------------------------------------


def _dcgm_note(state_dir: str, gpu: int, field: int) -> str:
    base = validate_path(state_dir, "state_dir").rstrip("/")
    return f"{base}/dcgm-gpu{int(gpu)}-f{int(field)}.injected"


def _inject(dcgmi: str, gpu: int, field: int, value: int | float, timeout: float,
            transport: Transport) -> str:  # fmt: skip
    validate_command(dcgmi, "dcgmi")
    argv = [dcgmi, "test", "--inject", "--gpuid", str(int(gpu))]
    argv += [
        "-f",
        str(int(field)),
        "-v",
        str(float(value) if isinstance(value, float) else int(value)),
    ]
    _, out = command(transport, argv, timeout, what="dcgmi test --inject")
    return out.strip()


def dcgm_inject(
    gpu: int,
    field: int,
    value: int | float,
    dcgmi: str = "dcgmi",
    state_dir: str = DEFAULT_STATE_DIR,
    timeout: float = 30.0,
    transport: Transport | None = None,
    run_id: str = "manual",
) -> str:
    """Inject ``value`` into DCGM field ``field`` of GPU ``gpu`` in the host engine's cache:
    ``dcgmi test --inject --gpuid N -f FIELD -v VALUE`` (NVIDIA DCGM, "Error Injection" and the
    ``dcgmi test`` reference: docs.nvidia.com/datacenter/dcgm/latest/user-guide/
    dcgm-error-injection.html). Only DCGM's view changes; the GPU itself is not touched. A note
    in ``state_dir`` (written first) tells :func:`dcgm_restore` that a drill injected it."""
    transport = local_or(transport)
    note = _dcgm_note(state_dir, gpu, field)
    command(transport, ["mkdir", "-p", "--", state_dir], timeout, what=f"creating {state_dir}")
    transport.write_file(note, f"{run_id}\n".encode())
    return _inject(dcgmi, gpu, field, value, timeout, transport)


def dcgm_restore(
    gpu: int,
    field: int,
    value: int | float = 0,
    dcgmi: str = "dcgmi",
    state_dir: str = DEFAULT_STATE_DIR,
    timeout: float = 30.0,
    transport: Transport | None = None,
) -> str:
    """Rollback of :func:`dcgm_inject`: inject the healthy ``value`` back, only where a drill's
    note says it injected (never over a value DCGM read from the GPU itself), then drop the
    note. Idempotent: without the note nothing is run."""
    transport = local_or(transport)
    note = _dcgm_note(state_dir, gpu, field)
    if command(transport, ["test", "-e", note], timeout, ok=(0, 1))[0] == 1:
        return "no drill injection noted: nothing to undo"
    out = _inject(dcgmi, gpu, field, value, timeout, transport)
    command(transport, ["rm", "-f", "--", note], timeout, what=f"removing {note}")
    return out


# --- sre health ------------------------------------------------------------------------------


def wait_health_finding(
    check: str,
    expect: Sequence[str] = ("ok:none", "absent"),
    sre: str = "sre",
    kernel_log: str = "",
    profile: str = "",
    replay: str = "",
    config: str = "",
    within: float = 300.0,
    poll: float = 10.0,
    timeout: float = 120.0,
    transport: Transport | None = None,
    systemctl: str = "",
) -> str:
    """Wait until ``sre health`` on the node reports ``check`` as one of ``expect``
    (``SEVERITY:ACTION``, see :func:`~sre_tools.chaos.probes.health_finding`), e.g. the fabric
    registered again after the fabric manager restarts; :class:`DrillActionError` after
    ``within`` seconds."""
    from sre_tools.chaos.probes import health_finding

    transport = local_or(transport)
    value: str = poll_until(
        lambda: health_finding(
            check, sre, kernel_log, profile, replay, config, timeout, transport, systemctl
        ),
        lambda v: v in tuple(expect),
        within,
        poll,
        f"health {check} in {list(expect)}",
    )
    return value
