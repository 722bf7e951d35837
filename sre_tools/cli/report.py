"""``sre report``: the on-call view. SLO budgets and burn, fleet reliability, open incidents and
the local GPUs, in one screen (or one JSON document)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sre_tools.cli import common
from sre_tools.cli.output import console, emit, json_option, label, markup_safe, wrote
from sre_tools.timeutil import iso

RELIABILITY_WINDOW_SECONDS = 30 * 86400


@click.command()
@click.option(
    "--slos",
    "slo_files",
    multiple=True,
    help="SLO spec file (repeatable; default with --examples: the bundled examples).",
)
@click.option(
    "--examples",
    is_flag=True,
    help="Use the bundled example SLOs and seed the store with the example SLI data "
    "and incident log (once per store).",
)
@click.option(
    "--prometheus",
    "prometheus_url",
    default=None,
    help="Read SLIs from Prometheus instead of the store.",
)
@common.store_option
@click.option(
    "--gpus",
    type=common.fleet_size,
    default=None,
    help="GPUs in the fleet, for failures per GPU-day.",
)
@click.option("--no-gpu", is_flag=True, help="Skip the local GPU probe.")
@click.option(
    "--health",
    "health_files",
    multiple=True,
    help="A node's 'sre health --json' output, for the GPU health matrix (repeatable; '-' "
    "reads stdin).",
)
@common.at_option
@common.period_option
@common.windows_option
@common.html_option
@json_option
def report(
    slo_files: tuple[str, ...],
    examples: bool,
    prometheus_url: str | None,
    store_path: Path | None,
    gpus: int | None,
    no_gpu: bool,
    health_files: tuple[str, ...],
    at: str | None,
    period: str,
    alert_windows: Path | None,
    html_path: Path | None,
    as_json: bool,
) -> None:
    """On-call report: SLOs, reliability over the last 30 days, open incidents, GPU health,
    drills. With --html FILE, also one self-contained HTML page with charts."""
    from sre_tools.chaos.results import drill_report, load_runs
    from sre_tools.cli.incident import incident_json
    from sre_tools.reliability.incidents import list_incidents
    from sre_tools.reliability.report import build_report, build_series, report_json
    from sre_tools.slo.report import HISTORY_POINTS, build_reports

    when = common.resolve_at(at)
    # Read every input before the store is opened: a bad file is an input error, nothing seeded.
    health = [common.read_health_report(f) for f in health_files]
    inputs = [*slo_files, alert_windows, *health_files, common.store_file(store_path)]
    if html_path is not None:
        from sre_tools.outputs import check_output

        check_output(html_path, field="--html", protect=inputs)
    history = HISTORY_POINTS if html_path is not None else 0
    files = list(slo_files)
    data: dict[str, Any] = {}
    with common.open_store(store_path) as store:
        data["store"] = store.label
        if examples:
            from sre_tools import examples as ex

            seeded = ex.seed(store, int(when))
            data["examples_seeded"] = seeded
            if not files:
                files = ex.slo_files()
        if files:
            slos = common.load_slos(tuple(files), period)
            catalog = common.load_windows(alert_windows)
            if prometheus_url:
                from sre_tools.sli.prometheus import PrometheusSource

                source: Any = PrometheusSource(prometheus_url)
            else:
                from sre_tools.sli.store import StoreSource

                source = StoreSource(store)
            data["slos"] = [
                r.to_dict()
                for r in build_reports(slos, source, when, catalog, history_points=history)
            ]
        else:
            data["slos"] = []
        since = int(when) - RELIABILITY_WINDOW_SECONDS
        incidents = list_incidents(store, since=since, until=int(when))
        if incidents:
            rel = build_report(store, since=since, until=int(when), gpus=gpus)
            series = build_series(store, rel) if html_path is not None else None
            data["reliability"] = report_json(rel, series)
        else:
            data["reliability"] = None
        open_now = [i for i in list_incidents(store, open_only=True) if i.started <= when]
        data["open_incidents"] = [incident_json(i) for i in open_now]
        data["drills"] = drill_report(load_runs(store, since=since, until=when + 1))
    data["health"] = [h.to_dict() for h in health]
    if not no_gpu:
        from sre_tools.gpu.probe import probe

        data["gpu"] = probe().to_dict()
    if html_path is not None:
        from sre_tools.text import printable

        sources = [
            common.sli_source_line(prometheus_url, data["store"]),
            f"Incidents and drills from the store {data['store']}, "
            f"{RELIABILITY_WINDOW_SECONDS // 86400} days to {iso(when)}",
            f"GPU health from {len(health)} 'sre health --json' report(s)",
        ]
        if "gpu" in data:
            sources.append(f"This machine's GPUs: {printable(data['gpu']['message'])}")
        common.write_html(
            html_path,
            data,
            title=f"On-call report {iso(when)}",
            sources=sources,
            protect=[*inputs, *files],
        )
        if not as_json:
            wrote(f"wrote {html_path}", html_path)
            return
    emit(data, as_json, _render)


def _render(data: dict[str, Any]) -> None:
    from sre_tools.cli.output import table
    from sre_tools.cli.reliability import _render_report
    from sre_tools.cli.slo import render_reports

    con = console()
    if data["slos"]:
        render_reports(data["slos"])
        paging = [r["id"] for r in data["slos"] if r["status"] == "page"]
        ticket = [r["id"] for r in data["slos"] if r["status"] == "ticket"]
        if paging:
            ids = markup_safe(", ".join(paging))
            con.print(f"[bold red]PAGE[/]: {ids} burning error budget fast")
        if ticket:
            ids = markup_safe(", ".join(ticket))
            con.print(f"[yellow]TICKET[/]: {ids} burning error budget")
    else:
        con.print("No SLO specs given (--slos FILE or --examples).")
    con.print()
    if data["reliability"] is not None:
        _render_report(data["reliability"])
    else:
        con.print("No incidents in the last 30 days.")
    if data["open_incidents"]:
        con.print(
            table(
                "Open incidents",
                ["id", "started", "component", "host", "gpu", "cause", "xid"],
                [
                    [
                        i["id"],
                        i["started"],
                        i["component"],
                        i["host"],
                        i["gpu"],
                        i["cause"],
                        i["xid"],
                    ]
                    for i in data["open_incidents"]
                ],
            )
        )
    if data["health"]:
        con.print()
        con.print(
            table(
                f"GPU health of {len(data['health'])} node(s)",
                ["node", "status", "action", "at", "problems"],
                [
                    [
                        h["host"],
                        label(h["status"]),
                        h["action"],
                        h["at"],
                        ", ".join(
                            dict.fromkeys(
                                f["check"]
                                for f in h["findings"]
                                if f["severity"] in ("warn", "crit", "unknown")
                            )
                        )
                        or "-",
                    ]
                    for h in data["health"]
                ],
            )
        )
    if data["drills"]:
        runs = sum(r["runs"] for r in data["drills"])
        con.print(f"Drills: {runs} run(s) of {len(data['drills'])} drill(s) (sre drill report)")
    gpu = data.get("gpu")
    if gpu is not None:
        con.print()
        if not gpu["driver_present"]:
            con.print(f"GPU health: {markup_safe(gpu['message'])} (skipped)")
        else:
            con.print(f"GPU health: {markup_safe(gpu['message'])}")
            if gpu["gpus"]:
                con.print(
                    table(
                        "Local GPUs",
                        ["index", "name", "uuid", "pci bus id", "temp C"],
                        [
                            [g["index"], g["name"], g["uuid"], g["pci_bus_id"], g["temperature_c"]]
                            for g in gpu["gpus"]
                        ],
                    )
                )
