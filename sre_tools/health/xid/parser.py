"""Kernel-log lines to :class:`XidEvent`: ``NVRM: Xid (PCI:0000:18:00): 79, pid=..., ...``.

Any prefix is accepted before ``NVRM:``; the ones that carry a time are read:

- dmesg ``[ 1234.567890] `` (seconds since boot) and ``[Thu Nov 20 10:00:00 2026] `` (``dmesg -T``),
- /dev/kmsg ``4,1234,5678901234,-;`` (priority, sequence number, microseconds since boot),
- journalctl ``-o short-iso`` ``2026-11-20T10:00:00+0000 host kernel: `` (wall clock),
- syslog ``Nov 20 10:00:00 host kernel: `` (no year: only an embedded dmesg time is used).

Besides numbered XIDs, the text form ``NVRM: GPU 0000:18:00.0: GPU has fallen off the bus.``
becomes an XID-79 equivalent (``xid=None``, kind ``fallen_off_bus``). Everything else is ignored,
and no input (huge lines, binary, half a line) raises: a line that cannot be read yields nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from sre_tools.health.xid.model import (
    KIND_FALLEN_OFF_BUS,
    KIND_XID,
    XidEvent,
    with_key,
)

# printk lines are at most about 1 KiB; anything much longer is not a kernel line.
MAX_LINE_CHARS = 4096
MAX_TEXT_CHARS = 1024  # message and line as kept in an event (evidence stays small)
MAX_UPTIME_SECONDS = 1e9  # 31 years of uptime: beyond that the number is not a time
_MIN_EPOCH = 0.0
_MAX_EPOCH = 253402300799.0  # 9999-12-31T23:59:59Z

_BUS = r"[0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}(?:\.[0-7])?"
_XID_RE = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<bus>" + _BUS + r")(?P<extra>[^)]{0,80})\):\s{0,8}"
    r"(?P<xid>\d{1,6})(?![\d])(?P<rest>.*)"
)
_FALLEN_RE = re.compile(
    r"NVRM: GPU (?:at )?(?:PCI:)?(?P<bus>" + _BUS + r"):\s{0,8}GPU has fallen off the bus",
    re.IGNORECASE,
)
_GPU_AT_RE = re.compile(
    r"NVRM: GPU at (?:PCI:)?(?P<bus>" + _BUS + r"):\s{0,8}(?P<uuid>GPU-[0-9a-fA-F-]{8,64})"
)
_GI_RE = re.compile(r"GPU-I:\s{0,4}(?P<gi>\d{1,4})")
_BUS_ID_RE = re.compile(
    r"^(?:PCI:)?(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
    r"(?P<dev>[0-9a-fA-F]{1,2})(?:\.(?P<fn>[0-7]))?$"
)
_PID_RE = re.compile(r"pid=(?P<pid>'[^']{0,64}'|[^,\s]{0,64})\s{0,8},\s{0,8}")
_NAME_RE = re.compile(r"name=(?P<name>'[^']{0,64}'|[^,]{0,64}?)\s{0,8},\s{0,8}")
_RECOVERY_HEX_RE = re.compile(r"\bto\s+0x(?P<value>[0-9a-fA-F]{1,8})\b")
_RECOVERY_NAME_RE = re.compile(r"\bto\s+(?:0x[0-9a-fA-F]{1,8}\s+)?\((?P<name>[^)]{1,40})\)")

_KMSG_RE = re.compile(r"^\s{0,8}(?P<prio>\d{1,5}),(?P<seq>\d{1,20}),(?P<usec>\d{1,20}),[^;]{0,64};")
_ISO_RE = re.compile(
    r"^\s{0,8}(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?P<frac>[.,]\d{1,9})?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?(?=\s)"
)
_BSD_RE = re.compile(r"^\s{0,8}[A-Z][a-z]{2}\s{1,2}\d{1,2}\s\d{2}:\d{2}:\d{2}\s")
_UPTIME_RE = re.compile(r"\[\s{0,12}(?P<up>\d{1,12}\.\d{1,9})\]")
_CTIME_RE = re.compile(r"\[(?P<ct>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})\]")

_RECOVERY_BY_NAME = {
    "none": 0,
    "gpu reset required": 1,
    "node reboot required": 2,
    "drain p2p": 3,
    "drain and reset": 4,
}


def normalize_bus_id(text: str | None) -> str | None:
    """``00000000:18:00.0``, ``0000:18:00``, ``PCI:0000:18:00`` -> ``0000:18:00`` (None if not one).

    NVML prints an 8-digit domain and the function, the kernel log a 4-digit domain without it;
    the normalised form is the kernel's, lower case.
    """
    if not text:
        return None
    m = _BUS_ID_RE.match(text.strip())
    if m is None:
        return None
    domain = int(m.group("domain") or "0", 16)
    return f"{domain:04x}:{int(m.group('bus'), 16):02x}:{int(m.group('dev'), 16):02x}"


def _gpu_instance(extra: str) -> str | None:
    m = _GI_RE.search(extra)
    return None if m is None else f"GPU-I:{int(m.group('gi')):02d}"


def _epoch_ok(value: float) -> float | None:
    return value if _MIN_EPOCH <= value <= _MAX_EPOCH else None


def _iso_epoch(m: re.Match[str]) -> float | None:
    text = m.group("iso").replace(" ", "T")
    frac = (m.group("frac") or "")[1:7]
    if frac:
        text += "." + frac.ljust(6, "0")
    tz = m.group("tz")
    if tz == "Z":
        text += "+00:00"
    elif tz:
        text += tz if ":" in tz else f"{tz[:3]}:{tz[3:]}"
    try:
        value = datetime.fromisoformat(text)
        return _epoch_ok(value.timestamp())  # naive: local time, as journalctl prints it
    except (ValueError, OverflowError, OSError):
        return None


def _ctime_epoch(text: str) -> float | None:
    try:
        return _epoch_ok(time.mktime(time.strptime(text, "%a %b %d %H:%M:%S %Y")))
    except (ValueError, OverflowError):
        return None


class _Prefix:
    """What the text before ``NVRM:`` says: source, wall time, uptime, kmsg sequence."""

    __slots__ = ("seq", "source", "timestamp", "uptime")

    def __init__(self, prefix: str):
        self.source = "text"
        self.timestamp: float | None = None
        self.uptime: float | None = None
        self.seq: int | None = None
        kmsg = _KMSG_RE.match(prefix)
        if kmsg is not None:
            self.source = "kmsg"
            self.seq = int(kmsg.group("seq"))
            self.uptime = self._uptime(int(kmsg.group("usec")) / 1e6)
            return
        iso = _ISO_RE.match(prefix)
        if iso is not None:
            self.source = "journal"
            self.timestamp = _iso_epoch(iso)
        elif _BSD_RE.match(prefix):
            self.source = "syslog"
        ups = _UPTIME_RE.findall(prefix)
        if ups:
            self.uptime = self._uptime(float(ups[-1]))
            if self.source == "text":
                self.source = "dmesg"
            elif self.source == "journal":
                self.source = "syslog"  # rsyslog's RFC 3339 files keep the dmesg time too
        elif self.source == "text":
            ct = _CTIME_RE.search(prefix)
            if ct is not None:
                self.source = "dmesg"
                self.timestamp = _ctime_epoch(ct.group("ct"))

    @staticmethod
    def _uptime(value: float) -> float | None:
        return value if 0 <= value <= MAX_UPTIME_SECONDS else None


def _recovery_action(rest: str) -> int | None:
    m = _RECOVERY_HEX_RE.search(rest)
    if m is not None:
        return int(m.group("value"), 16)
    m = _RECOVERY_NAME_RE.search(rest)
    if m is not None:
        return _RECOVERY_BY_NAME.get(" ".join(m.group("name").lower().split()))
    return None


def _unquote(text: str) -> str:
    return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == "'" else text


def _pid_name_message(rest: str) -> tuple[int | None, str | None, str]:
    rest = rest.strip()
    if rest.startswith(","):
        rest = rest[1:].lstrip()
    pid: int | None = None
    name: str | None = None
    m = _PID_RE.match(rest)
    if m is not None:
        raw = _unquote(m.group("pid"))
        pid = int(raw) if raw.isdigit() and len(raw) <= 10 else None
        rest = rest[m.end() :]
    m = _NAME_RE.match(rest)
    if m is not None:
        raw = _unquote(m.group("name").strip())
        name = None if raw in {"", "<unknown>"} else raw
        rest = rest[m.end() :]
    return pid, name, rest.strip()


def parse_line(line: str, *, boot_time: float | None = None) -> XidEvent | None:
    """One kernel-log line to an event, or None (not an XID line, or not readable as one).

    ``boot_time`` (epoch seconds) turns a boot-relative time into a wall-clock ``timestamp``.
    The event has no ``key`` yet: :func:`parse_lines` (or :func:`~.model.with_key`) sets it.
    """
    if not isinstance(line, str) or len(line) > MAX_LINE_CHARS or "NVRM:" not in line:
        return None
    line = line.rstrip("\r\n")
    start = line.find("NVRM:")
    body = line[start:]
    xid_match = _XID_RE.search(body)
    if xid_match is not None:
        bus = normalize_bus_id(xid_match.group("bus"))
        if bus is None:
            return None
        xid = int(xid_match.group("xid"))
        rest = xid_match.group("rest")
        pid, name, message = _pid_name_message(rest)
        kind = KIND_XID
        gpu_instance = _gpu_instance(xid_match.group("extra"))
        recovery = _recovery_action(message) if xid == 154 else None
    else:
        fallen = _FALLEN_RE.search(body)
        if fallen is None:
            return None
        bus = normalize_bus_id(fallen.group("bus"))
        if bus is None:
            return None
        xid, pid, name, gpu_instance, recovery = None, None, None, None, None
        kind = KIND_FALLEN_OFF_BUS
        message = "GPU has fallen off the bus."
    prefix = _Prefix(line[: min(start, 512)])
    uuid = _GPU_AT_RE.search(body)
    timestamp = prefix.timestamp
    if timestamp is None and prefix.uptime is not None and boot_time is not None:
        timestamp = _epoch_ok(boot_time + prefix.uptime)
    return XidEvent(
        xid=xid,
        pci_bus_id=bus,
        message=message[:MAX_TEXT_CHARS],
        line=line[:MAX_TEXT_CHARS],
        gpu_instance=gpu_instance,
        pid=pid,
        name=name,
        timestamp=timestamp,
        uptime=prefix.uptime,
        seq=prefix.seq,
        source=prefix.source,
        kind=kind,
        recovery_action=recovery,
        uuid=None if uuid is None else uuid.group("uuid"),
    )


def gpu_uuid(line: str) -> tuple[str, str] | None:
    """``(bus id, GPU UUID)`` from ``NVRM: GPU at PCI:0000:18:00: GPU-...`` lines, else None."""
    if not isinstance(line, str) or len(line) > MAX_LINE_CHARS or "NVRM: GPU at" not in line:
        return None
    m = _GPU_AT_RE.search(line)
    if m is None:
        return None
    bus = normalize_bus_id(m.group("bus"))
    return None if bus is None else (bus, m.group("uuid"))


def parse_lines(lines: Iterable[str], *, boot_time: float | None = None) -> list[XidEvent]:
    """Every XID event in ``lines`` (items may hold several lines), in order, with keys.

    ``NVRM: GPU at PCI:...: GPU-<uuid>`` lines name the GPU of later events on that bus.
    """
    uuids: dict[str, str] = {}
    events: list[XidEvent] = []
    for item in lines:
        if not isinstance(item, str) or "NVRM:" not in item:
            continue
        for line in item.splitlines() if "\n" in item or "\r" in item else (item,):
            named = gpu_uuid(line)
            if named is not None:
                uuids[named[0]] = named[1]
            ev = parse_line(line, boot_time=boot_time)
            if ev is None:
                continue
            if ev.uuid is None and ev.pci_bus_id in uuids:
                ev = replace(ev, uuid=uuids[ev.pci_bus_id])
            events.append(ev)
    return with_key(events)
