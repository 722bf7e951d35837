"""The XID event: one occurrence, from the kernel log or from NVML. Frozen, no I/O."""

from __future__ import annotations

import re

from sre_tools.health.model import Action
from sre_tools.record import Record

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

# What an event is. Only ``xid`` events carry the number NVIDIA printed; the others are
# equivalents (the text form of "fallen off the bus", NVML's own event types).
KIND_XID = "xid"
KIND_FALLEN_OFF_BUS = "fallen_off_bus"  # "NVRM: GPU 0000:18:00.0: GPU has fallen off the bus."
KIND_DBE = "dbe"  # NVML double-bit ECC event (XID 48's twin)
KIND_GPU_UNAVAILABLE = "gpu_unavailable"  # NVML GPU-unavailable event (XID 79's twin)
KIND_RECOVERY_ACTION = "recovery_action"  # NVML recovery-action event (XID 154's twin)

# Which catalog entry an event without its own XID number is classified as.
EQUIVALENT_XID = {
    KIND_FALLEN_OFF_BUS: 79,
    KIND_GPU_UNAVAILABLE: 79,
    KIND_DBE: 48,
    KIND_RECOVERY_ACTION: 154,
}
FALLEN_OFF_BUS = "FALLEN_OFF_BUS"

# Chaos drills tag every kernel-log line they write with this marker (sre_tools.chaos), so that
# the health engine knows the event is a drill's and which run's; an acknowledged run's events stop
# counting (checks/xid.py).
DRILL_TAG = "sre-drill"
DRILL_RUN_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,63}")
_DRILL_MARKER_RE = re.compile(r"\[" + DRILL_TAG + r" run=(" + DRILL_RUN_ID_RE.pattern + r")\]")


def drill_marker(run_id: str) -> str:
    """``[sre-drill run=ID]``, the tag a drill puts in each kernel-log line it writes."""
    if not DRILL_RUN_ID_RE.fullmatch(run_id):
        raise ValueError(f"not a drill run id: {run_id!r}")
    return f"[{DRILL_TAG} run={run_id}]"


# The acknowledgment file is read from its end: the newest acknowledgments are the ones whose
# lines can still be in the kernel log; older ones have long left the ring buffer.
MAX_DRILL_ACKS_BYTES = 64 * 1024


def parse_drill_acks(data: bytes) -> set[str]:
    """Run ids in (the last ``MAX_DRILL_ACKS_BYTES`` of) a drill acknowledgment file, one per
    line; anything that is not a run id is ignored."""
    if len(data) > MAX_DRILL_ACKS_BYTES:
        data = data[-MAX_DRILL_ACKS_BYTES:]
        data = data[data.find(b"\n") + 1 :]  # a line cut in two is no id
    words = data.decode("utf-8", "replace").split()
    return {w for w in words if DRILL_RUN_ID_RE.fullmatch(w)}


def drill_run_of(text: str) -> str | None:
    """The drill run a kernel-log line was written by, or None for the driver's own lines."""
    m = _DRILL_MARKER_RE.search(text)
    return m.group(1) if m else None


# Where an event was read; when sources report the same event, the first here is kept.
SOURCES = ("kmsg", "dmesg", "syslog", "journal", "text", "nvml")

# NVML_FI_DEV_GET_GPU_RECOVERY_ACTION and XID 154 values, with NVIDIA's names for them.
RECOVERY_ACTION_NAMES = {
    0: "None",
    1: "GPU Reset Required",
    2: "Node Reboot Required",
    3: "Drain P2P",
    4: "Drain and Reset",
}
# What each of those values asks of us.
RECOVERY_ACTIONS: dict[int, Action] = {
    0: Action.NONE,
    1: Action.RESET_GPU,
    2: Action.REBOOT,
    3: Action.DRAIN_AND_RESET,  # "Drain P2P": drain the node, then reset
    4: Action.DRAIN_AND_RESET,
}


def recovery_name(value: int) -> str:
    return RECOVERY_ACTION_NAMES.get(value, f"unknown value {value}")


class XidEvent(Record):
    """One XID (or equivalent) on one GPU.

    ``timestamp`` is wall-clock (epoch seconds) when known: from an ISO prefix, an NVML event, or
    a boot-relative time converted with the boot time; ``uptime`` is seconds since boot as dmesg
    and /dev/kmsg print it. ``key`` is stable for the same event read again later (the exporter
    counts events by it); :func:`with_key` fills it in.
    """

    __slots__ = (
        "gpu_index",
        "gpu_instance",
        "key",
        "kind",
        "line",
        "message",
        "name",
        "pci_bus_id",
        "pid",
        "recovery_action",
        "seq",
        "source",
        "sources",
        "timestamp",
        "uptime",
        "uuid",
        "xid",
    )
    xid: int | None
    pci_bus_id: str | None  # normalised: ``0000:18:00``
    message: str
    line: str
    gpu_instance: str | None  # ``GPU-I:05`` for an XID inside a MIG instance
    pid: int | None
    name: str | None
    timestamp: float | None
    uptime: float | None
    seq: int | None  # /dev/kmsg sequence number
    source: str
    kind: str
    gpu_index: int | None  # NVML events name the device by index
    recovery_action: int | None  # XID 154 / NVML: the new recovery action
    uuid: str | None  # from "NVRM: GPU at PCI:...: GPU-..." lines, when seen
    key: str
    sources: tuple[str, ...]

    def __init__(
        self,
        xid: int | None,
        pci_bus_id: str | None,
        message: str = "",
        line: str = "",
        gpu_instance: str | None = None,
        pid: int | None = None,
        name: str | None = None,
        timestamp: float | None = None,
        uptime: float | None = None,
        seq: int | None = None,
        source: str = "text",
        kind: str = KIND_XID,
        gpu_index: int | None = None,
        recovery_action: int | None = None,
        uuid: str | None = None,
        key: str = "",
        sources: tuple[str, ...] = (),
    ) -> None:
        self._init(
            xid=xid,
            pci_bus_id=pci_bus_id,
            message=message,
            line=line,
            gpu_instance=gpu_instance,
            pid=pid,
            name=name,
            timestamp=timestamp,
            uptime=uptime,
            seq=seq,
            source=source,
            kind=kind,
            gpu_index=gpu_index,
            recovery_action=recovery_action,
            uuid=uuid,
            key=key,
            sources=sources,
        )

    @property
    def catalog_xid(self) -> int | None:
        """The catalog entry this event is classified as (79 for the fallen-off-bus text)."""
        if self.xid is not None:
            return self.xid
        return EQUIVALENT_XID.get(self.kind)

    @property
    def drill_run(self) -> str | None:
        """The chaos drill run that wrote this event's line (None: a real event)."""
        return drill_run_of(self.line or self.message)

    @property
    def gpu_key(self) -> tuple[str, str]:
        """Which GPU (and MIG instance): the unit events are correlated on."""
        bus = self.pci_bus_id or (f"index:{self.gpu_index}" if self.gpu_index is not None else "")
        return bus, self.gpu_instance or ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "xid": self.xid,
            "kind": self.kind,
            "pci_bus_id": self.pci_bus_id,
            "gpu_instance": self.gpu_instance,
            "gpu_index": self.gpu_index,
            "pid": self.pid,
            "name": self.name,
            "timestamp": self.timestamp,
            "uptime": self.uptime,
            "seq": self.seq,
            "source": self.source,
            "sources": list(self.sources or (self.source,)),
            "recovery_action": self.recovery_action,
            "message": self.message,
            "line": self.line,
            "drill_run": self.drill_run,
        }


def _time_token(event: XidEvent) -> str:
    if event.uptime is not None:
        return f"u{event.uptime:.6f}"
    if event.timestamp is not None:
        return f"t{event.timestamp:.6f}"
    return ""


def with_key(events: list[XidEvent]) -> list[XidEvent]:
    """Give each event a stable ``key``: a hash of GPU, XID, time and message.

    The time is the boot-relative one where the source has it (dmesg and /dev/kmsg agree to the
    microsecond), else the wall clock. Identical events in one batch (same second, same text, a
    journal with one-second resolution) are told apart by their order: ``-2``, ``-3``, ...
    """
    seen: dict[str, int] = {}
    out = []
    for ev in events:
        basis = "|".join(
            [
                ev.pci_bus_id or f"index:{ev.gpu_index}",
                ev.gpu_instance or "",
                ev.kind,
                "" if ev.xid is None else str(ev.xid),
                _time_token(ev),
                ev.message,
            ]
        )
        import hashlib  # here: sha256 is only needed once events exist

        digest = hashlib.sha256(basis.encode("utf-8", "replace")).hexdigest()[:16]
        n = seen.get(digest, 0) + 1
        seen[digest] = n
        key = digest if n == 1 else f"{digest}-{n}"
        out.append(ev.replace(key=key, sources=ev.sources or (ev.source,)))
    return out
