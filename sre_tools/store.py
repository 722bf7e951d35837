"""The storage interface: one SQLite file (the default) or one PostgreSQL database.

Everything sre_tools keeps (SLI counts, incidents, drill results, the drill lock, the remediation
engine's state and, on PostgreSQL, its audit log) goes through :class:`Database`. The callers
write their SQL once, in the subset both engines run: ``?`` placeholders, ``INSERT .. ON
CONFLICT (key) DO UPDATE/NOTHING``, ``RETURNING``. What differs lives here and only here:

- placeholders (``?`` becomes ``%s`` for psycopg);
- column types and auto-increment, through the tokens of :class:`Dialect` in the tables' DDL
  (``{id}``, ``{int}``, ``{real}``, ``{without_rowid}``): a table is written once for both;
- locking. SQLite: every write is one ``BEGIN IMMEDIATE`` transaction, so writers run one at a
  time and a second one waits (``busy_timeout``). PostgreSQL: every write transaction runs at READ
  COMMITTED and first takes a transaction-level advisory lock named after its component
  (``pg_advisory_xact_lock``), released at COMMIT or ROLLBACK. Writers of one component (the
  store, the remediation state) therefore run one at a time across every process and machine that
  shares the database, exactly like ``BEGIN IMMEDIATE``, and each one's statements see every
  commit made before it got the lock: a budget check and the reservation it allows cannot
  interleave with another controller's. Reads never wait;
- schema versions: a ``meta`` table (key ``schema_version`` in a SQLite file, which holds one
  component; ``schema_version.<component>`` in a database, which may hold several) and an
  ordered list of steps per component (:class:`Schema`). Opening a SQLite file applies the steps
  it lacks; PostgreSQL is migrated only by ``sre store migrate`` (the owner), and opening an older
  one is refused, as is a role that could rewrite an append-only table; a newer version is
  refused and left alone.

Adding a table: write its DDL once with the tokens, as a :class:`Table` in a new step of its
component's :class:`Schema`, and use :meth:`Database.transaction` / :meth:`Database.query`.

PostgreSQL credentials come from libpq (a service file, ``PGPASSFILE``, ``PGPASSWORD``, TLS
settings such as ``sslmode=verify-full``): a URL that carries a password is refused, and the
store is always named by its URL without one. psycopg is imported only when a PostgreSQL URL is
used. Every statement has a timeout (``statement_timeout``), connecting has one too.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from sre_tools.exceptions import StoreError, ValidationError

BUSY_TIMEOUT_MS = 30_000
STATEMENT_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT_SECONDS = 10
URL_SCHEMES = ("postgresql", "postgres")
# Anything that starts like a URL is one (never a file path): a wrong scheme, a leading space or
# an upper-case scheme is an input error, not a SQLite file named after the URL.
_URL_LIKE = re.compile(r"\s*[A-Za-z][\w+.-]*://")
# TCP keepalives and a send timeout on every PostgreSQL connection (the URL may set its own).
TCP_DEFAULTS = {
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,
}
# Connections a long-lived process keeps open per database (the Salt runner, an exporter).
POOL_IDLE_MAX = 4


# --- locations --------------------------------------------------------------------------------


def is_url(location: object) -> bool:
    """Does ``location`` look like a URL (``scheme://...``, whatever the scheme)? Else it is a
    SQLite file path. :func:`check_url` then accepts only the PostgreSQL schemes."""
    return isinstance(location, str) and _URL_LIKE.match(location) is not None


def check_url(url: str, field: str = "--store") -> str:
    """``url`` as the store uses it (scheme in lower case), or a :class:`ValidationError` naming
    ``field``: blanks around it, a scheme other than ``postgresql``/``postgres``, a password."""
    if url != url.strip():
        raise ValidationError(
            "blanks before or after the store URL are refused (a typo would otherwise name "
            "another store)",
            field=field,
        )
    if any(c.isspace() or not c.isprintable() for c in url):
        # Not shown: a space usually means "key=value" text pasted after the URL, a password too.
        raise ValidationError(
            "a store URL with spaces or control characters is refused (percent-encode them: "
            "%20); the URL is not shown here",
            field=field,
        )
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in URL_SCHEMES:
        raise ValidationError(
            f"unsupported URL scheme {scheme!r}: a SQLite file path or postgresql://...",
            field=field,
        )
    url = f"{scheme.lower()}://{rest}"
    validate_url(url, field)
    return url


SECRET_PARAMETERS = frozenset({"password", "sslpassword"})


def _secret(name: str) -> bool:
    """Is the (decoded) parameter ``name`` a secret, in any case?"""
    return name.strip().lower() in SECRET_PARAMETERS


def redact(url: str) -> str:
    """``url`` without a secret: the user part's password and every ``password``/``sslpassword``
    parameter (names decoded and in any case) become ``***``."""
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "postgresql://<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{host}"
    query = urlencode([(k, "***" if _secret(k) else v) for k, v in pairs], safe="/:,*")
    path = parts.path
    if any(f"{k}=" in unquote(path).lower() for k in SECRET_PARAMETERS):
        path = "/***"  # "password=..." pasted into the database name
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def validate_url(url: str, field: str = "--store") -> None:
    """A store URL must not carry a password or a client key's passphrase: it would end in shell
    histories, process lists and logs. libpq reads them from a service file, ``PGPASSFILE``,
    ``PGPASSWORD`` or ``PGSSLPASSWORD`` (or the key is not encrypted) instead. The refusal never
    repeats the value."""
    try:
        parts = urlsplit(url)
        user = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else ""
        names = [k for k, _ in parse_qsl(parts.query, keep_blank_values=True)]
    except ValueError:
        raise ValidationError("not a valid PostgreSQL URL", field=field) from None
    decoded = unquote(url).lower()
    if (
        ":" in user
        or any(_secret(k) for k in names)
        or any(f"{k}=" in decoded for k in SECRET_PARAMETERS)
    ):
        raise ValidationError(
            f"{redact(url)}: a password in the store URL is refused (or a key passphrase); put it "
            "in a libpq service file, PGPASSFILE or PGPASSWORD (docs/store.md)",
            field=field,
        )


def statement_timeout_ms() -> int:
    """``$SRE_STORE_STATEMENT_TIMEOUT_MS`` (a whole number of milliseconds, at least 100), else
    :data:`STATEMENT_TIMEOUT_MS`."""
    text = os.environ.get("SRE_STORE_STATEMENT_TIMEOUT_MS", "").strip()
    if not text:
        return STATEMENT_TIMEOUT_MS
    if not text.isdigit() or not 100 <= int(text) <= 86_400_000:
        raise ValidationError(
            f"must be milliseconds between 100 and 86400000, got {text!r}",
            field="$SRE_STORE_STATEMENT_TIMEOUT_MS",
        )
    return int(text)


def location_label(location: str | Path) -> str:
    """How a store is named in messages: its path, or its URL without a password."""
    return redact(str(location)) if is_url(location) else str(location)


def default_store_path() -> str | Path:
    """``$SRE_STORE`` (a file or a PostgreSQL URL), else ``$XDG_DATA_HOME/sre-tools/store.db``
    (``~/.local/share`` default)."""
    explicit = os.environ.get("SRE_STORE")
    if explicit:
        location = as_location(explicit, field="$SRE_STORE")
        assert location is not None
        return location
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sre-tools" / "store.db"


def as_location(value: str | Path | None, field: str = "--store") -> str | Path | None:
    """A CLI or environment value (a file path or a URL) as a location; URLs keep their ``//``
    and are checked (:func:`check_url`): anything shaped like a URL is never a file path."""
    if value is None or isinstance(value, Path):
        return value
    if is_url(value):
        return check_url(value, field)
    return Path(value)


# --- dialects and schemas ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """What differs between the engines in DDL: the tokens a table's DDL uses."""

    name: str
    tokens: dict[str, str]

    def ddl(self, template: str) -> list[str]:
        text = template.format_map(self.tokens)
        return [s.strip() for s in text.split(";") if s.strip()]


SQLITE = Dialect(
    "sqlite",
    {
        "id": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "int": "INTEGER",
        "real": "REAL",
        "without_rowid": "WITHOUT ROWID",
    },
)
POSTGRESQL = Dialect(
    "postgresql",
    {
        "id": "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY",
        "int": "BIGINT",
        "real": "DOUBLE PRECISION",
        "without_rowid": "",
    },
)


# Below this many rows a plain executemany is as quick as COPY and a temporary table.
BULK_MIN_ROWS = 1000
_INSERT_VALUES = re.compile(
    r"INSERT INTO (\w+) \(([\w, ]+)\) VALUES \(\?(?:, \?)*\)(.*)", re.DOTALL
)


@lru_cache(maxsize=512)
def _pg_sql(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled). Only for a statement
    run with parameters: without them psycopg sends the text as it is."""
    return sql.replace("%", "%%").replace("?", "%s")


def _pg_text(sql: str, params: Sequence[object]) -> str:
    return _pg_sql(sql) if params else sql


def where(*conditions: tuple[str, object]) -> tuple[str, tuple[object, ...]]:
    """A query's filters: ``(" WHERE a = ? AND b >= ?", (va, vb))`` from ``(sql, value)`` pairs
    with one ``?`` each, leaving out a pair whose value is None (a filter not asked for); ``("",
    ())`` when none is left. The SQL parts are the caller's constants, values always bound."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    if not kept:
        return "", ()
    return " WHERE " + " AND ".join(sql for sql, _ in kept), tuple(value for _, value in kept)


@dataclass(frozen=True)
class Table:
    """One table (with its indexes) in both engines' DDL. ``grant``: what the tools' role may
    do with it on PostgreSQL: ``write`` (SELECT, INSERT, UPDATE, DELETE) or ``append`` (SELECT,
    INSERT: an append-only log)."""

    name: str
    ddl: str
    grant: str = "write"


@dataclass(frozen=True)
class Schema:
    """A component's tables as ordered steps: ``steps[i]`` brings version ``i`` to ``i + 1``.
    A step only adds (``CREATE ... IF NOT EXISTS``, ``ALTER TABLE ... ADD COLUMN``)."""

    component: str
    what: str
    steps: tuple[tuple[Table, ...], ...]

    @property
    def version(self) -> int:
        return len(self.steps)

    def tables(self, upto: int | None = None) -> list[Table]:
        return [t for step in self.steps[:upto] for t in step]


_META = "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"


def grant_statements(schemas: Sequence[Schema], role: str) -> list[str]:
    """The GRANTs the tools' role needs on PostgreSQL after ``sre store migrate`` ran as the
    owner: read and write every table but the append-only ones (the audit log), which get
    SELECT and INSERT only, never UPDATE or DELETE."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", role):
        raise ValidationError("a role name: lower case letters, digits, _", field="--role")
    out = [f"GRANT SELECT ON meta TO {role}"]
    for schema in schemas:
        for table in schema.tables():
            privileges = "SELECT, INSERT"
            if table.grant != "append":
                privileges += ", UPDATE, DELETE"
            out.append(f"GRANT {privileges} ON {table.name} TO {role}")
    return out


# --- the database -----------------------------------------------------------------------------


class Cursor:
    """A cursor that takes ``?`` placeholders on both engines."""

    def __init__(self, raw: Any, postgres: bool):
        self.raw = raw
        self.postgres = postgres

    def execute(self, sql: str, params: Sequence[object] = ()) -> Cursor:
        if self.postgres:  # no parameters: None, so that psycopg reads no placeholder
            self.raw.execute(_pg_text(sql, params), tuple(params) if params else None)
        else:
            self.raw.execute(sql, tuple(params))
        return self

    def executemany(self, sql: str, rows: Any) -> Cursor:
        self.raw.executemany(_pg_sql(sql) if self.postgres else sql, rows)
        return self

    def insert_many(self, sql: str, rows: Sequence[Sequence[object]]) -> None:
        """Run ``INSERT INTO t (cols) VALUES (?, ...) [ON CONFLICT ...]`` for many rows whose
        conflict keys are distinct. SQLite: ``executemany``. PostgreSQL: the rows are streamed
        with ``COPY`` into a temporary table dropped at commit, then inserted with one
        ``INSERT ... SELECT`` carrying the same ``ON CONFLICT`` clause (one statement instead of
        one per row)."""
        if not self.postgres or len(rows) < BULK_MIN_ROWS:
            self.executemany(sql, rows)
            return
        match = _INSERT_VALUES.fullmatch(sql.strip())
        if match is None:
            raise ValueError(f"not an INSERT ... VALUES statement: {sql[:80]}")
        table, columns, rest = match.group(1), match.group(2), match.group(3)
        self.raw.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS _sre_bulk_{table} ON COMMIT DROP AS "
            f"SELECT {columns} FROM {table} WITH NO DATA"
        )
        with self.raw.copy(f"COPY _sre_bulk_{table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        self.raw.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM _sre_bulk_{table} {rest}"
        )
        # Emptied at once: a second call in the same transaction starts from no rows.
        self.raw.execute(f"TRUNCATE _sre_bulk_{table}")

    def insert_id(self, sql: str, params: Sequence[object] = ()) -> int:
        """Run one ``INSERT`` into a table with an ``{id}`` key; the new row's id. (``RETURNING``
        on PostgreSQL; ``lastrowid`` on SQLite, where RETURNING needs 3.35 and RHEL 9 ships
        3.34.)"""
        if self.postgres:
            return int(self.execute(sql + " RETURNING id", params).fetchone()[0])
        self.execute(sql, params)
        return int(self.raw.lastrowid)

    def fetchone(self) -> Any:
        return self.raw.fetchone()

    def fetchall(self) -> list[Any]:
        return list(self.raw.fetchall())

    @property
    def rowcount(self) -> int:
        return int(self.raw.rowcount)


def _driver_errors(postgres: bool) -> tuple[type[BaseException], ...]:
    if postgres:
        import psycopg

        return (psycopg.Error,)
    return (sqlite3.Error,)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class Database:
    """One location opened: a SQLite file or a PostgreSQL database, for one :class:`Schema`.

    ``shared``: keep one connection (one thread, a CLI command); else each operation takes its own
    connection (SQLite) or one from a small pool (PostgreSQL), so one object is safe to share
    between threads. ``create``: a SQLite file that does not exist is created (else refused).
    """

    def __init__(
        self,
        location: str | Path,
        schema: Schema,
        *,
        create: bool = True,
        shared: bool = True,
        busy_timeout_ms: int = BUSY_TIMEOUT_MS,
        migrate: bool = True,
    ):
        self.schema = schema
        self.postgres = is_url(location)
        self.dialect = POSTGRESQL if self.postgres else SQLITE
        self.label = location_label(location)
        self.busy_timeout_ms = busy_timeout_ms
        self.shared = shared
        self._lock = threading.Lock()
        self._idle: list[Any] = []
        self._conn: Any = None
        self._session_conn: Any = None
        self._errors = _driver_errors(self.postgres)
        if self.postgres:
            assert isinstance(location, str)
            self.url = check_url(location)
            self.path: Path | None = None
        else:
            self.url = ""
            self.path = Path(location)
            if not create and not self.path.exists():
                raise StoreError(
                    f"{self.path}: {schema.what} does not exist (record or import data first)"
                )
            if create:
                try:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"{self.path}: cannot create directory: {exc.strerror or exc}"
                    ) from exc
        if shared:
            self._conn = self._open()
        if not self.postgres:
            self._probe()
        if migrate and self.postgres:
            self._check_ready()
        elif migrate:
            self.migrate()

    def _check_ready(self) -> None:
        """PostgreSQL is never migrated implicitly: the tables belong to the owner that runs
        ``sre store migrate``, not to the tools' role (which would then own the audit log and
        could delete from it). An older or missing schema is refused, and so is a connection
        that could rewrite an append-only table (unless ``$SRE_STORE_ALLOW_WRITABLE_AUDIT=1``)."""
        try:
            current = self.schema_version()
            self._check_newer(current)
            if current is None or current < self.schema.version:
                raise StoreError(
                    f"{self.label}: {self.schema.what} schema version "
                    f"{'none' if current is None else current} is older than this sre_tools "
                    f"needs ({self.schema.version}); run 'sre store migrate' as the tables' "
                    "owner (docs/store.md)"
                )
            self._check_append_only()
        except BaseException:
            self.close()
            raise

    def _check_append_only(self) -> None:
        if os.environ.get("SRE_STORE_ALLOW_WRITABLE_AUDIT") == "1":
            return
        for table in self.schema.tables():
            if table.grant != "append":
                continue
            rows = self.query(
                "SELECT has_table_privilege(current_user, ?, 'UPDATE, DELETE, TRUNCATE')",
                (table.name,),
            )
            if rows and rows[0][0]:
                raise StoreError(
                    f"{self.label}: this role ({self._current_user()}) may UPDATE, DELETE or "
                    f"TRUNCATE {table.name}, which must be append-only for the tools: connect as "
                    "the role 'sre store grants' is for, not the owner or a superuser "
                    "(docs/store.md; $SRE_STORE_ALLOW_WRITABLE_AUDIT=1 accepts it)"
                )

    def _current_user(self) -> str:
        return str(self.query("SELECT current_user")[0][0])

    def _probe(self) -> None:
        """A file that is not a SQLite database is refused as such, before any migration."""
        try:
            with self._connection() as conn:
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            self.close()
            raise StoreError(f"{self.label}: cannot open {self.schema.what}: {exc}") from exc

    # --- connections ---

    def _open(self) -> Any:
        if self.postgres:
            return self._open_pg()
        assert self.path is not None
        try:
            return connect(self.path, self.busy_timeout_ms)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open {self.schema.what}: {exc}") from exc
        except OSError as exc:
            raise StoreError(
                f"{self.path}: cannot open {self.schema.what}: {exc.strerror or exc}"
            ) from exc

    def _open_pg(self) -> Any:
        import logging

        import psycopg
        from psycopg.conninfo import conninfo_to_dict

        # psycopg warns on stderr while it drops a pipeline of a lost connection; the error
        # itself reaches the caller as one StoreError line.
        logging.getLogger("psycopg").setLevel(logging.ERROR)

        timeout = statement_timeout_ms()
        try:
            given = conninfo_to_dict(self.url)
        except psycopg.Error as exc:
            raise ValidationError(f"{self.label}: {_first_line(exc)}", field="--store") from None
        # Ours are defaults: what the URL names (or PGCONNECT_TIMEOUT) wins.
        extra: dict[str, Any] = {}
        if "connect_timeout" not in given and not os.environ.get("PGCONNECT_TIMEOUT"):
            extra["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        # A connection the network silently drops (a firewall's state expires, a host dies) is
        # noticed within about a minute instead of the kernel's ~15 minutes of retransmissions.
        for key, value in TCP_DEFAULTS.items():
            if key not in given:
                extra[key] = value
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=True,
                application_name=str(given.get("application_name") or "sre_tools"),
                **extra,
            )
        except psycopg.Error as exc:
            raise StoreError(
                f"{self.label}: cannot connect to the {self.schema.what}: {_first_line(exc)}"
            ) from None
        # The timeouts are SET after connecting, never passed as options=, so that the options
        # of a service file or PGOPTIONS survive; a timeout they (or the URL) set wins.
        wanted = {
            "statement_timeout": timeout,
            "idle_in_transaction_session_timeout": max(timeout, 60_000),
        }
        try:
            client = {
                str(r[0])
                for r in conn.execute(
                    "SELECT name FROM pg_settings WHERE source = 'client' AND name = ANY(%s)",
                    (list(wanted),),
                ).fetchall()
            }
            for name, value in wanted.items():
                if name not in client:
                    conn.execute(f"SET {name} = {int(value)}")
        except psycopg.Error as exc:
            conn.close()
            raise StoreError(
                f"{self.label}: cannot connect to the {self.schema.what}: {_first_line(exc)}"
            ) from None
        return conn

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        if self.shared:
            if self._conn is None or (self.postgres and self._conn.closed):
                self._conn = self._open()
            yield self._conn
            return
        if not self.postgres:
            conn = self._open()
            try:
                yield conn
            finally:
                conn.close()
            return
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self._open()
        broken = False
        try:
            yield conn
        except BaseException:
            broken = conn.closed or conn.info.transaction_status != 0  # not IDLE
            raise
        finally:
            with self._lock:
                if not broken and not conn.closed and len(self._idle) < POOL_IDLE_MAX:
                    self._idle.append(conn)
                    conn = None
            if conn is not None:
                conn.close()

    def _broken(self, exc: BaseException) -> StoreError:
        """A driver error as a :class:`StoreError` naming the store; a lost connection of a
        shared handle is dropped so that the next call reconnects."""
        if self.postgres and self._conn is not None and self._conn.closed:
            self._conn = None
        return StoreError(f"{self.label}: {self.schema.what}: {_first_line(exc)}")

    # --- transactions and queries ---

    @contextmanager
    def transaction(self, *, exclusive: bool = True) -> Iterator[Cursor]:
        """One write transaction, rolled back on any exception: ``BEGIN IMMEDIATE`` on SQLite,
        READ COMMITTED plus the component's advisory lock on PostgreSQL (see the module).
        ``exclusive=False`` (PostgreSQL): no lock, for inserts that need no order among
        writers (an append-only log).

        PostgreSQL: a connection found dead when the transaction starts (a pooled or shared one
        the server ended: a restart, a failover, ``idle_session_timeout``) is dropped and the
        start is tried once more on a new connection. Nothing has run yet, so this is always
        safe; a statement that fails after the start is never retried (it may have committed
        nothing or, for COMMIT, something)."""
        if not self.postgres:
            with (
                self._connection() as conn,
                immediate(conn, self.label, self.schema.what) as raw,
            ):
                try:
                    yield Cursor(raw, False)
                except sqlite3.DatabaseError as exc:
                    raise StoreError(
                        f"{self.label}: {self.schema.what}: write failed: {exc}"
                    ) from exc
            return
        for attempt in (1, 2):
            with self._connection() as conn:
                raw = self._pg_begin(conn, exclusive, retry=attempt == 1)
                if raw is None:
                    continue  # the connection was dead: once more on a new one
                with self._pg_transaction(conn, raw) as cur:
                    yield cur
                return

    def _pg_begin(self, conn: Any, exclusive: bool, *, retry: bool) -> Any:
        """BEGIN (and the component's lock) on ``conn``: its cursor; None when ``conn`` turned
        out dead and ``retry`` allows another try."""
        import psycopg

        raw = conn.cursor()
        try:
            raw.execute("BEGIN ISOLATION LEVEL READ COMMITTED")
            if exclusive:
                raw.execute("SELECT pg_advisory_xact_lock(%s)", (self.lock_key,))
        except psycopg.Error as exc:
            raw.close()
            self._rollback(conn)
            if retry and conn.closed:
                if conn is self._conn:
                    self._conn = None
                return None
            raise self._broken(exc) from None
        return raw

    @contextmanager
    def _pg_transaction(self, conn: Any, raw: Any) -> Iterator[Cursor]:
        import psycopg

        try:
            yield Cursor(raw, True)
        except psycopg.Error as exc:
            self._rollback(conn)
            raise self._broken(exc) from None
        except BaseException:
            self._rollback(conn)
            raise
        try:
            raw.execute("COMMIT")
        except psycopg.Error as exc:
            self._rollback(conn)
            raise StoreError(
                f"{self.label}: {self.schema.what}: commit failed: {_first_line(exc)}"
            ) from None
        finally:
            raw.close()

    @staticmethod
    def _rollback(conn: Any) -> None:
        import psycopg

        try:
            if not conn.closed:
                conn.execute("ROLLBACK")
        except psycopg.Error:
            conn.close()

    @property
    def lock_key(self) -> int:
        """The advisory lock of this component's writers (stable across processes)."""
        return 0x53524500_00000000 + zlib.crc32(self.schema.component.encode())

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """A read-only query: all rows. (PostgreSQL: on a connection found dead, tried once
        more on a new one: a read changes nothing.)"""
        for attempt in (1, 2):
            try:
                with self._connection() as conn:
                    raw = conn.cursor()
                    try:
                        return [tuple(r) for r in Cursor(raw, self.postgres).execute(sql, params)
                                .fetchall()]  # fmt: skip
                    finally:
                        raw.close()
            except self._errors as exc:
                if attempt == 1 and self.postgres and conn.closed:
                    if conn is self._conn:
                        self._conn = None
                    continue
                raise self._broken(exc) from None
        raise AssertionError("unreachable")

    @contextmanager
    def reading(self) -> Iterator[Cursor]:
        """A cursor for several reads on one connection (no transaction, no lock)."""
        try:
            with self._connection() as conn:
                raw = conn.cursor()
                try:
                    yield Cursor(raw, self.postgres)
                finally:
                    raw.close()
        except self._errors as exc:
            raise self._broken(exc) from None

    def has_tables(self, *names: str) -> bool:
        if self.postgres:
            sql = "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND "
        else:
            sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND "
        sql += ("tablename" if self.postgres else "name") + " IN (" + ", ".join("?" * len(names))
        rows = self.query(sql + ")", names)
        return int(rows[0][0]) == len(names)

    # --- schema ---

    @property
    def version_key(self) -> str:
        return f"schema_version.{self.schema.component}" if self.postgres else "schema_version"

    def schema_version(self) -> int | None:
        """The version recorded in the database, None when it has none yet."""
        if not self.has_tables("meta"):
            return None
        rows = self.query("SELECT value FROM meta WHERE key = ?", (self.version_key,))
        return self._version(rows[0][0]) if rows else None

    def _version(self, value: object) -> int:
        """A stored schema version; anything but a whole number is a corrupt store."""
        text = str(value).strip()
        if not text.isdigit() or len(text) > 9:
            raise StoreError(
                f"{self.label}: corrupt {self.schema.what}: schema version {str(value)[:40]!r} is "
                "not a number (restore it from a backup)"
            )
        return int(text)

    def migrate(self) -> tuple[int | None, int]:
        """Apply the steps this database lacks, in one transaction; (version before, after).
        A newer version is a :class:`StoreError` and nothing is touched."""
        current = self.schema_version()
        target = self.schema.version
        if current == target:
            return current, target
        self._check_newer(current)
        with self.transaction() as cur:
            if self.postgres:  # one migrator at a time, whatever the component
                cur.execute("SELECT pg_advisory_xact_lock(?)", (0x53524500_FFFFFFFF,))
            cur.execute(_META)
            row = cur.execute(
                "SELECT value FROM meta WHERE key = ?", (self.version_key,)
            ).fetchone()
            current = None if row is None else self._version(row[0])
            self._check_newer(current)
            for step in self.schema.steps[current or 0 :]:
                for table in step:
                    for statement in self.dialect.ddl(table.ddl):
                        cur.execute(statement)
            cur.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (self.version_key, str(target)),
            )
        return current, target

    def _check_newer(self, current: int | None) -> None:
        if current is not None and current > self.schema.version:
            raise StoreError(
                f"{self.label}: {self.schema.what} schema version {current} is newer than this "
                f"sre_tools understands ({self.schema.version}); upgrade sre_tools"
            )

    # --- a lock held by this process's session (PostgreSQL) ---

    def hold_session_lock(self, key: int) -> bool:
        """Take a session-level advisory lock on a connection of its own, held until
        :meth:`drop_session_lock` or the process's end (a dead process's session ends, and the
        server frees the lock). False when another session holds it."""
        if not self.postgres:
            return True
        try:
            if self._session_conn is None or self._session_conn.closed:
                self._session_conn = self._open_pg()
                if self._session_conn.info.server_version >= 140000:
                    # A lock held for a whole drill sits on an idle session: the server's
                    # idle_session_timeout must never end it under a live holder.
                    self._session_conn.execute("SET idle_session_timeout = 0")
            row = self._session_conn.execute("SELECT pg_try_advisory_lock(%s)", (key,))
            return bool(row.fetchone()[0])
        except self._errors as exc:
            raise self._broken(exc) from None

    def drop_session_lock(self, key: int) -> None:
        if self._session_conn is not None and not self._session_conn.closed:
            try:
                self._session_conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
            except self._errors:
                self._session_conn.close()

    def session_lock_ours(self, key: int) -> bool:
        """Does this object's own session still hold the advisory lock ``key``? False when its
        connection is gone (dropped, ended by the server)."""
        if not self.postgres:
            return True
        conn = self._session_conn
        if conn is None or conn.closed:
            return False
        try:
            row = conn.execute(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND pid = pg_backend_pid() AND classid = %s AND objid = %s AND objsubid = 1",
                ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
            ).fetchone()
        except self._errors:
            conn.close()
            return False
        return int(row[0]) > 0

    def session_lock_held(self, key: int) -> bool:
        """Does any live session hold the advisory lock ``key`` in this database? (Advisory locks
        are per database; another database on the server may use the same key.)"""
        if not self.postgres:
            return False
        rows = self.query(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND classid = ? AND objid = ? AND objsubid = 1 "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            ((key >> 32) & 0xFFFFFFFF, key & 0xFFFFFFFF),
        )
        return int(rows[0][0]) > 0

    def close(self) -> None:
        with self._lock:
            conns = [c for c in (self._conn, self._session_conn, *self._idle) if c is not None]
            self._conn = self._session_conn = None
            self._idle = []
        for conn in conns:
            conn.close()


# --- SQLite plumbing --------------------------------------------------------------------------


def connect(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection to ``path`` as every SQLite file of sre_tools is used: autocommit (explicit
    transactions only), WAL, a busy timeout (a second writer waits), foreign keys on."""
    conn = sqlite3.connect(
        path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )
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


@contextmanager
def immediate(conn: sqlite3.Connection, label: object, what: str) -> Iterator[sqlite3.Cursor]:
    """One ``BEGIN IMMEDIATE`` .. ``COMMIT`` on ``conn``, rolled back on any exception. A writer
    that cannot get the lock within the busy timeout, or a failed commit, is a
    :class:`StoreError` naming the file and ``what`` it is."""
    cur = conn.cursor()
    try:
        cur.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        cur.close()
        raise StoreError(f"{label}: {what} is busy or read-only: {exc}") from exc
    try:
        yield cur
    except BaseException:
        conn.rollback()
        raise
    else:
        try:
            conn.commit()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{label}: {what}: commit failed: {exc}") from exc
    finally:
        cur.close()


# --- the store's schema -----------------------------------------------------------------------

_V1 = (
    Table(
        "sli_buckets",
        """
-- SLI counts: one row per SLO id and bucket start (unix seconds, aligned to the bucket size).
CREATE TABLE IF NOT EXISTS sli_buckets (
    slo    TEXT    NOT NULL,
    start  {int}   NOT NULL,
    good   {real}  NOT NULL CHECK (good >= 0),
    total  {real}  NOT NULL CHECK (total >= 0),
    PRIMARY KEY (slo, start)
) {without_rowid}""",
    ),
    Table(
        "imports",
        """
-- Every file imported (SLI or incident CSV), by content hash, so a re-import is refused.
CREATE TABLE IF NOT EXISTS imports (
    sha256   TEXT    NOT NULL,
    kind     TEXT    NOT NULL,
    path     TEXT    NOT NULL,
    rows     {int}   NOT NULL,
    imported {int}   NOT NULL,
    PRIMARY KEY (sha256, kind)
)""",
    ),
    Table(
        "incidents",
        """
CREATE TABLE IF NOT EXISTS incidents (
    id        {id},
    started   {int}   NOT NULL,
    detected  {int},
    resolved  {int},
    component TEXT    NOT NULL,
    host      TEXT    NOT NULL DEFAULT '',
    gpu       TEXT    NOT NULL DEFAULT '',
    category  TEXT    NOT NULL DEFAULT '',
    planned   {int}   NOT NULL DEFAULT 0 CHECK (planned IN (0, 1)),
    cause     TEXT    NOT NULL DEFAULT '',
    xid       {int},
    CHECK (resolved IS NULL OR resolved >= started),
    CHECK (detected IS NULL OR detected >= started)
);
CREATE INDEX IF NOT EXISTS incidents_started ON incidents (started)""",
    ),
)
# Chaos drill results (sre drill run / recover): one row per run, one per expectation and node;
# the fleet drill lock and the abort flags. The results were added to version 1 of SQLite files
# without a bump; a version 1 file lacking them gains them here.
_V2: tuple[Table, ...] = (
    Table(
        "drill_runs",
        """
CREATE TABLE IF NOT EXISTS drill_runs (
    run_id          TEXT PRIMARY KEY,
    drill           TEXT NOT NULL,
    nodes           TEXT NOT NULL,
    status          TEXT NOT NULL,
    started         {real} NOT NULL,
    ended           {real},
    recover_seconds {real}
);
CREATE INDEX IF NOT EXISTS drill_runs_started ON drill_runs (started)""",
    ),
    Table(
        "drill_expectations",
        """
CREATE TABLE IF NOT EXISTS drill_expectations (
    run_id   TEXT NOT NULL REFERENCES drill_runs (run_id) ON DELETE CASCADE,
    name     TEXT NOT NULL,
    node     TEXT NOT NULL,
    met      {int} NOT NULL CHECK (met IN (0, 1)),
    measures TEXT,
    seconds  {real},
    PRIMARY KEY (run_id, name, node)
) {without_rowid}""",
    ),
    Table(
        "drill_lock",
        """
CREATE TABLE IF NOT EXISTS drill_lock (
    name     TEXT PRIMARY KEY,
    run_id   TEXT NOT NULL,
    pid      {int} NOT NULL,
    host     TEXT NOT NULL,
    operator TEXT NOT NULL,
    started  {real} NOT NULL
)""",
    ),
    Table(
        "drill_aborts",
        """
CREATE TABLE IF NOT EXISTS drill_aborts (
    scope    TEXT PRIMARY KEY,
    reason   TEXT NOT NULL,
    operator TEXT NOT NULL,
    at       {real} NOT NULL
)""",
    ),
)
# Active diagnostics (sre diag): one row per tool run, one per finding; every query on them is
# in sre_tools/diag/history.py. Main added them to SQLite's version 1 without a bump; here they
# are part of step 2, which a version 1 file (with or without them) runs.
_V2 += (
    Table(
        "diag_runs",
        """
CREATE TABLE IF NOT EXISTS diag_runs (
    run_id         TEXT PRIMARY KEY,
    node           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    level          {int} NOT NULL,
    started        {real} NOT NULL,
    ended          {real} NOT NULL,
    status         TEXT NOT NULL,
    exit_code      {int},
    source         TEXT NOT NULL,
    tool_version   TEXT NOT NULL,
    driver_version TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS diag_runs_node ON diag_runs (node, kind, ended)""",
    ),
    Table(
        "diag_results",
        """
CREATE TABLE IF NOT EXISTS diag_results (
    run_id          TEXT NOT NULL REFERENCES diag_runs (run_id) ON DELETE CASCADE,
    seq             {int} NOT NULL,
    check_id        TEXT NOT NULL,
    severity        TEXT NOT NULL,
    action          TEXT NOT NULL,
    summary         TEXT NOT NULL,
    gpu_index       {int},
    gpu_uuid        TEXT NOT NULL,
    gpu_serial      TEXT NOT NULL,
    vbios_version   TEXT NOT NULL,
    inforom_version TEXT NOT NULL,
    evidence        TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
CREATE INDEX IF NOT EXISTS diag_results_serial ON diag_results (gpu_serial)""",
    ),
)
STORE_SCHEMA = Schema("store", "store", (_V1, _V2))
SCHEMA_VERSION = STORE_SCHEMA.version


class Store(Database):
    """The store (SLI counts, incidents, drill results and lock) at a file path or a PostgreSQL
    URL. Cheap to open; use as a context manager to close."""

    def __init__(self, location: str | Path, *, create: bool = True, migrate: bool = True):
        self.location = location
        super().__init__(location, STORE_SCHEMA, create=create, migrate=migrate)

    @property
    def conn(self) -> Any:
        """The driver connection (tests and :mod:`sre_tools.store_admin` look inside)."""
        if self._conn is None:
            self._conn = self._open()
        return self._conn

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
