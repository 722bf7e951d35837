"""Output helpers shared by every command: JSON for machines, rich tables for people.

Text that comes from a file, the store, a peer or the command line (an incident cause, a host, an
SLO id) is shown as it is: never read as rich markup, and with control characters (ESC, OSC, NUL,
other C0/C1, bidi overrides, line separators, lone surrogates) written as escapes such as
``\\x1b`` or ``\\u202e``, so stored text can neither break the output nor rewrite the terminal.
Styled words are built with :func:`label`; every other cell is plain text.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import click


def _clean(value: Any) -> Any:
    """Make ``value`` JSON-safe: no NaN or infinity (None instead), tuples to lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


# C0 and C1 controls (tab and newline too: a cell is one line), DEL, the bidi controls (LRM, RLM,
# ALM, embeddings, overrides, isolates), line and paragraph separators, and lone surrogates.
_UNPRINTABLE = re.compile(
    "[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\ud800-\udfff]"
)


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(value: Any) -> str:
    """``value`` as one line of text safe for a terminal: control characters escaped."""
    return _UNPRINTABLE.sub(_escape_char, str(value))


def markup_safe(value: Any) -> str:
    """``value`` for interpolation into a rich markup string: printable, brackets escaped."""
    from rich.markup import escape

    return escape(printable(value))


# The styled words of every table (severity, SLO status, outcome): one table, used by all.
LABEL_STYLES: dict[str, tuple[str, str]] = {
    "crit": ("CRIT", "bold red"),
    "warn": ("WARN", "yellow"),
    "unknown": ("UNKNOWN", "magenta"),
    "ok": ("ok", "green"),
    "skipped": ("skipped", "dim"),
    "page": ("PAGE", "bold red"),
    "ticket": ("TICKET", "yellow"),
    "exhausted": ("EXHAUSTED", "red"),
    "no_data": ("no data", "dim"),
    "failed": ("failed", "bold red"),
    "unreachable": ("unreachable", "bold red"),
    "not run": ("not run", "dim"),
    "acted": ("ACTED", "bold green"),
    "refused": ("REFUSED", "yellow"),
    "dry_run": ("DRY RUN", "cyan"),
}


def label(name: Any) -> Any:
    """The styled word for ``name`` (a rich ``Text``); an unknown name is plain text."""
    from rich.text import Text

    text, style = LABEL_STYLES.get(str(name), (printable(name), ""))
    return Text(text, style=style)


def cell(value: Any) -> Any:
    """A table cell: rich renderables as they are (:func:`label`), ``None`` as ``-``, anything
    else plain text, never parsed as markup."""
    from rich.text import Text

    if value is None:
        return Text("-")
    if isinstance(value, Text):
        return value
    return Text(printable(value))


def emit_json(data: Any) -> None:
    click.echo(json.dumps(_clean(data), indent=2, sort_keys=False, allow_nan=False))


def console() -> Any:
    import os
    import sys

    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = 160  # pipes and CI logs: wide enough that tables do not fold
    return Console(highlight=False, soft_wrap=False, width=width)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Any:
    from rich.table import Table
    from rich.text import Text

    heading = None if title is None else Text(printable(title))
    tab = Table(title=heading, title_justify="left", show_lines=False)
    for i, col in enumerate(columns):
        # The first column names the row (an SLO id, a component): never fold it.
        tab.add_column(Text(printable(col)), overflow="fold", no_wrap=i == 0)
    for row in rows:
        tab.add_row(*(cell(value) for value in row))
    return tab


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` (which prints rich output)."""
    if as_json:
        emit_json(data)
    else:
        render(data)


def pct(value: float | None, digits: int = 3) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 100:.{digits}f}%"


def num(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "inf"
    return f"{value:.{digits}f}"


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
