"""Whether a probe's value satisfies a :class:`~sre_tools.chaos.model.Tolerance`.

The jsonpath subset: ``$`` followed by ``.key``, ``['key']``, ``[n]`` (an index) and ``[*]`` or
``.*`` (every item); no filters, slices or recursive descent. A jsonpath tolerance holds when the
path matches at least one value and, with ``expect``, every match equals it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sre_tools.chaos.model import Tolerance
from sre_tools.exceptions import ValidationError

_STEP_RE = re.compile(
    r"\.(?P<key>[A-Za-z_][A-Za-z0-9_-]*|\*)|\[(?P<index>\d+|\*)\]|\['(?P<quoted>[^']*)'\]"
)

Step = str | int | None  # a key, an index, or None for "every item"


def parse_jsonpath(path: str, field_name: str = "path") -> tuple[Step, ...]:
    if not path.startswith("$"):
        raise ValidationError("a jsonpath starts with '$'", field=field_name)
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        match = _STEP_RE.match(path, pos)
        if match is None:
            raise ValidationError(
                f"unsupported jsonpath at {path[pos:]!r} (supported: .key ['key'] [n] [*])",
                field=field_name,
            )
        if match.group("key") is not None:
            key = match.group("key")
            steps.append(None if key == "*" else key)
        elif match.group("index") is not None:
            index = match.group("index")
            steps.append(None if index == "*" else int(index))
        else:
            steps.append(match.group("quoted"))
        pos = match.end()
    return tuple(steps)


def jsonpath_values(value: Any, path: str) -> list[Any]:
    current = [value]
    for step in parse_jsonpath(path):
        following: list[Any] = []
        for item in current:
            if step is None:
                if isinstance(item, Mapping):
                    following.extend(item.values())
                elif isinstance(item, list):
                    following.extend(item)
            elif isinstance(step, int):
                if isinstance(item, list) and step < len(item):
                    following.append(item[step])
            elif isinstance(item, Mapping) and step in item:
                following.append(item[step])
        current = following
    return current


def within_tolerance(tolerance: Tolerance, value: Any) -> bool:
    if tolerance.target is not None:
        if not isinstance(value, Mapping) or tolerance.target not in value:
            return False
        value = value[tolerance.target]
    elif isinstance(value, Mapping) and "status" in value and tolerance.kind in ("int", "bool"):
        value = value["status"]  # a process provider's result, judged by its exit status
    kind = tolerance.kind
    if kind == "bool":
        return isinstance(value, bool) and value is tolerance.value
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value == tolerance.value
    if kind == "string":
        return isinstance(value, str) and value == tolerance.value
    if kind == "list":
        return value in tolerance.value
    if kind == "range":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        assert tolerance.lo is not None and tolerance.hi is not None
        return tolerance.lo <= value <= tolerance.hi
    if kind == "regex":
        assert tolerance.pattern is not None
        return (
            re.search(tolerance.pattern, value if isinstance(value, str) else str(value))
            is not None
        )
    if kind == "jsonpath":
        assert tolerance.path is not None
        found = jsonpath_values(value, tolerance.path)
        if not found:
            return False
        return not tolerance.has_expect or all(v == tolerance.expect for v in found)
    return False
