"""The engine's memory: drains we hold, per-node cooldowns, event ids seen.

A SQLite file of its own by default (it lives on the controller next to the audit log, not in an
operator's SLO store), or a PostgreSQL database shared by every controller of a cluster (two Salt
masters, an Ansible controller): then the budget, the cooldown and the de-duplication hold per
cluster, not per machine. Through :class:`sre_tools.store.Database`: the budget check and the
drain reservation happen in one write transaction, and writers of the state run one at a time
(``BEGIN IMMEDIATE`` on SQLite; on PostgreSQL a transaction-level advisory lock taken first, at
READ COMMITTED), so no number of concurrent events, processes or controllers can drain past the
budget. An event id is de-duplicated by the ``events`` table's primary key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sre_tools.remediation import guardrails
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.guardrails import Refusal
from sre_tools.remediation.model import RemediationRequest
from sre_tools.store import Cursor, Database, Schema, Table

BUSY_TIMEOUT_MS = 60_000

_V1 = (
    Table(
        "drains",
        """
-- One row per node drained by us. 'reserved': budget taken, scontrol not yet confirmed.
CREATE TABLE IF NOT EXISTS drains (
    node           TEXT PRIMARY KEY,
    action         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    reason         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('reserved', 'drained')),
    reserved_at    {real} NOT NULL,
    drained_at     {real},
    last_action_at {real},
    actions_done   {int} NOT NULL DEFAULT 0,
    gpus           TEXT NOT NULL DEFAULT '[]',
    checks         TEXT NOT NULL DEFAULT '[]'
)""",
    ),
    Table(
        "drain_partitions",
        """
CREATE TABLE IF NOT EXISTS drain_partitions (
    node      TEXT NOT NULL REFERENCES drains (node) ON DELETE CASCADE,
    partition TEXT NOT NULL,
    PRIMARY KEY (node, partition)
) {without_rowid};
CREATE INDEX IF NOT EXISTS drain_partitions_partition ON drain_partitions (partition)""",
    ),
    Table(
        "cooldowns",
        """
-- Last time we drained, acted on or resumed each node (the cooldown's start).
CREATE TABLE IF NOT EXISTS cooldowns (
    node       TEXT PRIMARY KEY,
    last_acted {real} NOT NULL
) {without_rowid}""",
    ),
    Table(
        "events",
        """
-- Event ids seen: the primary key is the de-duplication (a second insert does nothing).
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    node     TEXT NOT NULL,
    seen_at  {real} NOT NULL
) {without_rowid};
CREATE INDEX IF NOT EXISTS events_seen_at ON events (seen_at)""",
    ),
)
# The audit log as a table, for an audit target that is a database (``--audit postgresql://``):
# append-only for the tools' role (SELECT and INSERT granted, never UPDATE or DELETE).
_V2 = (
    Table(
        "audit_log",
        """
CREATE TABLE IF NOT EXISTS audit_log (
    id       {id},
    at       {real} NOT NULL,
    node     TEXT,
    event_id TEXT,
    outcome  TEXT NOT NULL,
    code     TEXT,
    record   TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at)""",
        grant="append",
    ),
)
REMEDIATION_SCHEMA = Schema("remediation", "remediation state", (_V1, _V2))
SCHEMA_VERSION = REMEDIATION_SCHEMA.version


@dataclass(frozen=True)
class DrainRecord:
    node: str
    action: str
    event_id: str
    reason: str
    status: str
    reserved_at: float
    drained_at: float | None
    last_action_at: float | None
    actions_done: int
    gpus: tuple[int, ...]
    checks: tuple[str, ...]
    partitions: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "node": self.node,
            "action": self.action,
            "event_id": self.event_id,
            "reason": self.reason,
            "status": self.status,
            "reserved_at": self.reserved_at,
            "drained_at": self.drained_at,
            "last_action_at": self.last_action_at,
            "actions_done": self.actions_done,
            "gpus": list(self.gpus),
            "checks": list(self.checks),
            "partitions": list(self.partitions),
        }


_DRAIN_COLUMNS = (
    "node, action, event_id, reason, status, reserved_at, drained_at, last_action_at, "
    "actions_done, gpus, checks"
)


class RemediationState:
    """Drains, cooldowns and seen event ids in a SQLite file (created on first use) or a
    PostgreSQL database (a URL). Safe to share between threads: every operation takes its own
    connection (SQLite) or one from a small pool (PostgreSQL)."""

    def __init__(self, location: Path | str):
        self.db = Database(
            location, REMEDIATION_SCHEMA, shared=False, busy_timeout_ms=BUSY_TIMEOUT_MS
        )
        self.path = self.db.path  # None for a database URL
        self.label = self.db.label

    # --- plumbing ---

    @contextmanager
    def transaction(self) -> Iterator[Cursor]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite, the component's advisory lock
        on PostgreSQL); rolled back on error."""
        with self.db.transaction() as cur:
            yield cur

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        return self.db.query(sql, params)

    def close(self) -> None:
        self.db.close()

    # --- event ids ---

    def remember_event(self, event_id: str, node: str, now: float, ttl: float) -> bool:
        """Record ``event_id``; False when it was already seen (a duplicate)."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM events WHERE seen_at < ?", (now - ttl,))
            cur.execute(
                "INSERT INTO events (event_id, node, seen_at) VALUES (?, ?, ?) "
                "ON CONFLICT (event_id) DO NOTHING",
                (event_id, node, now),
            )
            return cur.rowcount == 1

    def event_seen(self, event_id: str, now: float, ttl: float) -> bool:
        rows = self._query(
            "SELECT 1 FROM events WHERE event_id = ? AND seen_at >= ?", (event_id, now - ttl)
        )
        return bool(rows)

    def forget_event(self, event_id: str) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM events WHERE event_id = ?", (event_id,))

    # --- drains ---

    @staticmethod
    def _record(cur: Cursor, row: tuple[Any, ...]) -> DrainRecord:
        node = str(row[0])
        parts = cur.execute(
            "SELECT partition FROM drain_partitions WHERE node = ? ORDER BY partition", (node,)
        ).fetchall()
        return DrainRecord(
            node=node,
            action=str(row[1]),
            event_id=str(row[2]),
            reason=str(row[3]),
            status=str(row[4]),
            reserved_at=float(row[5]),
            drained_at=None if row[6] is None else float(row[6]),
            last_action_at=None if row[7] is None else float(row[7]),
            actions_done=int(row[8]),
            gpus=tuple(int(g) for g in json.loads(str(row[9]))),
            checks=tuple(str(c) for c in json.loads(str(row[10]))),
            partitions=tuple(str(p[0]) for p in parts),
        )

    def get_drain(self, node: str) -> DrainRecord | None:
        with self.db.reading() as cur:
            row = cur.execute(
                f"SELECT {_DRAIN_COLUMNS} FROM drains WHERE node = ?", (node,)
            ).fetchone()
            return None if row is None else self._record(cur, row)

    def drains(self) -> list[DrainRecord]:
        with self.db.reading() as cur:
            rows = cur.execute(f"SELECT {_DRAIN_COLUMNS} FROM drains ORDER BY node").fetchall()
            return [self._record(cur, row) for row in rows]

    def cooldown_of(self, node: str) -> float | None:
        rows = self._query("SELECT last_acted FROM cooldowns WHERE node = ?", (node,))
        return None if not rows else float(rows[0][0])

    @staticmethod
    def _budget(
        cur: Cursor, node_partitions: Mapping[str, int], config: RemediationConfig
    ) -> Refusal | None:
        total = int(cur.execute("SELECT COUNT(*) FROM drains").fetchone()[0])
        by_partition: dict[str, int] = {}
        for partition in node_partitions:
            row = cur.execute(
                "SELECT COUNT(*) FROM drain_partitions WHERE partition = ?", (partition,)
            ).fetchone()
            by_partition[partition] = int(row[0])
        return guardrails.check_budget(
            ours_total=total,
            ours_by_partition=by_partition,
            node_partitions=node_partitions,
            config=config,
        )

    def usage(self) -> tuple[int, dict[str, int]]:
        """Drains we hold: in total and per partition."""
        with self.db.reading() as cur:
            total = int(cur.execute("SELECT COUNT(*) FROM drains").fetchone()[0])
            rows = cur.execute(
                "SELECT partition, COUNT(*) FROM drain_partitions GROUP BY partition"
            ).fetchall()
            return total, {str(p): int(n) for p, n in rows}

    def budget_preview(
        self, node_partitions: Mapping[str, int], config: RemediationConfig
    ) -> Refusal | None:
        """The budget verdict for one more drain, without taking it (dry runs)."""
        with self.db.reading() as cur:
            return self._budget(cur, node_partitions, config)

    def reserve(
        self,
        request: RemediationRequest,
        reason: str,
        node_partitions: Mapping[str, int],
        now: float,
        config: RemediationConfig,
    ) -> Refusal | None:
        """Take one unit of budget for ``request.node``, atomically with every check on it.

        In one ``BEGIN IMMEDIATE`` transaction: no drain of the node is held or in flight, its
        cooldown has passed, the budget allows one more; then the reservation is written.
        """
        node = request.node
        with self.transaction() as cur:
            row = cur.execute("SELECT status FROM drains WHERE node = ?", (node,)).fetchone()
            if row is not None:
                if row[0] == "reserved":
                    return Refusal("in_progress", f"a drain of {node} is already in progress")
                return Refusal("already_drained", f"{node} is already drained by us")
            last = cur.execute(
                "SELECT last_acted FROM cooldowns WHERE node = ?", (node,)
            ).fetchone()
            refusal = guardrails.check_cooldown(
                None if last is None else float(last[0]), now, config.cooldown_seconds, node
            )
            if refusal is None:
                refusal = self._budget(cur, node_partitions, config)
            if refusal is not None:
                return refusal
            cur.execute(
                f"INSERT INTO drains ({_DRAIN_COLUMNS}) "
                "VALUES (?, ?, ?, ?, 'reserved', ?, NULL, NULL, 0, ?, ?)",
                (
                    node,
                    request.action.value,
                    request.event_id,
                    reason,
                    now,
                    json.dumps(list(request.gpus)),
                    json.dumps(list(request.checks)),
                ),
            )
            cur.executemany(
                "INSERT INTO drain_partitions (node, partition) VALUES (?, ?)",
                [(node, p) for p in sorted(node_partitions)],
            )
            return None

    def cancel_reservation(self, node: str) -> None:
        with self.transaction() as cur:
            cur.execute("DELETE FROM drains WHERE node = ? AND status = 'reserved'", (node,))

    def confirm_drain(
        self, node: str, now: float, *, claim: RemediationRequest | None = None
    ) -> None:
        """scontrol drained the node. With ``claim``, its first action is claimed in the same
        transaction: no other process can see the confirmed drain without the claim."""
        with self.transaction() as cur:
            if claim is None:
                cur.execute(
                    "UPDATE drains SET status = 'drained', drained_at = ? WHERE node = ?",
                    (now, node),
                )
            else:
                cur.execute(
                    "UPDATE drains SET status = 'drained', drained_at = ?, last_action_at = ?, "
                    "actions_done = actions_done + 1, action = ?, gpus = ? WHERE node = ?",
                    (now, now, claim.action.value, json.dumps(list(claim.gpus)), node),
                )
            self._touch(cur, node, now)

    def adopt(
        self,
        request: RemediationRequest,
        reason: str,
        partitions: Mapping[str, int],
        now: float,
        *,
        action: str | None = None,
    ) -> None:
        """Record a drain with our prefix that the state does not know (lost or restored state).

        No budget check: the node is drained already; it now counts against the budget.
        ``action`` is what the drain was for (read from its reason), else the request's.
        """
        with self.transaction() as cur:
            cur.execute(
                f"INSERT INTO drains ({_DRAIN_COLUMNS}) "
                "VALUES (?, ?, ?, ?, 'drained', ?, NULL, NULL, 0, ?, ?) "
                "ON CONFLICT (node) DO NOTHING",
                (
                    request.node,
                    action or request.action.value,
                    request.event_id,
                    reason,
                    now,
                    json.dumps(list(request.gpus)),
                    json.dumps(list(request.checks)),
                ),
            )
            if cur.rowcount == 1:
                cur.executemany(
                    "INSERT INTO drain_partitions (node, partition) VALUES (?, ?) "
                    "ON CONFLICT (node, partition) DO NOTHING",
                    [(request.node, p) for p in sorted(partitions)],
                )

    def claim_action(
        self, request: RemediationRequest, now: float, config: RemediationConfig
    ) -> Refusal | None:
        """Claim the right to run a node-side action on a node we hold drained, once.

        The first action of a drain is not subject to the cooldown (the drain was the act);
        a repeat waits for the cooldown after the previous one and stops at
        ``max_actions_per_drain``.
        """
        node = request.node
        with self.transaction() as cur:
            row = cur.execute(
                "SELECT status, last_action_at, actions_done FROM drains WHERE node = ?", (node,)
            ).fetchone()
            if row is None or row[0] != "drained":
                return Refusal("in_progress", f"no confirmed drain of {node} to act on")
            last = None if row[1] is None else float(row[1])
            refusal = guardrails.check_action_attempts(
                int(row[2]), config.max_actions_per_drain
            ) or guardrails.check_cooldown(last, now, config.cooldown_seconds, node)
            if refusal is not None:
                return refusal
            cur.execute(
                "UPDATE drains SET last_action_at = ?, actions_done = actions_done + 1, "
                "action = ?, gpus = ? WHERE node = ?",
                (now, request.action.value, json.dumps(list(request.gpus)), node),
            )
            self._touch(cur, node, now)
            return None

    def release(self, node: str, now: float, *, touch: bool = True) -> bool:
        """Forget our drain of ``node``. After our own resume (``touch``) its cooldown starts
        now; when someone else took the node back, the cooldown of our last act stands."""
        with self.transaction() as cur:
            cur.execute("DELETE FROM drains WHERE node = ?", (node,))
            released = cur.rowcount == 1
            if touch:
                self._touch(cur, node, now)
            return released

    def release_stale(self, record: DrainRecord) -> bool:
        """Forget ``record`` only if it is still exactly that drain (confirmed, same event and
        reservation time): never a newer reservation of the same node made meanwhile by another
        process. The cooldown of our last act stands."""
        with self.transaction() as cur:
            cur.execute(
                "DELETE FROM drains WHERE node = ? AND event_id = ? AND reserved_at = ? "
                "AND status = 'drained'",
                (record.node, record.event_id, record.reserved_at),
            )
            return cur.rowcount == 1

    @staticmethod
    def _touch(cur: Cursor, node: str, now: float) -> None:
        cur.execute(
            "INSERT INTO cooldowns (node, last_acted) VALUES (?, ?) "
            "ON CONFLICT (node) DO UPDATE SET last_acted = excluded.last_acted",
            (node, now),
        )
