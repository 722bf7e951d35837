"""Backfill the kernel log of the current boot: /dev/kmsg, else journalctl, else dmesg.

- ``/dev/kmsg`` is read without blocking until EAGAIN. Its records are ``prio,seq,usec,...;text``
  with ``usec`` in microseconds since boot. When the ring buffer has wrapped (the first record's
  sequence number is not 0) the journal is read as well, for what the buffer lost.
- ``journalctl -k -b -o short-iso --no-pager --since=...`` (wall-clock times).
- ``dmesg`` (seconds since boot).

Commands run as argv lists (never a shell) with a timeout; a timeout, a missing binary or a
non-zero exit is a :class:`KernelLogError`, and the next source is tried. Everything the outside
world provides (the kmsg path, the command runner, the clocks) is injectable for tests.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from sre_tools.exceptions import SreError
from sre_tools.record import Record

KMSG = Path("/dev/kmsg")
COMMAND_TIMEOUT_SECONDS = 10.0
MAX_KMSG_BYTES = 64 * 1024 * 1024  # the ring buffer is at most a few MiB; stop long before OOM
MAX_KMSG_RECORDS = 1_000_000

Runner = Callable[[Sequence[str], float], str]


class KernelLogError(SreError):
    """A kernel-log source could not be read (permission, timeout, missing tool)."""


def run_command(argv: Sequence[str], timeout: float) -> str:
    """Run ``argv`` (no shell) and return its stdout; failures become :class:`KernelLogError`."""
    import subprocess  # here: a replay (and /dev/kmsg) never runs a command

    name = argv[0] if argv else "?"
    try:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise KernelLogError(f"{name} timed out after {timeout:g}s") from None
    except OSError as exc:
        raise KernelLogError(f"{name}: {exc.strerror or exc}") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        detail = f": {err[0][:200]}" if err else ""
        raise KernelLogError(f"{name} exited with status {proc.returncode}{detail}")
    return proc.stdout.decode("utf-8", "replace")


def read_kmsg(path: Path = KMSG, *, max_bytes: int = MAX_KMSG_BYTES) -> list[str]:
    """Every record in the kernel ring buffer, read without blocking (one record per read).

    EPIPE means a record was overwritten while we read; the next read goes on after it.
    Continuation lines (`` KEY=value`` dictionaries) are dropped.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise KernelLogError(f"{path}: {exc.strerror or exc}") from None
    lines: list[str] = []
    pending = b""
    total = 0
    try:
        for _ in range(MAX_KMSG_RECORDS):
            try:
                chunk = os.read(fd, 16384)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EPIPE:
                    continue
                if exc.errno == errno.EAGAIN:
                    break
                raise KernelLogError(f"{path}: {exc.strerror or exc}") from None
            if not chunk:
                break
            total += len(chunk)
            pending += chunk
            *records, pending = pending.split(b"\n")
            lines.extend(
                r.decode("utf-8", "replace") for r in records if r and not r.startswith(b" ")
            )
            if total > max_bytes:
                break
        if pending and not pending.startswith(b" "):
            lines.append(pending.decode("utf-8", "replace"))
    finally:
        os.close(fd)
    return lines


def _first_record(lines: Sequence[str]) -> tuple[int, float] | None:
    """Sequence number and seconds since boot of the oldest record still in the buffer."""
    for line in lines[:1]:
        parts = line.split(",", 3)
        if len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit():
            return int(parts[1]), int(parts[2]) / 1e6
    return None


def boot_time_now() -> float:
    """Wall-clock time of boot: now minus CLOCK_MONOTONIC, the clock printk times follow."""
    return time.time() - time.monotonic()


class KernelLog(Record):
    """What was read: ``(source, lines)`` chunks, the boot time, and the sources that failed."""

    __slots__ = ("boot_time", "chunks", "errors", "since")
    chunks: tuple[tuple[str, tuple[str, ...]], ...]
    boot_time: float | None
    since: float | None
    errors: tuple[str, ...]

    def __init__(
        self,
        chunks: tuple[tuple[str, tuple[str, ...]], ...],
        boot_time: float | None,
        since: float | None,
        errors: tuple[str, ...] = (),
    ) -> None:
        self._init(
            chunks=chunks,
            boot_time=boot_time,
            since=since,
            errors=errors,
        )

    @property
    def source(self) -> str:
        return "+".join(name for name, _ in self.chunks) or "none"

    @property
    def lines(self) -> list[str]:
        return [line for _, chunk in self.chunks for line in chunk]


class KernelLogReader:
    """Reads the current boot's kernel log, newest ``window`` seconds, from the best source."""

    __slots__ = ("boot_time", "clock", "kmsg_path", "run", "timeout", "use_kmsg")
    kmsg_path: Path
    run: Runner
    clock: Callable[[], float]
    boot_time: Callable[[], float]
    timeout: float
    use_kmsg: bool

    def __init__(
        self,
        kmsg_path: Path = KMSG,
        run: Runner = run_command,
        clock: Callable[[], float] = time.time,
        boot_time: Callable[[], float] = boot_time_now,
        timeout: float = COMMAND_TIMEOUT_SECONDS,
        use_kmsg: bool = True,
    ) -> None:
        self.kmsg_path = kmsg_path
        self.run = run
        self.clock = clock
        self.boot_time = boot_time
        self.timeout = timeout
        self.use_kmsg = use_kmsg

    def journal_argv(self, since: float) -> list[str]:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        return ["journalctl", "-k", "-b", "-o", "short-iso", "--no-pager", f"--since={stamp}"]

    def read(self, window: float) -> KernelLog:
        """The log, or :class:`KernelLogError` naming every source that failed."""
        now = self.clock()
        since = now - window if window > 0 else None
        boot = self.boot_time()
        errors: list[str] = []
        chunks: list[tuple[str, tuple[str, ...]]] = []
        if self.use_kmsg:
            try:
                kmsg = read_kmsg(self.kmsg_path)
            except KernelLogError as exc:
                errors.append(f"kmsg: {exc}")
            else:
                chunks.append(("kmsg", tuple(kmsg)))
                first = _first_record(kmsg)
                wrapped = first is not None and first[0] > 0
                if not wrapped or (since is not None and first and boot + first[1] <= since):
                    return KernelLog(tuple(chunks), boot, since, tuple(errors))
        journal_since = since if since is not None else boot
        try:
            text = self.run(self.journal_argv(journal_since), self.timeout)
        except KernelLogError as exc:
            errors.append(f"journalctl: {exc}")
        else:
            chunks.append(("journalctl", tuple(text.splitlines())))
        if chunks:
            return KernelLog(tuple(chunks), boot, since, tuple(errors))
        try:
            text = self.run(["dmesg"], self.timeout)
        except KernelLogError as exc:
            errors.append(f"dmesg: {exc}")
        else:
            return KernelLog((("dmesg", tuple(text.splitlines())),), boot, since, tuple(errors))
        raise KernelLogError("no kernel log: " + "; ".join(errors))


def read_kernel_log(window: float, reader: KernelLogReader | None = None) -> KernelLog:
    """The current boot's kernel log for the last ``window`` seconds (production defaults)."""
    return (reader or KernelLogReader()).read(window)
