"""Store administration: migrate a schema, copy a store into another (SQLite into PostgreSQL),
and the GRANTs of the tools' role. ``sre store`` calls these."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sre_tools.exceptions import StoreError
from sre_tools.store import STORE_SCHEMA, Database, Schema

COPY_BATCH_ROWS = 5000


def schemas() -> dict[str, Schema]:
    """Every component's schema, by the name ``sre store`` gives it."""
    from sre_tools.remediation.state import REMEDIATION_SCHEMA

    return {"store": STORE_SCHEMA, "remediation": REMEDIATION_SCHEMA}


@dataclass(frozen=True)
class Migration:
    component: str
    location: str
    before: int | None
    after: int

    def to_dict(self) -> dict[str, object]:
        return {
            "component": self.component,
            "store": self.location,
            "version_before": self.before,
            "version_after": self.after,
        }


def migrate(location: str | Path, component: str = "store") -> Migration:
    """Bring ``location``'s ``component`` schema to this sre_tools' version (nothing to do when
    it is there; a newer one is refused)."""
    db = Database(location, schemas()[component], migrate=False)
    try:
        before, after = db.migrate()
        return Migration(component, db.label, before, after)
    finally:
        db.close()


@dataclass(frozen=True)
class CopiedTable:
    table: str
    source_rows: int
    copied_rows: int

    def to_dict(self) -> dict[str, object]:
        return {"table": self.table, "source_rows": self.source_rows, "rows": self.copied_rows}


def _columns(db: Database, table: str) -> list[str]:
    if db.postgres:
        rows = db.query(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            (table,),
        )
        return [str(r[0]) for r in rows]
    return [str(r[1]) for r in db.query(f"PRAGMA table_info({table})")]


def _count(db: Database, table: str) -> int:
    return int(db.query(f"SELECT COUNT(*) FROM {table}")[0][0])


def copy(
    source: str | Path, destination: str | Path, component: str = "store"
) -> list[CopiedTable]:
    """Copy every table of ``component`` from ``source`` into ``destination`` (migrated first),
    in one transaction, and compare the row counts. The destination's tables must be empty:
    nothing already stored there is overwritten or mixed in."""
    schema = schemas()[component]
    # The source is only read: never migrated (the release that wrote it must still open it).
    src = Database(source, schema, create=False, migrate=False)
    try:
        src._check_newer(src.schema_version())
        dst = Database(destination, schema)
        try:
            return _copy(src, dst, schema)
        finally:
            dst.close()
    finally:
        src.close()


def _copy(src: Database, dst: Database, schema: Schema) -> list[CopiedTable]:
    tables = [t.name for t in schema.tables()]
    busy = [t for t in tables if _count(dst, t) > 0]
    if busy:
        raise StoreError(
            f"{dst.label}: not empty ({', '.join(busy)} hold rows); copy into a new, empty store"
        )
    out = []
    with dst.transaction() as cur:
        for table in tables:
            if not src.has_tables(table):
                continue  # an older source: the table came with a later schema step
            columns = _columns(src, table)
            wanted = [c for c in _columns(dst, table) if c in columns]
            names = ", ".join(wanted)
            insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' * len(wanted))})"
            rows = src.query(f"SELECT {names} FROM {table}")
            for start in range(0, len(rows), COPY_BATCH_ROWS):
                cur.executemany(insert, rows[start : start + COPY_BATCH_ROWS])
            if dst.postgres and "id" in wanted:
                # Identity columns: the next generated id follows the copied ones.
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                    f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                )
            copied = int(cur.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
            if copied != len(rows):
                raise StoreError(
                    f"{dst.label}: {table}: {copied} rows after the copy, {len(rows)} read; "
                    "rolled back"
                )
            out.append(CopiedTable(table, len(rows), copied))
        # Other keys of meta (not the schema versions, which are the destination's own).
        meta = src.query("SELECT key, value FROM meta") if src.has_tables("meta") else []
        for key, value in meta:
            if not str(key).startswith("schema_version"):
                cur.execute(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, value),
                )
    return out


def grants(role: str, components: Sequence[str] = ("store", "remediation")) -> list[str]:
    """The GRANT statements for the tools' role (see :func:`sre_tools.store.grant_statements`)."""
    from sre_tools.store import grant_statements

    return grant_statements([schemas()[c] for c in components], role)
