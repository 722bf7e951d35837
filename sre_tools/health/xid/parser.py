"""Kernel-log lines to :class:`XidEvent`: ``NVRM: Xid (PCI:0000:18:00): 79, pid=..., ...``.

Any prefix is accepted before ``NVRM:``; the ones that carry a time are read:

- dmesg ``[ 1234.567890] `` (seconds since boot) and ``[Thu Nov 20 10:00:00 2026] `` (``dmesg -T``),
- /dev/kmsg ``4,1234,5678901234,-;`` (priority, sequence number, microseconds since boot),
- journalctl ``-o short-iso`` ``2026-11-20T10:00:00+0000 host kernel: `` (wall clock),
- syslog ``Nov 20 10:00:00 host kernel: `` (no year: only an embedded dmesg time is used).

Besides numbered XIDs, two texts become XID-79 equivalents (``xid=None``, kind
``fallen_off_bus``): the one-line ``NVRM: GPU 0000:18:00.0: GPU has fallen off the bus.`` and the
message the driver prints when a GPU does not answer at probe time, over three lines::

    NVRM: The NVIDIA GPU 0000:5d:00.0
    NVRM: (PCI ID: 10de:2330) installed in this system has
    NVRM: fallen off the bus and is not responding to commands.

:func:`parse_line` reads that message when one string holds all of it (syslog's flattened line,
with spaces, ``#012`` or ``\\x0a`` between the pieces; a journald MESSAGE with newlines);
:func:`parse_lines` also puts it together from separate lines (:class:`_ProbeMessages`). The
driver core's ``nvidia 0000:5d:00.0: probe ... failed with error -1`` that follows is kept as
evidence of that event, never counted on its own (probe fails for other reasons too).
Everything else is ignored, and no input (huge lines, binary, half a line) raises: a line that
cannot be read yields nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
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


class _Lazy:
    """A regular expression compiled on first use. A kernel log's NVRM lines need only a few of
    the patterns below; compiling all of them cost ``sre health`` (run by Slurm on every node
    every few minutes) a few milliseconds at start-up."""

    __slots__ = ("_args", "_pattern")

    def __init__(self, pattern: str, flags: int = 0):
        self._args = (pattern, flags)
        self._pattern: re.Pattern[str] | None = None

    @property
    def p(self) -> re.Pattern[str]:
        if self._pattern is None:
            self._pattern = re.compile(*self._args)
        return self._pattern


_BUS = r"[0-9a-fA-F]{1,8}:[0-9a-fA-F]{1,2}:[0-9a-fA-F]{1,2}(?:\.[0-7])?"
_XID_RE = _Lazy(
    r"NVRM: Xid \((?:PCI:)?(?P<bus>" + _BUS + r")(?P<extra>[^)]{0,80})\):\s{0,8}"
    r"(?P<xid>\d{1,6})(?![\d])(?P<rest>.*)"
)
_FALLEN_RE = _Lazy(
    r"NVRM: GPU (?:at )?(?:PCI:)?(?P<bus>" + _BUS + r"):\s{0,8}GPU has fallen off the bus",
    re.IGNORECASE,
)
_GPU_AT_RE = _Lazy(
    r"NVRM: GPU at (?:PCI:)?(?P<bus>" + _BUS + r"):\s{0,8}(?P<uuid>GPU-[0-9a-fA-F-]{8,64})"
)
# The probe-time message (nv.c: "NVRM: The NVIDIA GPU %04x:%02x:%02x.%x\n" "NVRM: (PCI ID:
# %04x:%04x) installed in this system has\n" "NVRM: fallen off the bus and is not responding to
# commands.\n"), piece by piece. The address must be printed in full (a cut one is no address), the
# tail must go past "fallen off the bus" (the one-line form above ends there).
_FULL_BUS = r"[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]"
_SEP = r"(?:\s|NVRM:|\[\s{0,12}\d{1,12}\.\d{1,9}\])*"  # newlines, indentation, a repeated prefix
_HEAD = r"The NVIDIA GPU (?P<bus>" + _FULL_BUS + r")(?![\w:.])"
_MIDDLE = (
    r"(?:\(PCI ID: (?P<pci_id>[0-9a-fA-F]{4}:[0-9a-fA-F]{4})\)"
    + _SEP
    + r")?installed in this system has(?!\w)"
)
_TAIL = r"fallen off the bus and is not\b"
_PROBE_MSG_RE = _Lazy(_HEAD + _SEP + _MIDDLE + _SEP + _TAIL)
_PIECE_RE = _Lazy(
    r"(?P<head>" + _HEAD + r")|(?P<middle>" + _MIDDLE + r")|(?P<tail>" + _TAIL + r")"
    r"|(?:nvidia|NVRM)(?: (?P<dev>" + _FULL_BUS + r"))?: probe "
    r"(?:of (?P<probe>" + _FULL_BUS + r")|with driver nvidia) failed with error -?\d{1,4}"
)
# How syslog and /dev/kmsg write the newlines inside one record.
_ESCAPED_NEWLINE_RE = _Lazy(r"\\x0a|#012|\\n", re.IGNORECASE)
PROBE_MESSAGE = "The NVIDIA GPU {bus} has fallen off the bus and is not responding to commands."
_GI_RE = _Lazy(r"GPU-I:\s{0,4}(?P<gi>\d{1,4})")
_BUS_ID_RE = _Lazy(
    r"^(?:PCI:)?(?:(?P<domain>[0-9a-fA-F]{1,8}):)?(?P<bus>[0-9a-fA-F]{1,2}):"
    r"(?P<dev>[0-9a-fA-F]{1,2})(?:\.(?P<fn>[0-7]))?$"
)
_PID_RE = _Lazy(r"pid=(?P<pid>'[^']{0,64}'|[^,\s]{0,64})\s{0,8},\s{0,8}")
_NAME_RE = _Lazy(r"name=(?P<name>'[^']{0,64}'|[^,]{0,64}?)\s{0,8},\s{0,8}")
_RECOVERY_HEX_RE = _Lazy(r"\bto\s+0x(?P<value>[0-9a-fA-F]{1,8})\b")
_RECOVERY_NAME_RE = _Lazy(r"\bto\s+(?:0x[0-9a-fA-F]{1,8}\s+)?\((?P<name>[^)]{1,40})\)")

_KMSG_RE = _Lazy(
    r"^\s{0,8}(?P<prio>\d{1,5}),(?P<seq>\d{1,20}),(?P<usec>\d{1,20}),(?P<flags>[^;]{0,64});"
)
_CALLER_RE = _Lazy(r"caller=(?P<caller>[A-Za-z]?\d{1,10})")
_ISO_RE = _Lazy(
    r"^\s{0,8}(?P<iso>\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?P<frac>[.,]\d{1,9})?"
    r"(?P<tz>Z|[+-]\d{2}:?\d{2})?(?=\s)"
)
_BSD_RE = _Lazy(r"^\s{0,8}[A-Z][a-z]{2}\s{1,2}\d{1,2}\s\d{2}:\d{2}:\d{2}\s")
_UPTIME_RE = _Lazy(r"\[\s{0,12}(?P<up>\d{1,12}\.\d{1,9})\]")
_CTIME_RE = _Lazy(r"\[(?P<ct>[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})\]")

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
    m = _BUS_ID_RE.p.match(text.strip())
    if m is None:
        return None
    domain = int(m.group("domain") or "0", 16)
    return f"{domain:04x}:{int(m.group('bus'), 16):02x}:{int(m.group('dev'), 16):02x}"


def _gpu_instance(extra: str) -> str | None:
    m = _GI_RE.p.search(extra)
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
    """What the text before ``NVRM:`` says: source, wall time, uptime, kmsg sequence.

    ``stream`` names who wrote the line (the source, a syslog host and tag, a kmsg caller id):
    the pieces of one probe-time message are looked for in one stream. ``continued`` is true for
    a kmsg record flagged ``c`` (a fragment of the record before it).
    """

    __slots__ = ("continued", "seq", "source", "stream", "timestamp", "uptime")

    def __init__(self, prefix: str):
        self.source = "text"
        self.timestamp: float | None = None
        self.uptime: float | None = None
        self.seq: int | None = None
        self.continued = False
        kmsg = _KMSG_RE.p.match(prefix)
        if kmsg is not None:
            self.source = "kmsg"
            self.seq = int(kmsg.group("seq"))
            self.uptime = self._uptime(int(kmsg.group("usec")) / 1e6)
            flags = kmsg.group("flags")
            self.continued = flags[:1] == "c"
            caller = _CALLER_RE.p.search(flags)
            self.stream = "kmsg:" + ("" if caller is None else caller.group("caller"))
            return
        iso = _ISO_RE.p.match(prefix)
        if iso is not None:
            self.source = "journal"
            self.timestamp = _iso_epoch(iso)
        elif _BSD_RE.p.match(prefix):
            self.source = "syslog"
        ups = _UPTIME_RE.p.findall(prefix)
        if ups:
            self.uptime = self._uptime(float(ups[-1]))
            if self.source == "text":
                self.source = "dmesg"
            elif self.source == "journal":
                self.source = "syslog"  # rsyslog's RFC 3339 files keep the dmesg time too
        elif self.source == "text":
            ct = _CTIME_RE.p.search(prefix)
            if ct is not None:
                self.source = "dmesg"
                self.timestamp = _ctime_epoch(ct.group("ct"))
        rest = _ISO_RE.p.sub("", _BSD_RE.p.sub("", prefix, count=1), count=1)
        rest = _CTIME_RE.p.sub("", _UPTIME_RE.p.sub("", rest))
        self.stream = f"{self.source}:{' '.join(rest.split())}"

    @staticmethod
    def _uptime(value: float) -> float | None:
        return value if 0 <= value <= MAX_UPTIME_SECONDS else None


def _recovery_action(rest: str) -> int | None:
    m = _RECOVERY_HEX_RE.p.search(rest)
    if m is not None:
        return int(m.group("value"), 16)
    m = _RECOVERY_NAME_RE.p.search(rest)
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
    m = _PID_RE.p.match(rest)
    if m is not None:
        raw = _unquote(m.group("pid"))
        pid = int(raw) if raw.isdigit() and len(raw) <= 10 else None
        rest = rest[m.end() :]
    m = _NAME_RE.p.match(rest)
    if m is not None:
        raw = _unquote(m.group("name").strip())
        name = None if raw in {"", "<unknown>"} else raw
        rest = rest[m.end() :]
    return pid, name, rest.strip()


def _timestamp(prefix: _Prefix, boot_time: float | None) -> float | None:
    if prefix.timestamp is None and prefix.uptime is not None and boot_time is not None:
        return _epoch_ok(boot_time + prefix.uptime)
    return prefix.timestamp


def _unescape(text: str) -> str:
    """The newlines syslog (``#012``) and /dev/kmsg (``\\x0a``) write inside one record."""
    return _ESCAPED_NEWLINE_RE.p.sub("\n", text) if "#" in text or "\\" in text else text


def _probe_event(
    bus: str, line: str, prefix: _Prefix, boot_time: float | None, source: str | None = None
) -> XidEvent:
    """The XID-79 equivalent of the probe-time message for ``bus`` (already normalised)."""
    return XidEvent(
        xid=None,
        pci_bus_id=bus,
        message=PROBE_MESSAGE.format(bus=bus),
        line=line[:MAX_TEXT_CHARS],
        timestamp=_timestamp(prefix, boot_time),
        uptime=prefix.uptime,
        seq=prefix.seq,
        source=source or prefix.source,
        kind=KIND_FALLEN_OFF_BUS,
    )


def parse_line(line: str, *, boot_time: float | None = None) -> XidEvent | None:
    """One kernel-log line to an event, or None (not an XID line, or not readable as one).

    ``boot_time`` (epoch seconds) turns a boot-relative time into a wall-clock ``timestamp``.
    The event has no ``key`` yet: :func:`parse_lines` (or :func:`~.model.with_key`) sets it.
    The probe-time message is read here only when ``line`` holds all of it.
    """
    if not isinstance(line, str) or len(line) > MAX_LINE_CHARS or "NVRM:" not in line:
        return None
    line = line.rstrip("\r\n")
    start = line.find("NVRM:")
    body = line[start:]
    xid_match = _XID_RE.p.search(body)
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
        fallen = _FALLEN_RE.p.search(body)
        if fallen is None:
            probe = _PROBE_MSG_RE.p.search(_unescape(body))
            bus = None if probe is None else normalize_bus_id(probe.group("bus"))
            if bus is None:
                return None
            return _probe_event(bus, line, _Prefix(line[: min(start, 512)]), boot_time)
        bus = normalize_bus_id(fallen.group("bus"))
        if bus is None:
            return None
        xid, pid, name, gpu_instance, recovery = None, None, None, None, None
        kind = KIND_FALLEN_OFF_BUS
        message = "GPU has fallen off the bus."
    prefix = _Prefix(line[: min(start, 512)])
    uuid = _GPU_AT_RE.p.search(body)
    return XidEvent(
        xid=xid,
        pci_bus_id=bus,
        message=message[:MAX_TEXT_CHARS],
        line=line[:MAX_TEXT_CHARS],
        gpu_instance=gpu_instance,
        pid=pid,
        name=name,
        timestamp=_timestamp(prefix, boot_time),
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
    m = _GPU_AT_RE.p.search(line)
    if m is None:
        return None
    bus = normalize_bus_id(m.group("bus"))
    return None if bus is None else (bus, m.group("uuid"))


# The pieces of one probe-time message are printed together: a piece further away (in time, or in
# records of the same stream) than this belongs to something else.
PROBE_WINDOW_SECONDS = 2.0
PROBE_WINDOW_RECORDS = 16  # records that hold a piece of the message
_PROBE_HINT_RE = _Lazy(r"NVIDIA GPU|installed in this system|fallen off the bus|probe")
_PROBE_LOOKBACK = 64  # messages searched for the probe failure's


def _time(prefix: _Prefix) -> float | None:
    return prefix.uptime if prefix.uptime is not None else prefix.timestamp


class _Message:
    """One probe-time message being put together (``stage`` 1: address read, 2: middle, 3: all)."""

    __slots__ = ("bus", "event", "lines", "pos", "prefix", "record", "rivals", "stage", "stream")
    bus: str
    pos: int
    stream: str
    prefix: _Prefix
    record: int
    lines: list[str]
    stage: int
    # The messages a piece could have belonged to, this one included (shared by all of them):
    # when pieces could go to more than one message, every one must end, or none is reported.
    rivals: list[_Message] | None
    event: XidEvent | None  # read whole from one line by parse_line

    def __init__(
        self,
        bus: str,
        pos: int,
        stream: str,
        prefix: _Prefix,
        record: int,
        lines: list[str],
        stage: int = 1,
        rivals: list[_Message] | None = None,
        event: XidEvent | None = None,
    ) -> None:
        self.bus = bus
        self.pos = pos
        self.stream = stream
        self.prefix = prefix
        self.record = record
        self.lines = lines
        self.stage = stage
        self.rivals = rivals
        self.event = event

    def add(self, line: str) -> None:
        if line not in self.lines:
            self.lines.append(line)


class _Record:
    """The kernel record a line belongs to (a continuation line belongs to the one before)."""

    __slots__ = ("index", "message", "prefix", "stream")
    stream: str
    prefix: _Prefix
    index: int
    message: _Message | None

    def __init__(
        self,
        stream: str,
        prefix: _Prefix,
        index: int,
        message: _Message | None = None,
    ) -> None:
        self.stream = stream
        self.prefix = prefix
        self.index = index
        self.message = message


class _ProbeMessages:
    """Puts the probe-time message together from the lines it reaches us in.

    A record's own lines (continuation lines: indented, or after the first line of one item such
    as a journald MESSAGE, or kmsg records flagged ``c``) belong together. Separate records (each
    line with its own prefix) are joined per stream: a middle or tail piece goes to the message of
    that stream still waiting for it, within :data:`PROBE_WINDOW_SECONDS` and
    :data:`PROBE_WINDOW_RECORDS`. Where several messages wait for the same piece and the time does
    not tell which (two GPUs' lines interleaved), the first waiting gets it, and the messages are
    reported only if every one of them ends: a message left without its end makes the others
    ambiguous, and an ambiguous message is not reported rather than reported for the wrong GPU.
    """

    def __init__(self, boot_time: float | None):
        self.boot_time = boot_time
        self.messages: list[_Message] = []
        self.waiting: dict[str, list[_Message]] = {}
        self.counts: dict[str, int] = {}
        self.record: _Record | None = None

    def gap(self) -> None:
        """A line that is not ours: the next line starts a new record."""
        self.record = None

    def feed(self, line: str, pos: int, first: bool, event: XidEvent | None = None) -> None:
        """One physical line; ``first``: the first line of its item; ``event``: parse_line's."""
        if len(line) > MAX_LINE_CHARS or _PROBE_HINT_RE.p.search(line) is None:
            if not line[:1].isspace():  # an indented line may continue the record before
                self.record = None
            return
        text = _unescape(line)
        pieces = list(_PIECE_RE.p.finditer(text))
        marks = [i for i in (text.find("NVRM:"), pieces[0].start() if pieces else -1) if i >= 0]
        start = min(marks) if marks else len(text)
        head = text[:start]
        record = self._record(head, first)
        if event is not None:
            bus = event.pci_bus_id or ""
            done = _Message(bus, pos, record.stream, record.prefix, record.index, [line], 3)
            done.event = event
            self.messages.append(done)
            record.message = done
            pieces = [p for p in pieces if p.group("dev") or p.group("probe")]
        for piece in pieces:
            self._piece(piece, record, line, pos)

    def _record(self, head: str, first: bool) -> _Record:
        continues = not head.strip() and (head != "" or not first)
        if continues and self.record is not None:
            return self.record
        prefix = _Prefix(head[:512])
        if prefix.continued and self.record is not None and self.record.stream == prefix.stream:
            return self.record
        index = self.counts.get(prefix.stream, 0) + 1
        self.counts[prefix.stream] = index
        self.record = _Record(prefix.stream, prefix, index)
        self._expire(self.record)
        return self.record

    def _near(self, message: _Message, record: _Record) -> bool:
        if record.index - message.record > PROBE_WINDOW_RECORDS:
            return False
        a, b = _time(message.prefix), _time(record.prefix)
        return a is None or b is None or abs(a - b) <= PROBE_WINDOW_SECONDS

    def _expire(self, record: _Record) -> None:
        waiting = self.waiting.get(record.stream)
        if waiting:
            waiting[:] = [m for m in waiting if self._near(m, record)]

    def _piece(self, piece: re.Match[str], record: _Record, line: str, pos: int) -> None:
        own = record.message
        target: _Message | None
        if piece.group("head") is not None:
            bus = normalize_bus_id(piece.group("bus"))
            if bus is None:
                return
            message = _Message(bus, pos, record.stream, record.prefix, record.index, [line])
            self.messages.append(message)
            self.waiting.setdefault(record.stream, []).append(message)
            record.message = message
        elif piece.group("middle") is not None:
            target = own if own is not None and own.stage == 1 else self._pick(record, (1,))
            if target is not None:
                target.stage = 2
                target.add(line)
        elif piece.group("tail") is not None:
            if own is not None and own.stage in (1, 2):
                target = own
            else:
                target = self._pick(record, (2,)) or self._pick(record, (1,))
            if target is not None:
                target.stage = 3
                target.add(line)
                waiting = self.waiting.get(record.stream, [])
                if target in waiting:
                    waiting.remove(target)
        else:
            bus = normalize_bus_id(piece.group("probe") or piece.group("dev"))
            for message in reversed(self.messages[-_PROBE_LOOKBACK:]):
                if (
                    message.stage == 3
                    and message.bus == bus
                    and message.stream == record.stream
                    and self._near(message, record)
                ):
                    message.add(line)
                    break

    def _pick(self, record: _Record, stages: tuple[int, ...]) -> _Message | None:
        waiting = [m for m in self.waiting.get(record.stream, []) if m.stage in stages]
        if len(waiting) > 1:
            at = _time(record.prefix)
            same = [m for m in waiting if at is not None and _time(m.prefix) == at]
            if len(same) == 1:
                return same[0]
            groups = {id(g): g for g in (m.rivals or [m] for m in waiting)}
            rivals = max(groups.values(), key=len)  # merge the smaller groups into the largest
            for group in groups.values():
                if group is not rivals:
                    rivals.extend(group)
                    for m in group:
                        m.rivals = rivals
            for m in waiting:
                if m.rivals is None:
                    m.rivals = rivals
        return waiting[0] if waiting else None

    def events(self) -> list[tuple[int, XidEvent]]:
        """The whole messages, each with the position of its first line."""
        out = []
        ended: dict[int, bool] = {}
        for m in self.messages:
            if m.stage != 3:
                continue
            if m.rivals is not None:
                key = id(m.rivals)
                if key not in ended:
                    ended[key] = all(r.stage == 3 for r in m.rivals)
                if not ended[key]:
                    continue
            line = "\n".join(m.lines)[:MAX_TEXT_CHARS]
            if m.event is not None:
                out.append((m.pos, m.event.replace(line=line)))
            else:
                out.append((m.pos, _probe_event(m.bus, line, m.prefix, self.boot_time)))
        return out


def _is_probe_message(event: XidEvent) -> bool:
    return event.message == PROBE_MESSAGE.format(bus=event.pci_bus_id)


def parse_lines(lines: Iterable[str], *, boot_time: float | None = None) -> list[XidEvent]:
    """Every XID event in ``lines`` (items may hold several lines), in order, with keys.

    ``NVRM: GPU at PCI:...: GPU-<uuid>`` lines name the GPU of later events on that bus. The
    probe-time "fallen off the bus" message is put together across lines (:class:`_ProbeMessages`).
    """
    uuids: dict[str, str] = {}
    found: list[tuple[int, XidEvent]] = []
    probe = _ProbeMessages(boot_time)
    pos = 0
    for item in lines:
        if not isinstance(item, str) or ("NVRM:" not in item and "probe" not in item):
            probe.gap()
            continue
        split = item.splitlines() if "\n" in item or "\r" in item else (item,)
        for n, line in enumerate(split):
            pos += 1
            named = gpu_uuid(line)
            if named is not None:
                uuids[named[0]] = named[1]
            ev = parse_line(line, boot_time=boot_time)
            if ev is not None and _is_probe_message(ev):
                probe.feed(line, pos, n == 0, ev)
                continue
            probe.feed(line, pos, n == 0)
            if ev is None:
                continue
            if ev.uuid is None and ev.pci_bus_id in uuids:
                ev = ev.replace(uuid=uuids[ev.pci_bus_id])
            found.append((pos, ev))
    found.extend(probe.events())
    found.sort(key=lambda p: p[0])
    return with_key([ev for _, ev in found])
