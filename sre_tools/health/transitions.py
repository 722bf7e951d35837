"""Transitions between health reports, debounced: what changed since it was last *reported*.

Pure (no I/O, no clock): a report (``HealthReport.to_dict()``) and the state of what was last
reported go in, the transitions to announce come out and the state is updated in place. The state
is plain JSON so that a front end can keep it across restarts. Salt's ``gpu_health`` beacon
(salt/_beacons/gpu_health.py) runs this on every health run and turns the result into an event.

A transition is any of:

- a finding's severity changed, per (check, GPU uuid / index, MIG instance): ok -> warn -> crit,
  back to ok, or unknown (a finding that disappears counts as ok, and so does ``skipped``);
- the node's severity or its action (the most disruptive one the findings ask for) changed;
- a new XID event key.

Debounce: after a finding (or the node) fired, a later change of it that is not an escalation
(a recovery, crit -> warn, a flap back) waits until the check's cooldown has passed; the state
keeps what was last *reported*, so the report catches up once the cooldown is over. An escalation
always fires at once. New XIDs wait for the ``xid`` cooldown unless something else fires anyway.
Severities compare by :attr:`Severity.rank`, actions by :attr:`Action.rank`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sre_tools.health.model import Action, Severity

STATE_VERSION = 1
DEFAULT_COOLDOWN_SECONDS = 300.0
MAX_SEEN_XIDS = 4_096

# seconds, or a mapping of check id (and ``default``, ``xid``) to seconds
Cooldown = float | Mapping[str, float] | None


def new_state() -> dict[str, Any]:
    """Nothing reported yet: every finding and the node count as ok with action none."""
    return {"version": STATE_VERSION, "findings": {}, "node": None, "xids": {}, "xid_fired": None}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def state_from_dict(data: Any) -> dict[str, Any]:
    """A state read back (JSON); anything unusable or of another version starts fresh."""
    state = new_state()
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        return state
    for key in ("findings", "xids"):
        if isinstance(data.get(key), dict):
            state[key] = data[key]
    if isinstance(data.get("node"), dict):
        state["node"] = data["node"]
    if _number(data.get("xid_fired")):
        state["xid_fired"] = data["xid_fired"]
    return state


def cooldown_for(cooldown: Cooldown, check: str) -> float:
    """Seconds a non-escalating change of ``check`` waits (``default`` for the node)."""
    if cooldown is None:
        return DEFAULT_COOLDOWN_SECONDS
    if isinstance(cooldown, Mapping):
        return float(cooldown.get(check, cooldown.get("default", DEFAULT_COOLDOWN_SECONDS)))
    return float(cooldown)


def severity_of(value: Any) -> Severity:
    """A severity as transitions see it: ``skipped`` is ok, anything unrecognised unknown."""
    try:
        severity = Severity(str(value))
    except ValueError:
        return Severity.UNKNOWN
    return Severity.OK if severity is Severity.SKIPPED else severity


def action_rank(value: Any) -> int:
    """:attr:`Action.rank`, and -1 for a name that is no action."""
    try:
        return Action(str(value)).rank
    except ValueError:
        return -1


def finding_key(finding: Mapping[str, Any]) -> str:
    """``check@<gpu uuid | index:N | node>[/<MIG instance>]``: stable across runs."""
    gpu = finding.get("gpu") or {}
    if gpu.get("uuid"):
        where = str(gpu["uuid"])
    elif gpu.get("index") is not None:
        where = f"index:{gpu['index']}"
    else:
        where = "node"
    mig = gpu.get("mig")
    return f"{finding.get('check')}@{where}" + (f"/{mig}" if mig else "")


def _current(report: Mapping[str, Any]) -> dict[str, tuple[Severity, Mapping[str, Any]]]:
    """The worst severity per finding key, with the finding that has it."""
    out: dict[str, tuple[Severity, Mapping[str, Any]]] = {}
    for f in report.get("findings") or []:
        key, sev = finding_key(f), severity_of(f.get("severity"))
        if key not in out or sev.rank > out[key][0].rank:
            out[key] = (sev, f)
    return out


def xid_keys(report: Mapping[str, Any]) -> list[str]:
    """XID event keys in the report (the ``xid`` findings' evidence), in report order."""
    keys: list[str] = []
    for f in report.get("findings") or []:
        if f.get("check") != "xid":
            continue
        events = (f.get("evidence") or {}).get("events") or []
        for ev in events:
            key = ev.get("key") if isinstance(ev, Mapping) else None
            if isinstance(key, str) and key and key not in keys:
                keys.append(key)
    return keys


def _cooling(last: float | None, now: float, seconds: float) -> bool:
    return last is not None and now - last < seconds


def evaluate(
    state: dict[str, Any], report: Mapping[str, Any], *, now: float, cooldown: Cooldown = None
) -> dict[str, Any] | None:
    """Compare ``report`` with what was last reported in ``state`` (updated in place).

    Returns the transitions to announce or None: ``kinds`` (``severity``, ``action``, ``xid``,
    ``finding``, in that order), ``findings`` (``key``, ``check``, ``previous``, ``severity``,
    ``finding``), ``node`` (``severity``, ``previous_severity``, ``action``,
    ``previous_action``; None when unchanged) and ``xids`` (the new keys).
    """
    changes: list[dict[str, Any]] = []
    current = _current(report)
    reported: dict[str, Any] = state["findings"]
    for key in sorted(set(current) | set(reported)):
        sev, finding = current.get(key, (Severity.OK, {}))
        before = reported.get(key) or {"severity": Severity.OK.value, "at": None}
        previous = severity_of(before["severity"])
        if sev is previous:
            continue
        check = str(finding.get("check") or before.get("check") or key.split("@", 1)[0])
        escalation = sev.rank > previous.rank
        if not escalation and _cooling(before.get("at"), now, cooldown_for(cooldown, check)):
            continue
        reported[key] = {"severity": sev.value, "at": now, "check": check}
        changes.append(
            {
                "key": key,
                "check": check,
                "previous": previous.value,
                "severity": sev.value,
                "finding": finding,
            }
        )
    # Forget recovered findings once their cooldown is over: the state stays small.
    for key, rec in list(reported.items()):
        expired = not _cooling(rec.get("at"), now, cooldown_for(cooldown, rec.get("check", "")))
        if severity_of(rec["severity"]) is Severity.OK and key not in current and expired:
            del reported[key]

    node_change = None
    sev_now = severity_of(report.get("status"))
    action_now = str(report.get("action") or Action.NONE.value)
    node_before = state.get("node") or {"severity": "ok", "action": "none", "at": None}
    sev_before = severity_of(node_before["severity"])
    if (sev_now, action_now) != (sev_before, node_before["action"]):
        escalation = sev_now.rank > sev_before.rank or (
            action_rank(action_now) > action_rank(node_before["action"])
        )
        if escalation or not _cooling(
            node_before.get("at"), now, cooldown_for(cooldown, "default")
        ):
            node_change = {
                "severity": sev_now.value,
                "previous_severity": sev_before.value,
                "action": action_now,
                "previous_action": node_before["action"],
            }
            state["node"] = {"severity": sev_now.value, "action": action_now, "at": now}

    seen: dict[str, float] = state["xids"]
    fresh = [k for k in xid_keys(report) if k not in seen]
    fires_anyway = bool(changes or node_change)
    if (
        fresh
        and not fires_anyway
        and _cooling(state.get("xid_fired"), now, cooldown_for(cooldown, "xid"))
    ):
        fresh = []  # held back: still new next run, unless it left the kernel-log window
    for k in fresh:
        seen[k] = now
    if fresh:
        state["xid_fired"] = now
    if len(seen) > MAX_SEEN_XIDS:
        for k in sorted(seen, key=seen.__getitem__)[: len(seen) - MAX_SEEN_XIDS]:
            del seen[k]

    if not (changes or node_change or fresh):
        return None
    kinds = []
    if node_change and node_change["severity"] != node_change["previous_severity"]:
        kinds.append("severity")
    if node_change and node_change["action"] != node_change["previous_action"]:
        kinds.append("action")
    if fresh:
        kinds.append("xid")
    if changes:
        kinds.append("finding")
    return {"kinds": kinds, "findings": changes, "node": node_change, "xids": fresh}


def transition_name(transitions: Mapping[str, Any]) -> str:
    """The event name: the new node severity when it changed, else the first other kind."""
    kinds = transitions["kinds"]
    if "severity" in kinds:
        return str(transitions["node"]["severity"])
    for kind in ("action", "xid", "finding"):
        if kind in kinds:
            return kind
    return "finding"
