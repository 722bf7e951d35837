"""``sre sli``: put SLI good/total counts into the embedded store."""

from __future__ import annotations

from pathlib import Path

import click

from sre_tools.cli import common
from sre_tools.cli.output import console, emit, json_option, table
from sre_tools.text import printable


@click.group()
def sli() -> None:
    """Record and import SLI counts (good/total per time bucket) into the store."""


@sli.command()
@click.option("--slo", "slo_id", required=True, help="SLO id (<service>-<name>).")
@click.option("--good", type=float, required=True, help="Good events in the bucket.")
@click.option("--total", type=float, required=True, help="All events in the bucket.")
@common.at_option
@common.store_option
@json_option
def record(
    slo_id: str, good: float, total: float, at: str | None, store_path: Path | None, as_json: bool
) -> None:
    """Add GOOD/TOTAL events to the SLO's 1-minute bucket at --at (default now)."""
    from sre_tools.sli.store import DEFAULT_BUCKET_SECONDS, _count, make_sample
    from sre_tools.sli.store import record as record_samples
    from sre_tools.timeutil import iso

    g = _count(good, "--good", "command line")
    t = _count(total, "--total", "command line")
    when = common.resolve_at(at)
    sample = make_sample(slo_id, when, g, t, bucket=DEFAULT_BUCKET_SECONDS, source="command line")
    with common.open_store(store_path) as store:
        record_samples(store, [sample])
        path = store.label
    data = {"slo": slo_id, "bucket": iso(sample.start), "good": g, "total": t, "store": path}
    emit(
        data,
        as_json,
        lambda d: click.echo(
            f"recorded {d['good']:g}/{d['total']:g} for {printable(d['slo'])} at {d['bucket']}"
        ),
    )


@sli.command(name="import")
@click.argument("file")
@click.option("--force", is_flag=True, help="Import even if this content was imported before.")
@common.store_option
@json_option
def import_(file: str, force: bool, store_path: Path | None, as_json: bool) -> None:
    """Import a CSV (header timestamp,slo,good,total; '-' reads stdin; .gz accepted)."""
    from sre_tools.inputs import MAX_CSV_BYTES
    from sre_tools.sli.store import import_csv

    text, source = common.read_input(file, MAX_CSV_BYTES)
    from sre_tools.cli.progress import progress, wanted

    with (
        progress(f"importing {Path(source).name}", enabled=wanted(as_json)) as report,
        common.open_store(store_path) as store,
    ):
        count = import_csv(store, text, source, force=force, progress=report)
    emit(
        {"file": file, "rows": count},
        as_json,
        lambda d: click.echo(f"imported {d['rows']} rows from {printable(d['file'])}"),
    )


@sli.command(name="list")
@common.store_option
@json_option
def list_(store_path: Path | None, as_json: bool) -> None:
    """SLO ids with data in the store, bucket counts and time span."""
    from sre_tools.sli.store import known_slos
    from sre_tools.timeutil import iso

    with common.open_store(store_path, create=False) as store:
        rows = [
            {"slo": s, "buckets": n, "first": iso(a), "last": iso(b)}
            for s, n, a, b in known_slos(store)
        ]
    emit(
        rows,
        as_json,
        lambda rs: console().print(
            table(
                "SLI data in the store",
                ["SLO", "buckets", "first", "last"],
                [[r["slo"], r["buckets"], r["first"], r["last"]] for r in rs],
            )
        ),
    )
