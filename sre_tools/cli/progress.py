"""Progress on the terminal for the commands that take more than a second or two.

A bar (or a spinner where the amount of work is unknown) with the elapsed time, drawn on standard
error and only when standard error is a terminal and the command prints for people: ``--json``,
a pipe, a log file or ``TERM=dumb`` get nothing, so what scripts read never changes. The bar is
transient: it is gone when the command prints its result.

The library reports through plain callbacks (``progress(done, total, what)``); only this module
knows rich's progress display.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from sre_tools.text import printable


def wanted(as_json: bool = False) -> bool:
    """Show progress? Not for ``--json``, not when stderr is not a terminal, not on a dumb one."""
    if as_json or os.environ.get("TERM") == "dumb":
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


class Reporter:
    """What a command reports to: ``reporter(done, total, what)`` moves the bar (``total``
    ``None``: a spinner), :meth:`log` prints a line above it. Disabled, it only logs."""

    def __init__(self, progress: Any = None, task: Any = None, title: str = ""):
        self._progress = progress
        self._task = task
        self._title = title

    @property
    def active(self) -> bool:
        return self._progress is not None

    def __call__(self, done: float, total: float | None = None, what: str | None = None) -> None:
        if self._progress is None:
            return
        if total is None:  # rich's update() leaves the total as it was: set it directly
            for task in self._progress.tasks:
                if task.id == self._task:
                    task.total = None
        fields: dict[str, Any] = {"completed": done}
        if total is not None:
            fields["total"] = total
        if what is not None:  # the phase, after what the whole bar is about
            fields["description"] = printable(f"{self._title}: {what}" if self._title else what)
        self._progress.update(self._task, **fields)

    def log(self, line: str) -> None:
        """``line`` on standard output; above the bar when both streams are the terminal (a
        piped standard output gets its lines as without a bar)."""
        if self._progress is None or not sys.stdout.isatty():
            click.echo(line)
        else:
            from rich.text import Text

            self._progress.console.print(Text(line), soft_wrap=True)


@contextmanager
def progress(description: str, *, enabled: bool) -> Iterator[Reporter]:
    """A :class:`Reporter` for the ``with`` block; a bar only when ``enabled`` (see
    :func:`wanted`)."""
    if not enabled:
        yield Reporter()
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    console = Console(stderr=True, highlight=False)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        redirect_stdout=False,
        redirect_stderr=False,
    ) as bar:
        task = bar.add_task(printable(description), total=None)
        yield Reporter(bar, task, description)
