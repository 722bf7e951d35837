"""Entry point of ``sre``.

Sub-commands are imported only when invoked, so ``sre --help`` never imports NVML, Salt, Ansible
or even the SLO engine. Exit codes (documented in the README):

- health and diag commands: Nagios codes, 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN;
- every other command: 0 ok, 1 runtime failure, 2 invalid input or usage;
- ``sre slo gate`` adds 4: an SLO blocks (paging, or its error budget below the threshold).
"""

from __future__ import annotations

import importlib
import sys

TYPE_CHECKING = False  # not typing's: importing typing costs `sre health` ~5 ms (mypy reads this)
if TYPE_CHECKING:
    from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_BLOCKED = 4  # sre slo gate: an SLO blocks the change
# Commands with Nagios exit codes: a usage error or bad option there is UNKNOWN (3), never a
# WARNING (1) or CRITICAL (2) the node did not earn.
NAGIOS_COMMANDS = {"health", "diag"}
EXIT_UNKNOWN = 3

# name -> (module, attribute, one-line help). The help is here so that listing commands does not
# import them.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "report": ("sre_tools.cli.report", "report", "On-call report: SLOs, reliability, GPU health."),
    "slo": ("sre_tools.cli.slo", "slo", "SLO specs: validate, generate rules, report, gate."),
    "sli": ("sre_tools.cli.sli", "sli", "Record and import SLI counts into the store."),
    "store": (
        "sre_tools.cli.store",
        "store",
        "The store: migrate, copy SQLite into PostgreSQL, grants.",
    ),
    "incident": ("sre_tools.cli.incident", "incident", "Open, resolve, list and import incidents."),
    "reliability": (
        "sre_tools.cli.reliability",
        "reliability",
        "Fleet MTBF/MTTR/availability and checkpoint planning.",
    ),
    "remediation": (
        "sre_tools.cli.remediation",
        "remediation",
        "Act on health findings within guardrails: drain, reset, resume; audit.",
    ),
    "health": (
        "sre_tools.cli.health",
        "health",
        "GPU node health: findings and actions (Nagios codes).",
    ),
    "diag": (
        "sre_tools.cli.diag",
        "diag",
        "Active diagnostics: DCGM diag, nvbandwidth, NCCL; history; RMA bundle (Nagios codes).",
    ),
    "gpu": (
        "sre_tools.cli.gpu",
        "gpu",
        "NVML recordings: capture a machine's readings for replay.",
    ),
    "xid": (
        "sre_tools.cli.xid",
        "xid",
        "Explain NVIDIA XID kernel-log lines: catalog bucket, action.",
    ),
    "drill": (
        "sre_tools.cli.drill",
        "drill",
        "Chaos drills: prove detection, alerting, remediation, rollback.",
    ),
    "ansible": ("sre_tools.cli.ansible", "ansible", "Run validate/remediate/upgrade playbooks."),
    "exporter": (
        "sre_tools.cli.exporter",
        "exporter",
        "Prometheus exporter for GPU health and telemetry.",
    ),
    "dashboards": (
        "sre_tools.cli.dashboards",
        "dashboards",
        "Grafana dashboards: write the JSON and the provisioning file.",
    ),
}


def _group() -> Any:
    """The click group, built on first use: ``sre health`` runs without importing click."""
    import click

    from sre_tools import __version__

    class LazyGroup(click.Group):
        """A click group that imports a sub-command's module only when it runs."""

        def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
            # Listing commands (``sre --help``) uses the short help above: nothing is imported.
            rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
            with formatter.section("Commands"):
                formatter.write_dl(rows)

        def list_commands(self, ctx: click.Context) -> list[str]:
            return sorted(COMMANDS)

        def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
            entry = COMMANDS.get(cmd_name)
            if entry is None:
                return None
            module = importlib.import_module(entry[0])
            command: click.Command = getattr(module, entry[1])
            return command

    @click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="sre")
    @click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
    @click.pass_context
    def cli(ctx: click.Context, debug: bool) -> None:
        """On-call tools for bare-metal GPU clusters: health, SLOs, error budgets, reliability."""
        ctx.ensure_object(dict)
        ctx.obj["debug"] = debug

    return cli


def __getattr__(name: str) -> Any:
    if name == "cli":
        return _group()
    raise AttributeError(name)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; map package errors to one-line messages and documented exit codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["health"] and not {"-h", "--help"} & set(args[1:]):
        # The node-health path (Slurm, Nagios run it on every node): no click, no rich.
        from sre_tools.cli.health import run_fast

        return run_fast(args[1:])
    import click

    cli = _group()
    debug = "--debug" in args
    try:
        result: Any = cli.main(args=args, prog_name="sre", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("sre: aborted", err=True)
        return EXIT_FAILURE
    except click.ClickException as exc:
        # One line, like every other input error: the message and where to read more.
        from sre_tools.text import printable

        message = printable(" ".join(exc.format_message().split()))
        if isinstance(exc, click.UsageError):
            where = exc.ctx.command_path if exc.ctx is not None else "sre"
            click.echo(f"sre: usage error: {message} (see '{where} --help')", err=True)
            if where.split()[1:2] and where.split()[1] in NAGIOS_COMMANDS:
                return EXIT_UNKNOWN
            return EXIT_INVALID
        click.echo(f"sre: error: {message}", err=True)
        return exc.exit_code
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except Exception as exc:
        from sre_tools.exceptions import SreError, ValidationError
        from sre_tools.text import printable

        if debug:
            # The traceback, then the usual one-line message: exit codes do not change.
            import traceback

            traceback.print_exc()
        # Messages quote input (a file name, a YAML key): one line, control characters escaped.
        if isinstance(exc, ValidationError):
            click.echo(f"sre: error: {printable(exc)}", err=True)
            return EXIT_INVALID
        if isinstance(exc, SreError):
            click.echo(f"sre: error: {printable(exc)}", err=True)
            return EXIT_FAILURE
        hint = "" if debug else " (run with --debug for details)"
        click.echo(f"sre: internal error: {type(exc).__name__}: {printable(exc)}{hint}", err=True)
        return EXIT_FAILURE
    return int(result) if isinstance(result, int) else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
