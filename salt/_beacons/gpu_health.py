"""Salt beacon ``gpu_health``: run the GPU health engine on an interval, fire on transitions only.

Transitions and their debounce are ``sre_tools.health.transitions`` (see docs/salt.md for the
event schema): a changed finding or node severity, a changed action, a new XID event key; a
change that is not an escalation waits for its check's cooldown.

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
TAG_PREFIX = "sre/gpu/health/"
DEFAULT_MAX_EVENT_BYTES = 16_384
MIN_EVENT_BYTES = 2_048
MAX_FINDINGS = 32
MAX_XID_KEYS = 64
MAX_SUMMARY_CHARS = 240
RUN_CHECK = "gpu_health.run"  # the synthetic finding when the health run itself fails

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
        # The reactor refuses events above the remediation engine's cap: never send one.
        from sre_tools.remediation.model import MAX_EVENT_JSON_BYTES

        if not MIN_EVENT_BYTES <= size <= MAX_EVENT_JSON_BYTES:
            return False, (
                f"gpu_health: max_event_bytes: expected {MIN_EVENT_BYTES}.."
                f"{MAX_EVENT_JSON_BYTES}, got {size}"
            )
    if "timeout" in cfg and (not _number(cfg["timeout"]) or not 0 < cfg["timeout"] <= 600):
        return False, f"gpu_health: timeout: expected 0 < seconds <= 600, got {cfg['timeout']!r}"
    return True, "Valid beacon configuration"


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
    from sre_tools.health.model import Severity
    from sre_tools.health.transitions import severity_of, transition_name

    ordered = sorted(
        transitions["findings"],
        key=lambda c: (-Severity(c["severity"]).rank, c["check"], c["key"]),
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
    status = severity_of(report.get("status")).value
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
    from sre_tools.health.transitions import state_from_dict

    data = None
    if path:
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            pass
    return state_from_dict(data)


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
    from sre_tools.health.transitions import evaluate

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

    transitions = evaluate(state, report, now=CLOCK(), cooldown=cfg.get("cooldown"))
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
