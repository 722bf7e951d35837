"""Guardrails: pure decisions, no I/O. The engine feeds them facts (the clock's time, what Slurm
says about a node, what the state file holds) and acts only when they allow it.

- **Plan**: what an action means on a node. Disruptive node-side actions drain first; hands-on
  actions (power cycle, mechanics, vendor support, RMA) drain and notify a person instead of
  acting; ``none`` and ``restart_app`` (the job owner's business) do nothing.
- **Ownership**: a drain whose reason starts with the configured prefix (``sre:``) is ours. Any
  other reason on a drained or down node belongs to an operator (or to Slurm itself, e.g. "Not
  responding"): never overridden, never resumed.
- **Budget**: at most ``max_drained_nodes`` nodes drained by us cluster-wide, and at most
  ``max_drained_percent`` % of each partition the node is in (never less than one node).
- **Cooldown**: after we drain, act on or resume a node, no new drain (or repeat action) for
  ``cooldown_seconds``.
- **Resume**: only our own drains, and only on a fresh report for that very node that shows
  nothing left that needs a disruptive action, none of the checks that caused the drain failing
  and every drained GPU back. After a GPU reset, also on a passing DCGM diagnostic of the
  configured level (``resume_diag_level_after_reset``, 2 by default) finished after the reset;
  any diagnostic offered must pass.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sre_tools.health.model import Action, HealthReport, Severity
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.model import DiagEvidence, RemediationRequest, sanitize_text

HANDS_ON = frozenset(
    {Action.POWER_CYCLE, Action.CHECK_MECHANICALS, Action.CONTACT_SUPPORT, Action.RMA_CANDIDATE}
)
NODE_ACTIONS = frozenset(
    {Action.RESTART_FABRIC_MANAGER, Action.RESET_GPU, Action.DRAIN_AND_RESET, Action.REBOOT}
)
# Actions a healthy node may still carry in a report without blocking a resume.
HARMLESS = frozenset({Action.NONE, Action.RESTART_APP})

MAX_SLURM_REASON_CHARS = 256


@dataclass(frozen=True)
class Refusal:
    """A guardrail said no: a stable code and a message for people."""

    code: str
    message: str


@dataclass(frozen=True)
class Plan:
    drain: bool
    node_action: Action | None = None  # run on the node once it is drained and idle
    notify: bool = False  # hands-on: a person must act
    refusal: Refusal | None = None
    is_manual: bool = False  # an operator's `sre remediation drain`: drain only


def plan_for(action: Action, *, drain_only: bool = False) -> Plan:
    if drain_only:
        return Plan(drain=True, is_manual=True)
    if action is Action.NONE:
        return Plan(False, refusal=Refusal("no_action", "the report asks for no action"))
    if action is Action.RESTART_APP:
        return Plan(
            False,
            refusal=Refusal(
                "not_automated", "restart_app is for the job's owner: nothing is done to the node"
            ),
        )
    if action in HANDS_ON:
        return Plan(drain=True, notify=True)
    if action in NODE_ACTIONS:
        return Plan(drain=True, node_action=action)
    raise AssertionError(f"unplanned action {action}")  # pragma: no cover


class NodeOwner(enum.StrEnum):
    FREE = "free"  # not drained or down, no reason set: ours to drain
    OURS = "ours"  # drained (or draining) with our reason prefix
    OPERATOR = "operator"  # drained/down/failed with someone else's reason (or none)


def owned(reason: str | None, prefix: str) -> bool:
    return bool(reason) and str(reason).startswith(prefix)


def classify(*, drained: bool, down: bool, reason: str | None, prefix: str) -> NodeOwner:
    """Who holds a node: nobody, us, or an operator (or Slurm)."""
    if owned(reason, prefix):
        return NodeOwner.OURS if (drained or down) else NodeOwner.OPERATOR
    if drained or down or reason:
        return NodeOwner.OPERATOR
    return NodeOwner.FREE


def action_in_reason(reason: str | None, prefix: str) -> Action | None:
    """The action our drain reason names (``sre: rma_candidate ev=...`` -> RMA_CANDIDATE)."""
    if not owned(reason, prefix):
        return None
    words = str(reason)[len(prefix) :].split()
    if not words:
        return None
    try:
        return Action(words[0])
    except ValueError:
        return None


def drain_reason(prefix: str, request: RemediationRequest, *, manual: bool = False) -> str:
    """``sre: reset_gpu ev=<id>: <reason>``, one line, at most 256 characters.

    A manual drain reads ``sre: drain ev=manual:...: <reason>``.
    """
    label = "drain" if manual else request.action.value
    head = f"{prefix} {label} ev={request.event_id}"
    text = sanitize_text(request.reason, MAX_SLURM_REASON_CHARS)
    full = f"{head}: {text}" if text else head
    if len(full) > MAX_SLURM_REASON_CHARS:
        full = full[: MAX_SLURM_REASON_CHARS - 3] + "..."
    return full


_DIAG_LEVEL = re.compile(r": level ([1-4]) ")


def diag_level_in_reason(reason: str | None, prefix: str) -> int:
    """The DCGM level a drain of ours by a diagnostic names (the Slurm hooks' ``sre: diag
    ev=prolog:<node>:<job>: level 1 CRIT: ...``): that level; 1 when the text no longer says
    (annotated since); 0 for any other reason."""
    if not owned(reason, prefix):
        return 0
    rest = str(reason)[len(prefix) :].lstrip()
    if not rest.startswith("diag "):
        return 0
    match = _DIAG_LEVEL.search(rest)
    return int(match.group(1)) if match else 1


def reworded_reason(prefix: str, reason: str, text: str) -> str:
    """Our drain ``reason`` with what follows its head (prefix, label, ``ev=<id>``) replaced by
    ``text``: ``sre: drain ev=manual:gpu04:1f2e: acceptance failed: ...``. Event ids hold ``:``
    but never ``": "``, so the head ends at the first ``": "`` after the prefix."""
    head = prefix + reason[len(prefix) :].split(": ", 1)[0]
    body = sanitize_text(text, MAX_SLURM_REASON_CHARS)
    full = f"{head}: {body}" if body else head
    if len(full) > MAX_SLURM_REASON_CHARS:
        full = full[: MAX_SLURM_REASON_CHARS - 3] + "..."
    return full


# --- budget -------------------------------------------------------------------------------------


def partition_limit(size: int, percent: float) -> int:
    """Nodes of a ``size``-node partition we may hold drained: ``floor(size*percent/100)``,
    at least one (a 4-node partition at 10% may still lose one node), none at 0%."""
    if percent <= 0 or size <= 0:
        return 0
    return max(1, math.floor(size * percent / 100 + 1e-9))


def check_budget(
    *,
    ours_total: int,
    ours_by_partition: Mapping[str, int],
    node_partitions: Mapping[str, int],
    config: RemediationConfig,
) -> Refusal | None:
    """May we drain one more node? ``node_partitions`` maps each partition of the node to its
    size; ``ours_*`` count the drains we hold now (not counting this node)."""
    if ours_total + 1 > config.max_drained_nodes:
        return Refusal(
            "budget_exhausted",
            f"{ours_total} node(s) already drained by us (max_drained_nodes "
            f"{config.max_drained_nodes})",
        )
    for partition, size in sorted(node_partitions.items()):
        limit = partition_limit(size, config.max_drained_percent)
        used = ours_by_partition.get(partition, 0)
        if used + 1 > limit:
            return Refusal(
                "budget_exhausted",
                f"partition {partition}: {used} of {size} node(s) already drained by us "
                f"(max_drained_percent {config.max_drained_percent:g} allows {limit})",
            )
    return None


def cooldown_left(last: float | None, now: float, cooldown: float) -> float:
    """Seconds of cooldown left after an act at ``last`` (0 when none)."""
    if last is None:
        return 0.0
    return max(0.0, last + cooldown - now)


def check_cooldown(last: float | None, now: float, cooldown: float, what: str) -> Refusal | None:
    left = cooldown_left(last, now, cooldown)
    if left > 0:
        return Refusal(
            "cooldown",
            f"{what} was acted on {now - (last or now):.0f}s ago; cooldown {cooldown:g}s "
            f"({left:.0f}s left)",
        )
    return None


def check_action_attempts(done: int, limit: int) -> Refusal | None:
    if done >= limit:
        return Refusal(
            "attempts_exhausted",
            f"{done} node action(s) already tried during this drain (max_actions_per_drain "
            f"{limit}): the node stays drained for a person",
        )
    return None


# --- resume -------------------------------------------------------------------------------------


# How far a node's clock may run ahead of the controller's before a report or diagnostic it
# dates is refused as from the future (NTP keeps real clocks within milliseconds).
MAX_CLOCK_SKEW_SECONDS = 120


def check_resume(
    *,
    node: str,
    report: HealthReport,
    now: float,
    config: RemediationConfig,
    drained_at: float | None,
    checks: Sequence[str] = (),
    gpus: Sequence[int] = (),
) -> Refusal | None:
    """Is ``report`` proof enough that ``node`` (drained by us) may go back into service?"""
    if report.host != node:
        return Refusal(
            "report_mismatch", f"the report is for {report.host!r}, not for node {node!r}"
        )
    age = now - report.at
    if age < -MAX_CLOCK_SKEW_SECONDS:
        # A report from the future is never fresh: its age would pass any max_report_age.
        return Refusal(
            "future_report",
            f"the report is dated {-age:.0f}s in the future (clocks may differ by at most "
            f"{MAX_CLOCK_SKEW_SECONDS}s: check NTP on {node} and here)",
        )
    if age > config.max_report_age_seconds:
        return Refusal(
            "stale_report",
            f"the report is {age:.0f}s old (max_report_age_seconds "
            f"{config.max_report_age_seconds:g})",
        )
    # `sre health --json` writes whole seconds: compare at that resolution.
    if drained_at is not None and report.at < math.floor(drained_at):
        return Refusal("stale_report", "the report predates the drain: run the checks again")
    for f in report.findings:
        if f.severity in (Severity.WARN, Severity.CRIT) and f.action not in HARMLESS:
            return Refusal(
                "still_unhealthy",
                f"{f.check} still asks for {f.action.value}: {sanitize_text(f.summary, 120)}",
            )
    wanted = set(checks)
    for f in report.findings:
        if f.check in wanted and f.severity not in (Severity.OK, Severity.SKIPPED):
            return Refusal(
                "still_unhealthy",
                f"{f.check}, which caused the drain, is {f.severity.value}: "
                f"{sanitize_text(f.summary, 120)}",
            )
    if gpus:
        seen = {f.gpu.index for f in report.findings if f.gpu is not None}
        missing = sorted(set(gpus) - seen)
        if missing:
            return Refusal(
                "gpu_missing",
                f"GPU {', '.join(map(str, missing))} does not appear in the report (not back?)",
            )
    return None


RESET_ACTIONS = frozenset({Action.RESET_GPU.value, Action.DRAIN_AND_RESET.value})


def check_resume_diag(
    *,
    node: str,
    diags: Sequence[DiagEvidence],
    required_level: int,
    since: float | None,
    why: str,
    searched_store: bool = False,
    now: float | None = None,
) -> Refusal | None:
    """Do the diagnostics offered for a resume allow it?

    Every diagnostic given must be of ``node``, pass, and (with ``now``) not be dated in the
    future. When ``required_level`` is not 0 (a GPU reset ran at ``since``: ``why`` says so), one
    of them must be a passing DCGM run of at least that level that finished after ``since``.
    """
    for d in diags:
        if d.node != node:
            return Refusal(
                "diag_mismatch", f"the diagnostic result is for {d.node!r}, not for node {node!r}"
            )
        if now is not None and d.at - now > MAX_CLOCK_SKEW_SECONDS:
            return Refusal(
                "future_report",
                f"the {d.describe()} is dated {d.at - now:.0f}s in the future (clocks may differ "
                f"by at most {MAX_CLOCK_SKEW_SECONDS}s: check NTP on {node} and here)",
            )
        bad = d.problem
        if bad is not None:
            return Refusal(
                "diag_failed",
                f"the {d.describe()} did not pass: {bad.check} is {bad.severity.value}"
                f"{'' if bad.action in HARMLESS else ' (' + bad.action.value + ')'}: "
                f"{sanitize_text(bad.summary, 120)}",
            )
    if not required_level:
        return None
    cutoff = None if since is None else math.floor(since)
    candidates = [d for d in diags if d.kind == "dcgm"]
    if any(
        d.ran and d.level >= required_level and (cutoff is None or d.at >= cutoff)
        for d in candidates
    ):
        return None
    if not candidates:
        got = "none was given" + (" nor found in the diagnostic store" if searched_store else "")
    elif not any(d.ran for d in candidates):
        got = "the one given tested nothing (every test skipped)"
    elif all(d.level < required_level for d in candidates):
        got = f"the one given is level {max(d.level for d in candidates)}"
    else:
        got = "the one given finished before it"
    return Refusal(
        "diag_required",
        f"{why}: a resume needs a passing level {required_level} DCGM diagnostic "
        f"(sre diag run --level {required_level}) finished after it; {got} "
        "(resume_diag_level_after_reset)",
    )
