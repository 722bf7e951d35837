"""``sre incident``: open, resolve, list and import incidents in the store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sre_tools.cli.common import MAX_ROW_ID, open_store, read_input, store_option
from sre_tools.cli.output import console, emit, json_option, table
from sre_tools.durations import humanize
from sre_tools.inputs import MAX_CSV_BYTES
from sre_tools.reliability.model import Incident
from sre_tools.text import printable
from sre_tools.timeutil import iso

EXAMPLE_RESOURCE = "data/examples/incidents.csv"


def parse_when(value: str | None, option: str) -> int | None:
    """A CLI timestamp option to unix seconds (``None`` stays ``None``)."""
    if value is None:
        return None
    from sre_tools.reliability.loader import parse_timestamp

    return parse_timestamp(value, source=None, field=option)


def incident_json(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "started": iso(incident.started),
        "detected": iso(incident.detected),
        "resolved": iso(incident.resolved),
        "duration_seconds": incident.repair_seconds,
        "component": incident.component,
        "host": incident.host,
        "gpu": incident.gpu,
        "category": incident.category,
        "planned": incident.planned,
        "cause": incident.cause,
        "xid": incident.xid,
    }


def read_example() -> tuple[str, str]:
    from importlib.resources import files

    resource = files("sre_tools").joinpath(EXAMPLE_RESOURCE)
    return resource.read_text(encoding="utf-8"), "incidents.csv (example)"


@click.group()
def incident() -> None:
    """Open, resolve, list and import incidents (the reliability report's input)."""


@incident.command("open")
@click.option("--component", required=True, help="Component class: gpu, nvlink, infiniband, ...")
@click.option("--host", default="", help="Node name.")
@click.option("--gpu", default="", help="GPU index, UUID or PCI bus id.")
@click.option("--category", default="", help="Free-form category (e.g. hardware, driver).")
@click.option("--planned", is_flag=True, help="Planned maintenance: not counted as a failure.")
@click.option("--cause", default="", help="Cause, free text.")
@click.option("--xid", type=int, default=None, help="NVIDIA XID, if any (e.g. 79).")
@click.option("--started", default=None, help="When it started (ISO-8601) [default: now].")
@click.option("--detected", default=None, help="When it was detected (ISO-8601).")
@store_option
@json_option
def open_cmd(
    *,
    component: str,
    host: str,
    gpu: str,
    category: str,
    planned: bool,
    cause: str,
    xid: int | None,
    started: str | None,
    detected: str | None,
    store_path: Path | None,
    as_json: bool,
) -> None:
    """Open an incident and print its id."""
    from sre_tools.reliability.incidents import open_incident

    started_at = parse_when(started, "--started")
    detected_at = parse_when(detected, "--detected")
    with open_store(store_path, create=True) as store:
        new = open_incident(
            store,
            component=component,
            started=started_at,
            detected=detected_at,
            host=host,
            gpu=gpu,
            category=category,
            planned=planned,
            cause=cause,
            xid=xid,
        )
    emit(incident_json(new), as_json, lambda data: click.echo(data["id"]))


@incident.command("resolve")
@click.argument("incident_id", metavar="ID", type=click.IntRange(min=1, max=MAX_ROW_ID))
@click.option("--at", "at", default=None, help="When it was resolved (ISO-8601) [default: now].")
@store_option
@json_option
def resolve_cmd(incident_id: int, at: str | None, store_path: Path | None, as_json: bool) -> None:
    """Resolve incident ID."""
    from sre_tools.reliability.incidents import resolve_incident

    resolved_at = parse_when(at, "--at")
    with open_store(store_path, create=False) as store:
        done = resolve_incident(store, incident_id, resolved_at)

    def render(data: dict[str, Any]) -> None:
        click.echo(
            f"resolved incident {data['id']} ({printable(data['component'])}) at "
            f"{data['resolved']} after {humanize(data['duration_seconds'])}"
        )

    emit(incident_json(done), as_json, render)


@incident.command("list")
@click.option("--since", default=None, help="Only incidents that started at or after this time.")
@click.option("--until", default=None, help="Only incidents that started before this time.")
@click.option("--open", "open_only", is_flag=True, help="Only incidents not resolved yet.")
@store_option
@json_option
def list_cmd(
    *, since: str | None, until: str | None, open_only: bool, store_path: Path | None, as_json: bool
) -> None:
    """List incidents, oldest first."""
    from sre_tools.reliability.incidents import list_incidents

    since_at = parse_when(since, "--since")
    until_at = parse_when(until, "--until")
    with open_store(store_path, create=False) as store:
        found = list_incidents(store, since=since_at, until=until_at, open_only=open_only)

    def render(data: dict[str, Any]) -> None:
        if not data["incidents"]:
            click.echo("no incidents")
            return
        rows = [
            (
                i["id"],
                i["started"],
                i["resolved"] or "open",
                humanize(i["duration_seconds"]),
                i["component"],
                i["host"],
                i["gpu"],
                "yes" if i["planned"] else "no",
                i["xid"],
                i["cause"],
            )
            for i in data["incidents"]
        ]
        columns = ("ID", "Started", "Resolved", "TTR", "Component", "Host", "GPU", "Planned")
        console().print(table(None, (*columns, "XID", "Cause"), rows))

    emit({"incidents": [incident_json(i) for i in found]}, as_json, render)


@incident.command("import")
@click.argument("file", required=False, metavar="FILE.csv")
@click.option("--force", is_flag=True, help="Import even if this content was imported before.")
@click.option("--example", is_flag=True, help="Import the example log shipped with sre_tools.")
@store_option
@json_option
def import_cmd(
    file: str | None, force: bool, example: bool, store_path: Path | None, as_json: bool
) -> None:
    """Import incidents from FILE.csv (``-`` for stdin), all rows or none.

    Header: started,resolved,component,host,gpu,category,planned[,detected,cause,xid]
    """
    from sre_tools.reliability.incidents import content_sha256, import_csv

    if example == (file is not None):
        raise click.UsageError("give either FILE.csv (or - for stdin) or --example")
    text, source = read_example() if example else read_input(str(file), MAX_CSV_BYTES)
    from sre_tools.cli.progress import progress, wanted

    with (
        progress(f"importing {Path(source).name}", enabled=wanted(as_json)) as report,
        open_store(store_path, create=True) as store,
    ):
        count = import_csv(store, text, source, force=force, progress=report)
        where = store.label
    data = {"imported": count, "source": source, "store": where, "sha256": content_sha256(text)}
    emit(
        data,
        as_json,
        lambda d: click.echo(f"imported {d['imported']} incidents from {printable(source)}"),
    )
