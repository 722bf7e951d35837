"""Options and loaders shared by the SLO, SLI and report commands."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from sre_tools.exceptions import NotFoundError, ValidationError

# Fleet sizes and row ids: past these a number is a typo, and SQLite or float math would overflow.
MAX_FLEET_SIZE = 10_000_000
MAX_ROW_ID = 2**63 - 1
fleet_size = click.IntRange(min=1, max=MAX_FLEET_SIZE)


class Seconds(click.ParamType):  # type: ignore[type-arg,unused-ignore]  # generic from click 8.2
    """A finite number of seconds in ``(0, maximum]``. NaN, infinities, zero, negatives and
    non-numbers are input errors naming the option (exit 2), like every other bad value."""

    name = "seconds"

    def __init__(self, maximum: float = 3600.0):
        self.maximum = maximum

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float) and 0 < value <= self.maximum:
            return value
        option = param.opts[0] if param is not None and param.opts else "value"
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = math.nan
        if not (math.isfinite(number) and 0 < number <= self.maximum):
            raise ValidationError(
                f"must be a number of seconds in (0, {self.maximum:g}], got {value!r}",
                field=option,
            )
        return number


class StoreLocation(click.ParamType):  # type: ignore[type-arg,unused-ignore]  # generic from click 8.2
    """A SQLite file path or a ``postgresql://`` URL (kept as text: a path would fold its
    ``//``). A URL with a password is an input error that never repeats the password."""

    name = "path|url"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> Path | str:
        if isinstance(value, Path):
            return value
        from sre_tools.store import check_url, is_url

        option = param.opts[0] if param is not None and param.opts else "--store"
        text = str(value)
        if is_url(text):
            return check_url(text, field=option)
        if not text:
            raise ValidationError("empty path", field=option)
        return Path(text)


store_location = StoreLocation()

store_option = click.option(
    "--store",
    "store_path",
    type=store_location,
    default=None,
    help="Store: a SQLite file or a postgresql:// URL without a password (default: $SRE_STORE "
    "or $XDG_DATA_HOME/sre-tools/store.db).",
)


def open_store(path: Path | str | None, *, create: bool = True) -> Any:
    from sre_tools.store import Store

    return Store(store_file(path), create=create)


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


def html_option(f: Any) -> Any:
    return click.option(
        "--html",
        "html_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Also write the report as one self-contained HTML file (charts, no network).",
    )(f)


def write_html(
    path: Path,
    data: Any,
    *,
    title: str,
    sources: list[str] | tuple[str, ...] = (),
    protect: Iterable[Path | str | None] = (),
) -> None:
    """Render ``data`` (the dictionaries the JSON output prints) as the HTML report at ``path``
    (:func:`sre_tools.outputs.write_text`: never over a store or one of ``protect``, the
    command's inputs)."""
    from sre_tools.htmlreport import render
    from sre_tools.outputs import write_text

    page = render(data, title=title, sources=sources)
    write_text(path, page, field="--html", protect=protect)


def store_file(path: Path | str | None) -> Path | str:
    """The store a command opens for ``--store`` (``path``, else the default), to protect it."""
    from sre_tools.store import default_store_path

    return path or default_store_path()


def sli_source_line(prometheus_url: str | None, store_path: Any) -> str:
    """Where the SLIs were read, for the report's header: the Prometheus URL as the source
    queries it (credentials taken out of it), or the store."""
    if prometheus_url:
        from sre_tools.sli.prometheus import PrometheusSource

        return f"SLIs from Prometheus {PrometheusSource(prometheus_url).base_url}"
    return f"SLIs from the store {store_path}"


def read_health_report(file: str) -> Any:
    """A node's ``sre health --json`` output (a file or ``-``), validated field by field."""
    from sre_tools.inputs import MAX_REPORT_BYTES
    from sre_tools.remediation.model import parse_report_json

    text, source = read_input(file, MAX_REPORT_BYTES)
    return parse_report_json(text, source=source)
