"""``sre dashboards``: write the Grafana dashboards and their provisioning file."""

from __future__ import annotations

from pathlib import Path

import click


@click.group()
def dashboards() -> None:
    """Grafana dashboards generated from the exporter's metrics and the SLO rules."""


@dashboards.command("generate")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--grafana-dir",
    default=None,
    help="Where Grafana reads the JSON files (the provisioning file's path) "
    "[default: /var/lib/grafana/dashboards/sre-tools].",
)
def generate_cmd(directory: Path, grafana_dir: str | None) -> None:
    """Write the dashboards' JSON and sre-tools.yml into DIRECTORY (in a checkout,
    sre_tools/data/dashboards holds the committed copies)."""
    from sre_tools.dashboards.generate import DEFAULT_GRAFANA_DIR, write

    for path in write(directory, grafana_dir or DEFAULT_GRAFANA_DIR, field="DIRECTORY"):
        click.echo(str(path))
