"""The embedded default store: one SQLite file in WAL mode.

It holds SLI good/total counts per time bucket, the incident log, chaos drill results and
active diagnostic results (``sre diag``; queried only in sre_tools/diag/history.py). Every
write runs in one ``BEGIN IMMEDIATE`` transaction, so a second writer waits (``busy_timeout``)
instead of failing, and a process killed mid-import leaves every committed row intact and no
partial batch.

Users who outgrow it point the same commands at Prometheus (``--prometheus URL``).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sre_tools.exceptions import StoreError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- SLI counts: one row per SLO id and bucket start (unix seconds, aligned to the bucket size).
CREATE TABLE IF NOT EXISTS sli_buckets (
    slo    TEXT    NOT NULL,
    start  INTEGER NOT NULL,
    good   REAL    NOT NULL CHECK (good >= 0),
    total  REAL    NOT NULL CHECK (total >= 0),
    PRIMARY KEY (slo, start)
) WITHOUT ROWID;
-- Every file imported (SLI or incident CSV), by content hash, so a re-import is refused.
CREATE TABLE IF NOT EXISTS imports (
    sha256   TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    path     TEXT    NOT NULL,
    rows     INTEGER NOT NULL,
    imported INTEGER NOT NULL,
    PRIMARY KEY (sha256, kind)
);
CREATE TABLE IF NOT EXISTS incidents (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    started   INTEGER NOT NULL,
    detected  INTEGER,
    resolved  INTEGER,
    component TEXT    NOT NULL,
    host      TEXT    NOT NULL DEFAULT '',
    gpu       TEXT    NOT NULL DEFAULT '',
    category  TEXT    NOT NULL DEFAULT '',
    planned   INTEGER NOT NULL DEFAULT 0 CHECK (planned IN (0, 1)),
    cause     TEXT    NOT NULL DEFAULT '',
    xid       INTEGER,
    CHECK (resolved IS NULL OR resolved >= started),
    CHECK (detected IS NULL OR detected >= started)
);
CREATE INDEX IF NOT EXISTS incidents_started ON incidents (started);
-- Chaos drill results (sre drill run / recover): one row per run, one per expectation and node.
-- Added to version 1 without a bump: a store without these tables gains them when opened, and
-- an older sre_tools still reads the file (it never looks at them).
CREATE TABLE IF NOT EXISTS drill_runs (
    run_id          TEXT PRIMARY KEY,
    drill           TEXT NOT NULL,
    nodes           TEXT NOT NULL,
    status          TEXT NOT NULL,
    started         REAL NOT NULL,
    ended           REAL,
    recover_seconds REAL
);
CREATE INDEX IF NOT EXISTS drill_runs_started ON drill_runs (started);
CREATE TABLE IF NOT EXISTS drill_expectations (
    run_id   TEXT NOT NULL REFERENCES drill_runs (run_id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    node     TEXT NOT NULL,
    met      INTEGER NOT NULL CHECK (met IN (0, 1)),
    measures TEXT,
    seconds  REAL,
    PRIMARY KEY (run_id, name, node)
) WITHOUT ROWID;
-- Active diagnostics (sre diag): one row per tool run, one per finding. Added to version 1 like
-- the drill tables. Plain SQL (DOUBLE PRECISION, TEXT, INTEGER) so that it ports: every query on
-- them is in sre_tools/diag/history.py.
CREATE TABLE IF NOT EXISTS diag_runs (
    run_id         TEXT PRIMARY KEY,
    node           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    level          INTEGER NOT NULL,
    started        DOUBLE PRECISION NOT NULL,
    ended          DOUBLE PRECISION NOT NULL,
    status         TEXT NOT NULL,
    exit_code      INTEGER,
    source         TEXT NOT NULL,
    tool_version   TEXT NOT NULL,
    driver_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS diag_runs_node ON diag_runs (node, kind, ended);
CREATE TABLE IF NOT EXISTS diag_results (
    run_id          TEXT NOT NULL REFERENCES diag_runs (run_id) ON DELETE CASCADE,
    seq             INTEGER NOT NULL,
    check_id        TEXT NOT NULL,
    severity        TEXT NOT NULL,
    action          TEXT NOT NULL,
    summary         TEXT NOT NULL,
    gpu_index       INTEGER,
    gpu_uuid        TEXT NOT NULL,
    gpu_serial      TEXT NOT NULL,
    vbios_version   TEXT NOT NULL,
    inforom_version TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS diag_results_serial ON diag_results (gpu_serial);
"""


def default_store_path() -> Path:
    """``$SRE_STORE``, else ``$XDG_DATA_HOME/sre-tools/store.db`` (``~/.local/share`` default)."""
    explicit = os.environ.get("SRE_STORE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sre-tools" / "store.db"


def connect(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection to ``path`` as every SQLite file of sre_tools is used: autocommit (explicit
    transactions only), WAL, a busy timeout (a second writer waits), foreign keys on."""
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        _wal(conn, busy_timeout_ms / 1000)
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def _wal(conn: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL (once: the mode is kept in the file). When several processes open
    a new file at once, SQLite can answer the switch with "database is locked" at once, without
    waiting (a 1,000-event storm from four processes hit it): try again until the busy timeout."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode").fetchone()
            if str(mode[0]).lower() != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            text = str(exc).lower()
            if ("locked" not in text and "busy" not in text) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def create_schema(cur: sqlite3.Cursor, schema: str, version: int, path: Path, what: str) -> None:
    """Run ``schema`` (``CREATE ... IF NOT EXISTS`` statements, ``;``-separated, with a ``meta``
    key/value table) and record ``version``; a file written by a newer schema is a
    :class:`StoreError` (nothing in it is touched)."""
    for statement in schema.split(";"):
        if statement.strip():
            cur.execute(statement)
    row = cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(version),))
    elif int(row[0]) > version:
        raise StoreError(
            f"{path}: {what} schema version {row[0]} is newer than this sre_tools understands "
            f"({version}); upgrade sre_tools"
        )


@contextmanager
def immediate(conn: sqlite3.Connection, path: Path, what: str) -> Iterator[sqlite3.Cursor]:
    """One ``BEGIN IMMEDIATE`` .. ``COMMIT`` on ``conn``, rolled back on any exception. A writer
    that cannot get the lock within the busy timeout, or a failed commit, is a
    :class:`StoreError` naming ``path`` and ``what`` the file is."""
    cur = conn.cursor()
    try:
        cur.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        cur.close()
        raise StoreError(f"{path}: {what} is busy or read-only: {exc}") from exc
    try:
        yield cur
    except BaseException:
        conn.rollback()
        raise
    else:
        try:
            conn.commit()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: {what}: commit failed: {exc}") from exc
    finally:
        cur.close()


class Store:
    """A handle on the SQLite store. Cheap to open; use as a context manager to close."""

    def __init__(self, path: Path | str, *, create: bool = True):
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: store does not exist (record or import data first)")
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = connect(self.path)
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open store: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot open store: {exc.strerror or exc}") from exc

    def _migrate(self) -> None:
        with self.transaction() as cur:
            create_schema(cur, _SCHEMA, SCHEMA_VERSION, self.path, "store")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """One ``BEGIN IMMEDIATE`` .. ``COMMIT``; rolled back on any exception."""
        with immediate(self.conn, self.path, "store") as cur:
            yield cur

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Run a read-only query and return all rows."""
        try:
            return list(self.conn.execute(sql, params).fetchall())
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: query failed: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
