"""The audit log: one JSON line per decision (acted, refused and why, dry run, failed).

In a file by default (below); with a PostgreSQL URL, one row per record in the ``audit_log``
table, where the tools' role may only INSERT and SELECT (docs/store.md, the grants).

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
import stat
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from sre_tools.exceptions import StoreError, ValidationError
from sre_tools.remediation.model import Decision, RemediationRequest
from sre_tools.text import printable
from sre_tools.timeutil import iso

AUDIT_VERSION = 1
MAX_LINE_BYTES = 64 * 1024  # every record written fits (an oversized one is slimmed to fit)
_SKIP_CHUNK = 1024 * 1024  # how much of an over-long line is read at a time to skip it
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


def _database(location: str) -> Any:
    from dataclasses import replace

    from sre_tools.remediation.state import REMEDIATION_SCHEMA
    from sre_tools.store import Database

    return Database(location, replace(REMEDIATION_SCHEMA, what="audit log"), shared=False)


def default_spool_path() -> Path:
    """Where records wait when the audit database cannot take them:
    ``$SRE_REMEDIATION_AUDIT_SPOOL``, else ``$XDG_STATE_HOME/sre-tools/remediation-audit-spool
    .jsonl``."""
    explicit = os.environ.get("SRE_REMEDIATION_AUDIT_SPOOL")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sre-tools" / "remediation-audit-spool.jsonl"


def _row(record: Mapping[str, Any]) -> tuple[object, ...]:
    line = _encode(record).decode("ascii").strip().rsplit("\n", 1)[-1]
    at = record.get("at")
    return (
        float(at) if isinstance(at, int | float) else 0.0,
        record.get("node"),
        record.get("event_id"),
        str(record.get("outcome")),
        record.get("code"),
        line,
    )


def _insert(db: Any, record: Mapping[str, Any]) -> None:
    """One row of the ``audit_log`` table (the tools' role may INSERT and SELECT it, nothing
    else): the record whole, as the line a file would get, plus the columns it is searched by."""
    with db.transaction(exclusive=False) as cur:
        cur.execute(
            "INSERT INTO audit_log (at, node, event_id, outcome, code, record) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            _row(record),
        )


def _drain_spool(db: Any, spool: Path) -> int:
    """Move the records waiting in ``spool`` into the table, in one transaction, then empty the
    file (under its lock). A record already in the table (the same line: a drain that committed
    but died before emptying the file) is not inserted twice. The number moved."""
    try:
        fd = os.open(spool, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise StoreError(f"{spool}: cannot open audit spool: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        records = []
        for raw in os.pread(fd, os.fstat(fd).st_size, 0).split(b"\n"):
            try:
                record = json.loads(raw) if raw.strip() else None
            except (ValueError, UnicodeDecodeError):
                _log.warning("%s: a line is not a JSON record, skipped", printable(spool))
                continue
            if isinstance(record, dict):
                records.append(record)
        if records:
            with db.transaction(exclusive=False) as cur:
                for record in records:
                    row = _row(record)
                    cur.execute(
                        "INSERT INTO audit_log (at, node, event_id, outcome, code, record) "
                        "SELECT ?, ?, ?, ?, ?, ? WHERE NOT EXISTS "
                        "(SELECT 1 FROM audit_log WHERE at = ? AND record = ?)",
                        (*row, row[0], row[5]),
                    )
        os.ftruncate(fd, 0)
        os.fsync(fd)
        return len(records)
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class AuditLog:
    """The audit log at ``path`` (a JSON-lines file) or in a database (a PostgreSQL URL):
    :meth:`write` a decision, :meth:`read` for the operator view."""

    def __init__(self, path: Path | str, *, spool: Path | None = None):
        from sre_tools.store import is_url

        self.db = _database(str(path)) if is_url(path) else None
        self.path = Path(path) if self.db is None else None
        self.label = str(path) if self.db is None else self.db.label
        self.spool = (spool or default_spool_path()) if self.db is not None else None

    def write(
        self,
        decision: Decision,
        request: RemediationRequest | None,
        *,
        dry_run: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        record = audit_record(decision, request, dry_run=dry_run, extra=extra)
        if self.db is not None:
            self._write_db(record)
        else:
            assert self.path is not None
            append_audit(self.path, record)
        return record

    def _write_db(self, record: Mapping[str, Any]) -> None:
        """Into the table (after the records waiting in the spool, oldest first). When the
        database cannot take it (a dead connection is already retried once on a new one), the
        record goes to the local spool file and waits for the next write that succeeds: a
        decision already carried out (a drain issued) is never left unaudited. Only when the
        spool cannot be written either is the database's error raised."""
        assert self.db is not None and self.spool is not None
        try:
            _drain_spool(self.db, self.spool)
            _insert(self.db, record)
        except StoreError as exc:
            try:
                append_audit(self.spool, record)
            except StoreError:
                raise exc from None
            _log.error(
                "%s; the record is kept in %s until the next audit write succeeds", exc, self.spool
            )

    def read(
        self, *, since: float | None = None, node: str | None = None, strict: bool = False
    ) -> list[dict[str, Any]]:
        if self.db is not None:
            return _read_table(self.db, since=since, node=node, strict=strict)
        assert self.path is not None
        return read_audit(self.path, since=since, node=node, strict=strict)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def _read_table(
    db: Any, *, since: float | None, node: str | None, strict: bool
) -> list[dict[str, Any]]:
    from sre_tools.store import where

    filters, params = where(("at >= ?", since), ("node = ?", node))
    out = []
    for row_id, text in db.query(f"SELECT id, record FROM audit_log{filters} ORDER BY id", params):
        try:
            record = json.loads(str(text))
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            if strict:
                raise ValidationError(f"row {row_id}: {exc}", source=db.label) from None
            _log.warning("%s: audit row %s is not a JSON record, skipped", db.label, row_id)
            continue
        out.append(record)
    return out


def _skip_rest_of_line(fh: Any, remaining: int) -> int:
    """Read past the rest of an over-long line (in bounded chunks); the bytes left to read."""
    while remaining > 0:
        chunk = fh.readline(min(_SKIP_CHUNK, remaining))
        if not chunk:
            return 0
        remaining -= len(chunk)
        if chunk.endswith(b"\n"):
            break
    return remaining


# An audit log fed through a pipe is read up to this much (a file is read whole, line by line).
MAX_PIPE_BYTES = 1 << 30


def iter_audit(path: Path | str, *, strict: bool = False) -> Iterator[dict[str, Any]]:
    """Every readable record, oldest first. An unreadable line, or one longer than
    :data:`MAX_LINE_BYTES` (no record we write is), is skipped with a warning (or, with
    ``strict``, a :class:`ValidationError` naming the line).

    Only a regular file or a pipe is read (a device such as ``/dev/zero`` is refused, never read
    without end; a pipe is read up to :data:`MAX_PIPE_BYTES`, a FIFO never waited on), one line
    at a time: memory holds one line, never the
    whole log, so a log of years is read in full."""
    target = Path(path)
    shown = printable(target)
    try:
        # O_NONBLOCK: a FIFO must not hang the open waiting for a writer (it is refused below).
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"{shown}: cannot read audit log: {exc.strerror or exc}") from exc
    mode = os.fstat(fd).st_mode
    pipe = stat.S_ISFIFO(mode)  # `--audit <(zcat audit.jsonl.1.gz)`, or /dev/stdin from a pipe
    if not stat.S_ISREG(mode) and not pipe:
        os.close(fd)
        raise StoreError(f"{shown}: audit log: not a regular file or a pipe")
    with os.fdopen(fd, "rb") as fh:
        if pipe:
            # Blocking again: a pipe is read to its end (a FIFO without a writer is empty), at
            # most MAX_PIPE_BYTES.
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
            remaining = MAX_PIPE_BYTES
        else:
            # Under a shared lock the log ends with a whole record (writers append under an
            # exclusive one): read up to that end, without holding the lock while records are
            # used.
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:
                remaining = os.fstat(fd).st_size
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        number = 0
        while remaining > 0:
            raw = fh.readline(min(MAX_LINE_BYTES + 1, remaining))
            if not raw:
                break
            remaining -= len(raw)
            number += 1
            if len(raw) > MAX_LINE_BYTES:
                if not raw.endswith(b"\n"):
                    remaining = _skip_rest_of_line(fh, remaining)
                if strict:
                    raise ValidationError(
                        f"line {number}: longer than {MAX_LINE_BYTES} bytes", source=shown
                    )
                _log.warning("%s: line %d is not a JSON record, skipped", shown, number)
                continue
            if not raw.strip():
                continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError) as exc:
                if strict:
                    raise ValidationError(f"line {number}: {exc}", source=shown) from None
                _log.warning("%s: line %d is not a JSON record, skipped", shown, number)
                continue
            yield record


def read_audit(
    path: Path | str,
    *,
    since: float | None = None,
    node: str | None = None,
    strict: bool = False,
) -> list[dict[str, Any]]:
    """Records at or after ``since`` (unix seconds) and for ``node``, oldest first, from a file
    or (a PostgreSQL URL) the ``audit_log`` table."""
    from sre_tools.store import is_url

    if is_url(path):
        db = _database(str(path))
        try:
            return _read_table(db, since=since, node=node, strict=strict)
        finally:
            db.close()
    out = []
    for record in iter_audit(path, strict=strict):
        at = record.get("at")
        if since is not None and (not isinstance(at, int | float) or at < since):
            continue
        if node is not None and record.get("node") != node:
            continue
        out.append(record)
    return out
