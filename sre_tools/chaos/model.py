"""The drill model: a Chaos Toolkit experiment plus our extensions, as frozen dataclasses.

The file format is Chaos Toolkit's (``title``, ``description``, ``steady-state-hypothesis``,
``method``, ``rollbacks``, ``configuration``, ``controls``), so ``chaos validate`` reads our
drills and a hand-written Chaos Toolkit experiment runs under ``sre drill run``. What Chaos Toolkit
has no word for lives under one top-level key, :data:`EXTENSION_KEY`::

    x-sre:
      blast_radius: {mode: COUNT, value: 1, max_nodes: 1}   # ALL | COUNT n | PERCENT p
      stop_conditions: [{name: ..., probe: {...}, tolerance: ...}]
      expect: [{name: ..., probe: {...}, tolerance: ..., within: 60, poll: 5,
                measures: detect}]                        # optional: detect|alert|drain|recover

Activities are ``python`` providers whose module is under ``sre_tools.chaos`` (nothing else is
imported from a drill file), or ``process`` providers (an argv run on the target through its
transport). Parsing takes a mapping and does no I/O; :func:`load_experiment` reads a file
through :mod:`sre_tools.inputs` so a bad file is a one-line error naming the file and field.
"""

from __future__ import annotations

import contextlib
import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sre_tools.exceptions import ValidationError
from sre_tools.inputs import MAX_SPEC_BYTES, load_json, load_yaml, read_text_capped

EXTENSION_KEY = "x-sre"
PROVIDER_MODULE_PREFIX = "sre_tools.chaos."
MAX_DEADLINE_SECONDS = 86_400.0
DEFAULT_TIMEOUT_SECONDS = 60.0
# What an expectation's time measures (``sre drill report``): from the fault to its first
# satisfied probe.
MEASURES = ("detect", "alert", "drain", "recover")


class BlastMode(enum.Enum):
    ALL = "ALL"
    COUNT = "COUNT"
    PERCENT = "PERCENT"


# --- tolerances -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Tolerance:
    """A Chaos Toolkit tolerance. ``kind`` is one of bool, int, string, list (value in list),
    range (``lo <= value <= hi``), regex (``re.search``) or jsonpath (see
    :mod:`sre_tools.chaos.tolerance` for the subset). ``target`` picks a key of a mapping value
    (a process provider's ``status``, ``stdout``, ``stderr``)."""

    kind: str
    value: Any = None
    lo: float | None = None
    hi: float | None = None
    pattern: str | None = None
    path: str | None = None
    expect: Any = None
    has_expect: bool = False
    target: str | None = None

    def to_ctk(self) -> Any:
        if self.kind in ("bool", "int", "string"):
            return self.value
        if self.kind == "list":
            return list(self.value)
        out: dict[str, Any] = {"type": self.kind}
        if self.kind == "range":
            out["range"] = [_plain_number(self.lo), _plain_number(self.hi)]
        elif self.kind == "regex":
            out["pattern"] = self.pattern
        elif self.kind == "jsonpath":
            out["path"] = self.path
            if self.has_expect:
                out["expect"] = self.expect
        if self.target is not None:
            out["target"] = self.target
        return out


def _plain_number(value: float | None) -> float | int | None:
    if value is not None and float(value).is_integer():
        return int(value)
    return value


def _number(value: Any, field_name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValidationError(f"must be a finite number, got {value!r}", field=field_name)
    return float(value)


def parse_tolerance(data: Any, field_name: str = "tolerance") -> Tolerance:
    if isinstance(data, bool):
        return Tolerance("bool", data)
    if isinstance(data, int):
        return Tolerance("int", data)
    if isinstance(data, str):
        return Tolerance("string", data)
    if isinstance(data, list):
        return Tolerance("list", tuple(data))
    if not isinstance(data, Mapping):
        raise ValidationError(
            f"must be a bool, int, string, list or mapping, got {type(data).__name__}",
            field=field_name,
        )
    kind = data.get("type")
    target = _opt_str(data, "target", field_name)
    if kind == "range":
        bounds = data.get("range")
        if not isinstance(bounds, list) or len(bounds) != 2:
            raise ValidationError("must be a list [lo, hi]", field=f"{field_name}.range")
        lo = _number(bounds[0], f"{field_name}.range[0]")
        hi = _number(bounds[1], f"{field_name}.range[1]")
        if lo > hi:
            raise ValidationError(f"lo {lo:g} is above hi {hi:g}", field=f"{field_name}.range")
        return Tolerance("range", lo=lo, hi=hi, target=target)
    if kind == "regex":
        pattern = _req_str(data, "pattern", field_name)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValidationError(f"invalid regex: {exc}", field=f"{field_name}.pattern") from None
        return Tolerance("regex", pattern=pattern, target=target)
    if kind == "jsonpath":
        from sre_tools.chaos.tolerance import parse_jsonpath

        path = _req_str(data, "path", field_name)
        parse_jsonpath(path, f"{field_name}.path")
        return Tolerance(
            "jsonpath",
            path=path,
            expect=data.get("expect"),
            has_expect="expect" in data,
            target=target,
        )
    raise ValidationError(
        f"unknown tolerance type {kind!r} (expected range, regex or jsonpath)",
        field=f"{field_name}.type",
    )


# --- activities -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Provider:
    """``python``: ``module`` (under ``sre_tools.chaos``), ``func``, keyword ``arguments``.
    ``process``: ``path`` and a list of string ``arguments`` (an argv, never a shell string)."""

    type: str
    module: str = ""
    func: str = ""
    path: str = ""
    arguments: Any = None  # a mapping (python) or a tuple of strings (process)
    timeout: float = DEFAULT_TIMEOUT_SECONDS

    def to_ctk(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type == "python":
            out["module"] = self.module
            out["func"] = self.func
            if self.arguments:
                out["arguments"] = dict(self.arguments)
        else:
            out["path"] = self.path
            if self.arguments:
                out["arguments"] = list(self.arguments)
        if self.timeout != DEFAULT_TIMEOUT_SECONDS:
            out["timeout"] = _plain_number(self.timeout)
        return out


@dataclass(frozen=True)
class Activity:
    type: str  # "action" or "probe"
    name: str
    provider: Provider
    tolerance: Tolerance | None = None
    pause_before: float = 0.0
    pause_after: float = 0.0

    def to_ctk(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "name": self.name}
        out["provider"] = self.provider.to_ctk()
        if self.tolerance is not None:
            out["tolerance"] = self.tolerance.to_ctk()
        pauses = {}
        if self.pause_before:
            pauses["before"] = _plain_number(self.pause_before)
        if self.pause_after:
            pauses["after"] = _plain_number(self.pause_after)
        if pauses:
            out["pauses"] = pauses
        return out


def parse_provider(data: Any, field_name: str) -> Provider:
    data = _mapping(data, field_name)
    kind = data.get("type")
    timeout = DEFAULT_TIMEOUT_SECONDS
    if "timeout" in data:
        timeout = _number(data["timeout"], f"{field_name}.timeout")
        if not 0 < timeout <= MAX_DEADLINE_SECONDS:
            raise ValidationError(
                f"must be in (0, {MAX_DEADLINE_SECONDS:g}] seconds", field=f"{field_name}.timeout"
            )
    if kind == "python":
        module = _req_str(data, "module", field_name)
        if not module.startswith(PROVIDER_MODULE_PREFIX):
            raise ValidationError(
                f"python providers must be under {PROVIDER_MODULE_PREFIX.rstrip('.')}, "
                f"got {module!r}",
                field=f"{field_name}.module",
            )
        func = _req_str(data, "func", field_name)
        if not func.isidentifier() or func.startswith("_"):
            raise ValidationError(
                f"not a public function name: {func!r}", field=f"{field_name}.func"
            )
        arguments = data.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise ValidationError("must be a mapping", field=f"{field_name}.arguments")
        return Provider(
            "python", module=module, func=func, arguments=dict(arguments), timeout=timeout
        )
    if kind == "process":
        path = _req_str(data, "path", field_name)
        arguments = data.get("arguments", [])
        if isinstance(arguments, str):
            raise ValidationError(
                "must be a list of strings (an argv, never a shell string)",
                field=f"{field_name}.arguments",
            )
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            raise ValidationError("must be a list of strings", field=f"{field_name}.arguments")
        return Provider("process", path=path, arguments=tuple(arguments), timeout=timeout)
    raise ValidationError(
        f"unsupported provider type {kind!r} (expected python or process)",
        field=f"{field_name}.type",
    )


def parse_activity(data: Any, field_name: str, *, kind: str | None = None) -> Activity:
    data = _mapping(data, field_name)
    activity_type = data.get("type")
    if activity_type not in ("action", "probe"):
        raise ValidationError(
            f"must be 'action' or 'probe', got {activity_type!r}", field=f"{field_name}.type"
        )
    if kind is not None and activity_type != kind:
        raise ValidationError(f"must be a {kind}", field=f"{field_name}.type")
    name = _req_str(data, "name", field_name)
    provider = parse_provider(data.get("provider"), f"{field_name}.provider")
    tolerance = None
    if "tolerance" in data:
        tolerance = parse_tolerance(data["tolerance"], f"{field_name}.tolerance")
    pauses = data.get("pauses", {})
    if not isinstance(pauses, Mapping):
        raise ValidationError("must be a mapping", field=f"{field_name}.pauses")
    before = _pause(pauses, "before", field_name)
    after = _pause(pauses, "after", field_name)
    return Activity(activity_type, name, provider, tolerance, before, after)


def _pause(pauses: Mapping[str, Any], key: str, field_name: str) -> float:
    if key not in pauses:
        return 0.0
    value = _number(pauses[key], f"{field_name}.pauses.{key}")
    if not 0 <= value <= MAX_DEADLINE_SECONDS:
        raise ValidationError(
            f"must be in [0, {MAX_DEADLINE_SECONDS:g}] seconds", field=f"{field_name}.pauses.{key}"
        )
    return value


# --- extensions -----------------------------------------------------------------------------


@dataclass(frozen=True)
class BlastRadius:
    """Which share of the resolved candidates a run may touch, and a hard cap on top."""

    mode: BlastMode = BlastMode.COUNT
    value: float = 1
    max_nodes: int = 1

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mode": self.mode.value}
        if self.mode is not BlastMode.ALL:
            out["value"] = _plain_number(self.value)
        out["max_nodes"] = self.max_nodes
        return out


@dataclass(frozen=True)
class Check:
    """A probe judged by a tolerance: a stop condition (stop when it does *not* hold) or an
    expectation (must hold within ``within`` seconds, probed every ``poll`` seconds; ``measures``
    names the time it measures, one of :data:`MEASURES`)."""

    name: str
    probe: Activity
    tolerance: Tolerance
    within: float = 0.0
    poll: float = 1.0
    measures: str | None = None
    # ``${name}`` of the configuration value that ``within`` / ``poll`` came from, if one did: a
    # site sets it with ``--var`` (its SlurmdTimeout, its alert's ``for``); see resolve_timing.
    within_var: str | None = None
    poll_var: str | None = None

    def to_dict(self, *, deadline: bool) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "probe": self.probe.to_ctk()}
        out["tolerance"] = self.tolerance.to_ctk()
        if deadline:
            w, p = self.within_var, self.poll_var
            out["within"] = f"${{{w}}}" if w else _plain_number(self.within)
            out["poll"] = f"${{{p}}}" if p else _plain_number(self.poll)
        if self.measures is not None:
            out["measures"] = self.measures
        return out


def parse_blast_radius(data: Any, field_name: str) -> BlastRadius:
    data = _mapping(data, field_name)
    _only(data, {"mode", "value", "max_nodes"}, field_name)
    raw_mode = data.get("mode", "COUNT")
    try:
        mode = BlastMode(str(raw_mode).upper())
    except ValueError:
        raise ValidationError(
            f"must be ALL, COUNT or PERCENT, got {raw_mode!r}", field=f"{field_name}.mode"
        ) from None
    value: float = 0
    if mode is BlastMode.COUNT:
        value = data.get("value", 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValidationError(
                f"must be an integer >= 1, got {value!r}", field=f"{field_name}.value"
            )
    elif mode is BlastMode.PERCENT:
        value = _number(data.get("value"), f"{field_name}.value")
        if not 0 < value <= 100:
            raise ValidationError(
                f"must be in (0, 100], got {value:g}", field=f"{field_name}.value"
            )
    cap = data.get("max_nodes", 1)
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValidationError(
            f"must be an integer >= 1, got {cap!r}", field=f"{field_name}.max_nodes"
        )
    return BlastRadius(mode, value, cap)


_WHOLE_VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _timing(
    value: Any, field_name: str, configuration: Mapping[str, Any]
) -> tuple[float, str | None]:
    """A number of seconds, or ``${name}`` naming one in the configuration."""
    if isinstance(value, str):
        whole = _WHOLE_VAR_RE.fullmatch(value)
        if whole is None:
            raise ValidationError(f"must be a number or ${{name}}, got {value!r}", field=field_name)
        name = whole.group(1)
        if name not in configuration:
            raise ValidationError(f"${{{name}}} is not in the configuration", field=field_name)
        return _number(configuration[name], f"configuration.{name}"), name
    return _number(value, field_name), None


def check_timing(within: float, poll: float, field_name: str) -> None:
    if not 0 < within <= MAX_DEADLINE_SECONDS:
        raise ValidationError(
            f"must be in (0, {MAX_DEADLINE_SECONDS:g}] seconds, got {within:g}",
            field=f"{field_name}.within",
        )
    if not 0 < poll <= within:
        raise ValidationError(f"must be in (0, within], got {poll:g}", field=f"{field_name}.poll")


def parse_check(
    data: Any,
    field_name: str,
    *,
    deadline: bool,
    configuration: Mapping[str, Any] | None = None,
) -> Check:
    data = _mapping(data, field_name)
    name = _req_str(data, "name", field_name)
    probe = parse_activity(data.get("probe"), f"{field_name}.probe", kind="probe")
    if "tolerance" not in data:
        raise ValidationError("is required", field=f"{field_name}.tolerance")
    tolerance = parse_tolerance(data["tolerance"], f"{field_name}.tolerance")
    within, poll = 0.0, 1.0
    within_var = poll_var = None
    if deadline:
        config = configuration or {}
        within, within_var = _timing(data.get("within"), f"{field_name}.within", config)
        poll, poll_var = _timing(data.get("poll", 1.0), f"{field_name}.poll", config)
        check_timing(within, poll, field_name)
    measures = data.get("measures")
    if measures is not None and (not deadline or measures not in MEASURES):
        raise ValidationError(
            f"must be one of {', '.join(MEASURES)} (expectations only), got {measures!r}",
            field=f"{field_name}.measures",
        )
    return Check(name, probe, tolerance, within, poll, measures, within_var, poll_var)


def resolve_timing(check: Check, variables: Mapping[str, Any], field_name: str) -> Check:
    """``check`` with ``within`` / ``poll`` taken from ``variables`` (the configuration with the
    run's ``--var`` values) where they name a configuration value."""
    if check.within_var is None and check.poll_var is None:
        return check

    def seconds(name: str) -> float:
        value = variables.get(name)
        if isinstance(value, str):  # --var KEY=VALUE gives text
            with contextlib.suppress(ValueError):
                value = float(value)
        return _number(value, f"configuration.{name}")

    within = check.within if check.within_var is None else seconds(check.within_var)
    poll = check.poll if check.poll_var is None else seconds(check.poll_var)
    check_timing(within, poll, field_name)
    return replace(check, within=within, poll=poll, within_var=None, poll_var=None)


# --- the experiment -------------------------------------------------------------------------


@dataclass(frozen=True)
class Experiment:
    title: str
    description: str = ""
    hypothesis_title: str = ""
    hypothesis: tuple[Activity, ...] = ()
    method: tuple[Activity, ...] = ()
    rollbacks: tuple[Activity, ...] = ()
    configuration: Mapping[str, Any] = field(default_factory=dict)
    controls: tuple[Any, ...] = ()
    tags: tuple[str, ...] = ()
    blast_radius: BlastRadius = BlastRadius()
    stop_conditions: tuple[Check, ...] = ()
    expect: tuple[Check, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)  # other top-level keys, kept as-is

    def to_ctk(self) -> dict[str, Any]:
        """The experiment as a Chaos Toolkit document (our extensions under ``x-sre``)."""
        out: dict[str, Any] = {"version": "1.0.0", "title": self.title}
        out["description"] = self.description
        if self.tags:
            out["tags"] = list(self.tags)
        if self.configuration:
            out["configuration"] = dict(self.configuration)
        if self.controls:
            out["controls"] = list(self.controls)
        if self.hypothesis or self.hypothesis_title:
            out["steady-state-hypothesis"] = {
                "title": self.hypothesis_title or self.title,
                "probes": [a.to_ctk() for a in self.hypothesis],
            }
        out["method"] = [a.to_ctk() for a in self.method]
        if self.rollbacks:
            out["rollbacks"] = [a.to_ctk() for a in self.rollbacks]
        ext: dict[str, Any] = {"blast_radius": self.blast_radius.to_dict()}
        if self.stop_conditions:
            ext["stop_conditions"] = [c.to_dict(deadline=False) for c in self.stop_conditions]
        if self.expect:
            ext["expect"] = [c.to_dict(deadline=True) for c in self.expect]
        out[EXTENSION_KEY] = ext
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out


_KNOWN_KEYS = {
    "version",
    "title",
    "description",
    "tags",
    "configuration",
    "controls",
    "steady-state-hypothesis",
    "method",
    "rollbacks",
    EXTENSION_KEY,
}


def parse_experiment(data: Any) -> Experiment:
    """An :class:`Experiment` from a Chaos Toolkit document; errors name the field."""
    data = _mapping(data, "experiment")
    title = _req_str(data, "title", "")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ValidationError("must be a string", field="description")
    tags = data.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValidationError("must be a list of strings", field="tags")
    configuration = data.get("configuration", {})
    if not isinstance(configuration, Mapping):
        raise ValidationError("must be a mapping", field="configuration")
    controls = data.get("controls", [])
    if not isinstance(controls, list):
        raise ValidationError("must be a list", field="controls")
    hypothesis: tuple[Activity, ...] = ()
    hypothesis_title = ""
    if "steady-state-hypothesis" in data:
        ssh = _mapping(data["steady-state-hypothesis"], "steady-state-hypothesis")
        hypothesis_title = _req_str(ssh, "title", "steady-state-hypothesis")
        probes = _list(ssh.get("probes", []), "steady-state-hypothesis.probes")
        hypothesis = tuple(
            parse_activity(p, f"steady-state-hypothesis.probes[{i}]", kind="probe")
            for i, p in enumerate(probes)
        )
        for i, probe in enumerate(hypothesis):
            if probe.tolerance is None:
                raise ValidationError(
                    "is required", field=f"steady-state-hypothesis.probes[{i}].tolerance"
                )
    if "method" not in data:
        raise ValidationError("is required", field="method")
    method = tuple(
        parse_activity(a, f"method[{i}]") for i, a in enumerate(_list(data["method"], "method"))
    )
    if not method:
        raise ValidationError("must list at least one activity", field="method")
    rollbacks = tuple(
        parse_activity(a, f"rollbacks[{i}]", kind="action")
        for i, a in enumerate(_list(data.get("rollbacks", []), "rollbacks"))
    )
    ext = _mapping(data.get(EXTENSION_KEY, {}), EXTENSION_KEY)
    _only(ext, {"blast_radius", "stop_conditions", "expect"}, EXTENSION_KEY)
    blast = BlastRadius()
    if "blast_radius" in ext:
        blast = parse_blast_radius(ext["blast_radius"], f"{EXTENSION_KEY}.blast_radius")
    stops = tuple(
        parse_check(c, f"{EXTENSION_KEY}.stop_conditions[{i}]", deadline=False)
        for i, c in enumerate(
            _list(ext.get("stop_conditions", []), f"{EXTENSION_KEY}.stop_conditions")
        )
    )
    expect = tuple(
        parse_check(c, f"{EXTENSION_KEY}.expect[{i}]", deadline=True, configuration=configuration)
        for i, c in enumerate(_list(ext.get("expect", []), f"{EXTENSION_KEY}.expect"))
    )
    extra = {k: v for k, v in data.items() if k not in _KNOWN_KEYS}
    return Experiment(
        title=title,
        description=description,
        hypothesis_title=hypothesis_title,
        hypothesis=hypothesis,
        method=method,
        rollbacks=rollbacks,
        configuration=dict(configuration),
        controls=tuple(controls),
        tags=tuple(tags),
        blast_radius=blast,
        stop_conditions=stops,
        expect=expect,
        extra=extra,
    )


def parse_experiment_text(text: str, source: str) -> Experiment:
    """Parse JSON (a name ending in ``.json``) or YAML text; errors carry ``source``."""
    data = load_json(text, source) if source.endswith(".json") else load_yaml(text, source)
    try:
        return parse_experiment(data)
    except ValidationError as exc:
        raise exc.at(source) from None


def load_experiment(path: str) -> Experiment:
    text, source = read_text_capped(path, MAX_SPEC_BYTES, what="experiment")
    return parse_experiment_text(text, source)


def validate_run_id(run_id: str, field_name: str) -> str:
    """``run_id`` when it is one (the pattern the XID drill tags use: it names a journal file)."""
    from sre_tools.health.xid.model import DRILL_RUN_ID_RE

    if not DRILL_RUN_ID_RE.fullmatch(run_id):
        raise ValidationError(f"not a valid run id: {run_id!r}", field=field_name)
    return run_id


# --- helpers --------------------------------------------------------------------------------


def _mapping(data: Any, field_name: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        got = "nothing" if data is None else type(data).__name__
        raise ValidationError(f"must be a mapping, got {got}", field=field_name or None)
    return data


def _list(data: Any, field_name: str) -> list[Any]:
    if not isinstance(data, list):
        raise ValidationError("must be a list", field=field_name)
    return data


def _only(data: Mapping[str, Any], allowed: set[str], field_name: str) -> None:
    for key in data:
        if key not in allowed:
            raise ValidationError(
                f"unknown key (expected one of {', '.join(sorted(allowed))})",
                field=f"{field_name}.{key}",
            )


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _req_str(data: Mapping[str, Any], key: str, field_name: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(
            "is required and must be a non-empty string", field=_join(field_name, key)
        )
    return value


def _opt_str(data: Mapping[str, Any], key: str, field_name: str) -> str | None:
    if key not in data:
        return None
    return _req_str(data, key, field_name)
