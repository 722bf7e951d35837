"""Salt runner ``sre_remediate``: the master side of GPU remediation, thin over sre_tools.

The reactor (``salt/reactor/gpu_health_runner.sls``, or ``gpu_health.sls`` through the
orchestration ``salt/orch/gpu_remediate.sls``) calls :func:`handle` here with the beacon event's
tag and data. Event data from minions is untrusted:

- the minion id is taken from the tag (``salt/beacon/<minion>/gpu_health/...``); the sender's id
  (``id``, which Salt's request channel authenticates for ``event.fire_master``), the event's
  ``minion`` field and its node (the remediation request's ``node``, or the event's ``node`` for a
  recovery) must agree with it (the node through the master's ``sre_remediation:node_map``, else
  the minion id up to its first dot), so a minion can only report on itself;
- the request is validated again by ``sre_tools.remediation`` (schema, sizes, characters) and goes
  through the guardrails (drain budget, cooldown, dedupe, owned drain reasons);
- a recovery (a ``gpu_health`` event whose node severity is back to ``ok``) is only a trigger: the
  master asks that very minion for a fresh ``gpu.health`` run (the reply travels on Salt's
  authenticated return channel) and hands it to ``Remediator.try_resume``, which resumes only a
  drain of ours and only on a healthy, fresh report for that node;
- every decision, a refused forgery included, lands in the append-only audit log;
- nothing from the event is ever put into a shell command.

The rolling driver upgrade (``salt/orch/rolling_upgrade.sls``) calls :func:`drain`,
:func:`wait_drained` and :func:`resume` here for each minion of a batch: the same engine, state
and audit log as the reactor, so the upgrade's drains count against the same budget. Each sets
the runner's return code when the step did not succeed, which fails the orchestration state and,
through the requisites, stops the rollout.

Master configuration (``/etc/salt/master.d/sre.conf``, see salt/reactor/master.conf.example)::

    sre_remediation:
      config: /etc/sre-tools/remediation.yaml     # guardrail settings (docs/remediation.md)
      state: /var/lib/sre-tools/remediation.db
      audit: /var/log/sre-tools/remediation.jsonl
      execute: false                              # dry run until an operator turns it on
      node_map: {}                                # minion id -> Slurm node name, where they differ
      slurm_conf: null                            # SLURM_CONF for scontrol/sinfo, if not default
      resume: true                                # try a resume on a recovery event
      fresh_check: {}                             # gpu.health arguments for that run
      fresh_check_timeout: 30                     # seconds to wait for the minion's answer
      resume_diag: {}                             # gpu.diag arguments (profile, site, store,
                                                  # replay, timeout) when a resume needs one
      resume_diag_timeout: 900                    # seconds to wait for it (level 2: minutes)

After a GPU reset the engine resumes only with a passing DCGM diagnostic of its
``resume_diag_level_after_reset`` (2) since the reset: a recovery then also asks the minion for
``gpu.diag`` at that level (only then: the engine says whether it needs one).

The acceptance orchestration (``salt/orch/acceptance.sls``) calls :func:`drain`,
:func:`wait_drained` and :func:`accept`: ``gpu.diag`` at level 3 or 4 (nvbandwidth, NCCL as
asked) and a fresh ``gpu.health`` on the drained minion, then ``Remediator.try_resume`` with both.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

log = logging.getLogger(__name__)

__virtualname__ = "sre_remediate"
TAG = re.compile(
    r"^salt/beacon/(?P<minion>[A-Za-z0-9][A-Za-z0-9._-]{0,252})/gpu_health/sre/gpu/health/"
)
DEFAULTS: dict[str, Any] = {
    "config": None,
    "state": "/var/lib/sre-tools/remediation.db",
    "audit": "/var/log/sre-tools/remediation.jsonl",
    "execute": False,
    "node_map": {},
    "slurm_conf": None,
    "resume": True,
    "fresh_check": {},
    "fresh_check_timeout": 30,
    "resume_diag": {},
    "resume_diag_timeout": 900,
}
# gpu.diag arguments the master may pass (salt/_modules/gpu.py); level, nvbandwidth and nccl
# are the caller's.
DIAG_KEYS = frozenset({"profile", "site", "store", "replay", "timeout"})
# gpu.health arguments the master may pass for the fresh run (salt/_modules/gpu.py).
FRESH_CHECK_KEYS = frozenset({"profile", "config", "timeout", "replay"})
RECOVERED = "ok"

# A fresh health report for a minion: the report dict, or None and why not.
FreshCheck = Callable[[str], tuple[dict[str, Any] | None, str]]
# A diagnostic run on a minion: (minion, gpu.diag keyword arguments) -> (its JSON, or None and
# why not).
DiagCheck = Callable[[str, Mapping[str, Any]], tuple[dict[str, Any] | None, str]]

_cache_lock = threading.Lock()
_cache: dict[tuple[Any, ...], Any] = {}


def __virtual__() -> Any:
    try:
        import sre_tools.remediation  # noqa: F401
    except ImportError as exc:
        return False, f"sre_remediate: sre_tools is not importable: {exc}"
    return __virtualname__


def _settings(opts: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(DEFAULTS)
    merged.update(opts.get("sre_remediation") or {})
    return merged


def expected_node(minion: str, node_map: Mapping[str, str]) -> str:
    """The Slurm node a minion may report on."""
    return str(node_map.get(minion) or minion.split(".", 1)[0])


def _build_remediator(settings: Mapping[str, Any]) -> Any:
    from sre_tools.remediation import Remediator

    return Remediator.from_paths(
        settings["config"],
        settings["state"],
        settings["audit"],
        slurm_conf=settings["slurm_conf"],
        dry_run=not bool(settings["execute"]),
    )


def _remediator(settings: Mapping[str, Any]) -> Any:
    """One engine per configuration, shared by the reactor's worker threads.

    The engine is safe to share (its state file and audit log lock per operation); sharing keeps
    its cached partition topology and spares a YAML load and a schema check per event. An edit of
    the guardrail file (its mtime or size) builds a new engine.
    """
    config = settings["config"]
    try:
        stat = os.stat(config) if config else None
        stamp = None if stat is None else (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None  # load_config reports the unreadable file
    key = (
        config,
        stamp,
        str(settings["state"]),
        str(settings["audit"]),
        bool(settings["execute"]),
        settings["slurm_conf"],
    )
    with _cache_lock:
        engine = _cache.get(key)
        if engine is None:
            engine = _build_remediator(settings)
            _cache.clear()  # an older configuration's engine is never used again
            _cache[key] = engine
        return engine


def _sender(data: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, Any]:
    """(payload, sender id) of an event's data.

    A beacon event's data is the payload itself; Salt's beacon framework adds the minion's
    ``id``. An event a minion sent with ``event.fire_master`` (or ``event.send``) arrives as
    Salt's load: ``{"id": <the sender, authenticated by Salt's request channel>,
    "cmd": "_minion_event", "tag": ..., "data": <payload>}``.
    """
    if data.get("cmd") == "_minion_event":
        payload = data.get("data")
        return (payload if isinstance(payload, Mapping) else None), data.get("id")
    return data, data.get("id")


def _check_sender(tag: object, data: object) -> tuple[str | None, Mapping[str, Any], str]:
    """(minion id from the tag or None, payload, why not): the tag, the sender and the payload's
    ``minion`` must name the same minion."""
    if not isinstance(tag, str) or not (match := TAG.match(tag)):
        return None, {}, f"tag is not a gpu_health beacon tag: {str(tag)[:120]!r}"
    minion = match.group("minion")
    if not isinstance(data, Mapping):
        return None, {}, "event data is not a mapping"
    payload, sender = _sender(data)
    if sender not in (None, minion):
        return None, {}, f"event sent by minion {str(sender)[:80]!r}, tag says {minion!r}"
    if payload is None:
        return None, {}, "event carries no payload mapping"
    claimed = payload.get("minion")
    if claimed not in (None, minion):
        return None, {}, f"event claims minion {str(claimed)[:80]!r}, tag says {minion!r}"
    return minion, payload, ""


def _check_node(minion: str, named: object, node_map: Mapping[str, str]) -> str:
    want = expected_node(minion, node_map)
    if named != want:
        named_text = str(named)[:80]
        return f"minion {minion!r} may only report on node {want!r}, event names {named_text!r}"
    return ""


def check_origin(tag: object, data: object, node_map: Mapping[str, str]) -> tuple[str | None, str]:
    """(minion id or None, why not): the tag names the minion; the event must agree with it and
    carry a remediation request for that minion's node."""
    minion, payload, why = _check_sender(tag, data)
    if minion is None:
        return None, why
    request = payload.get("remediation")
    if not isinstance(request, Mapping):
        return None, "event carries no remediation request"
    why = _check_node(minion, request.get("node"), node_map)
    return (None, why) if why else (minion, "")


def is_recovery(payload: Mapping[str, Any]) -> bool:
    """A gpu_health event saying the node is healthy again (nothing left to remediate)."""
    return payload.get("remediation") is None and payload.get("severity") == RECOVERED


def _minion_fresh_check(opts: Mapping[str, Any], settings: Mapping[str, Any]) -> FreshCheck:
    """Ask the minion for a fresh ``gpu.health`` run through the master (LocalClient)."""

    def run(minion: str) -> tuple[dict[str, Any] | None, str]:
        kwargs = settings.get("fresh_check") or {}
        if not isinstance(kwargs, Mapping) or not set(kwargs) <= FRESH_CHECK_KEYS:
            return None, (
                "master config sre_remediation:fresh_check: expected a mapping with keys from "
                f"{', '.join(sorted(FRESH_CHECK_KEYS))}, got {kwargs!r}"
            )
        timeout = settings.get("fresh_check_timeout") or DEFAULTS["fresh_check_timeout"]
        return _ask_minion(opts, minion, "gpu.health", kwargs, float(timeout))

    return run


def _ask_minion(
    opts: Mapping[str, Any], minion: str, function: str, kwargs: Mapping[str, Any], wait: float
) -> tuple[dict[str, Any] | None, str]:
    """``function`` on ``minion`` through the master (LocalClient), waiting ``wait`` s: its
    dict answer, or ``None`` and why not."""
    import salt.client

    client = salt.client.get_local_client(mopts=dict(opts))
    try:
        replies = client.cmd([minion], function, kwarg=dict(kwargs), tgt_type="list", timeout=wait)
    finally:
        client.destroy()
    reply = (replies or {}).get(minion)
    if reply is None:
        return None, (
            f"minion {minion!r} did not answer {function} (not connected, or no reply within "
            f"{wait:g}s)"
        )
    if not isinstance(reply, dict):
        return None, f"{function} on {minion!r} failed: {' '.join(str(reply).split())[:300]}"
    return reply, ""


def _minion_diag(opts: Mapping[str, Any], wait: float) -> DiagCheck:
    """Ask the minion for ``gpu.diag`` through the master (LocalClient), waiting ``wait`` s."""

    def run(minion: str, kwargs: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        return _ask_minion(opts, minion, "gpu.diag", kwargs, wait)

    return run


def _diag_kwargs(extra: Any, where: str) -> tuple[dict[str, Any], str]:
    if extra in (None, ""):
        return {}, ""
    if not isinstance(extra, Mapping) or not set(extra) <= DIAG_KEYS:
        return {}, (
            f"{where}: expected a mapping with keys from {', '.join(sorted(DIAG_KEYS))}, "
            f"got {extra!r}"[:300]
        )
    return dict(extra), ""


def _diag_evidence(raw: Mapping[str, Any], minion: str) -> tuple[tuple[Any, ...], str]:
    """A minion's gpu.diag answer (untrusted) as evidence for the engine, or why not."""
    import json

    from sre_tools.exceptions import ValidationError
    from sre_tools.remediation.model import parse_diag_json

    try:
        return parse_diag_json(json.dumps(raw), source=f"gpu.diag on {minion}"), ""
    except (ValidationError, TypeError, ValueError) as exc:
        return (), f"gpu.diag on {minion!r} returned no valid result: {exc}"[:500]


def handle(tag: str, data: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Check the event's origin, then let the guardrails decide; returns the decision."""
    opts = __opts__  # type: ignore[name-defined]  # noqa: F821 - Salt injects it
    settings = _settings(opts)
    return handle_with(
        settings,
        tag,
        data,
        fresh_check=_minion_fresh_check(opts, settings),
        diag_check=_minion_diag(opts, float(settings.get("resume_diag_timeout") or 900)),
    )


def handle_with(
    settings: Mapping[str, Any],
    tag: object,
    data: object,
    remediator: Any = None,
    fresh_check: FreshCheck | None = None,
    diag_check: DiagCheck | None = None,
) -> dict[str, Any]:
    """:func:`handle` with explicit settings (and an injectable engine and fresh check)."""
    settings = {**DEFAULTS, **settings}
    rem = remediator or _remediator(settings)
    node_map = dict(settings.get("node_map") or {})
    minion, payload, why = _check_sender(tag, data)
    if minion is not None and payload.get("remediation") is None and "remediation" in payload:
        why = _check_node(minion, payload.get("node"), node_map)
        if not why:
            node = expected_node(minion, node_map)
            if is_recovery(payload) and settings.get("resume"):
                return _recover(
                    rem, minion, node, fresh_check, diag_check, settings.get("resume_diag")
                )
            return _no_action(rem, node, payload)
        minion = None
    elif minion is not None:
        minion, why = check_origin(tag, data, node_map)
    if minion is None:
        log.warning("sre_remediate: refused event: %s", why)
        decision = rem.refuse_event(f"forged or malformed event: {why}", field="node")
        return dict(decision.to_dict())
    decision = rem.handle_event(dict(payload["remediation"]))
    return dict(decision.to_dict())


def _no_action(rem: Any, node: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A transition that asks for nothing (a warning, an unknown run): audited as ``no_action``."""
    from sre_tools.exceptions import ValidationError
    from sre_tools.health.model import Action
    from sre_tools.remediation.model import RemediationRequest, sanitize_text

    severity = sanitize_text(str(payload.get("severity") or "unknown"), 16)
    try:
        request = RemediationRequest(
            node=node,
            action=Action.NONE,
            event_id=f"salt:{node}:{int(rem.clock())}:none",
            reason=f"gpu_health transition to {severity}",
            source="salt-beacon",
        )
    except ValidationError as exc:
        return dict(rem.refuse_event(f"malformed event: {exc}", field="node").to_dict())
    return dict(rem.handle(request).to_dict())


def _refused(rem: Any, node: str, code: str, message: str) -> dict[str, Any]:
    from sre_tools.remediation.model import Decision, Outcome

    refused = Decision(Outcome.REFUSED, code, message[:1000], node=node, at=rem.clock())
    rem.audit.write(refused, None, dry_run=rem.dry_run, extra={"source": "resume"})
    return dict(refused.to_dict())


def _recover(
    rem: Any,
    minion: str,
    node: str,
    fresh_check: FreshCheck | None,
    diag_check: DiagCheck | None = None,
    diag_options: Any = None,
    diag_request: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A fresh health run on that minion, then ``try_resume``. With ``diag_request`` (gpu.diag
    level, nvbandwidth, nccl: acceptance), that diagnostic first; without, a diagnostic only
    when the engine needs one for this node (after a GPU reset), at the level it needs."""
    from sre_tools.exceptions import ValidationError
    from sre_tools.remediation.model import report_from_dict

    diags: tuple[Any, ...] = ()
    request = dict(diag_request or {})
    if not request:
        level = rem.resume_diag_level(node)
        if level:
            request = {"level": level}
    if request:
        extra, why = _diag_kwargs(diag_options, "sre_remediation:resume_diag")
        if why:
            return _refused(rem, node, "no_diagnostic", f"{node} not resumed: {why}")
        if diag_check is None:
            return _refused(
                rem, node, "no_diagnostic", f"{node} not resumed: no way to run gpu.diag"
            )
        # The node name the result is recorded under is the master's (node_map), not the
        # minion's own idea of its host name.
        raw, why = diag_check(minion, {**extra, **request, "node": node})
        if raw is not None:
            diags, why = _diag_evidence(raw, minion)
        if not diags:
            return _refused(rem, node, "no_diagnostic", f"{node} not resumed: {why}")
    report = None
    if fresh_check is None:
        why = "no way to run a fresh health check (handle_with without fresh_check)"
    else:
        raw, why = fresh_check(minion)
        if raw is not None:
            try:
                report = report_from_dict(raw)
            except ValidationError as exc:
                why = f"gpu.health on {minion!r} returned no valid report: {exc}"
    if report is None:
        return _refused(rem, node, "no_fresh_report", f"{node} not resumed: {why}")
    return dict(rem.try_resume(node, report, diags).to_dict())


# --- rolling upgrade steps (salt/orch/rolling_upgrade.sls) ------------------------------------

# Outcomes that leave the node drained by us: the batch may go on with it.
DRAINED_CODES = frozenset({"drained", "already_drained"})


def _failed(why: str) -> None:
    """Mark this runner call failed: the orchestration's ``salt.runner`` state reads it."""
    log.warning("sre_remediate: %s", why)
    __context__["retcode"] = 1  # type: ignore[name-defined]  # noqa: F821 - Salt injects it


def drain(minion: str, reason: str, execute: bool = True, **_: Any) -> dict[str, Any]:
    """Drain ``minion``'s Slurm node with our reason through the guardrails
    (``Remediator.drain``); fails unless the node is now drained by us. An upgrade acts:
    ``execute`` defaults to true here, whatever the reactor's ``sre_remediation:execute``."""
    opts = __opts__  # type: ignore[name-defined]  # noqa: F821 - Salt injects it
    settings = {**_settings(opts), "execute": bool(execute)}
    node = expected_node(minion, dict(settings.get("node_map") or {}))
    decision = dict(_remediator(settings).drain(node, reason, source="salt-orch").to_dict())
    if decision.get("code") not in DRAINED_CODES:
        _failed(f"{node} not drained: {decision.get('code')}: {decision.get('message')}")
    return decision


def wait_drained(minion: str, timeout: float = 3600, poll: float = 15, **_: Any) -> dict[str, Any]:
    """Wait until ``minion``'s node is drained and its jobs are gone (idle or down)."""
    opts = __opts__  # type: ignore[name-defined]  # noqa: F821 - Salt injects it
    # Only reads Slurm; "execute" as drain and resume have it, so the three share one engine.
    settings = {**_settings(opts), "execute": True}
    node = expected_node(minion, dict(settings.get("node_map") or {}))
    result = wait_until_drained(_remediator(settings).slurm, node, float(timeout), float(poll))
    if not result["drained"]:
        _failed(f"{node} still runs jobs after {timeout:g}s: {result['state']}")
    return result


def wait_until_drained(
    slurm: Any,
    node: str,
    timeout: float,
    poll: float,
    clock: Callable[[], float] | None = None,
    sleep: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Poll ``slurm.show_node(node)`` until it is drained and idle (or down)."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    deadline = clock() + timeout
    while True:
        info = slurm.show_node(node)
        if info.drained and (info.idle or info.down):
            return {"node": node, "drained": True, "state": info.state_text}
        if clock() >= deadline:
            return {"node": node, "drained": False, "state": info.state_text}
        sleep(max(0.1, poll))


def resume(
    minion: str, fresh_check: Mapping[str, Any] | None = None, execute: bool = True, **_: Any
) -> dict[str, Any]:
    """The health gate: a fresh ``gpu.health`` run on ``minion`` (arguments ``fresh_check``, else
    the master's ``sre_remediation:fresh_check``), then ``Remediator.try_resume``, which resumes
    only our drain and only on a healthy report. Fails unless the node was resumed."""
    opts = __opts__  # type: ignore[name-defined]  # noqa: F821
    settings = {**_settings(opts), "execute": bool(execute)}
    if fresh_check is not None:
        settings["fresh_check"] = fresh_check
    node = expected_node(minion, dict(settings.get("node_map") or {}))
    decision = _recover(
        _remediator(settings),
        minion,
        node,
        _minion_fresh_check(opts, settings),
        _minion_diag(opts, float(settings.get("resume_diag_timeout") or 900)),
        settings.get("resume_diag"),
    )
    if decision.get("outcome") != "acted":
        _failed(
            f"{node} failed the health gate and stays drained: {decision.get('code')}: "
            f"{decision.get('message')}"
        )
    return decision


# --- acceptance (salt/orch/acceptance.sls) -----------------------------------------------------

# Whole-run bounds per level (seconds), as gpu.diag's; the wait adds a minute for Salt itself.
ACCEPT_TIMEOUTS = {3: 3600, 4: 14400}


def accept(
    minion: str,
    level: int = 3,
    nvbandwidth: bool = False,
    nccl: bool = False,
    diag: Mapping[str, Any] | None = None,
    fresh_check: Mapping[str, Any] | None = None,
    execute: bool = True,
    **_: Any,
) -> dict[str, Any]:
    """Acceptance of a drained minion: ``gpu.diag`` at ``level`` (3 or 4; nvbandwidth and NCCL
    when asked; ``diag``: more gpu.diag arguments), a fresh ``gpu.health``, then
    ``Remediator.try_resume`` with both, which resumes only our drain, only when both pass.
    Fails (the orchestration state fails) unless the node was resumed; it then stays drained
    with our reason, the diagnostic's failure in the decision and the audit log."""
    opts = __opts__  # type: ignore[name-defined]  # noqa: F821
    settings = {**_settings(opts), "execute": bool(execute)}
    if fresh_check is not None:
        settings["fresh_check"] = fresh_check
    node = expected_node(minion, dict(settings.get("node_map") or {}))
    rem = _remediator(settings)
    try:
        lvl = int(level)
    except (TypeError, ValueError):
        lvl = 0
    extra, why = _diag_kwargs(diag, "diag")
    if lvl not in ACCEPT_TIMEOUTS or why:
        why = why or f"level: expected 3 or 4, got {level!r}"
        _failed(f"{node}: acceptance not started: {why}")
        return {"node": node, "outcome": "refused", "code": "invalid_input", "message": why}
    budget = float(extra.get("timeout") or ACCEPT_TIMEOUTS[lvl])
    request = {"level": lvl, "nvbandwidth": bool(nvbandwidth), "nccl": bool(nccl)}
    decision = _recover(
        rem,
        minion,
        node,
        _minion_fresh_check(opts, settings),
        _minion_diag(opts, budget + 60),
        extra,
        request,
    )
    if decision.get("outcome") != "acted":
        _failed(
            f"{node} failed acceptance and stays drained: {decision.get('code')}: "
            f"{decision.get('message')}"
        )
        decision["annotated"] = _annotate(rem, node, decision)
    return decision


def _annotate(rem: Any, node: str, decision: Mapping[str, Any]) -> dict[str, Any]:
    """Our drain says why the node stays drained (sinfo -R); an operator's is left alone."""
    from sre_tools.exceptions import SreError
    from sre_tools.remediation.model import sanitize_text

    text = sanitize_text(
        f"acceptance failed: {decision.get('message') or decision.get('code')}", 200
    )
    try:
        return dict(rem.annotate(node, text).to_dict())
    except SreError as exc:  # the node stays drained either way
        return {"outcome": "failed", "code": "annotate_failed", "message": str(exc)[:300]}
