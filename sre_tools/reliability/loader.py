"""The incident CSV format, parsed from text (no I/O).

The header names the seven required columns
``started,resolved,component,host,gpu,category,planned``, optionally followed by ``detected``,
``cause`` and ``xid`` (any order, no other column, no duplicate). Times are ISO-8601 (a timestamp
without a zone is UTC) or ``@unix-seconds``; ``resolved`` and ``detected`` may be empty;
``planned`` is ``true/false/yes/no/1/0``.

Rows are numbered by their line in the file, as a spreadsheet shows them: the header is row 1, the
first incident row 2 (blank lines are skipped but counted). Every error is a
:class:`ValidationError` naming the file, the row and the field.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Sequence

from sre_tools.exceptions import ValidationError
from sre_tools.progress import EVERY, Progress, rows_in
from sre_tools.reliability.model import Incident, validate_incident
from sre_tools.timeutil import parse_time, to_unix

REQUIRED_COLUMNS: tuple[str, ...] = (
    "started",
    "resolved",
    "component",
    "host",
    "gpu",
    "category",
    "planned",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("detected", "cause", "xid")
HEADER = ",".join(REQUIRED_COLUMNS)
_EXPECTED = f"{HEADER}[,{','.join(OPTIONAL_COLUMNS)}]"

_TRUE = frozenset({"true", "yes", "1"})
_FALSE = frozenset({"false", "no", "0"})
_XID = re.compile(r"[0-9]{1,9}")


def parse_timestamp(text: str, *, source: str | None, field: str) -> int:
    """ISO-8601 (or ``@unix``) to unix seconds; any failure is a :class:`ValidationError`."""
    try:
        seconds = to_unix(parse_time(text, field=field, source=source))
    except ValidationError:
        raise
    except (ValueError, OverflowError, OSError):
        # e.g. 9999-12-31T23:00:00-05:00 is in range locally but overflows when made UTC.
        seconds = -1
    if seconds < 0:  # also 1970-01-01T00:00:00+01:00, which is 1969 in UTC
        raise ValidationError(f"timestamp {text!r} out of range", source=source, field=field)
    return seconds


def parse_planned(text: str, *, source: str | None, field: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValidationError(
        f"invalid value {text!r} (use true/false/yes/no/1/0)", source=source, field=field
    )


def parse_xid(text: str, *, source: str | None, field: str) -> int | None:
    value = text.strip()
    if not value:
        return None
    if not _XID.fullmatch(value):
        raise ValidationError(
            f"invalid XID {text!r} (expected a positive integer such as 79)",
            source=source,
            field=field,
        )
    return int(value)


def _header(cells: Sequence[str], source: str) -> list[str]:
    """Validate the header; return the column names in file order."""
    names = [cell.strip().lower() for cell in cells]
    positions: dict[str, int] = {}
    for index, name in enumerate(names):
        if name in positions:
            raise ValidationError(f"duplicate column {name!r}", source=source, field="header")
        if name not in REQUIRED_COLUMNS and name not in OPTIONAL_COLUMNS:
            raise ValidationError(
                f"unknown column {name!r} (expected {_EXPECTED})", source=source, field="header"
            )
        positions[name] = index
    missing = [name for name in REQUIRED_COLUMNS if name not in positions]
    if missing:
        raise ValidationError(
            f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(expected {_EXPECTED})",
            source=source,
            field="header",
        )
    return names


def _row(cells: Sequence[str], names: Sequence[str], source: str, row: int) -> Incident:
    if len(cells) != len(names):
        raise ValidationError(
            f"expected {len(names)} fields, got {len(cells)}", source=source, field=f"row {row}"
        )
    values = dict(zip(names, (cell.strip() for cell in cells), strict=True))
    where = f"row {row}: "

    def when(name: str) -> int | None:
        text = values.get(name, "")
        if not text:
            return None
        return parse_timestamp(text, source=source, field=f"{where}{name}")

    started = when("started")
    if started is None:
        raise ValidationError("missing timestamp", source=source, field=f"{where}started")
    get = values.get
    incident = Incident(
        id=None,
        started=started,
        detected=when("detected"),
        resolved=when("resolved"),
        component=values["component"],
        host=values["host"],
        gpu=values["gpu"],
        category=values["category"],
        planned=parse_planned(values["planned"], source=source, field=f"{where}planned"),
        cause=get("cause", ""),
        xid=parse_xid(get("xid", ""), source=source, field=f"{where}xid"),
    )
    validate_incident(incident, source=source, where=where, now=time.time())
    return incident


def parse_incidents_csv(
    text: str, source: str = "<stdin>", *, progress: Progress | None = None
) -> list[Incident]:
    """Parse and validate every row of an incident CSV; raise on the first bad field."""
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = rows_in(text) if progress is not None else 0
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"not valid UTF-8 text: {exc.reason}", source=source) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    incidents: list[Incident] = []
    columns: list[str] | None = None
    row = 0
    try:
        for cells in reader:
            row = reader.line_num
            if progress is not None and row % EVERY == 0:
                progress(row, lines, "reading rows")
            if not cells or (len(cells) == 1 and not cells[0].strip()):
                continue  # blank line
            if columns is None:
                columns = _header(cells, source)
                continue
            incidents.append(_row(cells, columns, source, row))
    except csv.Error as exc:
        raise ValidationError(
            f"malformed CSV: {exc}", source=source, field=f"row {reader.line_num or row + 1}"
        ) from None
    if columns is None:
        raise ValidationError(f"empty file (expected a header: {_EXPECTED})", source=source)
    return incidents
