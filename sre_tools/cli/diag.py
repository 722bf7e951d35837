"""``sre diag``: active diagnostics (dcgmi diag, nvbandwidth, nccl-tests), judged as findings.

Exit codes are Nagios', like ``sre health``: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; a usage
error, bad input (a malformed file, a bad site file) or a store that cannot be written is UNKNOWN
(3) and one line on stderr (the traceback too with ``sre --debug``).
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sre_tools.cli.common import store_option
from sre_tools.cli.output import emit_json, printable, wrote
from sre_tools.health.policy import PROFILES

EXIT_UNKNOWN = 3
FORMATS = ("table", "json", "nhc")


def _fail(ctx: click.Context, exc: BaseException) -> int:
    if (ctx.find_root().obj or {}).get("debug"):
        import traceback

        traceback.print_exc()
    if isinstance(exc, OSError):
        message = f"{exc.filename or ''}: {exc.strerror or exc}"
    else:
        message = str(exc)
    click.echo(f"sre: error: {printable(message)}", err=True)
    return EXIT_UNKNOWN


def _guard(fn: Callable[..., int]) -> Callable[..., int]:
    """Package errors and OS errors become one line and UNKNOWN (3), never a traceback."""
    import functools

    from sre_tools.exceptions import SreError

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> int:
        ctx = click.get_current_context()
        try:
            return fn(*args, **kwargs)
        except (SreError, OSError) as exc:
            return _fail(ctx, exc)

    return run


@click.group("diag")
def diag() -> None:
    """Active diagnostics: DCGM diag levels, nvbandwidth, NCCL all_reduce; history; RMA bundle.

    Exit codes (run, import): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN or bad input.
    """


def _policy(site: Path | None, profile: str | None) -> Any:
    from sre_tools.health.policy import load_policy_file

    return load_policy_file(site, profile)


def _inventory(replay: Path | None) -> Any:
    """The node's GPUs from NVML, or from a recording (no sysfs then: it is not this node's)."""
    from sre_tools.diag.runner import inventory_from_backend

    if replay is not None:
        from sre_tools.gpu.backend import RecordedBackend

        return inventory_from_backend(RecordedBackend.load(replay))
    from sre_tools.gpu.backend import RealBackend

    # Without NVML (no driver, no nvidia-ml-py) the inventory is empty and says why; the tools
    # still run and DCGM's own serials fill in.
    return inventory_from_backend(RealBackend(), Path("/sys"))


def _node_policy(policy: Any, inventory: Any) -> Any:
    """The named profile, or the one the node is (as ``sre health`` picks it)."""
    if not policy.auto or not inventory.gpus:
        return policy
    return policy.for_node(inventory.model, len(inventory.gpus), inventory.nvswitch)


def _print(report: Any, runs: list[Any], fmt: str, show_all: bool) -> None:
    if fmt == "json":
        data = report.to_dict()
        data["runs"] = [r.to_dict() for r in runs]
        emit_json(data)
    elif fmt == "nhc":
        from sre_tools.cli.health import nhc_lines

        for line in nhc_lines(report):
            click.echo(line)
    else:
        from sre_tools.cli.health import render

        render(report, show_all)


def _store(store_path: Path | None, runs: list[Any]) -> None:
    from sre_tools.cli.common import open_store
    from sre_tools.diag.history import record

    with open_store(store_path) as store:
        record(store, runs)


def _format(as_json: bool, fmt: str) -> str:
    return "json" if as_json else fmt


format_options = [
    click.option("--json", "as_json", is_flag=True, help="Versioned JSON (same as --format json)."),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table, json or nhc (one ERROR line per problem, nothing when healthy).",
    ),
    click.option("--all", "show_all", is_flag=True, help="Show OK and skipped findings too."),
]
policy_options = [
    click.option(
        "--profile",
        default=None,
        help=f"Policy profile: {', '.join(PROFILES)} (default: from the node).",
    ),
    click.option(
        "--site",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Site file (YAML) over the profile: floors, timeouts, tool paths, kill switches.",
    ),
]


def _apply(options: list[Any]) -> Callable[[Any], Any]:
    def deco(f: Any) -> Any:
        for option in reversed(options):
            f = option(f)
        return f

    return deco


@diag.command("run")
@click.option(
    "--level",
    type=click.IntRange(1, 4),
    default=1,
    show_default=True,
    help="dcgmi diag run level: 1 seconds, 2 about 2 min, 3 about 15 min, 4 an hour or more.",
)
@click.option("--nvbandwidth", "with_nvbandwidth", is_flag=True, help="Also run nvbandwidth.")
@click.option("--nccl", "with_nccl", is_flag=True, help="Also run all_reduce_perf (nccl-tests).")
@click.option("--no-dcgm", is_flag=True, help="Do not run dcgmi diag (only the others).")
@_apply(policy_options)
@_apply(format_options)
@store_option
@click.option("--no-store", is_flag=True, help="Do not record the results.")
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Name the GPUs from an NVML recording (sre gpu capture) instead of NVML.",
)
@click.option("--node", default=None, help="Node name recorded (default: this host's short name).")
@_guard
def run(
    level: int,
    with_nvbandwidth: bool,
    with_nccl: bool,
    no_dcgm: bool,
    profile: str | None,
    site: Path | None,
    as_json: bool,
    fmt: str,
    show_all: bool,
    store_path: Path | None,
    no_store: bool,
    replay: Path | None,
    node: str | None,
) -> int:
    """Run diagnostics on this node and judge them (a prolog runs '--level 1 --format nhc')."""
    from sre_tools.diag.model import Kind, combined
    from sre_tools.diag.runner import Runner

    policy = _policy(site, profile)
    inventory = _inventory(replay)
    policy = _node_policy(policy, inventory)
    name = node or socket.gethostname().split(".")[0]
    from sre_tools.cli.progress import progress, wanted
    from sre_tools.diag.model import TOOLS

    runner = Runner(policy, inventory, name)
    plan = [(Kind.DCGM, level)] if not no_dcgm else []
    plan += [(Kind.NVBANDWIDTH, 0)] if with_nvbandwidth else []
    plan += [(Kind.NCCL, 0)] if with_nccl else []
    if not plan:
        raise click.UsageError("nothing to run: --no-dcgm without --nvbandwidth or --nccl")
    runs = []
    # A bar for people at a terminal (minutes at level 2 and above); never for --json or nhc.
    with progress("diagnostics", enabled=wanted(as_json or fmt != "table")) as bar:
        for step, (kind, lvl) in enumerate(plan):
            what = TOOLS[kind] + (f" diag -r {lvl}" if kind is Kind.DCGM else "")
            bar(step, len(plan), what)
            runs.append(runner.run(kind, lvl))
    from dataclasses import replace

    from sre_tools.diag.runner import gpu_count

    count = gpu_count(policy, inventory)
    if count is not None:
        # Once per invocation, with the first run (a lost GPU is stored with the run it spoils).
        runs[0] = replace(runs[0], findings=(count, *runs[0].findings))
    report = combined(runs, name, runs[-1].ended)
    if not no_store:
        try:
            _store(store_path, runs)
        except Exception as exc:
            click.echo(f"sre: warning: results not stored: {printable(exc)}", err=True)
    _print(report, runs, _format(as_json, fmt), show_all)
    return int(report.exit_code)


@diag.command("import")
@click.argument("files", nargs=-1, required=True)
@_apply(policy_options)
@_apply(format_options)
@store_option
@click.option("--no-store", is_flag=True, help="Judge only; record nothing.")
@click.option("--node", default=None, help="Node the files come from (default: this host).")
@click.option(
    "--level",
    type=click.IntRange(1, 4),
    default=None,
    help="DCGM run level of the files (default: inferred from the tests they hold).",
)
@_guard
def import_(
    files: tuple[str, ...],
    profile: str | None,
    site: Path | None,
    as_json: bool,
    fmt: str,
    show_all: bool,
    store_path: Path | None,
    no_store: bool,
    node: str | None,
    level: int | None,
) -> int:
    """Judge outputs produced elsewhere: dcgmi diag -j, nvbandwidth -j, all_reduce_perf.

    Every file is read and judged before anything is stored: one malformed file stores nothing.
    """
    import os

    from sre_tools.diag.formats import MAX_OUTPUT_BYTES, judge_text
    from sre_tools.diag.model import Inventory, combined
    from sre_tools.inputs import read_text_capped
    from sre_tools.timeutil import now

    policy = _policy(site, profile)
    name = node or socket.gethostname().split(".")[0]
    runs = []
    for file in files:
        text, source = read_text_capped(file, MAX_OUTPUT_BYTES, what="diagnostic output")
        # A file's run time is when it was written (its mtime); standard input's is now.
        try:
            when = os.stat(file).st_mtime if file != "-" else now().timestamp()
        except OSError:
            when = now().timestamp()
        runs.append(
            judge_text(
                text,
                source,
                policy=policy,
                inventory=Inventory(),
                node=name,
                started=when,
                ended=when,
                label=f"import:{source}",
                level=level,
            )
        )
    report = combined(runs, name, max(r.ended for r in runs))
    if not no_store:
        _store(store_path, runs)
    _print(report, runs, _format(as_json, fmt), show_all)
    return int(report.exit_code)


@diag.command("history")
@click.option("--node", default=None, help="Only this node.")
@click.option("--serial", default=None, help="Only this GPU serial: its trend across nodes.")
@click.option(
    "--kind",
    type=click.Choice(["dcgm", "nvbandwidth", "nccl"]),
    default=None,
    help="Only this tool.",
)
@click.option("--limit", type=click.IntRange(1, 100_000), default=200, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@store_option
@_guard
def history_(
    node: str | None,
    serial: str | None,
    kind: str | None,
    limit: int,
    as_json: bool,
    store_path: Path | None,
) -> int:
    """Stored results per GPU, newest first (by serial: a GPU's trend across replacements)."""
    from sre_tools.cli.common import open_store
    from sre_tools.diag.history import history

    with open_store(store_path, create=False) as store:
        rows = history(store, node=node, serial=serial, kind=kind, limit=limit)
    if as_json:
        emit_json({"results": rows})
        return 0
    from sre_tools.cli.output import console, label, table

    console().print(
        table(
            None,
            ["ended", "node", "kind", "level", "GPU", "serial", "check", "severity", "summary"],
            [
                [
                    r["ended"],
                    r["node"],
                    r["kind"],
                    r["level"] or "-",
                    "node" if r["gpu_index"] is None else r["gpu_index"],
                    r["gpu_serial"] or "-",
                    r["check"],
                    label(r["severity"]),
                    r["summary"],
                ]
                for r in rows
            ],
        )
    )
    return 0


@diag.command("bundle")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Archive to write (.tar.gz).",
)
@store_option
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read GPU identities and counters from an NVML recording instead of NVML.",
)
@click.option(
    "--kernel-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Kernel-log text to use instead of dmesg.",
)
@click.option("--site", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--node", default=None, help="Node name (default: this host's short name).")
@_guard
def bundle(
    output: Path,
    store_path: Path | None,
    replay: Path | None,
    kernel_log: Path | None,
    site: Path | None,
    node: str | None,
) -> int:
    """RMA / support evidence for this node, collected without running anything disruptive."""
    from sre_tools.cli.common import store_file
    from sre_tools.diag.bundle import collect, write
    from sre_tools.outputs import check_output

    inputs = [store_file(store_path), replay, kernel_log, site]
    # Before collecting (nvidia-bug-report.sh may take minutes): never over a store or an input.
    check_output(output, field="--output", protect=inputs)
    name = node or socket.gethostname().split(".")[0]
    items = collect(
        node=name, store_path=store_path, replay=replay, kernel_log=kernel_log, site=site
    )
    write(output, items, field="--output", protect=inputs)
    missing = [i for i in items if i.data is None]
    wrote(
        f"{printable(output)}: {len(items) - len(missing)} item(s) collected, "
        f"{len(missing)} not collected (see MANIFEST)",
        output,
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(diag())
