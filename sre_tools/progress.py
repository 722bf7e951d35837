"""Progress callbacks: how long-running library work says how far it is, without knowing who
listens (the CLI draws a bar from them: sre_tools.cli.progress).

A callback is ``progress(done, total, what)``: ``total`` ``None`` means the amount of work is not
known (a spinner), ``what`` names the phase. Callers report every :data:`EVERY` rows or at each
step, never per row of a large file.
"""

from __future__ import annotations

from collections.abc import Callable

Progress = Callable[[float, float | None, str | None], None]

EVERY = 5_000  # rows between two reports while parsing a file


def rows_in(text: str) -> int:
    """Lines of ``text``: the total a CSV parse reports against (a quoted field may span lines,
    so the count is an upper bound the parse reaches at its end)."""
    return text.count("\n") + (0 if text.endswith("\n") else 1)
