"""Timestamps: ISO-8601 in, aware UTC datetimes and unix seconds inside."""

from __future__ import annotations

from datetime import UTC, datetime

from sre_tools.exceptions import ValidationError

#: How far past "now" a recorded time may lie (clocks that differ a little). A time further ahead
#: is a typo (9999-12-31) that would sit in every window and report and never age out.
MAX_FUTURE_SECONDS = 600


def parse_time(text: object, *, field: str | None = None, source: str | None = None) -> datetime:
    """Parse ISO-8601 (``2026-11-01T10:00:00Z``, a date) or unix seconds (``@1700000000``).

    A timestamp without a zone is taken as UTC.
    """
    if isinstance(text, datetime):
        value = text
    elif isinstance(text, str) and text.strip():
        raw = text.strip()
        try:
            if raw.startswith("@"):
                value = datetime.fromtimestamp(float(raw[1:]), tz=UTC)
            else:
                value = datetime.fromisoformat(raw.replace("z", "Z"))
        except (ValueError, OverflowError, OSError):
            raise ValidationError(
                f"invalid timestamp {text!r} (use ISO-8601, e.g. 2026-11-01T10:00:00Z)",
                source=source,
                field=field,
            ) from None
    else:
        raise ValidationError(
            f"expected an ISO-8601 timestamp, got {text!r}", source=source, field=field
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    if not 1970 <= value.year <= 9999:
        raise ValidationError(f"timestamp {text!r} out of range", source=source, field=field)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # e.g. 9999-12-31T23:59:59-14:00 lies past datetime.max in UTC
        raise ValidationError(
            f"timestamp {text!r} out of range", source=source, field=field
        ) from None


def to_unix(value: datetime) -> int:
    return int(value.timestamp())


def from_unix(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def iso(seconds: float | None) -> str | None:
    """Unix seconds to ``2026-11-01T10:00:00Z`` (None stays None)."""
    if seconds is None:
        return None
    return from_unix(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    return datetime.now(tz=UTC)
