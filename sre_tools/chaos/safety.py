"""Safety of a drill run: the allowlist, the blast radius, one fleet lock, the abort switch and
preconditions.

The lock and the abort flags live in tables of the SQLite store file (the same file ``sre sli``
and ``sre incident`` use), so every process on the controller, and any controller sharing the
store, sees them. A lock left by a process that died on this host is detected and reported, never
taken silently: ``break_stale=True`` (``--break-stale-lock``) takes it explicitly.
"""

from __future__ import annotations

import math
import os
import random
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sre_tools.chaos.model import BlastMode, BlastRadius
from sre_tools.exceptions import SreError, ValidationError
from sre_tools.inputs import MAX_SPEC_BYTES, load_yaml, read_text_capped

ALLOWLIST_GROUP = "chaos_targets"
ALL_RUNS = "*"

_TABLES = """
CREATE TABLE IF NOT EXISTS drill_lock (
    name     TEXT PRIMARY KEY,
    run_id   TEXT NOT NULL,
    pid      INTEGER NOT NULL,
    host     TEXT NOT NULL,
    operator TEXT NOT NULL,
    started  REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS drill_aborts (
    scope    TEXT PRIMARY KEY,
    reason   TEXT NOT NULL,
    operator TEXT NOT NULL,
    at       REAL NOT NULL
)
"""


class DrillRefused(SreError):
    """A drill may not start: the lock is held, the abort switch is set, a precondition fails."""


# --- targets ----------------------------------------------------------------------------------


def _group_hosts(group: Mapping[str, Any], source: str, field: str, depth: int = 0) -> list[str]:
    if depth > 16:
        raise ValidationError("groups nested too deeply", source=source, field=field)
    hosts = list((group.get("hosts") or {}).keys()) if isinstance(group, Mapping) else []
    children = group.get("children") or {} if isinstance(group, Mapping) else {}
    for name, child in children.items():
        hosts.extend(_group_hosts(child or {}, source, f"{field}.children.{name}", depth + 1))
    return hosts


def _find_group(data: Any, name: str) -> Mapping[str, Any] | None:
    stack = [data]
    while stack:
        node = stack.pop()
        if not isinstance(node, Mapping):
            continue
        for key, value in node.items():
            if key == name and isinstance(value, Mapping | type(None)):
                return value or {}
            if isinstance(value, Mapping):
                stack.append(value.get("children") if "children" in value else value)
    return None


def allowlist_from_data(data: Any, source: str) -> tuple[str, ...]:
    """The allowed nodes of a YAML inventory (group ``chaos_targets``, nested children too) or of
    a config file (``chaos_targets: [node, ...]``)."""
    if isinstance(data, Mapping) and isinstance(data.get(ALLOWLIST_GROUP), list):
        nodes = data[ALLOWLIST_GROUP]
        if not all(isinstance(n, str) and n for n in nodes):
            raise ValidationError(
                "must be a list of node names", source=source, field=ALLOWLIST_GROUP
            )
        return tuple(dict.fromkeys(nodes))
    group = _find_group(data, ALLOWLIST_GROUP)
    if group is None:
        raise ValidationError(
            f"no {ALLOWLIST_GROUP} group: list the nodes drills may touch there", source=source
        )
    hosts = _group_hosts(group, source, ALLOWLIST_GROUP)
    if not hosts:
        raise ValidationError("the group has no hosts", source=source, field=ALLOWLIST_GROUP)
    return tuple(dict.fromkeys(str(h) for h in hosts))


def load_allowlist(path: str) -> tuple[str, ...]:
    text, source = read_text_capped(path, MAX_SPEC_BYTES, what="inventory")
    return allowlist_from_data(load_yaml(text, source), source)


@dataclass(frozen=True)
class Targets:
    candidates: tuple[str, ...]
    selected: tuple[str, ...]


def resolve_targets(
    requested: Sequence[str] | None,
    allowlist: Sequence[str],
    blast: BlastRadius,
    *,
    rng: random.Random | None = None,
) -> Targets:
    """Candidates are ``requested`` (each must be on the allowlist) or the whole allowlist;
    the blast radius selects from them (COUNT and PERCENT at random, like AWS FIS) and the hard
    cap refuses a selection larger than ``max_nodes``."""
    if not allowlist:
        raise ValidationError("the allowlist is empty", field=ALLOWLIST_GROUP)
    if requested:
        outside = [n for n in requested if n not in allowlist]
        if outside:
            raise ValidationError(
                f"not in the {ALLOWLIST_GROUP} allowlist: {', '.join(outside)}", field="--targets"
            )
        candidates = tuple(dict.fromkeys(requested))
    else:
        candidates = tuple(allowlist)
    if blast.mode is BlastMode.ALL:
        count = len(candidates)
    elif blast.mode is BlastMode.COUNT:
        count = min(int(blast.value), len(candidates))
    else:
        count = max(1, math.floor(len(candidates) * blast.value / 100))
    if count > blast.max_nodes:
        raise ValidationError(
            f"{count} nodes selected, above the blast radius cap of {blast.max_nodes} "
            f"({blast.mode.value}); name fewer targets or raise max_nodes",
            field="x-sre.blast_radius",
        )
    chooser = rng or random.SystemRandom()
    selected = candidates if count == len(candidates) else tuple(chooser.sample(candidates, count))
    return Targets(candidates, tuple(sorted(selected)))


# --- lock and abort ---------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class LockHolder:
    run_id: str
    pid: int
    host: str
    operator: str
    started: float
    stale: bool  # the holder is a dead process on this host


class Safety:
    """The fleet lock and abort flags in the store file at ``path``."""

    def __init__(
        self,
        path: Path,
        *,
        host: str | None = None,
        alive: Callable[[int], bool] = pid_alive,
        clock: Callable[[], float] = time.time,
    ):
        from sre_tools.store import Store

        self.store = Store(path)
        self.host = host or socket.gethostname()
        self.alive = alive
        self.clock = clock
        with self.store.transaction() as cur:
            for statement in _TABLES.split(";"):
                cur.execute(statement)

    def close(self) -> None:
        self.store.close()

    def holder(self) -> LockHolder | None:
        with self.store.transaction() as cur:
            row = cur.execute(
                "SELECT run_id, pid, host, operator, started FROM drill_lock WHERE name = 'fleet'"
            ).fetchone()
        return None if row is None else self._holder(row)

    def _holder(self, row: Any) -> LockHolder:
        run_id, pid, host, operator, started = row
        stale = host == self.host and not self.alive(int(pid))
        return LockHolder(str(run_id), int(pid), str(host), str(operator), float(started), stale)

    def acquire(
        self, run_id: str, operator: str, *, break_stale: bool = False, takeover: bool = False
    ) -> LockHolder | None:
        """Take the fleet lock for ``run_id``; return the stale holder it replaced, if any.
        ``takeover``: a recovery of the same run may take its own dead run's lock."""
        with self.store.transaction() as cur:
            row = cur.execute(
                "SELECT run_id, pid, host, operator, started FROM drill_lock WHERE name = 'fleet'"
            ).fetchone()
            replaced = None
            if row is not None:
                replaced = self._holder(row)
                stale = replaced.stale
                own = takeover and replaced.run_id == run_id and stale
                if not (own or (stale and break_stale)):
                    raise DrillRefused(self._held_message(replaced))
            cur.execute(
                "INSERT OR REPLACE INTO drill_lock (name, run_id, pid, host, operator, started) "
                "VALUES ('fleet', ?, ?, ?, ?, ?)",
                (run_id, os.getpid(), self.host, operator, self.clock()),
            )
        return replaced

    def _held_message(self, h: LockHolder) -> str:
        if h.stale:
            return (
                f"the drill lock is stale: run {h.run_id} (pid {h.pid} on {h.host}) is not "
                f"running; finish its rollbacks with 'sre drill recover {h.run_id}', or take the "
                "lock with --break-stale-lock"
            )
        return (
            f"another drill holds the fleet lock: run {h.run_id} (pid {h.pid} on {h.host}, "
            f"operator {h.operator})"
        )

    def release(self, run_id: str) -> None:
        with self.store.transaction() as cur:
            cur.execute("DELETE FROM drill_lock WHERE name = 'fleet' AND run_id = ?", (run_id,))

    def set_abort(self, scope: str, reason: str, operator: str) -> None:
        with self.store.transaction() as cur:
            cur.execute(
                "INSERT OR REPLACE INTO drill_aborts (scope, reason, operator, at) "
                "VALUES (?, ?, ?, ?)",
                (scope, reason, operator, self.clock()),
            )

    def clear_abort(self, scope: str = ALL_RUNS) -> None:
        with self.store.transaction() as cur:
            cur.execute("DELETE FROM drill_aborts WHERE scope = ?", (scope,))

    def aborts(self) -> list[dict[str, Any]]:
        rows = self.store.query("SELECT scope, reason, operator, at FROM drill_aborts ORDER BY at")
        return [dict(zip(("scope", "reason", "operator", "at"), r, strict=True)) for r in rows]

    def abort_for(self, run_id: str) -> dict[str, Any] | None:
        """The abort flag that stops ``run_id`` (its own, or the fleet-wide one), if set."""
        for flag in self.aborts():
            if flag["scope"] in (ALL_RUNS, run_id):
                return flag
        return None


Precondition = Callable[[], str | None]  # returns a reason to refuse, or None


def check_preconditions(preconditions: Iterable[Precondition]) -> None:
    """Refuse on the first precondition that gives a reason, or that cannot be evaluated (a
    source that cannot be read fails closed: nothing may run)."""
    for check in preconditions:
        try:
            reason = check()
        except ValidationError:
            raise  # a bad spec file or option: invalid input (exit 2), not a refusal
        except (SreError, OSError) as exc:
            message = str(exc) if isinstance(exc, SreError) else f"{type(exc).__name__}: {exc}"
            raise DrillRefused(
                f"precondition could not be evaluated (fails closed): {message}"
            ) from None
        if reason:
            raise DrillRefused(f"precondition failed: {reason}")
