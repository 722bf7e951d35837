"""The remediation engine: guardrails first, then Slurm and the node; every decision audited.

Both front ends (the Ansible playbook and the Salt reactor) call this, through the CLI or in
Python::

    rem = Remediator.from_paths(config_path, state_path, audit_path, dry_run=False)
    decision = rem.handle_event(event_data)            # untrusted dict: validated here
    decision = rem.handle(request_from_report(report))  # our own health report
    decision = rem.try_resume("gpu07", fresh_report)

Dry run is the default: reads happen (Slurm state, budget), nothing changes, and the decision
says what would have been done.

What :meth:`Remediator.handle` does with a request, in order:

1. plan the action (nothing for ``none``/``restart_app``; drain + notify for hands-on actions;
   drain then a node-side command for reset, reboot, fabric manager restart);
2. de-duplicate by event id (remembered in the state file);
3. ask Slurm about the node: someone else's drain or down reason is never touched;
4. for a node we do not hold: per-node cooldown and the drain budget are checked, and the drain
   reserved, in one SQLite transaction; then ``scontrol`` drains it with our reason prefix;
5. once the node is drained *and idle*, claim the node-side action (once per drain, repeats only
   after the cooldown and up to ``max_actions_per_drain``) and run it. A node still running jobs
   is left draining: the next event for it (Salt's beacon fires again, Ansible runs again)
   finishes the job.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from sre_tools.exceptions import SreError, StoreError, ValidationError
from sre_tools.health.model import Action, HealthReport
from sre_tools.inputs import load_json
from sre_tools.remediation import guardrails
from sre_tools.remediation.actions import (
    LogNotifier,
    NodeActions,
    Notifier,
    WebhookNotifier,
    action_argvs,
)
from sre_tools.remediation.audit import AuditLog
from sre_tools.remediation.config import (
    RemediationConfig,
    default_audit_path,
    default_state_path,
    load_config,
)
from sre_tools.remediation.errors import ActionError, NotifyError, SlurmError, UnknownNodeError
from sre_tools.remediation.evidence import DiagLookup
from sre_tools.remediation.guardrails import NodeOwner, Plan, Refusal
from sre_tools.remediation.model import (
    MAX_EVENT_JSON_BYTES,
    Decision,
    DiagEvidence,
    Outcome,
    RemediationRequest,
    decision,
    request_from_event,
    validate_node,
    validate_text,
)
from sre_tools.remediation.runner import LocalRunner, Runner, SshRunner, validate_host
from sre_tools.remediation.slurm import NodeInfo, SlurmClient
from sre_tools.remediation.state import DrainRecord, RemediationState

Clock = Callable[[], float]
RECONCILE_INTERVAL_SECONDS = 30.0
_HANDS_ON = frozenset(a.value for a in guardrails.HANDS_ON)


class Remediator:
    """Apply the guardrails to remediation requests, then drain, act, notify, resume."""

    def __init__(
        self,
        config: RemediationConfig | None,
        slurm: SlurmClient | None,
        state_path: Path | str,
        audit_path: Path | str,
        *,
        clock: Clock = time.time,
        runner: Runner | None = None,
        notifier: Notifier | None = None,
        dry_run: bool = True,
        diag_lookup: DiagLookup | None = None,
    ):
        self.config = config or RemediationConfig()
        # Where a resume that needs a diagnostic looks for one when none passing is given.
        self.diag_lookup = diag_lookup
        self.slurm = slurm or SlurmClient(timeout=self.config.slurm_timeout_seconds)
        self.state = RemediationState(state_path)
        self.audit = AuditLog(audit_path)
        self.clock = clock
        self.runner: Runner = runner or LocalRunner()
        if notifier is None:
            notifier = (
                WebhookNotifier(
                    self.config.notify_webhook, timeout=self.config.notify_timeout_seconds
                )
                if self.config.notify_webhook
                else LogNotifier()
            )
        self.notifier = notifier
        self.dry_run = dry_run
        self._lock = threading.Lock()
        self._topology: dict[str, tuple[str, ...]] | None = None
        self._topology_at = 0.0
        self._last_reconcile: float | None = None

    @classmethod
    def from_paths(
        cls,
        config_path: Path | str | None = None,
        state_path: Path | str | None = None,
        audit_path: Path | str | None = None,
        *,
        controller: str | None = None,
        slurm_conf: Path | str | None = None,
        dry_run: bool = True,
        diag_lookup: DiagLookup | None = None,
    ) -> Remediator:
        """The engine every front end runs (the CLI, Salt's ``gpu`` module and its runner).

        ``config_path`` None: ``$SRE_REMEDIATION_CONFIG``, else the built-in defaults; state and
        audit paths None: :func:`default_state_path` / :func:`default_audit_path`. Slurm commands
        run here, or through ssh on ``controller``, with ``SLURM_CONF=slurm_conf`` when given.
        """
        cfg = load_config(Path(config_path) if config_path else None)
        if controller is not None:
            validate_host(controller, field="controller")
        slurm = SlurmClient(
            timeout=cfg.slurm_timeout_seconds, controller=controller, slurm_conf=slurm_conf
        )
        return cls(
            cfg,
            slurm,
            state_path or default_state_path(),
            audit_path or default_audit_path(),
            dry_run=dry_run,
            diag_lookup=diag_lookup,
        )

    # --- public API ---------------------------------------------------------------------------

    def handle_event(self, raw: object) -> Decision:
        """Validate an untrusted event and handle it. An invalid event is refused and audited
        (code ``invalid_event``), never acted on and never echoed anywhere unescaped."""
        try:
            request = request_from_event(raw)
        except ValidationError as exc:
            return self._invalid(exc)
        return self.handle(request)

    def handle_event_json(self, text: str) -> Decision:
        """An event as JSON text (a file, stdin, a Salt event body): garbage, oversized or
        invalid JSON is refused and audited like any invalid event."""
        size = len(text.encode("utf-8", errors="replace"))
        if size > MAX_EVENT_JSON_BYTES:
            return self._invalid(
                ValidationError(f"event too large ({size} bytes, at most {MAX_EVENT_JSON_BYTES})")
            )
        try:
            data = load_json(text, "<event>")
        except ValidationError as exc:
            # Duplicate keys, deep nesting, NaN: refused like any invalid event, field named.
            return self._invalid(ValidationError(exc.reason, field=exc.field))
        return self.handle_event(data)

    def refuse_event(self, reason: str, *, field: str | None = None) -> Decision:
        """Refuse and audit an event a front end found forged or malformed before validation
        (e.g. a Salt minion reporting on another node)."""
        return self._invalid(ValidationError(reason, field=field))

    def _invalid(self, exc: ValidationError) -> Decision:
        refused = Decision(
            Outcome.REFUSED, "invalid_event", f"event refused: {exc}"[:1000], at=self.clock()
        )
        self.audit.write(refused, None, dry_run=self.dry_run, extra={"field": exc.field})
        return refused

    def handle(self, request: RemediationRequest, *, drain_only: bool = False) -> Decision:
        """Decide on one validated request and carry it out (unless dry run); audit it.

        Guardrail refusals are decisions. Runtime failures (scontrol, nvidia-smi, the state
        file) are audited as ``failed`` and raised as :class:`SreError`.
        """
        now = self.clock()
        try:
            result = self._handle(request, now, drain_only)
        except SreError as exc:
            self._audit_failure(exc, request, request.node, now)
            raise
        self.audit.write(result, request, dry_run=self.dry_run)
        return result

    def drain(
        self, node: str, reason: str, *, event_id: str | None = None, source: str = "manual"
    ) -> Decision:
        """A manual drain through the same guardrails (operator drains, budget, cooldown)."""
        request = RemediationRequest(
            node=validate_node(node),
            action=Action.NONE,
            event_id=event_id or f"manual:{node}:{uuid.uuid4().hex[:12]}",
            reason=reason,
            source=source,
        )
        return self.handle(request, drain_only=True)

    def try_resume(
        self, node: str, fresh_report: HealthReport, diags: Sequence[DiagEvidence] = ()
    ) -> Decision:
        """Resume ``node`` if we drained it and ``fresh_report`` shows it healthy again.

        ``diags``: diagnostic runs offered as more proof; each must pass, and after a GPU reset
        one must be a passing DCGM run of ``resume_diag_level_after_reset`` since the reset.
        """
        node = validate_node(node)
        now = self.clock()
        try:
            result = self._resume(node, fresh_report, now, tuple(diags))
        except SreError as exc:
            self._audit_failure(exc, None, node, now)
            raise
        self.audit.write(result, None, dry_run=self.dry_run, extra={"source": "resume"})
        return result

    def annotate(self, node: str, text: str) -> Decision:
        """Say in a drain we hold why the node stays drained (``sinfo -R``): the reason keeps its
        prefix, label and event id, ``text`` replaces what follows (a failed acceptance's
        finding). The node stays drained; an operator's drain is never touched. Audited."""
        node = validate_node(node)
        text = validate_text(text, field="reason")
        now = self.clock()

        def answer(
            outcome: Outcome, code: str, message: str, cmds: Sequence[Sequence[str]] = ()
        ) -> Decision:
            return Decision(
                outcome, code, message, node=node, at=now, commands=tuple(tuple(c) for c in cmds)
            )

        try:
            try:
                info = self.slurm.show_node(node)
            except UnknownNodeError as exc:
                result = answer(Outcome.REFUSED, "unknown_node", str(exc))
            else:
                result = self._annotate(node, text, info, answer)
        except SreError as exc:
            self._audit_failure(exc, None, node, now)
            raise
        self.audit.write(result, None, dry_run=self.dry_run, extra={"source": "annotate"})
        return result

    def _annotate(
        self, node: str, text: str, info: NodeInfo, answer: Callable[..., Decision]
    ) -> Decision:
        prefix = self.config.reason_prefix
        if not info.drained:
            return answer(Outcome.REFUSED, "not_drained", f"{node} is {info.state_text}")
        if not guardrails.owned(info.reason, prefix):
            return answer(
                Outcome.REFUSED,
                "operator_drain",
                f"{node} was drained by someone else (reason {info.reason!r}): left alone",
            )
        reason = guardrails.reworded_reason(prefix, str(info.reason), text)
        argv = self.slurm.drain_argv(node, reason)
        if self.dry_run:
            return answer(Outcome.DRY_RUN, "would_annotate", f"would set reason {reason!r}", [argv])
        self.slurm.drain(node, reason)
        return answer(Outcome.ACTED, "annotated", f"{node} stays drained: {reason}", [argv])

    def resume_diag_level(self, node: str) -> int:
        """The DCGM level a resume of ``node`` needs a passing diagnostic of now (0: none): a
        front end asks before it spends minutes running one."""
        node = validate_node(node)
        try:
            reason = self.slurm.show_node(node).reason
        except UnknownNodeError:
            reason = None
        need = self._diag_requirement(node, self.state.get_drain(node), reason)
        return int(need["required_level"])

    def reconcile(self) -> list[str]:
        """Let go of drains Slurm no longer shows as ours (an operator resumed the node or
        replaced our reason). Returns the nodes released (none are released in a dry run)."""
        # Order matters: our confirmed drains first, Slurm second. A drain is confirmed only
        # after scontrol returned, so a later sinfo that does not show it as ours means someone
        # changed it; the other order could release a drain confirmed in between.
        confirmed = [rec for rec in self.state.drains() if rec.status == "drained"]
        owned_now: set[str] = set()
        for row in self.slurm.sinfo_rows():
            if guardrails.owned(row.reason, self.config.reason_prefix):
                owned_now.add(row.node)
        released = []
        for rec in confirmed:
            if rec.node not in owned_now and (self.dry_run or self.state.release_stale(rec)):
                released.append(rec.node)
        return released

    def status(self) -> dict[str, Any]:
        """Our drains and the budget they use, next to what Slurm shows."""
        from sre_tools.timeutil import iso

        cfg = self.config
        rows = self.slurm.sinfo_rows()
        topology: dict[str, set[str]] = {}
        drained_all: dict[str, int] = {}
        reasons: dict[str, str | None] = {}
        for row in rows:
            topology.setdefault(row.partition, set()).add(row.node)
            drained_all.setdefault(row.partition, 0)
            if row.drained:
                drained_all[row.partition] += 1
            reasons[row.node] = row.reason
        total, by_partition = self.state.usage()
        drains = []
        for rec in self.state.drains():
            item: dict[str, Any] = rec.to_dict()
            for key in ("reserved_at", "drained_at", "last_action_at"):
                item[key] = iso(item[key])
            item["slurm_reason"] = reasons.get(rec.node)
            item["in_slurm"] = guardrails.owned(reasons.get(rec.node), cfg.reason_prefix)
            drains.append(item)
        partitions = [
            {
                "partition": p,
                "nodes": len(members),
                "drained_by_us": by_partition.get(p, 0),
                "limit": guardrails.partition_limit(len(members), cfg.max_drained_percent),
                "drained_total": drained_all.get(p, 0),
            }
            for p, members in sorted(topology.items())
        ]
        return {
            "dry_run": self.dry_run,
            "reason_prefix": cfg.reason_prefix,
            "budget": {
                "drained_by_us": total,
                "max_drained_nodes": cfg.max_drained_nodes,
                "max_drained_percent": cfg.max_drained_percent,
            },
            "partitions": partitions,
            "drains": drains,
        }

    # --- internals ----------------------------------------------------------------------------

    def _stored_diag(
        self, node: str, given: tuple[DiagEvidence, ...], need: Mapping[str, Any]
    ) -> tuple[DiagEvidence, ...]:
        """The newest stored DCGM run the requirement asks for, when none given satisfies it."""
        level = int(need["required_level"])
        if not level or self.diag_lookup is None:
            return ()
        since = need["since"]
        cutoff = None if since is None else math.floor(float(since))
        for d in given:
            if d.kind == "dcgm" and d.level >= level and (cutoff is None or d.at >= cutoff):
                return ()
        found = self.diag_lookup(node, level, cutoff)
        return () if found is None else (found,)

    def _diag_requirement(
        self, node: str, record: DrainRecord | None, reason: str | None = None
    ) -> dict[str, Any]:
        """What diagnostic a resume of ``node`` needs: after a GPU reset during our drain, a
        passing DCGM run of the configured level since the reset; for a node a diagnostic
        drained (the Slurm hooks' ``sre: diag ...`` reason, ``reason`` being Slurm's), a
        passing run of at least the level that failed (the newest counts: the failed run is in
        the store too); otherwise none."""
        from sre_tools.timeutil import iso

        level = self.config.resume_diag_level_after_reset
        reset_at = _reset_at(record)
        if level and reset_at is not None and record is not None:
            return {
                "required_level": level,
                "since": reset_at,
                "why": f"{record.action} ran on {node} at {iso(reset_at)}",
            }
        failed = guardrails.diag_level_in_reason(reason, self.config.reason_prefix)
        if failed:
            return {
                "required_level": failed,
                "since": None if record is None else record.drained_at,
                "why": f"{node} was drained by a failed diagnostic ({reason})",
            }
        return {"required_level": 0, "since": None, "why": ""}

    def _decide(
        self,
        outcome: Outcome,
        code: str,
        message: str,
        request: RemediationRequest,
        now: float,
        commands: Sequence[Sequence[str]] = (),
        notified: bool = False,
    ) -> Decision:
        return decision(
            outcome, code, message, request, at=now, commands=commands, notified=notified
        )

    def _refuse(self, refusal: Refusal, request: RemediationRequest, now: float) -> Decision:
        return self._decide(Outcome.REFUSED, refusal.code, refusal.message, request, now)

    def _audit_failure(
        self, exc: SreError, request: RemediationRequest | None, node: str, now: float
    ) -> None:
        if isinstance(exc, SlurmError):
            code = "slurm_failed"
        elif isinstance(exc, ActionError):
            code = "action_failed"
        elif isinstance(exc, StoreError):
            code = "state_failed"
        elif isinstance(exc, ValidationError):
            code = "invalid_input"
        else:
            code = "failed"
        failed = Decision(
            Outcome.FAILED,
            code,
            str(exc)[:1000],
            node=node,
            action=None if request is None else request.action,
            event_id=None if request is None else request.event_id,
            at=now,
        )
        with contextlib.suppress(StoreError):  # the original error is what the caller must see
            self.audit.write(failed, request, dry_run=self.dry_run)

    def node_actions(self, node: str) -> NodeActions:
        """Commands for ``node``: on it through ssh, or here when the engine runs on the node."""
        runner: Runner = self.runner
        if self.config.node_exec == "ssh":
            runner = SshRunner(node, base=self.runner)
        return NodeActions(runner, timeout=self.config.action_timeout_seconds)

    def _node_partitions(self, node: str, now: float) -> dict[str, int]:
        """Partitions of ``node`` and their sizes, from a cached ``sinfo`` (topology TTL)."""
        with self._lock:
            stale = now - self._topology_at > self.config.topology_ttl_seconds
            if self._topology is None or stale:
                self._topology = self.slurm.partitions()
                self._topology_at = now
            parts = {p: len(n) for p, n in self._topology.items() if node in n}
            if not parts and not stale:  # a node added since the last look
                self._topology = self.slurm.partitions()
                self._topology_at = now
                parts = {p: len(n) for p, n in self._topology.items() if node in n}
            return parts

    def _reconcile_due(self, now: float) -> bool:
        with self._lock:
            if self._last_reconcile is not None and (
                now - self._last_reconcile < RECONCILE_INTERVAL_SECONDS
            ):
                return False
            self._last_reconcile = now
            return True

    def _notify(self, request: RemediationRequest, message: str, now: float) -> tuple[bool, str]:
        if self.dry_run:
            return False, " (would notify)"
        from sre_tools.timeutil import iso

        payload: Mapping[str, Any] = {
            "node": request.node,
            "action": request.action.value,
            "event_id": request.event_id,
            "message": message,
            "reason": request.reason,
            "checks": list(request.checks),
            "gpus": list(request.gpus),
            "at": iso(now),
        }
        try:
            self.notifier(payload)
        except NotifyError as exc:
            return False, f" (notification failed: {exc})"
        return True, " (notified)"

    def _handle(self, request: RemediationRequest, now: float, drain_only: bool) -> Decision:
        plan = guardrails.plan_for(request.action, drain_only=drain_only)
        if plan.refusal is not None:
            return self._refuse(plan.refusal, request, now)
        ttl = self.config.event_ttl_seconds
        if self.dry_run:
            if self.state.event_seen(request.event_id, now, ttl):
                return self._refuse(_duplicate(request), request, now)
        elif not self.state.remember_event(request.event_id, request.node, now, ttl):
            return self._refuse(_duplicate(request), request, now)
        try:
            return self._act(request, plan, now)
        except SreError:
            if not self.dry_run:  # let a retry of the same event through
                self.state.forget_event(request.event_id)
            raise

    def _act(self, request: RemediationRequest, plan: Plan, now: float) -> Decision:
        node = request.node
        cfg = self.config
        record = self.state.get_drain(node)
        if record is not None and record.status == "reserved":
            return self._refuse(
                Refusal("in_progress", f"a drain of {node} is already in progress"), request, now
            )
        try:
            info = self.slurm.show_node(node)
        except UnknownNodeError as exc:
            return self._refuse(Refusal("unknown_node", str(exc)), request, now)
        owner = guardrails.classify(
            drained=info.drained, down=info.down, reason=info.reason, prefix=cfg.reason_prefix
        )
        if owner is NodeOwner.OPERATOR:
            return self._refuse(
                Refusal(
                    "operator_drain",
                    f"{node} is {info.state_text} with reason {info.reason!r}, not ours "
                    f"(prefix {cfg.reason_prefix!r}): left alone",
                ),
                request,
                now,
            )
        reason = guardrails.drain_reason(cfg.reason_prefix, request, manual=plan.is_manual)
        if owner is NodeOwner.OURS:
            if record is None and not self.dry_run:
                was_for = guardrails.action_in_reason(info.reason, cfg.reason_prefix)
                self.state.adopt(
                    request,
                    info.reason or reason,
                    self._node_partitions(node, now),
                    now,
                    action=None if was_for is None else was_for.value,
                )
                record = self.state.get_drain(node)
            if record is not None and plan.node_action is not None and record.action in _HANDS_ON:
                return self._refuse(
                    Refusal(
                        "awaiting_person",
                        f"{node} is drained for {record.action}: a person has it, no automatic "
                        f"{request.action.value}",
                    ),
                    request,
                    now,
                )
            if plan.node_action is None:
                notified, note = False, ""
                if plan.notify:  # an escalation to hands-on still reaches a person
                    notified, note = self._notify(
                        request, f"{node}: {request.action.value} needs a person", now
                    )
                return self._decide(
                    Outcome.REFUSED,
                    "already_drained",
                    f"{node} is already drained by us: {info.reason}{note}",
                    request,
                    now,
                    notified=notified,
                )
            return self._node_action(request, info, now, [], drained_now=False)
        # The node is in service.
        if record is not None and not self.dry_run:
            # We held it (confirmed before Slurm was asked), but someone resumed it since.
            self.state.release_stale(record)
        partitions = self._node_partitions(node, now)
        drain_argv = self.slurm.drain_argv(node, reason)
        if self.dry_run:
            refusal = guardrails.check_cooldown(
                self.state.cooldown_of(node), now, cfg.cooldown_seconds, node
            ) or self.state.budget_preview(partitions, cfg)
            if refusal is not None:
                return self._refuse(refusal, request, now)
            then = ""
            commands = [drain_argv]
            if plan.notify:
                then = ", then notify a person"
            elif plan.node_action is not None:
                commands += action_argvs(plan.node_action, request.gpus)
                then = f", then {plan.node_action.value} once it is idle (now {info.state_text})"
            return self._decide(
                Outcome.DRY_RUN, "would_drain", f"would drain {node}{then}", request, now, commands
            )
        refusal = self.state.reserve(request, reason, partitions, now, cfg)
        if (
            refusal is not None
            and refusal.code == "budget_exhausted"
            and self._reconcile_due(now)
            and self.reconcile()
        ):
            refusal = self.state.reserve(request, reason, partitions, now, cfg)
        if refusal is not None:
            return self._refuse(refusal, request, now)
        try:
            argv = self.slurm.drain(node, reason)
        except BaseException:
            self.state.cancel_reservation(node)
            raise
        commands = [argv]
        if plan.node_action is None:
            self.state.confirm_drain(node, now)
        else:
            return self._act_after_drain(request, plan.node_action, now, commands)
        if plan.notify:
            notified, note = self._notify(
                request, f"{node} drained: {request.action.value} needs a person", now
            )
            return self._decide(
                Outcome.ACTED,
                "drained_notify",
                f"drained {node}; {request.action.value} needs a person{note}",
                request,
                now,
                commands,
                notified,
            )
        return self._decide(Outcome.ACTED, "drained", f"drained {node}", request, now, commands)

    def _act_after_drain(
        self, request: RemediationRequest, action: Action, now: float, commands: list[list[str]]
    ) -> Decision:
        """Our drain just went through: if the node is idle, confirm the drain and claim its
        action in one transaction (so no other process can claim it first), then run it."""
        node = request.node
        try:
            info = self.slurm.show_node(node)
        except BaseException:
            self.state.confirm_drain(node, now)  # the drain happened: never leave it 'reserved'
            raise
        claim = (
            info.idle
            and bool(action_argvs(action, request.gpus))
            and self.config.max_actions_per_drain > 0  # 0: drain only, a person acts
        )
        self.state.confirm_drain(node, now, claim=request if claim else None)
        if not claim:  # jobs still running, no GPU to reset, or no action allowed: say so
            return self._node_action(request, info, now, commands, drained_now=True)
        done = self.node_actions(node).run(node, action, request.gpus)
        return self._decide(
            Outcome.ACTED,
            "drained_and_acted",
            f"drained {node}; ran {action.value} on {node}",
            request,
            now,
            [*commands, *done],
        )

    def _node_action(
        self,
        request: RemediationRequest,
        info: NodeInfo,
        now: float,
        commands: list[list[str]],
        drained_now: bool,
    ) -> Decision:
        node, action = request.node, request.action
        outcome = Outcome.ACTED if drained_now else Outcome.REFUSED
        prefix = f"drained {node}; " if drained_now else ""
        argvs = action_argvs(action, request.gpus)
        if not argvs:
            notified, note = self._notify(
                request, f"{node}: {action.value} without a GPU index: a person must look", now
            )
            return self._decide(
                outcome,
                "no_gpu_index",
                f"{prefix}{action.value} names no GPU: left drained for a person{note}",
                request,
                now,
                commands,
                notified,
            )
        if not info.idle:
            return self._decide(
                outcome,
                "action_pending",
                f"{prefix}{node} is {info.state_text} (jobs still running): {action.value} "
                "waits until it is idle; send the event again then",
                request,
                now,
                commands,
            )
        if self.dry_run:
            record = self.state.get_drain(node)
            refusal = None
            if record is not None:
                refusal = guardrails.check_action_attempts(
                    record.actions_done, self.config.max_actions_per_drain
                ) or guardrails.check_cooldown(
                    record.last_action_at, now, self.config.cooldown_seconds, node
                )
            if refusal is not None:
                return self._refuse(refusal, request, now)
            return self._decide(
                Outcome.DRY_RUN,
                "would_act",
                f"would run {action.value} on {node}",
                request,
                now,
                [*commands, *argvs],
            )
        refusal = self.state.claim_action(request, now, self.config)
        if refusal is not None:
            notified, note = False, ""
            if refusal.code == "attempts_exhausted":
                notified, note = self._notify(request, refusal.message, now)
            return self._decide(
                outcome,
                refusal.code,
                prefix + refusal.message + note,
                request,
                now,
                commands,
                notified,
            )
        done = self.node_actions(node).run(node, action, request.gpus)
        return self._decide(
            Outcome.ACTED,
            "drained_and_acted" if drained_now else "acted",
            f"{prefix}ran {action.value} on {node}",
            request,
            now,
            [*commands, *done],
        )

    def _resume(
        self, node: str, report: HealthReport, now: float, diags: tuple[DiagEvidence, ...] = ()
    ) -> Decision:
        cfg = self.config

        def answer(
            outcome: Outcome, code: str, message: str, cmds: Sequence[Sequence[str]] = ()
        ) -> Decision:
            return Decision(
                outcome, code, message, node=node, at=now, commands=tuple(tuple(c) for c in cmds)
            )

        try:
            info = self.slurm.show_node(node)
        except UnknownNodeError as exc:
            return answer(Outcome.REFUSED, "unknown_node", str(exc))
        record = self.state.get_drain(node)
        if not info.drained:
            if record is not None and record.status == "drained" and not self.dry_run:
                self.state.release_stale(record)
            return answer(
                Outcome.REFUSED, "not_drained", f"{node} is {info.state_text}: nothing to resume"
            )
        if not guardrails.owned(info.reason, cfg.reason_prefix):
            return answer(
                Outcome.REFUSED,
                "operator_drain",
                f"{node} was drained by someone else (reason {info.reason!r}): never resumed "
                "by sre",
            )
        since = None
        if record is not None:
            marks = [t for t in (record.drained_at, record.last_action_at) if t is not None]
            since = max(marks) if marks else None
        refusal = guardrails.check_resume(
            node=node,
            report=report,
            now=now,
            config=cfg,
            drained_at=since,
            checks=() if record is None else record.checks,
            gpus=() if record is None else record.gpus,
        )
        if refusal is None:
            need = self._diag_requirement(node, record, info.reason)
            diags = diags + self._stored_diag(node, diags, need)
            refusal = guardrails.check_resume_diag(
                node=node,
                diags=diags,
                searched_store=self.diag_lookup is not None,
                now=now,
                **need,
            )
        if refusal is not None:
            return answer(Outcome.REFUSED, refusal.code, refusal.message)
        argv = self.slurm.resume_argv(node)
        if self.dry_run:
            return answer(Outcome.DRY_RUN, "would_resume", f"would resume {node}", [argv])
        self.slurm.resume(node)
        self.state.release(node, now)
        return answer(
            Outcome.ACTED, "resumed", "back in service: the fresh report is healthy", [argv]
        )


def _reset_at(record: DrainRecord | None) -> float | None:
    """When a GPU reset last ran during this drain (None: no reset ran)."""
    if record is None or record.action not in guardrails.RESET_ACTIONS:
        return None
    if record.actions_done < 1 or record.last_action_at is None:
        return None
    return record.last_action_at


def _duplicate(request: RemediationRequest) -> Refusal:
    return Refusal("duplicate_event", f"event {request.event_id} was already handled")
