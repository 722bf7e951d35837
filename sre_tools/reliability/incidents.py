"""The incident log in the store: open, resolve, list and import.

Every write is one transaction (:meth:`Store.transaction`: ``BEGIN IMMEDIATE`` on SQLite, the
store's advisory lock on PostgreSQL), so concurrent writers queue instead of failing, and an
import either lands completely or not at all: rows are all parsed and validated first, then
inserted in a single transaction together with the file's sha256 in the ``imports`` table.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from sre_tools.exceptions import NotFoundError, StoreError, ValidationError
from sre_tools.progress import Progress
from sre_tools.reliability.loader import parse_incidents_csv
from sre_tools.reliability.model import Incident, validate_incident
from sre_tools.store import Cursor, Store
from sre_tools.timeutil import MAX_FUTURE_SECONDS, iso

IMPORT_KIND = "incidents"

_COLUMNS = "id, started, detected, resolved, component, host, gpu, category, planned, cause, xid"
_INSERT = (
    "INSERT INTO incidents "
    "(started, detected, resolved, component, host, gpu, category, planned, cause, xid) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _params(incident: Incident) -> tuple[object, ...]:
    return (
        incident.started,
        incident.detected,
        incident.resolved,
        incident.component,
        incident.host,
        incident.gpu,
        incident.category,
        1 if incident.planned else 0,
        incident.cause,
        incident.xid,
    )


def _incident(row: tuple[object, ...], label: str = "the store") -> Incident:
    """A stored row; a number column holding anything else is a corrupt store (one line)."""
    try:
        return _incident_row(row)
    except (TypeError, ValueError):
        raise StoreError(
            f"{label}: corrupt incidents table: row {str(row[0])[:20]!r} holds text where a "
            "number belongs (restore it from a backup)"
        ) from None


def _incident_row(row: tuple[object, ...]) -> Incident:
    def opt_int(value: object) -> int | None:
        return None if value is None else int(str(value))

    return Incident(
        id=int(str(row[0])),
        started=int(str(row[1])),
        detected=opt_int(row[2]),
        resolved=opt_int(row[3]),
        component=str(row[4]),
        host=str(row[5]),
        gpu=str(row[6]),
        category=str(row[7]),
        planned=bool(row[8]),
        cause=str(row[9]),
        xid=opt_int(row[10]),
    )


def _now() -> int:
    return int(time.time())


@contextmanager
def _writing(store: Store) -> Iterator[Cursor]:
    """:meth:`Store.transaction` (driver errors inside it are a :class:`StoreError` there)."""
    with store.transaction() as cur:
        yield cur


def open_incident(
    store: Store,
    *,
    component: str,
    started: int | None = None,
    detected: int | None = None,
    host: str = "",
    gpu: str = "",
    category: str = "",
    planned: bool = False,
    cause: str = "",
    xid: int | None = None,
) -> Incident:
    """Record a new (open) incident; ``started`` defaults to now. Returns it with its id."""
    incident = Incident(
        id=None,
        started=_now() if started is None else started,
        detected=detected,
        resolved=None,
        component=component.strip(),
        host=host.strip(),
        gpu=gpu.strip(),
        category=category.strip(),
        planned=planned,
        cause=cause.strip(),
        xid=xid,
    )
    validate_incident(incident, where="--", now=_now())
    with _writing(store) as cur:
        new_id = cur.insert_id(_INSERT, _params(incident))
    return get_incident(store, new_id)


def get_incident(store: Store, incident_id: int) -> Incident:
    """Return one incident; :class:`NotFoundError` if there is none with that id."""
    rows = store.query(f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,))
    if not rows:
        raise NotFoundError(f"no incident with id {incident_id}", field="ID")
    return _incident(rows[0], store.label)


def resolve_incident(store: Store, incident_id: int, at: int | None = None) -> Incident:
    """Mark an open incident resolved at ``at`` (default now) and return it.

    Unknown id: :class:`NotFoundError`; already resolved, or ``at`` before the incident started or
    was detected: :class:`ValidationError`.
    """
    resolved = _now() if at is None else at
    with _writing(store) as cur:
        row = cur.execute(
            f"SELECT {_COLUMNS} FROM incidents WHERE id = ?", (incident_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no incident with id {incident_id}", field="ID")
        current = _incident(tuple(row), store.label)
        if current.resolved is not None:
            raise ValidationError(
                f"incident {incident_id} is already resolved (at {iso(current.resolved)})",
                field="ID",
            )
        if resolved > _now() + MAX_FUTURE_SECONDS:
            raise ValidationError(
                f"{iso(resolved)} is {resolved - _now()} s in the future", field="--at"
            )
        if resolved < current.started:
            raise ValidationError(
                f"{iso(resolved)} is before incident {incident_id} started "
                f"({iso(current.started)})",
                field="--at",
            )
        if current.detected is not None and resolved < current.detected:
            raise ValidationError(
                f"{iso(resolved)} is before incident {incident_id} was detected "
                f"({iso(current.detected)})",
                field="--at",
            )
        cur.execute("UPDATE incidents SET resolved = ? WHERE id = ?", (resolved, incident_id))
    return get_incident(store, incident_id)


def list_incidents(
    store: Store,
    since: int | None = None,
    until: int | None = None,
    open_only: bool = False,
) -> list[Incident]:
    """Incidents that started in ``[since, until)`` (either bound optional), oldest first."""
    clauses: list[str] = []
    params: list[object] = []
    if since is not None:
        clauses.append("started >= ?")
        params.append(since)
    if until is not None:
        clauses.append("started < ?")
        params.append(until)
    if open_only:
        clauses.append("resolved IS NULL")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    rows = store.query(
        f"SELECT {_COLUMNS} FROM incidents{where} ORDER BY started, id", tuple(params)
    )
    return [_incident(row, store.label) for row in rows]


def earliest_start(store: Store) -> int | None:
    """The earliest ``started`` in the log, ``None`` when it is empty."""
    rows = store.query("SELECT MIN(started) FROM incidents")
    value = rows[0][0] if rows else None
    return None if value is None else int(str(value))


def content_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def insert_incidents(
    store: Store, incidents: Iterable[Incident], *, sha256: str, source_name: str, force: bool
) -> int:
    """Insert validated incidents and record the import, all in one transaction."""
    batch = [_params(incident) for incident in incidents]
    with _writing(store) as cur:
        previous = cur.execute(
            "SELECT rows, imported FROM imports WHERE sha256 = ? AND kind = ?",
            (sha256, IMPORT_KIND),
        ).fetchone()
        if previous is not None and not force:
            raise ValidationError(
                f"already imported ({previous[0]} rows at {iso(int(previous[1]))}, "
                f"sha256 {sha256[:12]}); use --force to import it again",
                source=source_name,
            )
        cur.executemany(_INSERT, batch)
        cur.execute(
            "INSERT INTO imports (sha256, kind, path, rows, imported) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (sha256, kind) DO UPDATE SET path = excluded.path, "
            "rows = excluded.rows, imported = excluded.imported",
            (sha256, IMPORT_KIND, source_name, len(batch), _now()),
        )
    return len(batch)


def import_csv(
    store: Store,
    text: str,
    source_name: str,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> int:
    """Import an incident CSV (see :mod:`sre_tools.reliability.loader`); return the row count.

    All rows are validated before anything is written; the rows and the file's sha256 then land
    in one transaction. The same content imported again raises :class:`ValidationError`
    ("already imported") unless ``force``.
    """
    incidents = parse_incidents_csv(text, source_name, progress=progress)
    if progress is not None:
        progress(0, None, f"storing {len(incidents)} incidents")
    return insert_incidents(
        store, incidents, sha256=content_sha256(text), source_name=source_name, force=force
    )
