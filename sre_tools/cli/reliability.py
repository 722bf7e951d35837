"""``sre reliability``: fleet MTBF/MTTR/availability report, and checkpoint planning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from sre_tools.cli.common import (
    fleet_size,
    html_option,
    open_store,
    store_file,
    store_option,
    write_html,
)
from sre_tools.cli.incident import parse_when
from sre_tools.cli.output import console, emit, json_option, table, wrote
from sre_tools.durations import humanize, parse_duration
from sre_tools.text import pct


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _mtbf(stats: dict[str, Any]) -> str:
    return "no failures" if stats["mtbf_seconds"] is None else humanize(stats["mtbf_seconds"])


def _row(name: str, stats: dict[str, Any]) -> tuple[object, ...]:
    planned = stats["planned"]
    return (
        name,
        stats["failures"],
        stats["open"],
        _mtbf(stats),
        humanize(stats["mttr_seconds"]),
        humanize(stats["mttd_seconds"]),
        pct(stats["availability"], 3),
        _rate(stats["failures_per_gpu_day"]),
        _rate(stats["failures_per_node_day"]),
        planned["count"],
        humanize(planned["downtime_seconds"]) if planned["count"] else "-",
    )


def _render_report(data: dict[str, Any]) -> None:
    nodes = data["nodes"]
    if nodes is None:
        node_text = "nodes unknown"
    else:
        node_text = f"{nodes} nodes" + (
            " (hosts seen)" if data["nodes_source"] == "derived" else ""
        )
    gpus = "GPUs unknown (--gpus N)" if data["gpus"] is None else f"{data['gpus']} GPUs"
    title = (
        f"Reliability {data['since']} .. {data['until']} "
        f"({humanize(data['window_seconds'])}, {gpus}, {node_text})"
    )
    rows = [_row(name, stats) for name, stats in data["components"].items()]
    rows.append(_row("fleet", data["fleet"]))
    columns = ["Component", "Failures", "Open", "MTBF", "MTTR", "MTTD", "Availability"]
    columns += ["/GPU-day", "/node-day", "Planned", "Planned down"]
    console().print(table(title, columns, rows))
    drills = data.get("drills")  # absent in 'sre report', which shows incidents only
    if drills and drills["runs"]:
        console().print(
            table(
                f"Measured by {drills['runs']} chaos drill run(s) (not incidents)",
                ["Time", "Measurements", "Mean", "Median", "Max"],
                [
                    (
                        name,
                        drills[key]["count"],
                        humanize(drills[key]["mean_seconds"]),
                        humanize(drills[key]["median_seconds"]),
                        humanize(drills[key]["max_seconds"]),
                    )
                    for name, key in (
                        ("MTTD (to detect)", "detect"),
                        ("to alert", "alert"),
                        ("to drain", "drain"),
                        ("MTTR (to recover)", "recover"),
                    )
                ],
            )
        )


@click.group()
def reliability() -> None:
    """Fleet reliability from the incident log, and checkpoint planning."""


@reliability.command("report")
@click.option("--since", default=None, help="Window start [default: earliest incident start].")
@click.option("--until", default=None, help="Window end, exclusive [default: now].")
@click.option("--gpus", type=fleet_size, default=None, help="GPUs in the fleet.")
@click.option(
    "--nodes",
    type=fleet_size,
    default=None,
    help="Nodes in the fleet [default: distinct hosts among the window's incidents].",
)
@store_option
@html_option
@json_option
def report_cmd(
    *,
    since: str | None,
    until: str | None,
    gpus: int | None,
    nodes: int | None,
    store_path: Path | None,
    html_path: Path | None,
    as_json: bool,
) -> None:
    """MTBF, MTTR, MTTD, availability and failure rates per component class and for the fleet.

    Failures are unplanned incidents that started in [--since, --until); planned ones are counted
    apart. Times measured by chaos drills in the window (``sre drill report``) are shown apart
    (JSON key ``drills``) and never enter the incident figures. With --html FILE, also one
    self-contained HTML page with failures and availability over time per component.
    """
    from sre_tools.chaos.results import load_runs, measured_times
    from sre_tools.reliability.report import build_report, build_series, report_json

    since_at = parse_when(since, "--since")
    until_at = parse_when(until, "--until")
    with open_store(store_path, create=False) as store:
        result = build_report(store, since=since_at, until=until_at, gpus=gpus, nodes=nodes)
        # No --until: up to now, including a drill that started in this very second.
        runs = load_runs(store, since=result.since, until=until_at)
        series = build_series(store, result) if html_path is not None else None
        where = store.label
    data = report_json(result, series)
    data["drills"] = measured_times(runs)
    if html_path is not None:
        write_html(
            html_path,
            {"reliability": data},
            title=f"Reliability {data['since']} .. {data['until']}",
            sources=[f"Incidents and drill runs from the store {where}"],
            protect=[store_file(store_path)],
        )
        if not as_json:
            wrote(f"wrote {html_path}", html_path)
            return
    emit(data, as_json, _render_report)


def _duration(value: str | None, option: str, *, zero_ok: bool = False) -> float | None:
    if value is None:
        return None
    if zero_ok and value.strip() in {"0", "0s"}:
        return 0.0
    return parse_duration(value, field=option)


def _render_plan(data: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = []
    source = data["mtbf_from"]
    if source is not None:
        rows.append(
            (
                "MTBF from",
                f"{source['component']} incidents {source['since']} .. {source['until']}: "
                f"{source['failures']} failures",
            )
        )
    if data["gpus"] is not None:
        rows.append(("GPUs", str(data["gpus"])))
        rows.append(("GPU MTBF", humanize(data["gpu_mtbf_seconds"])))
    rows += [
        ("Job MTBF", humanize(data["job_mtbf_seconds"])),
        (
            f"P(>=1 interruption in {humanize(data['run_length_seconds'])})",
            pct(data["interruption_probability"], 1),
        ),
        ("Expected interruptions", f"{data['expected_interruptions']:.2f}"),
        ("Checkpoint cost", humanize(data["checkpoint_cost_seconds"])),
        ("Restart cost", humanize(data["restart_cost_seconds"])),
        ("Checkpoint interval (Young)", humanize(data["young_seconds"])),
        ("Checkpoint interval (Daly)", humanize(data["daly_seconds"])),
        ("Goodput at Young interval", pct(data["goodput_young"], 2)),
        ("Goodput at Daly interval", pct(data["goodput_daly"], 2)),
        ("Expected wall time (Daly)", humanize(data["expected_wall_seconds"])),
    ]
    console().print(table("Checkpoint plan", ("", "Value"), rows))


@reliability.command("plan")
@click.option(
    "--mtbf", default=None, help="Job MTBF (e.g. 3h). Or --gpus with --gpu-mtbf, or --component."
)
@click.option("--gpus", type=fleet_size, default=None, help="GPUs the job runs on.")
@click.option("--gpu-mtbf", default=None, help="MTBF of one GPU (e.g. 50000h).")
@click.option(
    "--component",
    default=None,
    help="Take the job MTBF from the incident store: this component's MTBF in the window, as "
    "`sre reliability report` shows it.",
)
@click.option(
    "--since", default=None, help="With --component: window start [default: earliest incident]."
)
@click.option("--until", default=None, help="With --component: window end [default: now].")
@store_option
@click.option("--checkpoint-cost", required=True, help="Time to write a checkpoint (e.g. 5m).")
@click.option("--restart-cost", default="0s", show_default=True, help="Time to restart a job.")
@click.option("--run-length", default="24h", show_default=True, help="Run length for P(failure).")
@json_option
def plan_cmd(
    *,
    mtbf: str | None,
    gpus: int | None,
    gpu_mtbf: str | None,
    component: str | None,
    since: str | None,
    until: str | None,
    store_path: Path | None,
    checkpoint_cost: str,
    restart_cost: str,
    run_length: str,
    as_json: bool,
) -> None:
    """Job MTBF, chance of interruption, Young and Daly checkpoint intervals, goodput.

    The MTBF comes from --mtbf, from --gpus with --gpu-mtbf, or from the incident store with
    --component (and --since/--until, --store).
    """
    from dataclasses import asdict

    from sre_tools.reliability.plan import plan_checkpoints

    given = [mtbf is not None, gpus is not None or gpu_mtbf is not None, component is not None]
    if sum(given) > 1:
        raise click.UsageError(
            "give only one of --mtbf, --gpus with --gpu-mtbf, or --component: not both"
        )
    if component is None and (since is not None or until is not None):
        raise click.UsageError("--since and --until go with --component")
    if not any(given) or (given[1] and (gpus is None or gpu_mtbf is None)):
        raise click.UsageError(
            "give either --mtbf, or both --gpus and --gpu-mtbf, or --component (the store's MTBF)"
        )
    source: dict[str, Any] | None = None
    job_mtbf = _duration(mtbf, "--mtbf")
    if component is not None:
        from sre_tools.reliability.report import component_mtbf, component_mtbf_json

        since_at = parse_when(since, "--since")
        until_at = parse_when(until, "--until")
        with open_store(store_path, create=False) as store:
            found = component_mtbf(store, component, since=since_at, until=until_at)
        job_mtbf = found.mtbf_seconds
        source = component_mtbf_json(found)
    result = plan_checkpoints(
        checkpoint_cost=_duration(checkpoint_cost, "--checkpoint-cost") or 0.0,
        mtbf=job_mtbf,
        gpus=gpus,
        gpu_mtbf=_duration(gpu_mtbf, "--gpu-mtbf"),
        restart_cost=_duration(restart_cost, "--restart-cost", zero_ok=True) or 0.0,
        run_length=_duration(run_length, "--run-length") or 0.0,
    )
    emit({**asdict(result), "mtbf_from": source}, as_json, _render_plan)


@reliability.command("metrics")
@click.option(
    "--listen",
    default="127.0.0.1:9836",
    show_default=True,
    help="HOST:PORT to serve /metrics on (loopback by default).",
)
@click.option("--once", is_flag=True, help="Print the metrics once and exit.")
@store_option
def metrics_cmd(*, listen: str, once: bool, store_path: Path | None) -> None:
    """Incidents and drill results as Prometheus metrics (the reliability dashboard's source).

    The store is read at each scrape; see docs/reliability.md for the metric names.
    """
    import signal
    import threading

    from prometheus_client.registry import CollectorRegistry

    from sre_tools.reliability.exposition import ReliabilityCollector, read_snapshot

    with open_store(store_path, create=False):
        pass  # a missing or unreadable store is an input error now, not at the first scrape

    def read() -> Any:
        with open_store(store_path, create=False) as store:
            return read_snapshot(store)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReliabilityCollector(read))
    if once:
        from prometheus_client.exposition import generate_latest

        click.echo(generate_latest(registry).decode(), nl=False)
        return
    from sre_tools.exporter.server import ExporterServer, parse_listen

    server = ExporterServer(registry, parse_listen(listen))
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        server.start()
        click.echo(f"serving {server.url}/metrics", err=True)
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
