"""Output helpers shared by every command: JSON for machines, rich tables for people.

Text that comes from a file, the store, a peer or the command line (an incident cause, a host, an
SLO id) is shown as it is: never read as rich markup, and with control characters escaped
(:func:`sre_tools.text.printable`), so stored text can neither break the output nor rewrite the
terminal.
Styled words are built with :func:`label`; every other cell is plain text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import click

from sre_tools.text import LABEL_STYLES

# Defined in sre_tools.text (the HTML report uses them too); re-exported for the commands that
# import them from here.
from sre_tools.text import num as num  # noqa: PLC0414
from sre_tools.text import pct as pct  # noqa: PLC0414
from sre_tools.text import printable as printable  # noqa: PLC0414


def _clean(value: Any) -> Any:
    """Make ``value`` JSON-safe: no NaN or infinity (None instead), tuples to lists."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def markup_safe(value: Any) -> str:
    """``value`` for interpolation into a rich markup string: printable, brackets escaped."""
    from rich.markup import escape

    return escape(printable(value))


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


def wrote(message: str, output: Any) -> None:
    """Print the line saying what was written to ``output``: on standard error when ``output``
    is standard output (``-o /dev/stdout``), so it does not end up inside the file."""
    from sre_tools.outputs import is_stdout

    click.echo(printable(message), err=is_stdout(output))  # a path may hold anything


def emit(data: Any, as_json: bool, render: Callable[[Any], None]) -> None:
    """Print ``data`` as JSON, or call ``render`` (which prints rich output)."""
    if as_json:
        emit_json(data)
    else:
        render(data)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
