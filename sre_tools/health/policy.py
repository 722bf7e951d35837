"""Health policy: shipped profiles (``generic``, ``h100``, ``h100-sxm-8``, ``a100-sxm-8``) plus a
site file.

A site file is a YAML mapping that may name a profile (``profile: h100-sxm-8``) and override any
key; unknown keys and wrong types are errors that name the file and the field. Without
``--profile`` and without a ``profile:`` in the site file the profile is picked from what the node
is (:func:`profile_for_node`: model and NVSwitch present, never the GPU count) once NVML has
answered, and the site file's overrides apply on top of it. ``sre health`` and ``sre diag`` both
pick through :meth:`Policy.for_node`.
"""

from __future__ import annotations

import copy
import functools
import math
from pathlib import Path

from sre_tools.exceptions import ValidationError
from sre_tools.record import Record

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

PROFILES = ("generic", "h100", "h100-sxm-8", "a100-sxm-8")
# Keys whose default is null ("derive it"), and the type a site file may set them to.
NULLABLE: dict[str, tuple[type, ...]] = {
    "expected_gpus": (int,),
    "pcie.expected_width": (int,),
    "pcie.expected_gen": (int,),
    "nvlink.expected_links": (int,),
    "infiniband.expected_rate_gbps": (int, float),
    "mig.config_file": (str,),
    "mig.config_name": (str,),
    "diag.dcgm.path": (str,),
    "diag.nvbandwidth.path": (str,),
    "diag.nccl.path": (str,),
    # Bandwidth floors: null is "no floor known for this SKU" (the generic profile), and a
    # measurement judged against no floor is UNKNOWN; 0 is "deliberately not judged" (SKIPPED).
    "diag.nvbandwidth.h2d_min_gbps": (int, float),
    "diag.nvbandwidth.d2h_min_gbps": (int, float),
    "diag.nvbandwidth.p2p_read_min_gbps": (int, float),
    "diag.nccl.busbw_min_gbps": (int, float),
    "diag.nccl.multinode_busbw_per_nic_min_gbps": (int, float),
    "diag.nccl.nics_per_node": (int,),
}


def _profile_text(name: str) -> str:
    if name not in PROFILES:
        raise ValidationError(
            f"unknown profile {name!r} (expected one of {', '.join(PROFILES)})", field="profile"
        )
    # Next to this module (importlib.resources costs start-up time; sre_tools is never zipped).
    return (Path(__file__).parent / "profiles" / f"{name}.yaml").read_text(encoding="utf-8")


def _merge(base: dict[str, Any], over: dict[str, Any], path: str, source: str) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in over.items():
        where = f"{path}.{key}" if path else str(key)
        if key in {"profile", "extends"}:
            out[key] = value
            continue
        if key not in base:
            raise ValidationError("unknown policy key", source=source, field=where)
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ValidationError("expected a mapping", source=source, field=where)
            out[key] = _merge(base[key], value, where, source)
            continue
        expected = base[key]
        if value is not None and expected is not None:
            ok = (
                isinstance(value, bool) == isinstance(expected, bool)
                and isinstance(
                    value, type(expected) if not isinstance(expected, int | float) else (int, float)
                )
            ) or (isinstance(expected, str) and isinstance(value, bool))
            if not ok:
                raise ValidationError(
                    f"expected {type(expected).__name__}, got {value!r}", source=source, field=where
                )
        if expected is None and value is not None and where in NULLABLE:
            types = NULLABLE[where]
            if isinstance(value, bool) or not isinstance(value, types):
                raise ValidationError(
                    f"expected {types[0].__name__} or null, got {value!r}",
                    source=source,
                    field=where,
                )
        if isinstance(value, int | float) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValidationError("must be a finite number", source=source, field=where)
            if value < 0:
                raise ValidationError("must not be negative", source=source, field=where)
        out[key] = value
    return out


def _scalar(text: str) -> Any:
    if text in {"null", "~", ""}:
        return None
    if text in {"true", "false"}:
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_profile(text: str, name: str = "<profile>") -> dict[str, Any]:
    """A shipped profile: the block-mapping subset of YAML they are written in (``key: scalar``
    and nested ``key:`` blocks by indentation, comments, ``---``), without importing PyYAML on
    the health path. ``tests/health/checks/test_policy_profiles.py`` checks it against PyYAML
    for every shipped profile; anything outside the subset is an error, not a guess, and so is a
    key given twice in one mapping."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    first_line: dict[tuple[int, str], int] = {}  # (id(mapping), key) -> line it was given on
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip() or line.strip() == "---":
            continue
        indent = len(line) - len(line.lstrip(" "))
        key, sep, value = line.strip().partition(":")
        if not sep or not key or any(c in key for c in "{}[]'\""):
            raise ValidationError(f"line {number}: not a 'key: value' line", source=name)
        while indent <= stack[-1][0]:
            stack.pop()
        parent = stack[-1][1]
        first = first_line.setdefault((id(parent), key), number)
        if first != number:  # as sre_tools.inputs.load_yaml: the last one would silently win
            raise ValidationError(
                f"line {number}: duplicate key {key!r} (first at line {first})", source=name
            )
        value = value.strip()
        if value == "":
            child: dict[str, Any] = {}
            parent[key] = child
            stack.append((indent, child))
        elif value[0] in "{[&*!|>'\"":
            raise ValidationError(f"line {number}: unsupported YAML value {value!r}", source=name)
        else:
            parent[key] = _scalar(value)
    return root


def _load_profile(name: str) -> dict[str, Any]:
    # Every run of a long-lived process (the exporter) resolves the node's profile: parse once.
    return copy.deepcopy(_parsed_profile(name))


@functools.cache
def _parsed_profile(name: str, depth: int = 0) -> dict[str, Any]:
    doc = parse_profile(_profile_text(name), f"profile {name}")
    parent = doc.get("extends")
    if parent is None:
        return dict(doc)
    if depth > 3:
        raise ValidationError("profile inheritance too deep", field="extends")
    return _merge(_parsed_profile(str(parent), depth + 1), doc, "", f"profile {name}")


def profile_for_node(model: str, gpus: int, nvswitch: bool) -> str:
    """The shipped profile for a node: an H100 or A100 on an NVSwitch fabric is an HGX 8-GPU
    board and gets its HGX profile; any other H100 node ``h100`` (no fabric expected); everything
    else ``generic``.

    ``gpus`` is deliberately not part of the choice: an HGX board that lost a GPU shows 7 to NVML,
    and must still be judged as the 8-GPU board it is (``expected_gpus: 8`` then reports the
    missing GPU, and the fabric floors stay in force). A VM given part of an HGX board's GPUs
    with the fabric visible names its profile (``--profile`` or the site file's ``profile:``)."""
    del gpus  # kept in the signature: callers report it in ``profile_from``
    name = model.upper()
    if "H100" in name:
        return "h100-sxm-8" if nvswitch else "h100"
    if "A100" in name and nvswitch:
        return "a100-sxm-8"
    return "generic"


class Policy(Record):
    __slots__ = ("auto", "data", "overrides", "source")
    data: dict[str, Any]
    # Set when no profile was named: the runner picks one from the node (:meth:`for_node`).
    auto: bool
    overrides: dict[str, Any]
    source: str

    def __init__(
        self,
        data: dict[str, Any],
        auto: bool = False,
        overrides: dict[str, Any] | None = None,
        source: str = "<config>",
    ) -> None:
        self._init(
            data=data,
            auto=auto,
            overrides={} if overrides is None else overrides,
            source=source,
        )

    @property
    def name(self) -> str:
        return str(self.data.get("profile", "generic"))

    def get(self, dotted: str) -> Any:
        node: Any = self.data
        for part in dotted.split("."):
            node = node[part]
        return node

    def for_node(self, model: str, gpus: int, nvswitch: bool) -> Policy:
        """This policy, or (when no profile was named) the node's profile with the same site
        overrides; ``data["profile_from"]`` says how the profile was chosen."""
        if not self.auto:
            return self
        name = profile_for_node(model, gpus, nvswitch)
        data = _merge(_load_profile(name), self.overrides, "", self.source)
        data["profile_from"] = f"node: {model or 'unknown model'}, {gpus} GPU(s), " + (
            "NVSwitch fabric" if nvswitch else "no NVSwitch fabric"
        )
        return Policy(data, False, self.overrides, self.source)


def load_policy(
    profile: str | None = None, config_text: str | None = None, source: str = "<config>"
) -> Policy:
    """Profile (named, else picked from the node at run time) with the site file's overrides."""
    over: dict[str, Any] = {}
    if config_text is not None:
        from sre_tools.inputs import load_yaml

        loaded = load_yaml(config_text, source)  # bounded aliases and depth
        if loaded is not None and not isinstance(loaded, dict):
            raise ValidationError("expected a mapping at the top level", source=source)
        over = loaded or {}
    named = profile or over.get("profile")
    name = str(named or "generic")
    try:
        base = _load_profile(name)
    except ValidationError as exc:
        raise exc.at(source) from None
    data = _merge(base, over, "", source)
    _check_order(data, source)
    return Policy(data, named is None, over, source)


# (warning key, critical key, how they must compare): the warning must come before the critical
# on the way to trouble, or one of the two levels could never be reached.
_ORDER = (
    ("thermal.margin_warn_c", "thermal.margin_crit_c", ">="),  # margins shrink towards trouble
    ("thermal.hbm_warn_c", "thermal.hbm_crit_c", "<="),
)


def _check_order(data: dict[str, Any], source: str) -> None:
    for warn_key, crit_key, relation in _ORDER:
        warn, crit = _dig(data, warn_key), _dig(data, crit_key)
        if not isinstance(warn, int | float) or not isinstance(crit, int | float):
            continue
        if (warn < crit) if relation == ">=" else (warn > crit):
            raise ValidationError(
                f"{warn:g} must be {relation} {crit_key} ({crit:g}): the warning comes first",
                source=source,
                field=warn_key,
            )


def _dig(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def load_policy_file(path: Path | None, profile: str | None = None) -> Policy:
    if path is None:
        return load_policy(profile)
    from sre_tools.inputs import MAX_SPEC_BYTES, read_text_capped

    text, source = read_text_capped(str(path), MAX_SPEC_BYTES, what="site file")
    return load_policy(profile, text, source)
