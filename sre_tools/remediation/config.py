"""Remediation configuration: guardrail limits, timeouts, where node actions run, notification.

Loaded from a YAML mapping (``remediation:`` at the top, or the keys themselves); unknown keys and
wrong types are errors naming the file and the key. Every key has a safe default.
"""

from __future__ import annotations

import dataclasses
import math
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sre_tools.exceptions import ValidationError

NODE_EXEC_MODES = ("ssh", "local")


@dataclass(frozen=True)
class RemediationConfig:
    # Budget: at most this many nodes drained by us at once, cluster-wide ...
    max_drained_nodes: int = 2
    # ... and at most this share of any partition the node belongs to (at least one node).
    max_drained_percent: float = 10.0
    # After we drain, act on or resume a node, no new drain of it for this long.
    cooldown_seconds: float = 3600.0
    # Node-side actions (reset, reboot, ...) at most this many times per drain, spaced by the
    # cooldown; after that the node stays drained and a person is notified.
    max_actions_per_drain: int = 2
    # A drain whose reason starts with this is ours; any other reason belongs to an operator.
    reason_prefix: str = "sre:"
    # A report older than this cannot justify a resume.
    max_report_age_seconds: float = 900.0
    # Event ids are remembered this long for de-duplication.
    event_ttl_seconds: float = 7 * 86400.0
    # Partition membership (sinfo) is cached this long.
    topology_ttl_seconds: float = 60.0
    slurm_timeout_seconds: float = 15.0
    action_timeout_seconds: float = 180.0
    # Where node-side commands run: "ssh" (engine on the controller, command on the node) or
    # "local" (engine on the node itself).
    node_exec: str = "ssh"
    notify_webhook: str | None = None
    notify_timeout_seconds: float = 5.0
    # After a GPU reset (reset_gpu, drain_and_reset) ran during our drain, a resume also needs
    # a passing DCGM diagnostic (`sre diag run --level N --json`) of at least this level that
    # finished after the reset. 0: the fresh health report alone suffices, as for other actions.
    resume_diag_level_after_reset: int = 2

    def __post_init__(self) -> None:
        validate_config(self)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELDS = {f.name: f for f in dataclasses.fields(RemediationConfig)}


def _positive(name: str, value: float, *, zero_ok: bool = True) -> None:
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an integer too large for a float: not a setting
        finite = False
    shown = f"{value!r:.40}"
    if not finite:
        raise ValidationError(f"must be a finite number, got {shown}", field=name)
    if value < 0 or (value == 0 and not zero_ok):
        raise ValidationError(f"must be {'>= 0' if zero_ok else '> 0'}, got {shown}", field=name)


def validate_config(cfg: RemediationConfig) -> None:
    _positive("max_drained_nodes", cfg.max_drained_nodes)
    _positive("max_drained_percent", cfg.max_drained_percent)
    if cfg.max_drained_percent > 100:
        raise ValidationError(
            f"must be at most 100, got {cfg.max_drained_percent}", field="max_drained_percent"
        )
    _positive("cooldown_seconds", cfg.cooldown_seconds)
    _positive("max_actions_per_drain", cfg.max_actions_per_drain)
    _positive("max_report_age_seconds", cfg.max_report_age_seconds, zero_ok=False)
    _positive("event_ttl_seconds", cfg.event_ttl_seconds, zero_ok=False)
    _positive("topology_ttl_seconds", cfg.topology_ttl_seconds)
    _positive("slurm_timeout_seconds", cfg.slurm_timeout_seconds, zero_ok=False)
    _positive("action_timeout_seconds", cfg.action_timeout_seconds, zero_ok=False)
    _positive("notify_timeout_seconds", cfg.notify_timeout_seconds, zero_ok=False)
    if cfg.resume_diag_level_after_reset not in (0, 1, 2, 3, 4):
        raise ValidationError(
            "must be a DCGM run level 1-4, or 0 (no diagnostic required), got "
            f"{cfg.resume_diag_level_after_reset}",
            field="resume_diag_level_after_reset",
        )
    prefix = cfg.reason_prefix
    if not 1 <= len(prefix) <= 32 or not prefix.isprintable() or prefix != prefix.strip():
        raise ValidationError(
            f"must be 1-32 printable characters without surrounding spaces, got {prefix!r}",
            field="reason_prefix",
        )
    if cfg.node_exec not in NODE_EXEC_MODES:
        raise ValidationError(
            f"must be one of {', '.join(NODE_EXEC_MODES)}, got {cfg.node_exec!r}",
            field="node_exec",
        )
    if cfg.notify_webhook is not None:
        validate_webhook(cfg.notify_webhook)


def validate_webhook(url: str, *, field: str = "notify_webhook") -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ValidationError(f"must be an http(s) URL, got {url!r}", field=field)
    if not url.isprintable() or " " in url:
        raise ValidationError("must not contain spaces or control characters", field=field)
    return url


def config_from_mapping(data: Mapping[str, Any], *, source: str | None = None) -> RemediationConfig:
    if "remediation" in data and len(data) == 1 and isinstance(data["remediation"], Mapping):
        data = data["remediation"]
    values: dict[str, Any] = {}
    for key, raw in data.items():
        value = raw
        if key not in _FIELDS:
            raise ValidationError(
                f"unknown key (known: {', '.join(sorted(_FIELDS))})", source=source, field=str(key)
            )
        default = _FIELDS[key].default
        if key == "notify_webhook":
            if value is not None and not isinstance(value, str):
                raise ValidationError("must be a URL string or null", source=source, field=key)
        elif isinstance(default, bool) or isinstance(value, bool):
            raise ValidationError("must be a number", source=source, field=key)
        elif isinstance(default, int):
            if not isinstance(value, int):
                raise ValidationError("must be an integer", source=source, field=key)
        elif isinstance(default, float):
            if not isinstance(value, int | float):
                raise ValidationError("must be a number", source=source, field=key)
            value = float(value)
        elif isinstance(default, str) and not isinstance(value, str):
            raise ValidationError("must be a string", source=source, field=key)
        values[key] = value
    try:
        return RemediationConfig(**values)
    except ValidationError as exc:
        raise exc.at(source) if source else exc from None


def load_config_text(text: str, source: str) -> RemediationConfig:
    from sre_tools.inputs import load_yaml

    data = load_yaml(text, source)
    if data is None:
        return RemediationConfig()
    if not isinstance(data, Mapping):
        raise ValidationError("must be a YAML mapping", source=source)
    return config_from_mapping(data, source=source)


def load_config(path: Path | None) -> RemediationConfig:
    """The configuration at ``path`` (or ``$SRE_REMEDIATION_CONFIG``); defaults when neither."""
    if path is None:
        env = os.environ.get("SRE_REMEDIATION_CONFIG")
        if not env:
            return RemediationConfig()
        path = Path(env)
    from sre_tools.inputs import MAX_SPEC_BYTES, read_text_capped

    text, source = read_text_capped(str(path), MAX_SPEC_BYTES, what="config")
    return load_config_text(text, source)


def _state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "sre-tools"


def default_state_path() -> Path | str:
    """``$SRE_REMEDIATION_STATE`` (a file or a PostgreSQL URL), else
    ``$XDG_STATE_HOME/sre-tools/remediation.db``."""
    from sre_tools.store import as_location

    explicit = as_location(
        os.environ.get("SRE_REMEDIATION_STATE") or None, "$SRE_REMEDIATION_STATE"
    )
    return explicit if explicit is not None else _state_dir() / "remediation.db"


def default_audit_path() -> Path | str:
    """``$SRE_REMEDIATION_AUDIT`` (a file or a PostgreSQL URL), else
    ``$XDG_STATE_HOME/sre-tools/remediation-audit.jsonl``."""
    from sre_tools.store import as_location

    explicit = as_location(
        os.environ.get("SRE_REMEDIATION_AUDIT") or None, "$SRE_REMEDIATION_AUDIT"
    )
    return explicit if explicit is not None else _state_dir() / "remediation-audit.jsonl"
