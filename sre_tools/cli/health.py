"""``sre health``: one answer per node, healthy or not, and exactly what to do.

Exit codes are Nagios': 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Invalid input (a bad policy
file or recording) and runtime failures (an unwritable state file) are UNKNOWN (3) here, as
monitoring systems expect, and printed as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sre_tools.cli.output import console, emit_json, table

EXIT_UNKNOWN = 3
SEVERITY_STYLE = {
    "crit": "[bold red]CRIT[/]",
    "warn": "[yellow]WARN[/]",
    "unknown": "[magenta]UNKNOWN[/]",
    "ok": "[green]ok[/]",
    "skipped": "[dim]skipped[/]",
}


def _positive_seconds(value: float | None) -> float | None:
    import math

    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"{value!r} is not a finite number of seconds above 0")
    return value


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Versioned JSON (same as --format json).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "nhc"]),
    default="table",
    show_default=True,
    help="nhc: Slurm HealthCheckProgram lines.",
)
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Site policy YAML (overrides the profile).",
)
@click.option("--profile", default=None, help="Policy profile: generic, h100-sxm-8, a100-sxm-8.")
@click.option(
    "--replay",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Run against a recording (sre gpu capture) instead of NVML.",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Counter state file for rates (default: XDG state dir; none with --replay).",
)
@click.option(
    "--sysfs",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="sysfs root for PCI and InfiniBand (default /sys; none with --replay).",
)
@click.option(
    "--kernel-log",
    "kernel_log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Read kernel-log lines from this file instead of the system.",
)
@click.option(
    "--timeout",
    type=float,
    default=None,
    callback=lambda _ctx, _param, value: _positive_seconds(value),
    help="Collection watchdog (seconds, finite and above 0).",
)
@click.option("--all", "show_all", is_flag=True, help="Show OK and skipped findings too.")
def health(
    as_json: bool,
    fmt: str,
    config: Path | None,
    profile: str | None,
    replay: Path | None,
    state_path: Path | None,
    sysfs: Path | None,
    kernel_log: Path | None,
    timeout: float | None,
    show_all: bool,
) -> int:
    """Check the GPUs of this node: findings, severity and the required action."""
    from sre_tools.exceptions import SreError

    try:
        report = _run(config, profile, replay, state_path, sysfs, kernel_log, timeout)
    except SreError as exc:
        # Bad input or a runtime failure: for a Nagios-style check both mean UNKNOWN, never a
        # WARNING (1) or CRITICAL (2) that the node did not earn.
        click.echo(f"sre: error: {exc}", err=True)
        return EXIT_UNKNOWN
    except OSError as exc:
        click.echo(f"sre: error: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        return EXIT_UNKNOWN
    if as_json or fmt == "json":
        emit_json(report.to_dict())
    elif fmt == "nhc":
        for line in nhc_lines(report):
            click.echo(line)
    else:
        render(report, show_all)
    return int(report.exit_code)


def _run(
    config: Path | None,
    profile: str | None,
    replay: Path | None,
    state_path: Path | None,
    sysfs: Path | None,
    kernel_log: Path | None,
    timeout: float | None,
) -> Any:
    from sre_tools.health.policy import load_policy_file
    from sre_tools.health.runner import counter_state, run_replay_or_live

    policy = load_policy_file(config, profile)
    lines: list[str] | None = None
    if kernel_log is not None:
        from sre_tools.cli.common import read_input

        lines = read_input(str(kernel_log))[0].splitlines()
    return run_replay_or_live(
        policy,
        replay=replay,
        state=counter_state(replay, state_path),
        sysfs=sysfs,
        kernel_log_lines=lines,
        timeout=timeout,
    )


def _gpu(f: Any) -> str:
    g = f.gpu
    if g is None:
        return "node"
    text = f"{g.index}"
    if g.mig:
        text += f" {g.mig}"
    return text


def nhc_lines(report: Any) -> list[str]:
    """NHC-style output for Slurm: nothing when healthy, one ERROR line per problem."""
    out = []
    for f in report.problems():
        where = "node"
        if f.gpu is not None:
            ids = ", ".join(x for x in (f.gpu.uuid, f.gpu.pci_bus_id) if x)
            where = f"GPU {f.gpu.index}" + (f" ({ids})" if ids else "")
        out.append(
            f"ERROR: nhc: Health check failed: {where}: {f.check}: {f.summary} "
            f"[{f.severity.value}, action {f.action.value}]"
        )
    return out


def render(report: Any, show_all: bool) -> None:
    con = console()
    # One pass: problems() builds a list, and "f in list" compares dataclasses field by field;
    # asking it per finding made the table quadratic in the number of GPUs.
    problems = report.problems()
    rows = list(report.findings) if show_all else problems
    status = SEVERITY_STYLE.get(report.severity.value, report.severity.value)
    con.print(
        f"{report.host}: {status}, action [bold]{report.action.value}[/] "
        f"({len(problems)} problem(s), {len(report.findings)} findings, "
        f"{report.duration_seconds * 1000:.1f} ms, {report.source})"
    )
    if rows:
        con.print(
            table(
                None,
                ["GPU", "check", "severity", "action", "summary"],
                [
                    [
                        _gpu(f),
                        f.check,
                        SEVERITY_STYLE.get(f.severity.value, f.severity.value),
                        f.action.value,
                        f.summary,
                    ]
                    for f in rows
                ],
            )
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(health())
