"""``sre store``: migrate a store's schema, copy a SQLite store into PostgreSQL, print the grants.

Exit codes: 0 ok, 1 runtime failure (the store cannot be reached, a newer schema, a destination
that is not empty), 2 invalid input (a bad location, a URL with a password, a bad role name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sre_tools.cli.common import store_location
from sre_tools.cli.output import console, emit, json_option, table

COMPONENTS = click.Choice(["store", "remediation"])


@click.group()
def store() -> None:
    """The store: schema migrations, copying SQLite into PostgreSQL, the tools' grants."""


@store.command()
@click.option(
    "--store",
    "store_path",
    type=store_location,
    default=None,
    help="The store (default: $SRE_STORE or $XDG_DATA_HOME/sre-tools/store.db).",
)
@click.option(
    "--state",
    "state_path",
    type=store_location,
    default=None,
    help="Also migrate this remediation state (a SQLite file or a postgresql:// URL).",
)
@json_option
def migrate(store_path: Path | str | None, state_path: Path | str | None, as_json: bool) -> None:
    """Apply the schema steps the store (and --state) lack; refuse a newer schema.

    On PostgreSQL run it as the tables' owner, before the tools' role uses them."""
    from sre_tools import store_admin
    from sre_tools.store import default_store_path

    done = [store_admin.migrate(store_path or default_store_path(), "store")]
    if state_path is not None:
        done.append(store_admin.migrate(state_path, "remediation"))

    def render(rows: list[dict[str, Any]]) -> None:
        for r in rows:
            before = "new" if r["version_before"] is None else r["version_before"]
            verb = "up to date" if before == r["version_after"] else "migrated"
            click.echo(
                f"{r['component']} {r['store']}: schema {before} -> {r['version_after']} ({verb})"
            )

    emit([m.to_dict() for m in done], as_json, render)


@store.command(name="copy")
@click.argument("source", type=store_location)
@click.argument("destination", type=store_location)
@click.option(
    "--component",
    type=COMPONENTS,
    default="store",
    show_default=True,
    help="What to copy: the store, or a remediation state.",
)
@json_option
def copy_(source: Path | str, destination: Path | str, component: str, as_json: bool) -> None:
    """Copy SOURCE (e.g. a SQLite file) into DESTINATION (e.g. postgresql://...): every table
    in one transaction, into an empty destination; row counts compared."""
    from sre_tools import store_admin
    from sre_tools.store import location_label

    copied = store_admin.copy(source, destination, component)
    data = {
        "source": location_label(source),
        "destination": location_label(destination),
        "component": component,
        "tables": [c.to_dict() for c in copied],
    }

    def render(d: dict[str, Any]) -> None:
        con = console()
        con.print(
            table(
                f"{d['source']} -> {d['destination']}",
                ["table", "source rows", "copied rows"],
                [[t["table"], t["source_rows"], t["rows"]] for t in d["tables"]],
            )
        )

    emit(data, as_json, render)


@store.command()
@click.option("--role", required=True, help="The role the tools connect as.")
def grants(role: str) -> None:
    """Print the GRANTs the tools' role needs (PostgreSQL): read and write every table but the
    audit log, which it may only append to and read."""
    from sre_tools import store_admin

    for statement in store_admin.grants(role):
        click.echo(f"{statement};")
