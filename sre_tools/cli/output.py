"""Output helpers shared by every command: JSON for machines, rich tables for people."""

from __future__ import annotations

import json
import math
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

    tab = Table(title=title, title_justify="left", show_lines=False)
    for i, col in enumerate(columns):
        # The first column names the row (an SLO id, a component): never fold it.
        tab.add_column(col, overflow="fold", no_wrap=i == 0)
    for row in rows:
        tab.add_row(*("-" if cell is None else str(cell) for cell in row))
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
