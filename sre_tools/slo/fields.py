"""Field accessors for spec loaders: each failure names the dotted field it concerns."""

from __future__ import annotations

import math
import re
from typing import Any

from sre_tools.exceptions import ValidationError

LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,126}[A-Za-z0-9])?$")


def join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def mapping(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValidationError(f"expected a mapping, got {_kind(value)}", field=path or None)
    for key in value:
        if not isinstance(key, str):
            raise ValidationError(f"keys must be strings, got {key!r}", field=path or None)
    return value


def no_extra(value: dict[str, Any], allowed: set[str], path: str) -> None:
    for key in value:
        if key not in allowed:
            hint = ", ".join(sorted(allowed))
            raise ValidationError(f"unknown field (allowed: {hint})", field=join(path, key))


def required(value: dict[str, Any], key: str, path: str) -> Any:
    if key not in value or value[key] is None:
        raise ValidationError("required field is missing", field=join(path, key))
    return value[key]


def string(value: Any, path: str, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationError(f"expected a string, got {_kind(value)}", field=path)
    if not allow_empty and not value.strip():
        raise ValidationError("must not be empty", field=path)
    return value


def req_str(value: dict[str, Any], key: str, path: str) -> str:
    return string(required(value, key, path), join(path, key))


def opt_str(value: dict[str, Any], key: str, path: str, default: str = "") -> str:
    if value.get(key) is None:
        return default
    return string(value[key], join(path, key), allow_empty=True)


def name(value: Any, path: str) -> str:
    text = string(value, path)
    if not NAME.fullmatch(text):
        raise ValidationError(
            f"invalid name {text!r} (letters, digits, '-', '_', '.'; start and end alphanumeric)",
            field=path,
        )
    return text


def boolean(value: dict[str, Any], key: str, path: str, default: bool) -> bool:
    if value.get(key) is None:
        return default
    if not isinstance(value[key], bool):
        raise ValidationError(
            f"expected true or false, got {_kind(value[key])}", field=join(path, key)
        )
    return bool(value[key])


def number(
    value: Any, path: str, *, low: float, high: float, low_open: bool = True, high_open: bool = True
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValidationError(f"expected a number, got {_kind(value)}", field=path)
    try:
        num = float(value)
    except OverflowError:  # an integer too large for a float
        num = math.inf if value > 0 else -math.inf
    low_ok = num > low if low_open else num >= low
    high_ok = num < high if high_open else num <= high
    if not (low_ok and high_ok) or math.isnan(num):
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        shown = f"{value!r:.40}"
        raise ValidationError(f"must be in {lo}{low:g}, {high:g}{hi}, got {shown}", field=path)
    return num


def objective_percent(percent: float, path: str, given: Any) -> float:
    """Reject an objective so close to 0 or 100 % that the ratio or the budget rounds to zero.

    The model rounds ratios to 12 digits; 99.99999999999999 would leave a zero error budget and
    divide by zero downstream.
    """
    if round(percent / 100.0, 12) <= 0 or round((100.0 - percent) / 100.0, 12) <= 0:
        raise ValidationError(
            f"{given!r} leaves no error budget (or no objective) at 12-digit precision",
            field=path,
        )
    return percent


def labels(value: dict[str, Any], key: str, path: str) -> tuple[tuple[str, str], ...]:
    """A label map: Prometheus label names, scalar values (lists joined with commas)."""
    raw = value.get(key)
    if raw is None:
        return ()
    where = join(path, key)
    items = mapping(raw, where)
    out: list[tuple[str, str]] = []
    for lname, lvalue in items.items():
        lpath = join(where, lname)
        if not LABEL_NAME.fullmatch(lname) or lname.startswith("__"):
            raise ValidationError("invalid label name", field=lpath)
        out.append((lname, scalar(lvalue, lpath)))
    return tuple(sorted(out))


def annotation_map(value: dict[str, Any], key: str, path: str) -> tuple[tuple[str, str], ...]:
    raw = value.get(key)
    if raw is None:
        return ()
    where = join(path, key)
    items = mapping(raw, where)
    return tuple(sorted((k, scalar(v, join(where, k))) for k, v in items.items()))


def scalar(value: Any, path: str) -> str:
    if isinstance(value, list):
        return ",".join(scalar(v, f"{path}[{i}]") for i, v in enumerate(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ValidationError(f"expected a string, got {_kind(value)}", field=path)


def sequence(value: Any, path: str, *, non_empty: bool = True) -> list[Any]:
    if not isinstance(value, list):
        raise ValidationError(f"expected a list, got {_kind(value)}", field=path)
    if non_empty and not value:
        raise ValidationError("must not be empty", field=path)
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value!r}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int | float):
        return f"number {value!r}"
    text = repr(value)
    return f"{type(value).__name__} {text[:40]}"
