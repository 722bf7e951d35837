"""Safety of a drill run: the allowlist, the blast radius, one fleet lock, the abort switch and
preconditions.

The lock and the abort flags live in tables of the store (the SQLite file or the PostgreSQL
database ``sre sli`` and ``sre incident`` use), so every process on the controller, and every
controller sharing a PostgreSQL store, sees them. A lock left by a dead holder is detected and
reported, never taken silently, and a live holder is never broken:

- a holder on this host is alive while its pid is (whatever its database session says): only a
  gone pid makes it ``dead``, which ``sre drill recover`` (``takeover``) or ``--break-stale-lock``
  may take;
- a holder on another host (PostgreSQL) is ``live`` while it holds its session-level advisory
  lock; when that session has ended, the server cannot tell a dead process from a dropped
  connection, so the holder is ``unknown`` (possibly dead): only ``--break-stale-lock``, an
  operator's explicit act after checking that host, takes it; ``recover`` alone does not;
- a running drill checks its own session lock at each abort poll; if it has lost it, it stops and
  rolls back (journaled), so it never keeps acting under a lock another run may have taken.
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
from sre_tools.text import printable

ALLOWLIST_GROUP = "chaos_targets"
ALL_RUNS = "*"


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
        return _host_names(nodes, source)
    group = _find_group(data, ALLOWLIST_GROUP)
    if group is None:
        raise ValidationError(
            f"no {ALLOWLIST_GROUP} group: list the nodes drills may touch there", source=source
        )
    hosts = _group_hosts(group, source, ALLOWLIST_GROUP)
    if not hosts:
        raise ValidationError("the group has no hosts", source=source, field=ALLOWLIST_GROUP)
    return _host_names([str(h) for h in hosts], source)


def _host_names(names: Sequence[str], source: str) -> tuple[str, ...]:
    """The allowlist's names, each a host name as Slurm and ssh take it (letters, digits, '.',
    '_', '-', starting with a letter or digit): they go into scontrol and ssh argv, URLs and
    terminal lines, so a path ('../../etc'), an option or an escape sequence is refused."""
    from sre_tools.remediation.runner import validate_host

    for name in names:
        try:
            validate_host(name, field=ALLOWLIST_GROUP)
        except ValidationError as exc:
            raise exc.at(source) from None
    return tuple(dict.fromkeys(names))


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
            shown = ", ".join(printable(n) for n in outside)
            raise ValidationError(
                f"not in the {ALLOWLIST_GROUP} allowlist: {shown}", field="--targets"
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
    stale: bool  # not known to be alive: ``state`` is dead or unknown
    state: str = "live"  # live; dead (this host, pid gone); unknown (elsewhere, session gone)


# The session-level advisory lock a live drill holds on PostgreSQL for its whole run.
FLEET_SESSION_LOCK = 0x53524500_00000D01


class Safety:
    """The fleet lock and abort flags in the store file at ``path``."""

    def __init__(
        self,
        path: Path | str,
        *,
        host: str | None = None,
        alive: Callable[[int], bool] = pid_alive,
        clock: Callable[[], float] = time.time,
    ):
        from sre_tools.store import Store

        self.store = Store(path)
        self._holding = False  # this process took the lock (and its session lock)
        self.host = host or socket.gethostname()
        self.alive = alive
        self.clock = clock

    def close(self) -> None:
        self.store.close()

    def holder(self) -> LockHolder | None:
        with self.store.transaction() as cur:
            row = cur.execute(
                "SELECT run_id, pid, host, operator, started FROM drill_lock WHERE name = 'fleet'"
            ).fetchone()
        return None if row is None else self._holder(row)

    def _holder(self, row: Any, *, session_ours: bool = False) -> LockHolder:
        """``session_ours``: this process holds the session lock (PostgreSQL), so no other
        session does. A holder on this host is judged by its pid alone; one elsewhere, by its
        session (and then never called dead: see the module)."""
        run_id, pid, host, operator, started = row
        if host == self.host:
            state = "live" if self.alive(int(pid)) else "dead"
        elif not self.store.postgres:
            state = "live"  # a SQLite file is one machine's: nothing to judge it by
        else:
            held = False if session_ours else self.store.session_lock_held(FLEET_SESSION_LOCK)
            state = "live" if held else "unknown"
        return LockHolder(
            str(run_id), int(pid), str(host), str(operator), float(started), state != "live", state
        )

    def acquire(
        self, run_id: str, operator: str, *, break_stale: bool = False, takeover: bool = False
    ) -> LockHolder | None:
        """Take the fleet lock for ``run_id``; return the stale holder it replaced, if any.
        ``takeover``: a recovery of the same run may take its own dead run's lock.

        On PostgreSQL the run first takes the session lock that proves it alive; another live
        holder's session refuses it at once."""
        if not self.store.hold_session_lock(FLEET_SESSION_LOCK):
            row = self.store.query(
                "SELECT run_id, pid, host, operator, started FROM drill_lock WHERE name = 'fleet'"
            )
            if row:
                raise DrillRefused(self._held_message(self._holder(row[0])))
            raise DrillRefused("another drill is taking the fleet lock right now")
        try:
            return self._acquire(run_id, operator, break_stale=break_stale, takeover=takeover)
        except BaseException:
            self.store.drop_session_lock(FLEET_SESSION_LOCK)
            raise

    def _acquire(
        self, run_id: str, operator: str, *, break_stale: bool, takeover: bool
    ) -> LockHolder | None:
        with self.store.transaction() as cur:
            row = cur.execute(
                "SELECT run_id, pid, host, operator, started FROM drill_lock WHERE name = 'fleet'"
            ).fetchone()
            replaced = None
            if row is not None:
                replaced = self._holder(row, session_ours=self.store.postgres)
                own = takeover and replaced.run_id == run_id and replaced.state == "dead"
                if not (own or (replaced.stale and break_stale)):
                    raise DrillRefused(self._held_message(replaced))
            cur.execute(
                "INSERT INTO drill_lock (name, run_id, pid, host, operator, started) "
                "VALUES ('fleet', ?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "run_id = excluded.run_id, pid = excluded.pid, host = excluded.host, "
                "operator = excluded.operator, started = excluded.started",
                (run_id, os.getpid(), self.host, operator, self.clock()),
            )
        self._holding = True
        return replaced

    def lock_lost(self) -> bool:
        """Has this process, holding the lock, lost its session lock (PostgreSQL: its lock
        connection dropped or was ended)? Another run may then take the lock."""
        if not (self.store.postgres and self._holding):
            return False
        return not self.store.session_lock_ours(FLEET_SESSION_LOCK)

    def _held_message(self, h: LockHolder) -> str:
        if h.state == "unknown":
            return (
                f"the drill lock may be stale: run {h.run_id} (pid {h.pid} on {h.host}) holds "
                "no database session (its process died, or its connection dropped); check that "
                f"it no longer runs on {h.host}, then take the lock with --break-stale-lock "
                f"('sre drill recover {h.run_id} --break-stale-lock' finishes its rollbacks)"
            )
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
        self._holding = False
        self.store.drop_session_lock(FLEET_SESSION_LOCK)

    def set_abort(self, scope: str, reason: str, operator: str) -> None:
        with self.store.transaction() as cur:
            cur.execute(
                "INSERT INTO drill_aborts (scope, reason, operator, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (scope) DO UPDATE SET reason = excluded.reason, "
                "operator = excluded.operator, at = excluded.at",
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
