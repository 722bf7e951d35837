"""The remediation domain model: a validated request and the decision taken on it. No I/O.

A :class:`RemediationRequest` comes from one of two places:

- our own health engine (:func:`request_from_report`, a :class:`HealthReport` or its JSON), or
- an *untrusted* event dict (:func:`request_from_event`): a Salt beacon event, a JSON document an
  Ansible play passes on. Every field is checked against a strict schema (names, lengths, no
  control or format characters, unknown keys refused) before anything else looks at it, because
  its values end up in a Slurm drain reason, an audit log and argv lists.
"""

from __future__ import annotations

import enum
import json
import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.health.model import Action, Finding, GpuRef, HealthReport, Severity
from sre_tools.inputs import MAX_EVENT_BYTES, MAX_REPORT_BYTES, load_json

NODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
EVENT_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
CHECK_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SOURCE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}")

MAX_REASON_CHARS = 200
MAX_CHECKS = 32
MAX_GPUS = 64
MAX_GPU_INDEX = 1023
MAX_EVIDENCE_KEYS = 32
MAX_EVIDENCE_STRING = 256
MAX_EVIDENCE_JSON_BYTES = 4096
MAX_EVENT_JSON_BYTES = MAX_EVENT_BYTES  # the caps live in sre_tools.inputs
MAX_REPORT_JSON_BYTES = MAX_REPORT_BYTES
MAX_REPORT_FINDINGS = 10_000

EVENT_KEYS = frozenset(
    {"node", "action", "event_id", "reason", "source", "checks", "gpus", "evidence"}
)
REQUIRED_EVENT_KEYS = ("node", "action", "event_id")

# Unicode categories refused in any text field: controls (C0, C1, DEL), format characters (bidi
# overrides, zero-width joiners: text that displays differently from what it is), surrogates and
# the line/paragraph separators.
_BAD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _has_bad_char(text: str) -> bool:
    return any(unicodedata.category(ch) in _BAD_CATEGORIES for ch in text)


def sanitize_text(text: str, limit: int) -> str:
    """Our own text (a finding's summary) made safe: bad characters to spaces, one line, capped."""
    cleaned = "".join(" " if unicodedata.category(ch) in _BAD_CATEGORIES else ch for ch in text)
    cleaned = " ".join(cleaned.split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 3] + "..."


def _short(value: object, limit: int = 60) -> str:
    """A value for an error message: repr, one line, capped (never echo a megabyte back)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_node(value: object, *, field: str = "node") -> str:
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field=field)
    if not NODE_RE.fullmatch(value):
        raise ValidationError(
            f"invalid node name {_short(value)} (letters, digits, '.', '_', '-'; "
            "starts with a letter or digit; at most 63 characters)",
            field=field,
        )
    return value


def validate_action(value: object, *, field: str = "action") -> Action:
    if isinstance(value, Action):
        return value
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field=field)
    try:
        return Action(value)
    except ValueError:
        known = ", ".join(a.value for a in Action)
        raise ValidationError(
            f"unknown action {_short(value)} (known: {known})", field=field
        ) from None


def _validate_token(value: object, pattern: re.Pattern[str], what: str, field: str) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field=field)
    if not pattern.fullmatch(value):
        raise ValidationError(f"invalid {what} {_short(value)}", field=field)
    return value


def validate_event_id(value: object, *, field: str = "event_id") -> str:
    return _validate_token(value, EVENT_ID_RE, "event id", field)


def validate_source(value: object, *, field: str = "source") -> str:
    return _validate_token(value, SOURCE_RE, "source", field)


def validate_text(value: object, *, field: str, limit: int = MAX_REASON_CHARS) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"must be a string, got {type(value).__name__}", field=field)
    if len(value) > limit:
        raise ValidationError(f"too long ({len(value)} characters, at most {limit})", field=field)
    if _has_bad_char(value):
        raise ValidationError("contains control or format characters", field=field)
    return value


def _validate_checks(value: object, field: str = "checks") -> tuple[str, ...]:
    if not isinstance(value, list | tuple):
        raise ValidationError(f"must be a list, got {type(value).__name__}", field=field)
    if len(value) > MAX_CHECKS:
        raise ValidationError(f"too many entries ({len(value)}, at most {MAX_CHECKS})", field=field)
    out = [_validate_token(v, CHECK_RE, "check id", f"{field}[{i}]") for i, v in enumerate(value)]
    return tuple(dict.fromkeys(out))


def _validate_gpus(value: object, field: str = "gpus") -> tuple[int, ...]:
    if not isinstance(value, list | tuple):
        raise ValidationError(f"must be a list, got {type(value).__name__}", field=field)
    if len(value) > MAX_GPUS:
        raise ValidationError(f"too many entries ({len(value)}, at most {MAX_GPUS})", field=field)
    out: list[int] = []
    for i, v in enumerate(value):
        # bool is an int in Python: refuse it explicitly (true is not GPU 1).
        if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= MAX_GPU_INDEX:
            raise ValidationError(
                f"must be a GPU index 0..{MAX_GPU_INDEX}, got {_short(v)}", field=f"{field}[{i}]"
            )
        out.append(v)
    return tuple(sorted(set(out)))


def _validate_evidence(value: object, field: str = "evidence") -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"must be a mapping, got {type(value).__name__}", field=field)
    if len(value) > MAX_EVIDENCE_KEYS:
        raise ValidationError(
            f"too many keys ({len(value)}, at most {MAX_EVIDENCE_KEYS})", field=field
        )
    out: dict[str, Any] = {}
    for key, v in value.items():
        k = _validate_token(key, CHECK_RE, "evidence key", f"{field}")
        where = f"{field}.{k}"
        if v is None or isinstance(v, bool):
            out[k] = v
        elif isinstance(v, int):
            if abs(v) > 2**63:
                raise ValidationError("integer out of range", field=where)
            out[k] = v
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise ValidationError("must be a finite number", field=where)
            out[k] = v
        elif isinstance(v, str):
            out[k] = validate_text(v, field=where, limit=MAX_EVIDENCE_STRING)
        else:
            raise ValidationError(
                f"must be a string, number, boolean or null, got {type(v).__name__}", field=where
            )
    size = len(json.dumps(out, ensure_ascii=True))
    if size > MAX_EVIDENCE_JSON_BYTES:
        raise ValidationError(
            f"too large ({size} bytes as JSON, at most {MAX_EVIDENCE_JSON_BYTES})", field=field
        )
    return out


@dataclass(frozen=True)
class RemediationRequest:
    """What a front end asks for: act on ``node`` because of ``action``. Validated on creation."""

    node: str
    action: Action
    event_id: str
    reason: str = ""
    source: str = "event"
    checks: tuple[str, ...] = ()
    gpus: tuple[int, ...] = ()
    evidence: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_node(self.node)
        object.__setattr__(self, "action", validate_action(self.action))
        validate_event_id(self.event_id)
        validate_text(self.reason, field="reason")
        validate_source(self.source)
        object.__setattr__(self, "checks", _validate_checks(self.checks))
        object.__setattr__(self, "gpus", _validate_gpus(self.gpus))
        object.__setattr__(self, "evidence", _validate_evidence(self.evidence))

    def to_dict(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "action": self.action.value,
            "event_id": self.event_id,
            "reason": self.reason,
            "source": self.source,
            "checks": list(self.checks),
            "gpus": list(self.gpus),
            "evidence": dict(self.evidence),
        }


def request_from_event(raw: object) -> RemediationRequest:
    """Validate an untrusted event dict (Salt event data, a JSON document) into a request.

    Raises :class:`ValidationError` naming the field. Unknown keys are refused, not ignored: a
    typo (``gpu`` for ``gpus``) must not silently widen or narrow what is done.
    """
    if not isinstance(raw, Mapping):
        raise ValidationError(f"event must be a mapping, got {type(raw).__name__}")
    keys = list(raw)
    for key in keys:
        if not isinstance(key, str):
            raise ValidationError(f"event key {_short(key)} is not a string")
    unknown = sorted(k for k in keys if k not in EVENT_KEYS)
    if unknown:
        raise ValidationError(
            f"unknown key {_short(unknown[0])} (allowed: {', '.join(sorted(EVENT_KEYS))})",
            field=unknown[0] if CHECK_RE.fullmatch(unknown[0]) else None,
        )
    for key in REQUIRED_EVENT_KEYS:
        if key not in raw:
            raise ValidationError("missing", field=key)
    return RemediationRequest(
        node=validate_node(raw["node"]),
        action=validate_action(raw["action"]),
        event_id=validate_event_id(raw["event_id"]),
        reason=validate_text(raw.get("reason", ""), field="reason"),
        source=validate_source(raw.get("source", "event")),
        checks=_validate_checks(raw.get("checks", [])),
        gpus=_validate_gpus(raw.get("gpus", [])),
        evidence=_validate_evidence(raw.get("evidence", {})),
    )


def parse_event_json(text: str, *, source: str = "<event>") -> RemediationRequest:
    """An event as JSON text (size-capped before parsing) into a validated request."""
    size = len(text.encode("utf-8", errors="replace"))
    if size > MAX_EVENT_JSON_BYTES:
        raise ValidationError(
            f"event too large ({size} bytes, at most {MAX_EVENT_JSON_BYTES})", source=source
        )
    data = load_json(text, source)
    try:
        return request_from_event(data)
    except ValidationError as exc:
        raise exc.at(source) from None


# --- from the health engine ---------------------------------------------------------------------

_RESET_LIKE = (Action.RESET_GPU, Action.DRAIN_AND_RESET)


def _problem(f: Finding) -> bool:
    return f.severity in (Severity.WARN, Severity.CRIT) and f.action is not Action.NONE


def request_from_report(
    report: HealthReport,
    *,
    node: str | None = None,
    event_id: str | None = None,
    source: str = "report",
) -> RemediationRequest:
    """The request a health report implies: its worst action, the checks and GPUs behind it.

    The default event id is derived from the report (host, time, action), so feeding the same
    report twice is a duplicate and acts once.
    """
    name = validate_node(node if node is not None else report.host, field="node")
    action = report.action
    problems = sorted(
        (f for f in report.findings if _problem(f)), key=lambda f: f.action.rank, reverse=True
    )
    top = [f for f in problems if f.action is action]
    gpus: set[int] = {f.gpu.index for f in top if f.gpu is not None}
    for f in top:
        if f.check == "reset.pending" and action in (*_RESET_LIKE, Action.REBOOT):
            listed = f.evidence.get("gpus")
            if isinstance(listed, list):
                gpus.update(
                    g
                    for g in listed
                    if isinstance(g, int) and not isinstance(g, bool) and 0 <= g <= MAX_GPU_INDEX
                )
    checks = [c for c in dict.fromkeys(f.check for f in problems) if CHECK_RE.fullmatch(c)]
    evidence: dict[str, Any] = {}
    for f in problems:
        if len(evidence) >= MAX_EVIDENCE_KEYS // 2 or not CHECK_RE.fullmatch(f.check):
            break
        evidence.setdefault(f.check, sanitize_text(f.summary, 120))
    reason = sanitize_text(top[0].summary, MAX_REASON_CHARS) if top else ""
    eid = event_id or f"report:{name}:{int(report.at)}:{action.value}"
    return RemediationRequest(
        node=name,
        action=action,
        event_id=eid,
        reason=reason,
        source=source,
        checks=tuple(checks[:MAX_CHECKS]),
        gpus=tuple(sorted(gpus)[:MAX_GPUS]),
        evidence=evidence,
    )


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise ValidationError("missing", field=f"{where}{key}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise ValidationError(f"must be {name}, got {type(value).__name__}", field=f"{where}{key}")
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def report_from_dict(data: object) -> HealthReport:
    """A :class:`HealthReport` back from ``sre health --json`` output (schema version 1)."""
    from sre_tools.health.model import JSON_SCHEMA_VERSION
    from sre_tools.timeutil import parse_time

    if not isinstance(data, Mapping):
        raise ValidationError(f"report must be a JSON object, got {type(data).__name__}")
    version = _get(data, "schema_version", int, "")
    if version != JSON_SCHEMA_VERSION:
        raise ValidationError(
            f"unsupported schema version {version} (this sre_tools reads {JSON_SCHEMA_VERSION})",
            field="schema_version",
        )
    host = _get(data, "host", str, "")
    at = parse_time(_get(data, "at", str, ""), field="at").timestamp()
    source = data.get("source", "nvml")
    if not isinstance(source, str):
        raise ValidationError("must be a string", field="source")
    raw_findings = _get(data, "findings", list, "")
    if len(raw_findings) > MAX_REPORT_FINDINGS:
        raise ValidationError(f"too many findings ({len(raw_findings)})", field="findings")
    findings: list[Finding] = []
    for i, raw in enumerate(raw_findings):
        where = f"findings[{i}]."
        if not isinstance(raw, Mapping):
            raise ValidationError("must be an object", field=where[:-1])
        check = _get(raw, "check", str, where)
        try:
            severity = Severity(_get(raw, "severity", str, where))
        except ValueError:
            raise ValidationError("unknown severity", field=f"{where}severity") from None
        action = validate_action(_get(raw, "action", str, where), field=f"{where}action")
        summary = _get(raw, "summary", str, where)
        gpu_raw = raw.get("gpu")
        gpu: GpuRef | None = None
        if gpu_raw is not None:
            if not isinstance(gpu_raw, Mapping):
                raise ValidationError("must be an object or null", field=f"{where}gpu")
            index = _get(gpu_raw, "index", int, f"{where}gpu.")
            mig = gpu_raw.get("mig")
            gpu = GpuRef(
                index,
                str(gpu_raw.get("uuid") or ""),
                str(gpu_raw.get("pci_bus_id") or ""),
                mig if isinstance(mig, str) else None,
            )
        evidence = raw.get("evidence") or {}
        if not isinstance(evidence, Mapping):
            raise ValidationError("must be an object", field=f"{where}evidence")
        findings.append(Finding(check, severity, summary, action, gpu, dict(evidence)))
    return HealthReport(host=host, at=at, findings=tuple(findings), source=source)


def parse_report_json(text: str, *, source: str = "<report>") -> HealthReport:
    size = len(text)
    if size > MAX_REPORT_JSON_BYTES:
        raise ValidationError(f"report too large ({size} characters)", source=source)
    data = load_json(text, source)
    try:
        return report_from_dict(data)
    except ValidationError as exc:
        raise exc.at(source) from None


# --- decisions ----------------------------------------------------------------------------------


class Outcome(enum.StrEnum):
    ACTED = "acted"
    REFUSED = "refused"  # a guardrail said no: a normal outcome, not an error
    DRY_RUN = "dry_run"  # what would have been done; nothing was changed
    FAILED = "failed"  # audit only: a command failed; the engine raised a RemediationError


@dataclass(frozen=True)
class Decision:
    """What the engine did (or would do, or refused to do) with one request, and why.

    ``code`` is a stable machine-readable reason (``drained``, ``budget_exhausted``,
    ``operator_drain``, ...; see docs/remediation.md); ``message`` is for people.
    ``commands`` lists the argv of every command run (or, in a dry run, that would run).
    """

    outcome: Outcome
    code: str
    message: str
    node: str | None = None
    action: Action | None = None
    event_id: str | None = None
    commands: tuple[tuple[str, ...], ...] = ()
    notified: bool = False
    at: float = 0.0

    @property
    def acted(self) -> bool:
        return self.outcome is Outcome.ACTED

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "code": self.code,
            "message": self.message,
            "node": self.node,
            "action": None if self.action is None else self.action.value,
            "event_id": self.event_id,
            "commands": [list(c) for c in self.commands],
            "notified": self.notified,
        }


def decision(
    outcome: Outcome,
    code: str,
    message: str,
    request: RemediationRequest | None,
    *,
    at: float,
    commands: Sequence[Sequence[str]] = (),
    notified: bool = False,
) -> Decision:
    return Decision(
        outcome=outcome,
        code=code,
        message=message,
        node=None if request is None else request.node,
        action=None if request is None else request.action,
        event_id=None if request is None else request.event_id,
        commands=tuple(tuple(c) for c in commands),
        notified=notified,
        at=at,
    )


# --- diagnostics as resume evidence ---------------------------------------------------------------

MAX_DIAG_RUNS = 32


@dataclass(frozen=True)
class DiagEvidence:
    """One diagnostic run offered as proof for a resume (``sre diag run --json``): which node,
    which tool and DCGM level, when it finished, and its judged findings."""

    node: str
    kind: str  # dcgm, nvbandwidth, nccl
    level: int  # DCGM run level; 0 for the other kinds
    at: float  # when it finished
    report: HealthReport

    @property
    def problem(self) -> Finding | None:
        """The first finding that fails the run: anything worse than OK (as the diagnostic
        history judges a run, sre_tools.diag.history: a warning fails an acceptance too)."""
        for f in self.report.findings:
            if f.severity in (Severity.WARN, Severity.CRIT, Severity.UNKNOWN):
                return f
        return None

    @property
    def ran(self) -> bool:
        """Something was really tested: at least one finding is OK (a run whose tests were all
        skipped, e.g. dcgmi missing, proves nothing)."""
        return any(f.severity is Severity.OK for f in self.report.findings)

    def describe(self) -> str:
        what = f"level {self.level}" if self.kind == "dcgm" else self.kind
        return f"{what} diagnostic of {self.node}"


def diag_from_dict(data: object, *, where: str = "") -> DiagEvidence:
    """One run's JSON (a health report with ``kind`` and ``level``) into evidence."""
    if not isinstance(data, Mapping):
        raise ValidationError("must be a JSON object", field=where or None)
    kind = data.get("kind")
    if not isinstance(kind, str) or not CHECK_RE.fullmatch(kind):
        raise ValidationError("missing or invalid (dcgm, nvbandwidth, nccl)", field=f"{where}kind")
    level = data.get("level", 0)
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 4:
        raise ValidationError("must be an integer 0..4", field=f"{where}level")
    try:
        report = report_from_dict(data)
    except ValidationError as exc:
        raise ValidationError(exc.reason, field=f"{where}{exc.field or ''}".rstrip(".")) from None
    node = validate_node(report.host, field=f"{where}host")
    return DiagEvidence(node=node, kind=kind, level=level, at=report.at, report=report)


def parse_diag_json(text: str, *, source: str = "<diag>") -> tuple[DiagEvidence, ...]:
    """``sre diag run --json`` output: one run, a list of runs, or ``{"runs": [...]}``."""
    size = len(text)
    if size > MAX_REPORT_JSON_BYTES:
        raise ValidationError(f"diagnostic result too large ({size} characters)", source=source)
    data = load_json(text, source)
    items: object = data
    prefix = ""
    if isinstance(data, Mapping) and "runs" in data:
        items, prefix = data["runs"], "runs"
    if isinstance(items, Mapping):
        items, single = [items], True
    else:
        single = False
    if not isinstance(items, list) or not items:
        raise ValidationError("must be a run, or a non-empty list of runs", source=source)
    if len(items) > MAX_DIAG_RUNS:
        raise ValidationError(
            f"too many runs ({len(items)}, at most {MAX_DIAG_RUNS})", source=source
        )
    try:
        return tuple(
            diag_from_dict(item, where="" if single else f"{prefix}[{i}].")
            for i, item in enumerate(items)
        )
    except ValidationError as exc:
        raise exc.at(source) from None
