"""Salt beacon ``gpu_health``: run the GPU health engine on an interval, fire on transitions only.

A transition is any of (see docs/salt.md for the event schema):

- a finding's severity changed, per (check, GPU uuid / index, MIG instance): ok -> warn -> crit,
  back to ok, or unknown (a finding that disappears counts as ok);
- the node's severity or its action (the most disruptive one the findings ask for) changed;
- a new XID event key.

Debounce: after a finding (or the node) fired, a later change of it that is not an escalation
(a recovery, crit -> warn, a flap back) waits until the check's cooldown has passed; the beacon
keeps comparing with what it last *reported*, so the report catches up once the cooldown is over.
An escalation always fires at once. New XIDs wait for the ``xid`` cooldown unless the event
fires anyway.

One event per beacon run at most, tagged ``sre/gpu/health/<transition>`` (Salt prefixes
``salt/beacon/<minion id>/gpu_health/``): the new node severity (``crit``, ``warn``, ``unknown``,
``ok``) when that changed, else ``action``, ``xid`` or ``finding``.

Configuration (Salt 3006+ list form)::

    beacons:
      gpu_health:
        - interval: 60          # seconds between health runs (Salt's own interval handling)
        - profile: h100-sxm-8   # optional, as gpu.health
        - config: /etc/sre-tools/health.yaml   # optional site policy
        - replay: /path/recording.json         # optional: play a recording (tests, demos)
        - cooldown: 300         # seconds, or a mapping {default: 300, xid: 60, <check>: N}
        - node: gpu-node-01     # Slurm node name for the remediation request (default: host)
        - state_file: /var/cache/salt/minion/gpu_health.json   # optional: survive restarts
        - max_event_bytes: 16384

The health run goes through ``__salt__["gpu.health"]`` (salt/_modules/gpu.py), which calls
``sre_tools``; the event's ``remediation`` member is ``sre_tools.remediation``'s request built
from the report. Event data is untrusted once it leaves the minion: the reactor validates it
again (``Remediator.handle_event``) and checks the node against the authenticated minion id.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

__virtualname__ = "gpu_health"

EVENT_SCHEMA_VERSION = 1
STATE_VERSION = 1
TAG_PREFIX = "sre/gpu/health/"
DEFAULT_COOLDOWN_SECONDS = 300.0
DEFAULT_MAX_EVENT_BYTES = 16_384
MIN_EVENT_BYTES = 2_048
MAX_EVENT_BYTES = 65_536  # sre_tools.remediation.model.MAX_EVENT_JSON_BYTES
MAX_FINDINGS = 32
MAX_XID_KEYS = 64
MAX_SEEN_XIDS = 4_096
MAX_SUMMARY_CHARS = 240
NODE_KEY = "@node"
RUN_CHECK = "gpu_health.run"  # the synthetic finding when the health run itself fails

SEVERITY_RANK = {"ok": 0, "unknown": 1, "warn": 2, "crit": 3}
# Keys Salt's beacon framework itself understands; passed through by validate().
FRAMEWORK_KEYS = frozenset(
    {"interval", "enabled", "beacon_module", "run_once", "disable_during_state_run", "_beacon_name"}
)
OWN_KEYS = frozenset(
    {"replay", "profile", "config", "cooldown", "node", "state_file", "max_event_bytes", "timeout"}
)

# Replaced by the unit tests (a fake clock).
CLOCK: Callable[[], float] = time.time


def __virtual__() -> str | tuple[bool, str]:
    try:
        import sre_tools  # noqa: F401
    except ImportError as exc:
        return False, f"gpu_health: the sre_tools package is not importable ({exc})"
    return __virtualname__


# --- configuration -----------------------------------------------------------------------------


def _merge(config: Any) -> dict[str, Any]:
    """Salt's list-of-single-key-dicts form (a plain dict is accepted too) as one dict."""
    if isinstance(config, Mapping):
        return dict(config)
    merged: dict[str, Any] = {}
    for item in config:
        merged.update(item)
    return merged


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_cooldown(value: Any) -> str | None:
    if _number(value):
        return None if value >= 0 else "cooldown: must not be negative"
    if isinstance(value, Mapping):
        for key, seconds in value.items():
            if not isinstance(key, str) or not key:
                return f"cooldown: key {key!r} is not a check id"
            if not _number(seconds) or seconds < 0:
                return f"cooldown.{key}: expected seconds >= 0, got {seconds!r}"
        return None
    return f"cooldown: expected seconds or a mapping of check id to seconds, got {value!r}"


def validate(config: Any) -> tuple[bool, str]:
    """(True, message) for a usable configuration, else (False, what to fix)."""
    if not isinstance(config, list) or not all(isinstance(x, Mapping) for x in config):
        return False, "gpu_health: configuration must be a list of single-key mappings"
    cfg = _merge(config)
    unknown = sorted(str(k) for k in cfg if k not in OWN_KEYS | FRAMEWORK_KEYS)
    if unknown:
        allowed = ", ".join(sorted(OWN_KEYS | {"interval"}))
        return False, f"gpu_health: unknown key {unknown[0]!r} (allowed: {allowed})"
    if "interval" in cfg and (not _number(cfg["interval"]) or cfg["interval"] <= 0):
        return False, f"gpu_health: interval: expected seconds > 0, got {cfg['interval']!r}"
    for key in ("replay", "config", "state_file", "node"):
        if key in cfg and (not isinstance(cfg[key], str) or not cfg[key]):
            return False, f"gpu_health: {key}: expected a non-empty string"
    if "state_file" in cfg and not os.path.isabs(cfg["state_file"]):
        return False, "gpu_health: state_file: expected an absolute path"
    if "profile" in cfg:
        from sre_tools.health.policy import PROFILES

        if cfg["profile"] not in PROFILES:
            return False, (
                f"gpu_health: profile: unknown {cfg['profile']!r} "
                f"(expected one of {', '.join(PROFILES)})"
            )
    if "node" in cfg:
        from sre_tools.remediation.model import NODE_RE

        if not NODE_RE.fullmatch(cfg["node"]):
            return False, f"gpu_health: node: invalid Slurm node name {cfg['node']!r}"
    if "cooldown" in cfg:
        problem = _check_cooldown(cfg["cooldown"])
        if problem:
            return False, f"gpu_health: {problem}"
    if "max_event_bytes" in cfg:
        size = cfg["max_event_bytes"]
        if not isinstance(size, int) or isinstance(size, bool):
            return False, f"gpu_health: max_event_bytes: expected an integer, got {size!r}"
        if not MIN_EVENT_BYTES <= size <= MAX_EVENT_BYTES:
            return False, (
                f"gpu_health: max_event_bytes: expected {MIN_EVENT_BYTES}..{MAX_EVENT_BYTES}, "
                f"got {size}"
            )
    if "timeout" in cfg and (not _number(cfg["timeout"]) or not 0 < cfg["timeout"] <= 600):
        return False, f"gpu_health: timeout: expected 0 < seconds <= 600, got {cfg['timeout']!r}"
    return True, "Valid beacon configuration"


def cooldown_for(cfg: Mapping[str, Any], check: str) -> float:
    value = cfg.get("cooldown", DEFAULT_COOLDOWN_SECONDS)
    if isinstance(value, Mapping):
        return float(value.get(check, value.get("default", DEFAULT_COOLDOWN_SECONDS)))
    return float(value)


# --- transitions (pure: report dict + state in, event + state out) ------------------------------


def new_state() -> dict[str, Any]:
    return {"version": STATE_VERSION, "findings": {}, "node": None, "xids": {}, "xid_fired": None}


def _severity(value: Any) -> str:
    text = str(value)
    if text in ("ok", "skipped"):
        return "ok"
    return text if text in SEVERITY_RANK else "unknown"


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


def _current(report: Mapping[str, Any]) -> dict[str, tuple[str, Mapping[str, Any]]]:
    """The worst severity per finding key, with the finding that has it."""
    out: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for f in report.get("findings") or []:
        key, sev = finding_key(f), _severity(f.get("severity"))
        if key not in out or SEVERITY_RANK[sev] > SEVERITY_RANK[out[key][0]]:
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


def _action_rank(action: str) -> int:
    from sre_tools.health.model import Action

    try:
        return Action(action).rank
    except ValueError:
        return -1


def _cooling(last: float | None, now: float, cooldown: float) -> bool:
    return last is not None and now - last < cooldown


def evaluate(
    state: dict[str, Any], report: Mapping[str, Any], cfg: Mapping[str, Any], now: float
) -> dict[str, Any] | None:
    """Compare ``report`` with what was last reported in ``state`` (updated in place).

    Returns the transitions to fire (``kinds``, ``findings``, ``node``, ``xids``) or None.
    """
    changes: list[dict[str, Any]] = []
    current = _current(report)
    reported: dict[str, Any] = state["findings"]
    for key in sorted(set(current) | set(reported)):
        sev, finding = current.get(key, ("ok", {}))
        before = reported.get(key) or {"severity": "ok", "at": None}
        if sev == before["severity"]:
            continue
        check = str(finding.get("check") or before.get("check") or key.split("@", 1)[0])
        escalation = SEVERITY_RANK[sev] > SEVERITY_RANK[before["severity"]]
        if not escalation and _cooling(before.get("at"), now, cooldown_for(cfg, check)):
            continue
        reported[key] = {"severity": sev, "at": now, "check": check}
        changes.append(
            {
                "key": key,
                "check": check,
                "previous": before["severity"],
                "severity": sev,
                "finding": finding,
            }
        )
    # Forget recovered findings once their cooldown is over: the state stays small.
    for key, rec in list(reported.items()):
        expired = not _cooling(rec.get("at"), now, cooldown_for(cfg, rec.get("check", "")))
        if rec["severity"] == "ok" and key not in current and expired:
            del reported[key]

    node_change = None
    sev_now = _severity(report.get("status"))
    action_now = str(report.get("action") or "none")
    node_before = state.get("node") or {"severity": "ok", "action": "none", "at": None}
    if (sev_now, action_now) != (node_before["severity"], node_before["action"]):
        escalation = SEVERITY_RANK[sev_now] > SEVERITY_RANK[node_before["severity"]] or (
            _action_rank(action_now) > _action_rank(node_before["action"])
        )
        if escalation or not _cooling(node_before.get("at"), now, cooldown_for(cfg, "default")):
            node_change = {
                "severity": sev_now,
                "previous_severity": node_before["severity"],
                "action": action_now,
                "previous_action": node_before["action"],
            }
            state["node"] = {"severity": sev_now, "action": action_now, "at": now}

    seen: dict[str, float] = state["xids"]
    fresh = [k for k in xid_keys(report) if k not in seen]
    fires_anyway = bool(changes or node_change)
    if (
        fresh
        and not fires_anyway
        and _cooling(state.get("xid_fired"), now, cooldown_for(cfg, "xid"))
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
    """The tag suffix: the new node severity when it changed, else the first other kind."""
    kinds = transitions["kinds"]
    if "severity" in kinds:
        return str(transitions["node"]["severity"])
    for kind in ("action", "xid", "finding"):
        if kind in kinds:
            return kind
    return "finding"


# --- the event ---------------------------------------------------------------------------------


def _clean(text: Any, limit: int) -> str:
    from sre_tools.remediation.model import sanitize_text

    return sanitize_text(str(text), limit)


def _gpu(finding: Mapping[str, Any]) -> dict[str, Any] | None:
    gpu = finding.get("gpu")
    if not isinstance(gpu, Mapping):
        return None
    index = gpu.get("index")
    return {
        "index": index if isinstance(index, int) and not isinstance(index, bool) else None,
        "uuid": _clean(gpu.get("uuid") or "", 80),
        "pci_bus_id": _clean(gpu.get("pci_bus_id") or "", 32),
        "mig": None if gpu.get("mig") is None else _clean(gpu["mig"], 32),
    }


def _remediation(report: Mapping[str, Any], node: str, minion: str) -> dict[str, Any] | None:
    """``sre_tools.remediation``'s request for this report (None when no action is needed)."""
    if str(report.get("action") or "none") == "none":
        return None
    try:
        from sre_tools.exceptions import ValidationError
        from sre_tools.remediation.model import report_from_dict, request_from_report
    except ImportError:
        return None
    try:
        parsed = report_from_dict(dict(report))
        event_id = f"salt:{node}:{int(parsed.at)}:{parsed.action.value}"
        return dict(
            request_from_report(
                parsed, node=node, event_id=event_id, source="salt-beacon"
            ).to_dict()
        )
    except ValidationError as exc:
        log.warning("gpu_health: no remediation request for %s: %s", minion, exc)
        return None


def _size(payload: Mapping[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode())


def build_event(
    transitions: Mapping[str, Any],
    report: Mapping[str, Any],
    *,
    minion: str,
    node: str,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> dict[str, Any]:
    """The event dict (``tag`` plus plain-JSON data), at most ``max_bytes`` as JSON."""
    ordered = sorted(
        transitions["findings"],
        key=lambda c: (-SEVERITY_RANK[c["severity"]], c["check"], c["key"]),
    )
    findings = [
        {
            "check": _clean(c["check"], 64),
            "severity": c["severity"],
            "previous_severity": c["previous"],
            "action": _clean(c["finding"].get("action") or "none", 32),
            "gpu": _gpu(c["finding"]),
            "summary": _clean(
                c["finding"].get("summary") or "recovered (no longer reported)", MAX_SUMMARY_CHARS
            ),
        }
        for c in ordered
    ]
    node_now = transitions["node"] or {}
    status = _severity(report.get("status"))
    action = str(report.get("action") or "none")
    payload: dict[str, Any] = {
        "tag": TAG_PREFIX + transition_name(transitions),
        "schema_version": EVENT_SCHEMA_VERSION,
        "minion": minion,
        "node": node,
        "host": _clean(report.get("host") or "", 253),
        "at": _clean(report.get("at") or "", 40),
        "source": _clean(report.get("source") or "", 200),
        "transition": transition_name(transitions),
        "transitions": list(transitions["kinds"]),
        "severity": status,
        "previous_severity": node_now.get("previous_severity", status),
        "action": _clean(action, 32),
        "previous_action": _clean(node_now.get("previous_action", action), 32),
        "findings": findings[:MAX_FINDINGS],
        "xid_keys": [_clean(k, 64) for k in transitions["xids"][:MAX_XID_KEYS]],
        "remediation": _remediation(report, node, minion),
        "truncated": len(findings) > MAX_FINDINGS or len(transitions["xids"]) > MAX_XID_KEYS,
        "dropped": {
            "findings": max(0, len(findings) - MAX_FINDINGS),
            "xid_keys": max(0, len(transitions["xids"]) - MAX_XID_KEYS),
        },
    }
    # Over the cap: drop the least severe findings, then XID keys, then the request.
    while _size(payload) > max_bytes and payload["findings"]:
        payload["findings"].pop()
        payload["dropped"]["findings"] += 1
        payload["truncated"] = True
    while _size(payload) > max_bytes and payload["xid_keys"]:
        payload["xid_keys"].pop()
        payload["dropped"]["xid_keys"] += 1
        payload["truncated"] = True
    if _size(payload) > max_bytes:
        payload["remediation"] = None
        payload["truncated"] = True
    return payload


# --- state persistence -------------------------------------------------------------------------


def _load_state(path: str | None) -> dict[str, Any]:
    if not path:
        return new_state()
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return new_state()
    if not isinstance(data, dict) or data.get("version") != STATE_VERSION:
        return new_state()
    state = new_state()
    for key in ("findings", "xids"):
        if isinstance(data.get(key), dict):
            state[key] = data[key]
    if isinstance(data.get("node"), dict):
        state["node"] = data["node"]
    if _number(data.get("xid_fired")):
        state["xid_fired"] = data["xid_fired"]
    return state


def _save_state(path: str | None, state: Mapping[str, Any]) -> None:
    if not path:
        return
    directory = os.path.dirname(path)
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gpu_health.", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("gpu_health: cannot save state to %s: %s", path, exc)


# --- the beacon --------------------------------------------------------------------------------


def _dunder(name: str) -> Any:
    return globals().get(name)


def _failed_report(message: str, minion: str) -> dict[str, Any]:
    """A health run that failed is an UNKNOWN node: transitions handle it like any finding."""
    return {
        "host": minion,
        "at": "",
        "source": "gpu_health",
        "status": "unknown",
        "action": "none",
        "findings": [
            {
                "check": RUN_CHECK,
                "severity": "unknown",
                "action": "none",
                "summary": f"health run failed: {message}",
                "gpu": None,
                "evidence": {},
            }
        ],
    }


def beacon(config: Any) -> list[dict[str, Any]]:
    """Run the health engine once; return one event when something changed, else nothing."""
    cfg = _merge(config)
    opts = _dunder("__opts__") or {}
    minion = str(opts.get("id", ""))
    grains = _dunder("__grains__") or {}
    node = str(cfg.get("node") or grains.get("host") or minion.split(".", maxsplit=1)[0])
    context = _dunder("__context__")
    if context is None:
        context = globals().setdefault("_CONTEXT", {})
    key = f"gpu_health.state.{cfg.get('_beacon_name', __virtualname__)}"
    if key not in context:
        context[key] = _load_state(cfg.get("state_file"))
    state = context[key]

    functions = _dunder("__salt__") or {}
    if "gpu.health" not in functions:
        report = _failed_report(
            "the gpu execution module is not loaded (saltutil.sync_all)", minion
        )
    else:
        kwargs = {k: cfg[k] for k in ("replay", "profile", "config", "timeout") if k in cfg}
        try:
            report = functions["gpu.health"](**kwargs)
        except Exception as exc:  # the beacon must keep running; the failure is reported
            report = _failed_report(f"{type(exc).__name__}: {exc}", minion)

    transitions = evaluate(state, report, cfg, CLOCK())
    if transitions is None:
        return []
    _save_state(cfg.get("state_file"), state)
    event = build_event(
        transitions,
        report,
        minion=minion,
        node=node,
        max_bytes=int(cfg.get("max_event_bytes", DEFAULT_MAX_EVENT_BYTES)),
    )
    return [event]
