"""Options and loaders shared by the SLO, SLI and report commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sre_tools.exceptions import NotFoundError

store_option = click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite store (default: $SRE_STORE or $XDG_DATA_HOME/sre-tools/store.db).",
)


def open_store(path: Path | None, *, create: bool = True) -> Any:
    from sre_tools.store import Store, default_store_path

    return Store(path or default_store_path(), create=create)


def period_option(f: Any) -> Any:
    return click.option(
        "--period",
        default="30d",
        show_default=True,
        help="SLO period for Sloth specs (OpenSLO specs carry their own timeWindow).",
    )(f)


def windows_option(f: Any) -> Any:
    return click.option(
        "--alert-windows",
        "alert_windows",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Sloth AlertWindows YAML (custom windows per period).",
    )(f)


def load_slos(files: tuple[str, ...], period: str, only: tuple[str, ...] = ()) -> list[Any]:
    from sre_tools.durations import parse_duration
    from sre_tools.slo.loader import load_files

    seconds = parse_duration(period, field="--period")
    slos = load_files(files, period_seconds=seconds)
    if only:
        by_id = {s.id: s for s in slos}
        missing = [o for o in only if o not in by_id]
        if missing:
            known = ", ".join(sorted(by_id)) or "none"
            raise NotFoundError(f"unknown SLO {missing[0]!r} (known: {known})", field="--slo")
        slos = [by_id[o] for o in only]
    return slos


def load_windows(path: Path | None) -> Any:
    from sre_tools.slo.windows import WindowCatalog, parse_alert_windows

    if path is None:
        return WindowCatalog()
    from sre_tools.inputs import MAX_SPEC_BYTES, read_text_capped

    text, source = read_text_capped(str(path), MAX_SPEC_BYTES)
    return parse_alert_windows(text, source)


def at_option(f: Any) -> Any:
    return click.option(
        "--at",
        "at",
        default=None,
        help="Evaluate at this time (ISO-8601; default now).",
    )(f)


def resolve_at(at: str | None) -> float:
    from sre_tools.timeutil import now, parse_time

    return (parse_time(at, field="--at") if at else now()).timestamp()


def read_input(file: str, limit: int | None = None) -> tuple[str, str]:
    """Return ``(text, source name)`` for a path or ``-`` (stdin); ``.gz`` files are unpacked.

    At most ``limit`` bytes (unpacked), by default :data:`sre_tools.inputs.MAX_INPUT_BYTES`.
    """
    from sre_tools.inputs import MAX_INPUT_BYTES, read_text_capped

    return read_text_capped(file, MAX_INPUT_BYTES if limit is None else limit)
