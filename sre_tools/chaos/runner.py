"""Run a drill: steady state -> method -> expectations -> rollbacks (always) -> steady state.

Rollbacks run however the run ends: success, a failed hypothesis, a deviation, a failed action, a
stop condition, an abort flag (``sre drill abort``), SIGINT and SIGTERM. While rollbacks run,
further signals are recorded and deferred. The steady state is checked again after the rollbacks.
A dry run (the default) journals every activity as ``skipped`` and touches nothing: no probe, no
action, no transport. A run killed with SIGKILL leaves its journal; :func:`recover` reads it and
runs the rollbacks that never finished.

Run statuses (``run-end``): ``passed``, ``dry-run``, ``failed`` (hypothesis or expectation not
met), ``error`` (an action failed, or a node could not be reached), ``aborted`` (abort flag or
stop condition), ``interrupted`` (SIGINT / SIGTERM). Orthogonal: ``rollbacks_ok`` and
``restored`` (steady state after rollbacks).

Times measured (journaled, then stored by :mod:`sre_tools.chaos.results`): each expectation's
``elapsed`` is from the end of the method's last action on its node (the fault in place) to its
first satisfied probe; ``run-end``'s ``recover_seconds`` is from the first rollback's start to
the steady state found restored. Expectations are polled side by side, so one waiting for its
deadline does not delay the first probe of another.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sre_tools.chaos import catalog
from sre_tools.chaos.journal import Journal, journal_path, of_type, read_events
from sre_tools.chaos.model import (
    Activity,
    Check,
    Experiment,
    parse_experiment,
    resolve_timing,
)
from sre_tools.chaos.safety import DrillRefused, Precondition, Safety, Targets, check_preconditions
from sre_tools.chaos.tolerance import within_tolerance
from sre_tools.exceptions import SreError, ValidationError
from sre_tools.health.xid.model import DRILL_RUN_ID_RE
from sre_tools.transport import ConnectError, LocalTransport, Transport, TransportError

# How the runner reaches a node by its name: local (the default: drills run on the node itself,
# and the tests) or a transport built from the inventory entry (SSH).
TransportFactory = Callable[[str], Transport]
# The command a run sends to every target before it acts, to find an unreachable node or a host
# key that does not match while nothing is done yet.
REACH_ARGV = ("true",)
REACH_TIMEOUT_SECONDS = 30.0


def local_factory(node: str) -> Transport:
    return LocalTransport()


_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
STOPPED = ("aborted", "interrupted")


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived during the run."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class Stopped(Exception):
    """The abort flag was set or a stop condition fired."""


class ActionFailed(Exception):
    pass


def new_run_id(clock: Callable[[], float] = time.time) -> str:
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(clock()))
    return f"drill-{stamp}-{secrets.token_hex(3)}"


def substitute(value: Any, variables: Mapping[str, Any]) -> Any:
    """``${name}`` in strings (recursively) from ``variables``; a whole-string ``${name}`` keeps the
    variable's type. An unknown name is a validation error."""
    if isinstance(value, str):
        whole = _VAR_RE.fullmatch(value)
        if whole:
            return _lookup(variables, whole.group(1))
        return _VAR_RE.sub(lambda m: str(_lookup(variables, m.group(1))), value)
    if isinstance(value, Mapping):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [substitute(v, variables) for v in value]
    return value


def _lookup(variables: Mapping[str, Any], name: str) -> Any:
    if name not in variables:
        raise ValidationError(f"${{{name}}} is not in the configuration", field="configuration")
    return variables[name]


def journal_config(variables: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration as the journal keeps it: a URL's userinfo (``user:pass@``) replaced
    by ``***`` (the journal is read by people and copied into tickets)."""
    from sre_tools.webclient import redact_url

    return {
        k: redact_url(v) if isinstance(v, str) and "://" in v and "@" in v else v
        for k, v in variables.items()
    }


def call_activity(
    activity: Activity, node: str, transport: Transport, run_id: str, variables: Mapping[str, Any]
) -> Any:
    """Run one activity on one node and return its output."""
    provider = activity.provider
    variables = {**variables, "node": node, "run_id": run_id}
    if provider.type == "process":
        argv = [str(substitute(provider.path, variables))]
        argv += [str(a) for a in substitute(list(provider.arguments or ()), variables)]
        result = transport.run(argv, provider.timeout)
        stdout = result.stdout.decode(errors="replace")
        stderr = result.stderr.decode(errors="replace")
        if activity.type == "action" and result.rc != 0:
            # An action that exits non-zero failed (a probe's status is judged by its tolerance).
            raise TransportError(
                f"{node}: {argv[0]} exited {result.rc}: {stderr.strip()}", target=transport.target
            )
        return {"status": result.rc, "stdout": stdout, "stderr": stderr}
    module = importlib.import_module(provider.module)
    func = getattr(module, provider.func, None)
    if not callable(func):
        raise ValidationError(
            f"{provider.module} has no function {provider.func!r}", field=activity.name
        )
    kwargs = dict(substitute(dict(provider.arguments or {}), variables))
    params = inspect.signature(func).parameters
    injected = {"node": node, "transport": transport, "run_id": run_id}
    for name, value in injected.items():
        if name in params and name not in kwargs:
            kwargs[name] = value
    return func(**kwargs)


@dataclass
class RunResult:
    run_id: str
    status: str
    journal: Path
    targets: tuple[str, ...]
    rollbacks_ok: bool = True
    restored: bool | None = None
    deviated: bool = False
    details: list[str] = field(default_factory=list)


class Runner:
    """One drill run. Everything from outside (transports, store, clock, sleep) is injected.

    ``inventory`` (a path) and ``transports`` (node -> ``local`` or ``user@host:port``, from
    :meth:`sre_tools.chaos.inventory.InventoryTransports.check`) are journaled in ``run-start``
    so that ``sre drill recover`` reaches the same nodes the same way; a run with a custom
    ``transport_factory`` and no ``transports`` needs ``--inventory`` to be recovered."""

    def __init__(
        self,
        experiment: Experiment,
        targets: Targets,
        *,
        safety: Safety,
        journal_dir: Path,
        execute: bool = False,
        operator: str = "",
        reason: str = "",
        variables: Mapping[str, Any] | None = None,
        transport_factory: TransportFactory = local_factory,
        preconditions: Sequence[Precondition] = (),
        break_stale_lock: bool = False,
        run_id: str | None = None,
        source: str = "",
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        poll_interval: float = 0.2,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        install_signals: bool = True,
        inventory: str | None = None,
        transports: Mapping[str, str] | None = None,
    ):
        self.targets = targets
        self.safety = safety
        self.execute = execute
        self.operator = operator
        self.reason = reason
        self.variables = {**experiment.configuration, **(variables or {})}
        # Deadlines and polls that name a configuration value take the run's value (--var).
        experiment = replace(
            experiment,
            expect=tuple(
                resolve_timing(c, self.variables, f"x-sre.expect[{i}]")
                for i, c in enumerate(experiment.expect)
            ),
        )
        self.experiment = experiment
        self.transport_factory = transport_factory
        self.preconditions = preconditions
        self.break_stale_lock = break_stale_lock
        self.run_id = run_id or new_run_id(clock)
        if not DRILL_RUN_ID_RE.fullmatch(self.run_id):  # it names the journal file and XID tags
            raise ValidationError(f"not a drill run id: {self.run_id!r}", field="run_id")
        self.source = source
        self.clock = clock
        self.sleep = sleep
        self.poll_interval = poll_interval
        self.on_event = on_event
        self.install_signals = install_signals
        self.inventory = inventory
        self.transports = dict(transports or {})
        self.journal_file = journal_path(journal_dir, self.run_id)
        self._journal: Journal | None = None
        self._unreachable: list[str] = []
        self._fault_at: dict[str, float] = {}
        # Nodes on which the method began (an action journaled as started): only those have
        # anything to roll back. A node whose steady state failed, or that a skip or an abort
        # reached first, is left exactly as it was (a rollback there could undo a real fault's
        # handling: resume a node remediation drained, inject DCGM's healthy value over a DBE).
        self._touched: set[str] = set()
        self._rollback_at: float | None = None
        self._transports: dict[str, Transport] = {}
        self._deferred: list[int] = []
        self._old_handlers: dict[int, Any] = {}

    # --- plumbing -------------------------------------------------------------------------

    def log(self, event: str, **details: Any) -> None:
        assert self._journal is not None
        record = self._journal.event(event, **details)
        if self.on_event is not None:
            self.on_event(record)

    def transport(self, node: str) -> Transport:
        if node not in self._transports:
            self._transports[node] = self.transport_factory(node)
        return self._transports[node]

    def close_transports(self) -> None:
        transports, self._transports = self._transports, {}
        for transport in transports.values():
            with suppress(TransportError):
                transport.close()

    def _main_thread(self) -> bool:
        return self.install_signals and threading.current_thread() is threading.main_thread()

    @contextmanager
    def _interruptible(self) -> Iterator[None]:
        """SIGINT and SIGTERM raise :class:`Interrupted` inside; on the way out (however it is
        left) they are deferred at once, with no moment of default handling in between, so the
        rollbacks that follow always run."""
        if not self._main_thread():
            yield
            return

        def interrupt(signum: int, frame: Any) -> None:
            raise Interrupted(signum)

        def defer(signum: int, frame: Any) -> None:
            self._deferred.append(signum)

        for s in (signal.SIGINT, signal.SIGTERM):
            self._old_handlers[s] = signal.signal(s, interrupt)
        try:
            yield
        finally:
            for s in (signal.SIGINT, signal.SIGTERM):
                signal.signal(s, defer)

    def _restore_signals(self) -> None:
        for s, handler in self._old_handlers.items():
            signal.signal(s, handler)
        self._old_handlers.clear()

    def _check_stop(self) -> None:
        if self.safety.lock_lost():
            reason = "the drill lock's database session was lost; another run may take the lock"
            self.log("abort", scope=self.run_id, reason=reason, operator="")
            raise Stopped(reason)
        flag = self.safety.abort_for(self.run_id)
        if flag is not None:
            self.log("abort", scope=flag["scope"], reason=flag["reason"], operator=flag["operator"])
            raise Stopped(f"aborted by {flag['operator'] or 'an operator'}: {flag['reason']}")
        if not self.execute:
            return
        for check in self.experiment.stop_conditions:
            for node in self.targets.selected:
                ok, value, error = self._probe(check.probe, check.tolerance, node, "stop-condition")
                if not ok:
                    self.log("stop-condition", name=check.name, node=node, value=value, error=error)
                    raise Stopped(f"stop condition {check.name!r} fired on {node}")

    def _wait(self, seconds: float) -> None:
        """Sleep ``seconds`` in slices, checking the abort flag and stop conditions."""
        deadline = self.clock() + seconds
        while True:
            self._check_stop()
            left = deadline - self.clock()
            if left <= 0:
                return
            self.sleep(min(self.poll_interval, left))

    def _note_unreachable(self, exc: BaseException) -> None:
        """A node that could not be reached (or whose host key did not match) makes the run an
        ``error`` whatever else happens: the drill proved nothing about that node."""
        if isinstance(exc, ConnectError) and str(exc) not in self._unreachable:
            self._unreachable.append(str(exc))

    def _probe(
        self, probe: Activity, tolerance: Any, node: str, phase: str
    ) -> tuple[bool, Any, str | None]:
        try:
            value = call_activity(probe, node, self.transport(node), self.run_id, self.variables)
        except (SreError, OSError, ValueError, TypeError) as exc:
            self._note_unreachable(exc)
            return False, None, f"{type(exc).__name__}: {exc}"
        return within_tolerance(tolerance, value), value, None

    # --- phases ---------------------------------------------------------------------------

    def hypothesis(self, when: str) -> bool | None:
        """The steady-state hypothesis on every target; ``None`` when skipped (dry run)."""
        probes: list[dict[str, Any]] = []
        met: bool | None = True
        for index, probe in enumerate(self.experiment.hypothesis):
            for node in self.targets.selected:
                if not self.execute:
                    probes.append({"name": probe.name, "node": node, "status": "skipped"})
                    continue
                assert probe.tolerance is not None
                ok, value, error = self._probe(probe, probe.tolerance, node, "hypothesis")
                self.log(
                    "probe-result",
                    phase=f"hypothesis-{when}",
                    index=index,
                    name=probe.name,
                    node=node,
                    value=value,
                    tolerance_met=ok,
                    error=error,
                )
                probes.append(
                    {"name": probe.name, "node": node, "output": value, "tolerance_met": ok}
                )
                met = met and ok
        if not self.execute:
            met = None
        self.log("hypothesis", when=when, met=met, probes=probes)
        return met

    def _perform(
        self, kind: str, phase: str, index: int, activity: Any, node: str, error_event: str
    ) -> tuple[str, Any, str | None]:
        """Journal one activity on one node, ``{kind}-start`` then ``{kind}-end`` (or
        ``error_event`` when it raises); a dry run journals it ``skipped``. Returns (status,
        output, error); a probe out of its tolerance is ``failed`` without an error."""
        fields = {"phase": phase, "index": index, "name": activity.name, "node": node}
        if phase == "method":
            self._touched.add(node)
        self.log(f"{kind}-start", **fields, activity=activity.to_ctk())
        if not self.execute:
            self.log(f"{kind}-end", **fields, status="skipped")
            return "skipped", None, None
        try:
            output = call_activity(
                activity, node, self.transport(node), self.run_id, self.variables
            )
        except (SreError, OSError, ValueError, TypeError) as exc:
            self._note_unreachable(exc)
            error = f"{type(exc).__name__}: {exc}"
            self.log(error_event, **fields, status="failed", error=error)
            return "failed", None, error
        status = "succeeded"
        if activity.type == "probe" and activity.tolerance is not None:
            status = "succeeded" if within_tolerance(activity.tolerance, output) else "failed"
        self.log(f"{kind}-end", **fields, status=status, output=output)
        return status, output, None

    def method(self) -> None:
        for index, activity in enumerate(self.experiment.method):
            for node in self.targets.selected:
                self._check_stop()
                if activity.pause_before and self.execute:
                    self._wait(activity.pause_before)
                status, _, error = self._perform(
                    "action", "method", index, activity, node, "action-error"
                )
                if error is not None:
                    raise ActionFailed(f"{activity.name} on {node}: {error}")
                self._fault_at[node] = self.clock()
                if activity.pause_after and status != "skipped":
                    self._wait(activity.pause_after)

    def expectations(self) -> bool | None:
        """Poll every expectation on every node side by side, each at its own ``poll`` interval
        until it holds or its ``within`` deadline passes."""
        if not self.execute:
            for check in self.experiment.expect:
                for node in self.targets.selected:
                    self.log("expectation", name=check.name, node=node, status="skipped")
            return None if self.experiment.expect else True
        started = self.clock()
        pending = [
            _Pending(check, node, started, started + check.within)
            for check in self.experiment.expect
            for node in self.targets.selected
        ]
        met = True
        while pending:
            self._check_stop()
            for item in [p for p in pending if p.next_at <= self.clock()]:
                ok = self._expect_once(item)
                now = self.clock()
                if ok or now >= item.deadline:
                    pending.remove(item)
                    self._log_expectation(item, ok, started, now)
                    met = met and ok
                else:
                    item.next_at = now + item.check.poll
            if pending:
                # Until the next probe is due; the abort flag and stop conditions are checked
                # before each round of probes, as often as the shortest poll.
                wait = min(p.next_at for p in pending) - self.clock()
                if wait > 0:
                    self.sleep(wait)
        return met

    def _expect_once(self, item: _Pending) -> bool:
        check, node = item.check, item.node
        ok, value, error = self._probe(check.probe, check.tolerance, node, "expect")
        self.log(
            "probe-result",
            phase="expect",
            name=check.name,
            node=node,
            value=value,
            tolerance_met=ok,
            error=error,
        )
        return ok

    def _log_expectation(self, item: _Pending, ok: bool, started: float, now: float) -> None:
        check, node = item.check, item.node
        fault_at = self._fault_at.get(node, started)
        self.log(
            "expectation",
            name=check.name,
            node=node,
            met=ok,
            within=check.within,
            seconds=round(now - started, 3) if ok else None,
            elapsed=round(now - fault_at, 3) if ok else None,
            measures=check.measures,
            status="succeeded" if ok else "failed",
        )

    def rollbacks(self, done: set[tuple[int, str]] = frozenset()) -> bool:  # type: ignore[assignment]
        """Run every rollback on every target the method began on, except those in ``done``; a
        failure is journaled and the others still run. Returns whether all succeeded (or were
        skipped in a dry run)."""
        ok = True
        self._rollback_at = self.clock()
        for index, activity in enumerate(self.experiment.rollbacks):
            for node in self.targets.selected:
                if (index, node) in done or node not in self._touched:
                    continue
                status, _, _ = self._perform(
                    "rollback", "rollback", index, activity, node, "rollback-end"
                )
                ok = ok and status != "failed"
        return ok

    # --- the run --------------------------------------------------------------------------

    def _start_checks(self) -> Any:
        flag = self.safety.abort_for(self.run_id)
        if flag is not None:
            raise DrillRefused(
                f"the drill abort switch is set ({flag['reason']}, by {flag['operator'] or '?'}); "
                "clear it with 'sre drill abort --clear' before a new drill"
            )
        check_preconditions(self.preconditions)
        if self.execute:
            self._reach()
        try:
            return self.safety.acquire(
                self.run_id, self.operator, break_stale=self.break_stale_lock
            )
        except BaseException:
            self.close_transports()
            raise

    def _reach(self) -> None:
        """Open every target's transport (``true``) before anything is done: an unreachable node
        or a host key that does not match is a one-line error, and the run writes nothing."""
        try:
            for node in self.targets.selected:
                result = self.transport(node).run(list(REACH_ARGV), REACH_TIMEOUT_SECONDS)
                if result.rc != 0:
                    raise TransportError(
                        f"{node}: 'true' exited {result.rc}", target=self.transport(node).target
                    )
        except TransportError:
            self.close_transports()
            raise

    def run(self) -> RunResult:
        replaced = self._start_checks()
        result = RunResult(self.run_id, "passed", self.journal_file, self.targets.selected)
        try:
            self._journal = Journal(self.journal_file, self.run_id, clock=self.clock)
            self.log(
                "run-start",
                execute=self.execute,
                operator=self.operator,
                reason=self.reason,
                source=self.source,
                host=socket.gethostname(),
                pid=os.getpid(),
                config=journal_config(self.variables),
                experiment=self.experiment.to_ctk(),
                broke_stale_lock=replaced.run_id if replaced else None,
                inventory=self.inventory,
                transports=self.transports or None,
            )
            self.log(
                "targets-resolved",
                nodes=list(self.targets.selected),
                candidates=list(self.targets.candidates),
                blast_radius=self.experiment.blast_radius.to_dict(),
            )
            try:
                with self._interruptible():
                    self._run_phases(result)
            except Interrupted as exc:
                result.status = "interrupted"
                result.details.append(f"interrupted by {exc}")
            finally:
                try:
                    self._finish(result, set())
                finally:
                    self._restore_signals()
        finally:
            self.close_transports()
            if self._journal is not None:
                self._journal.close()
            self.safety.release(self.run_id)
        return result

    def _run_phases(self, result: RunResult) -> None:
        try:
            self._check_stop()
            if self.execute:
                # A drill whose requirement (a command such as dcgmi) is missing on a target does
                # not apply there: skipped with the reason, nothing injected. A requirement that
                # cannot be checked (a timeout, a lost connection) is an error, not a skip.
                try:
                    skip = catalog.skip_reason(
                        self.experiment, self.targets.selected, self.transport, self.run_id,
                        self.variables,
                    )  # fmt: skip
                except SreError as exc:
                    result.status = "error"
                    result.details.append(f"requirement not checked: {exc}")
                    return
                if skip:
                    result.status = "skipped"
                    result.details.append(skip)
                    return
            before = self.hypothesis("before")
            if before is False:
                result.status = "failed"
                result.details.append("steady state not met before the method: nothing injected")
                return
            self.method()
            # The fault is still in place here (a drained node, an XID line): the steady state
            # is judged again after the rollbacks, not now.
            if self.expectations() is False:
                result.status = "failed"
                result.details.append("an expectation was not met within its deadline")
            if not self.execute:
                result.status = "dry-run"
        except ActionFailed as exc:
            result.status = "error"
            result.details.append(str(exc))
        except Stopped as exc:
            result.status = "aborted"
            result.details.append(str(exc))

    def _finish(self, result: RunResult, done: set[tuple[int, str]]) -> None:
        result.rollbacks_ok = self.rollbacks(done)
        if self.experiment.hypothesis and self._touched:
            # Judged again only where the method began: a node the run never touched is as it
            # was (a steady state that failed before still fails, and says nothing new).
            result.restored = self.hypothesis("after-rollback")
        recover_seconds = None
        if result.restored and self._rollback_at is not None:
            recover_seconds = round(self.clock() - self._rollback_at, 3)
        if self._unreachable:
            if result.status in ("passed", "failed"):
                result.status = "error"
            result.details.append(f"unreachable: {self._unreachable[0]}")
        if result.restored is False:
            result.deviated = True
            result.details.append("steady state not restored after the rollbacks")
        if self._deferred:
            names = ", ".join(signal.Signals(s).name for s in self._deferred)
            result.details.append(f"{names} received during rollbacks (deferred)")
        self.log(
            "run-end",
            status=result.status,
            deviated=result.deviated,
            rollbacks_ok=result.rollbacks_ok,
            restored=result.restored,
            details=result.details,
            recover_seconds=recover_seconds,
        )


@dataclass
class _Pending:
    """An expectation on one node still being polled."""

    check: Check
    node: str
    next_at: float
    deadline: float


def outstanding_rollbacks(events: list[dict[str, Any]]) -> tuple[set[tuple[int, str]], bool]:
    """``(rollbacks already done as (index, node), whether the run ended cleanly)``."""
    done = {
        (int(e["index"]), str(e["node"]))
        for e in of_type(events, "rollback-end")
        if e.get("status") in ("succeeded", "skipped")
    }
    end = next(of_type(events, "run-end"), None)
    clean = end is not None and bool(end.get("rollbacks_ok"))
    return done, clean


def recover(
    path: Path,
    *,
    safety: Safety,
    operator: str = "",
    transport_factory: TransportFactory = local_factory,
    on_event: Callable[[dict[str, Any]], None] | None = None,
    clock: Callable[[], float] = time.time,
    break_stale: bool = False,
) -> RunResult:
    """Finish the rollbacks of a run that never did (it was killed), from its journal, appending
    to the same journal. A run that ended with every rollback done is left alone. Its lock is
    taken over when its holder is dead (this host, pid gone); ``break_stale``: also when it
    is only possibly dead (another host, session ended: see :mod:`sre_tools.chaos.safety`)."""
    events = read_events(path)
    start = events[0]
    run_id = str(start["run_id"])
    done, clean = outstanding_rollbacks(events)
    nodes = next((tuple(e["nodes"]) for e in of_type(events, "targets-resolved")), ())
    if clean:
        end = next(of_type(events, "run-end"))
        return RunResult(
            run_id, "nothing-to-recover", path, nodes, details=[f"run ended {end['status']}"]
        )
    experiment = parse_experiment(start["experiment"])
    runner = Runner(
        experiment,
        Targets(nodes, nodes),
        safety=safety,
        journal_dir=path.parent,
        execute=bool(start.get("execute")),
        operator=operator,
        reason="recover",
        variables=start.get("config") or {},
        transport_factory=transport_factory,
        run_id=run_id,
        clock=clock,
        on_event=on_event,
        install_signals=False,
    )
    runner.journal_file = path
    if runner.execute:
        # Every node must answer before the lock is taken over: an unreachable one is a one-line
        # error, the journal is left as it was, and the stale lock keeps refusing new drills.
        runner._reach()
    try:
        safety.acquire(run_id, operator, takeover=True, break_stale=break_stale)
    except BaseException:
        runner.close_transports()
        raise
    # Only the nodes the method began on have anything to roll back (see Runner._touched).
    runner._touched = {
        str(e["node"]) for e in of_type(events, "action-start") if e.get("phase") == "method"
    }
    result = RunResult(run_id, "recovered", path, nodes)
    try:
        runner._journal = Journal(path, run_id, clock=clock)
        runner.log(
            "recover",
            operator=operator,
            outstanding=len(experiment.rollbacks) * len(runner._touched) - len(done),
        )
        runner._finish(result, done)
    finally:
        runner.close_transports()
        if runner._journal is not None:
            runner._journal.close()
        safety.release(run_id)
    return result
