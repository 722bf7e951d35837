"""``sre health``: one answer per node, healthy or not, and exactly what to do.

Exit codes are Nagios': 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN. Invalid input (a bad policy
file or recording) and runtime failures (an unwritable state file) are UNKNOWN (3) here, as
monitoring systems expect, and printed as one line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from sre_tools.health.policy import PROFILES

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

EXIT_UNKNOWN = 3
FORMATS = ("table", "json", "nhc")


class Opt:
    """One option of ``sre health``: the click command (``--help``) and the start-up parser
    (:func:`parse`) are both built from :data:`OPTIONS`, so they cannot drift apart. (A plain
    class: a dataclass costs start-up time on the path Slurm runs on every node.)"""

    __slots__ = ("dest", "flag", "help", "kind")

    def __init__(self, flag: str, dest: str, kind: str, help: str):
        self.flag = flag
        self.dest = dest
        self.kind = kind  # "flag", "choice", "str", "file", "dir", "seconds"
        self.help = help


OPTIONS = (
    Opt("--json", "as_json", "flag", "Versioned JSON (same as --format json)."),
    Opt("--format", "fmt", "choice", "table, json or nhc (Slurm HealthCheckProgram lines)."),
    Opt("--config", "config", "file", "Site policy YAML (overrides the profile)."),
    Opt(
        "--profile",
        "profile",
        "str",
        f"Policy profile: {', '.join(PROFILES)} (default: picked from the node).",
    ),
    Opt("--replay", "replay", "file", "Run against a recording (sre gpu capture) instead of NVML."),
    Opt(
        "--state",
        "state_path",
        "file",
        "Counter state file for rates (default: XDG state dir; none with --replay).",
    ),
    Opt(
        "--sysfs",
        "sysfs",
        "dir",
        "sysfs root for PCI and InfiniBand (default /sys; none with --replay).",
    ),
    Opt(
        "--kernel-log",
        "kernel_log",
        "file",
        "Read kernel-log lines from this file instead of the system.",
    ),
    Opt(
        "--systemctl",
        "systemctl",
        "file",
        "systemctl that reads unit states (default: systemctl on PATH; none with --replay).",
    ),
    Opt("--timeout", "timeout", "seconds", "Collection watchdog (seconds, finite and above 0)."),
    Opt("--all", "show_all", "flag", "Show OK and skipped findings too."),
)
DEFAULTS: dict[str, Any] = {o.dest: (False if o.kind == "flag" else None) for o in OPTIONS}
DEFAULTS["fmt"] = "table"


class UsageError(Exception):
    """A bad option or argument of ``sre health`` (exit 3, UNKNOWN)."""


def _value(opt: Opt, raw: str) -> Any:
    import math

    if opt.kind == "choice":
        if raw not in FORMATS:
            raise UsageError(
                f"Invalid value for '{opt.flag}': {raw!r} is not one of {', '.join(FORMATS)}."
            )
        return raw
    if opt.kind == "seconds":
        try:
            value = float(raw)
        except ValueError:
            raise UsageError(f"Invalid value for '{opt.flag}': {raw!r} is not a number.") from None
        if not (math.isfinite(value) and value > 0):
            raise UsageError(
                f"Invalid value for '{opt.flag}': "
                f"{value!r} is not a finite number of seconds above 0"
            )
        return value
    if opt.kind in {"file", "dir"}:
        path = Path(raw)
        if opt.kind == "file" and path.is_dir():
            raise UsageError(f"Invalid value for '{opt.flag}': File {raw!r} is a directory.")
        if opt.kind == "dir" and path.exists() and not path.is_dir():
            raise UsageError(f"Invalid value for '{opt.flag}': Directory {raw!r} is a file.")
        return path
    return raw


def parse(argv: list[str]) -> dict[str, Any]:
    """``sre health`` options without click (it is not imported on the health path)."""
    by_flag = {o.flag: o for o in OPTIONS}
    out = dict(DEFAULTS)
    args = list(argv)
    while args:
        arg = args.pop(0)
        flag, eq, inline = arg.partition("=")
        opt = by_flag.get(flag)
        if opt is None:
            if arg.startswith("-"):
                raise UsageError(f"No such option: {flag}")
            raise UsageError(f"Got unexpected extra argument ({arg})")
        if opt.kind == "flag":
            if eq:
                raise UsageError(f"Option '{flag}' does not take a value.")
            out[opt.dest] = True
            continue
        if eq:
            raw = inline
        elif args:
            raw = args.pop(0)
        else:
            raise UsageError(f"Option '{flag}' requires an argument.")
        out[opt.dest] = _value(opt, raw)
    return out


def _err(message: str) -> None:
    print(message, file=sys.stderr)


def execute(opts: dict[str, Any]) -> int:
    """Run and print; the exit code (Nagios)."""
    from sre_tools.exceptions import SreError

    try:
        report = _run(
            opts["config"],
            opts["profile"],
            opts["replay"],
            opts["state_path"],
            opts["sysfs"],
            opts["kernel_log"],
            opts["timeout"],
            opts["systemctl"],
        )
    except SreError as exc:
        # Bad input or a runtime failure: for a Nagios-style check both mean UNKNOWN, never a
        # WARNING (1) or CRITICAL (2) that the node did not earn.
        _err(f"sre: error: {exc}")
        return EXIT_UNKNOWN
    except OSError as exc:
        _err(f"sre: error: {exc.filename or ''}: {exc.strerror or exc}")
        return EXIT_UNKNOWN
    if opts["as_json"] or opts["fmt"] == "json":
        _emit_json(report.to_dict())
    elif opts["fmt"] == "nhc":
        for line in nhc_lines(report):
            print(line)
    else:
        render(report, opts["show_all"])
    return int(report.exit_code)


def _emit_json(data: Any) -> None:
    import json

    try:
        text = json.dumps(data, indent=2, sort_keys=False, allow_nan=False)
    except ValueError:  # a NaN or infinity in the evidence: the shared writer cleans it
        from sre_tools.cli.output import emit_json

        emit_json(data)
        return
    sys.stdout.write(text + "\n")


def run_fast(argv: list[str]) -> int:
    """``sre health ARGS`` without click: the path Slurm and Nagios run on every node."""
    try:
        opts = parse(argv)
    except UsageError as exc:
        _err(f"sre: usage error: {exc} (see 'sre health --help')")
        return EXIT_UNKNOWN
    try:
        return execute(opts)
    except Exception as exc:
        _err(
            f"sre: internal error: {type(exc).__name__}: {exc} "
            "(run 'sre --debug health' for details)"
        )
        return EXIT_UNKNOWN


def _click_command() -> Any:
    """The click command (``sre health --help``, ``sre --debug health``), from :data:`OPTIONS`."""
    import click

    def callback(**opts: Any) -> int:
        return execute(opts)

    def seconds(_ctx: Any, _param: Any, value: float | None) -> float | None:
        if value is None:
            return None
        try:
            return float(_value(OPTIONS_BY_DEST["timeout"], str(value)))
        except UsageError as exc:
            raise click.BadParameter(str(exc).split(": ", 1)[-1]) from None

    types: dict[str, Any] = {
        "choice": click.Choice(list(FORMATS)),
        "file": click.Path(dir_okay=False, path_type=Path),
        "dir": click.Path(file_okay=False, path_type=Path),
        "str": None,
        "seconds": float,
    }
    command = callback
    for opt in reversed(OPTIONS):
        if opt.kind == "flag":
            command = click.option(opt.flag, opt.dest, is_flag=True, help=opt.help)(command)
        else:
            command = click.option(
                opt.flag,
                opt.dest,
                type=types[opt.kind],
                default=DEFAULTS[opt.dest],
                show_default=opt.dest == "fmt",
                callback=seconds if opt.kind == "seconds" else None,
                help=opt.help,
            )(command)
    return click.command(
        "health", help="Check the GPUs of this node: findings, severity and the required action."
    )(command)


OPTIONS_BY_DEST = {o.dest: o for o in OPTIONS}


def __getattr__(name: str) -> Any:
    if name == "health":  # the click command, built on first use (``sre health --help``)
        command = _click_command()
        globals()["health"] = command
        return command
    raise AttributeError(name)


def _run(
    config: Path | None,
    profile: str | None,
    replay: Path | None,
    state_path: Path | None,
    sysfs: Path | None,
    kernel_log: Path | None,
    timeout: float | None,
    systemctl: Path | None = None,
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
        systemctl=str(systemctl) if systemctl is not None else None,
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
    """NHC-style output for Slurm: nothing when healthy, one ERROR line per problem. Every part
    that comes from the node or a recording (a UUID, a bus id, a summary quoting a reading) has
    its control characters escaped: one problem is one line, whatever a device answered."""
    from sre_tools.text import printable

    out = []
    for f in report.problems():
        where = "node"
        if f.gpu is not None:
            ids = ", ".join(x for x in (f.gpu.uuid, f.gpu.pci_bus_id) if x)
            where = f"GPU {f.gpu.index}" + (f" ({ids})" if ids else "")
        out.append(
            printable(
                f"ERROR: nhc: Health check failed: {where}: {f.check}: {f.summary} "
                f"[{f.severity.value}, action {f.action.value}]"
            )
        )
    return out


def render(report: Any, show_all: bool) -> None:
    con = console()
    # One pass: problems() builds a list, and "f in list" compares dataclasses field by field;
    # asking it per finding made the table quadratic in the number of GPUs.
    problems = report.problems()
    rows = list(report.findings) if show_all else problems
    # Host, source and summaries come from the node or a recording: plain text, never markup.
    from rich.text import Text

    from sre_tools.cli.output import label
    from sre_tools.text import printable

    header = Text(f"{printable(report.host)}: ")
    header.append_text(label(report.severity.value))
    header.append(", action ")
    header.append(report.action.value, style="bold")
    header.append(
        f" ({len(problems)} problem(s), {len(report.findings)} findings, "
        f"{report.duration_seconds * 1000:.1f} ms, {printable(report.source)})"
    )
    con.print(header)
    if rows:
        con.print(
            table(
                None,
                ["GPU", "check", "severity", "action", "summary"],
                [
                    [
                        _gpu(f),
                        f.check,
                        label(f.severity.value),
                        f.action.value,
                        f.summary,
                    ]
                    for f in rows
                ],
            )
        )


def console() -> Any:
    # rich (through the shared output helpers) only for the table: not on the JSON/NHC path.
    from sre_tools.cli.output import console as make

    return make()


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Any:
    from sre_tools.cli.output import table as make

    return make(title, columns, rows)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_fast(sys.argv[1:]))
