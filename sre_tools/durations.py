"""Durations as operators write them: ``90s``, ``5m``, ``24h``, ``7d``, ``2w``, ``1h30m``.

Prometheus' own duration syntax (``ms`` .. ``y``) is accepted so that windows in rule files and in
specs round-trip. A bare number is not accepted: a unit is always required.
"""

from __future__ import annotations

import re

from sre_tools.exceptions import ValidationError

_UNITS: dict[str, float] = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)", re.ASCII)
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w|y))+", re.ASCII)  # ASCII digits only
_MAX_SECONDS = 100 * 365 * 86400


def parse_duration(text: object, *, field: str | None = None, source: str | None = None) -> float:
    """Return ``text`` in seconds; raise :class:`ValidationError` naming ``field`` otherwise."""
    if not isinstance(text, str):
        raise ValidationError(
            f"expected a duration such as 5m or 24h, got {text!r}", source=source, field=field
        )
    value = text.strip()
    if not value or not _WHOLE.fullmatch(value):
        raise ValidationError(
            f"invalid duration {text!r} (use a number and a unit: 90s, 5m, 24h, 7d)",
            source=source,
            field=field,
        )
    seconds = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(value))
    if seconds <= 0:
        raise ValidationError(
            f"duration {text!r} must be greater than zero", source=source, field=field
        )
    if seconds > _MAX_SECONDS:
        raise ValidationError(
            f"duration {text!r} is longer than 100 years", source=source, field=field
        )
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds in the Prometheus form (``30d``, ``1h30m``, ``90s``); sub-second as ms."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    total = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            count, total = divmod(total, size)
            parts.append(f"{count}{unit}")
    return "".join(parts)


def humanize(seconds: float | None) -> str:
    """Short human form for reports: ``43.2m``, ``3.1h``, ``12.5d``; ``-`` for None."""
    if seconds is None:
        return "-"
    if seconds == float("inf"):
        return "never"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
