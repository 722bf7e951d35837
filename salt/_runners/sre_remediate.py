"""Salt runner ``sre_remediate``: the master side of GPU remediation, thin over sre_tools.

The reactor (``salt/reactor/gpu_health.sls``) starts the orchestration
(``salt/orch/gpu_remediate.sls``), which calls :func:`handle` here with the beacon event's tag and
data. Event data from minions is untrusted:

- the minion id is taken from the tag (``salt/beacon/<minion>/gpu_health/...``); the event's
  ``minion`` field and its remediation request's ``node`` must agree with it (``node`` through the
  master's ``sre_remediation:node_map``, else the minion id up to its first dot), so a minion can
  only report on itself;
- the request is validated again by ``sre_tools.remediation`` (schema, sizes, characters) and goes
  through the guardrails (drain budget, cooldown, dedupe, owned drain reasons);
- every decision, a refused forgery included, lands in the append-only audit log;
- nothing from the event is ever put into a shell command.

Master configuration (``/etc/salt/master.d/sre.conf``)::

    sre_remediation:
      config: /etc/sre-tools/remediation.yaml     # guardrail settings (docs/remediation.md)
      state: /var/lib/sre-tools/remediation.db
      audit: /var/log/sre-tools/remediation.jsonl
      execute: false                              # dry run until an operator turns it on
      node_map: {}                                # minion id -> Slurm node name, where they differ
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__virtualname__ = "sre_remediate"
TAG = re.compile(
    r"^salt/beacon/(?P<minion>[A-Za-z0-9][A-Za-z0-9._-]{0,252})/gpu_health/sre/gpu/health/"
)
DEFAULTS = {
    "config": None,
    "state": "/var/lib/sre-tools/remediation.db",
    "audit": "/var/log/sre-tools/remediation.jsonl",
    "execute": False,
    "node_map": {},
    "slurm_conf": None,
}


def __virtual__() -> Any:
    try:
        import sre_tools.remediation  # noqa: F401
    except ImportError as exc:
        return False, f"sre_remediate: sre_tools is not importable: {exc}"
    return __virtualname__


def _settings(opts: dict[str, Any]) -> dict[str, Any]:
    merged = dict(DEFAULTS)
    merged.update(opts.get("sre_remediation") or {})
    return merged


def expected_node(minion: str, node_map: dict[str, str]) -> str:
    """The Slurm node a minion may report on."""
    return str(node_map.get(minion) or minion.split(".", 1)[0])


def _remediator(settings: dict[str, Any]) -> Any:
    from sre_tools.remediation import Remediator, SlurmClient
    from sre_tools.remediation.config import load_config

    cfg = load_config(Path(settings["config"]) if settings["config"] else None)
    slurm = SlurmClient(timeout=cfg.slurm_timeout_seconds, slurm_conf=settings["slurm_conf"])
    return Remediator(
        cfg, slurm, settings["state"], settings["audit"], dry_run=not bool(settings["execute"])
    )


def check_origin(tag: object, data: object, node_map: dict[str, str]) -> tuple[str | None, str]:
    """(minion id or None, why not): the tag names the minion; the event must agree with it."""
    if not isinstance(tag, str) or not (match := TAG.match(tag)):
        return None, f"tag is not a gpu_health beacon tag: {str(tag)[:120]!r}"
    minion = match.group("minion")
    if not isinstance(data, dict):
        return None, "event data is not a mapping"
    if data.get("minion") not in (None, minion):
        return None, f"event claims minion {str(data.get('minion'))[:80]!r}, tag says {minion!r}"
    request = data.get("remediation")
    if not isinstance(request, dict):
        return None, "event carries no remediation request"
    want = expected_node(minion, node_map)
    if request.get("node") != want:
        return None, (
            f"minion {minion!r} may only report on node {want!r}, "
            f"event names {str(request.get('node'))[:80]!r}"
        )
    return minion, ""


def handle(tag: str, data: dict[str, Any], **_: Any) -> dict[str, Any]:
    """Check the event's origin, then let the guardrails decide; returns the decision."""
    settings = _settings(__opts__)  # type: ignore[name-defined]  # noqa: F821 - Salt injects it
    return handle_with(settings, tag, data)


def handle_with(
    settings: dict[str, Any], tag: object, data: object, remediator: Any = None
) -> dict[str, Any]:
    """:func:`handle` with explicit settings (and an injectable engine, for tests)."""
    rem = remediator or _remediator(settings)
    minion, why = check_origin(tag, data, dict(settings.get("node_map") or {}))
    if minion is None:
        log.warning("sre_remediate: refused event: %s", why)
        decision = rem.refuse_event(f"forged or malformed event: {why}", field="node")
        return dict(decision.to_dict())
    assert isinstance(data, dict)
    decision = rem.handle_event(dict(data["remediation"]))
    return dict(decision.to_dict())
