"""The audit log: one JSON line per decision (acted, refused and why, dry run, failed).

Append-only and safe for concurrent writers, threads or processes: every record is written by
one process at a time (``flock`` on the file, ``O_APPEND`` so it lands at the end whoever wrote
last), in full (a loop over short writes), and flushed to disk (``fsync``) before the lock is let
go. If a writer died in the middle of a line, the next writer first ends that line, so a torn
record costs one unreadable line and never corrupts the next one. Non-ASCII is escaped, so no
character inside a record can break the line (``\\u2028`` and friends included).

A record (``v`` 1)::

    {"v": 1, "ts": "2026-11-23T10:00:00Z", "at": 1795428000.123, "outcome": "refused",
     "code": "budget_exhausted", "message": "...", "node": "gpu07", "action": "reset_gpu",
     "event_id": "salt:...", "source": "salt", "checks": ["ecc.uncorrected_volatile"],
     "gpus": [3], "reason": "...", "dry_run": false, "commands": [], "notified": false,
     "pid": 4242, "host": "slurmctl-1"}
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sre_tools.exceptions import StoreError, ValidationError
from sre_tools.remediation.model import Decision, RemediationRequest
from sre_tools.timeutil import iso

AUDIT_VERSION = 1
MAX_LINE_BYTES = 64 * 1024
_log = logging.getLogger("sre_tools.remediation.audit")
# What an oversized record keeps (its identity and outcome).
_SLIM_KEYS = (
    "v",
    "ts",
    "at",
    "outcome",
    "code",
    "node",
    "action",
    "event_id",
    "dry_run",
    "pid",
    "host",
)


def audit_record(
    decision: Decision,
    request: RemediationRequest | None,
    *,
    dry_run: bool,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The audit line for ``decision`` (``request`` is None for an event that did not validate)."""
    record: dict[str, Any] = {
        "v": AUDIT_VERSION,
        "ts": iso(decision.at),
        "at": round(decision.at, 6),
        **decision.to_dict(),
        "source": None if request is None else request.source,
        "checks": [] if request is None else list(request.checks),
        "gpus": [] if request is None else list(request.gpus),
        "reason": None if request is None else request.reason,
        "dry_run": dry_run,
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    if extra:
        record.update(extra)
    return record


def _encode(record: Mapping[str, Any]) -> bytes:
    line = json.dumps(
        record, ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=str
    )
    data = line.encode("ascii") + b"\n"
    if len(data) > MAX_LINE_BYTES:
        # Never lose the decision: keep its identity and outcome, drop the bulky fields.
        slim = {k: record.get(k) for k in _SLIM_KEYS}
        slim["message"] = str(record.get("message", ""))[:1000]
        slim["truncated"] = True
        data = json.dumps(slim, ensure_ascii=True, separators=(",", ":"), default=str).encode()
        data += b"\n"
    return data


def append_audit(path: Path | str, record: Mapping[str, Any]) -> None:
    """Append one record as one line: O_APPEND, exclusive flock, full write, fsync.

    Opened read-write only to peek at the last byte (a torn line); writes always append."""
    data = _encode(record)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(target, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
    except OSError as exc:
        raise StoreError(f"{target}: cannot open audit log: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size > 0 and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a writer died mid-line: end its line, keep ours whole
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        raise StoreError(f"{target}: cannot write audit log: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class AuditLog:
    """The audit log at ``path``: :meth:`write` a decision, :meth:`read` for the operator view."""

    def __init__(self, path: Path | str):
        self.path = Path(path)

    def write(
        self,
        decision: Decision,
        request: RemediationRequest | None,
        *,
        dry_run: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        record = audit_record(decision, request, dry_run=dry_run, extra=extra)
        append_audit(self.path, record)
        return record

    def read(
        self, *, since: float | None = None, node: str | None = None, strict: bool = False
    ) -> list[dict[str, Any]]:
        return read_audit(self.path, since=since, node=node, strict=strict)


def iter_audit(path: Path | str, *, strict: bool = False) -> Iterator[dict[str, Any]]:
    """Every readable record, oldest first. An unreadable line is skipped with a warning (or,
    with ``strict``, a :class:`ValidationError` naming the line)."""
    target = Path(path)
    try:
        fh = target.open("rb")
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{target}: cannot read audit log: {exc.strerror or exc}") from exc
    with fh:
        # A shared lock: readers never see a half-written record of a live writer.
        fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
        try:
            lines = fh.read().split(b"\n")
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except (ValueError, UnicodeDecodeError) as exc:
            if strict:
                raise ValidationError(f"line {number}: {exc}", source=str(target)) from None
            _log.warning("%s: line %d is not a JSON record, skipped", target, number)
            continue
        yield record


def read_audit(
    path: Path | str,
    *,
    since: float | None = None,
    node: str | None = None,
    strict: bool = False,
) -> list[dict[str, Any]]:
    """Records at or after ``since`` (unix seconds) and for ``node``, oldest first."""
    out = []
    for record in iter_audit(path, strict=strict):
        at = record.get("at")
        if since is not None and (not isinstance(at, int | float) or at < since):
            continue
        if node is not None and record.get("node") != node:
            continue
        out.append(record)
    return out
