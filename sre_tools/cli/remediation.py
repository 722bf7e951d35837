"""``sre remediation``: act on health findings within guardrails; the operator's view of it all.

Every command that could change something is a dry run unless ``--execute`` is given.
Exit codes: 0 ok (a guardrail refusal is a normal outcome: it is printed, exit 0), 1 runtime
failure (scontrol or a node command failed or timed out, the state file is unusable), 2 invalid
input (a bad report, event, option or configuration; an invalid event is also audited).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from sre_tools.cli.common import store_location
from sre_tools.cli.output import (
    console,
    emit,
    emit_json,
    json_option,
    label,
    markup_safe,
    table,
)
from sre_tools.text import printable

EXIT_OK = 0
EXIT_INVALID = 2


def _common(f: Callable[..., Any]) -> Callable[..., Any]:
    f = click.option(
        "--controller",
        default=None,
        help="Run scontrol/sinfo on this host through ssh (default: here, on the controller).",
    )(f)
    f = click.option(
        "--audit",
        "audit_path",
        type=store_location,
        default=None,
        help="Audit log: a JSON-lines file or a postgresql:// URL (default: "
        "$SRE_REMEDIATION_AUDIT or $XDG_STATE_HOME/sre-tools/remediation-audit.jsonl).",
    )(f)
    f = click.option(
        "--state",
        "state_path",
        type=store_location,
        default=None,
        help="Engine state: a SQLite file or a postgresql:// URL (default: "
        "$SRE_REMEDIATION_STATE or $XDG_STATE_HOME/sre-tools/remediation.db).",
    )(f)
    f = click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help="Remediation configuration YAML (default: $SRE_REMEDIATION_CONFIG, else built-in).",
    )(f)
    return f


execute_option = click.option(
    "--execute", is_flag=True, help="Really act (the default is a dry run that changes nothing)."
)


def _engine(
    config_path: Path | None,
    state_path: Path | None,
    audit_path: Path | None,
    controller: str | None,
    execute: bool,
) -> Any:
    from sre_tools.remediation.engine import Remediator

    return Remediator.from_paths(
        config_path, state_path, audit_path, controller=controller, dry_run=not execute
    )


def _read_report(file: str) -> Any:
    from sre_tools.cli.common import read_health_report

    return read_health_report(file)


def _read_diag(file: str) -> Any:
    from sre_tools.cli.common import read_input
    from sre_tools.inputs import MAX_REPORT_BYTES
    from sre_tools.remediation.model import parse_diag_json

    text, source = read_input(file, MAX_REPORT_BYTES)
    return parse_diag_json(text, source=source)


def _outcome(record: dict[str, Any]) -> str:
    outcome = str(record.get("outcome") or "")
    if record.get("dry_run") and outcome != "dry_run":
        outcome += " (dry run)"  # e.g. refused during a dry run
    return outcome


def _print_decision(d: Any, as_json: bool, dry_run: bool) -> None:
    if as_json:
        emit_json({**d.to_dict(), "dry_run": dry_run})
        return
    con = console()
    tag = label(d.outcome.value)
    tag.plain = tag.plain.upper()
    node = d.node or "-"
    # Messages may quote untrusted text (an event's field, a Slurm reason): never markup.
    con.print(tag, markup_safe(f"{d.code} {node}: {d.message}"), highlight=False)
    for argv in d.commands:
        verb = "would run" if d.outcome.value == "dry_run" else "ran"
        con.print(f"  {verb}: {printable(' '.join(argv))}", markup=False, highlight=False)


@click.group()
def remediation() -> None:
    """Act on health findings within guardrails: drain, reset, reboot, resume; audit it all."""


@remediation.command()
@click.option(
    "--report",
    "report_file",
    required=True,
    help="HealthReport JSON from `sre health --json` (a file, or - for stdin).",
)
@click.option("--node", default=None, help="Slurm node name (default: the report's host).")
@click.option("--event-id", default=None, help="Event id for de-duplication (default: derived).")
@click.option("--source", default="cli", show_default=True, help="Who asks (audited).")
@execute_option
@_common
@json_option
def decide(
    report_file: str,
    node: str | None,
    event_id: str | None,
    source: str,
    execute: bool,
    config_path: Path | None,
    state_path: Path | None,
    audit_path: Path | None,
    controller: str | None,
    as_json: bool,
) -> int:
    """Decide (and with --execute, do) what a health report asks for on its node."""
    from sre_tools.remediation.model import request_from_report

    report = _read_report(report_file)
    request = request_from_report(report, node=node, event_id=event_id, source=source)
    engine = _engine(config_path, state_path, audit_path, controller, execute)
    _print_decision(engine.handle(request), as_json, engine.dry_run)
    return EXIT_OK


@remediation.command()
@click.option(
    "--event",
    "event_file",
    required=True,
    help="Event JSON {node, action, event_id, reason, source, checks, gpus, evidence} (- = stdin).",
)
@execute_option
@_common
@json_option
def event(
    event_file: str,
    execute: bool,
    config_path: Path | None,
    state_path: Path | None,
    audit_path: Path | None,
    controller: str | None,
    as_json: bool,
) -> int:
    """Handle one untrusted event (Salt beacon, Ansible): validated, deduplicated, audited."""
    from sre_tools.cli.common import read_input
    from sre_tools.inputs import MAX_EVENT_BYTES

    # Read a little past the event cap, so an oversized event is refused and audited like any
    # invalid one; far past it, the read itself is refused.
    text, _source = read_input(event_file, 16 * MAX_EVENT_BYTES)
    engine = _engine(config_path, state_path, audit_path, controller, execute)
    d = engine.handle_event_json(text)
    if d.code == "invalid_event" and not as_json:
        # Invalid input, refused and audited: one line on stderr naming the file, like every
        # other input error (the decision's JSON, with --json, still goes to stdout).
        click.echo(f"sre: error: {printable(_source)}: {printable(d.message)}", err=True)
        return EXIT_INVALID
    _print_decision(d, as_json, engine.dry_run)
    return EXIT_INVALID if d.code == "invalid_event" else EXIT_OK


@remediation.command()
@click.option("--node", required=True, help="Slurm node name.")
@click.option("--reason", required=True, help="Why (goes after the owned prefix).")
@execute_option
@_common
@json_option
def drain(
    node: str,
    reason: str,
    execute: bool,
    config_path: Path | None,
    state_path: Path | None,
    audit_path: Path | None,
    controller: str | None,
    as_json: bool,
) -> int:
    """Drain a node by hand, through the guardrails (budget, cooldown, operator drains)."""
    from sre_tools.remediation.model import validate_node, validate_text

    validate_node(node, field="--node")
    validate_text(reason, field="--reason")
    engine = _engine(config_path, state_path, audit_path, controller, execute)
    _print_decision(engine.drain(node, reason), as_json, engine.dry_run)
    return EXIT_OK


@remediation.command()
@click.option("--node", required=True, help="Slurm node name.")
@click.option(
    "--report",
    "report_file",
    required=True,
    help="A fresh HealthReport JSON of the node (`sre health --json`; - for stdin).",
)
@click.option(
    "--diag",
    "diag_files",
    multiple=True,
    help="A diagnostic result of the node (`sre diag run --json`; - for stdin; repeatable): "
    "each must pass; after a GPU reset one must be a passing DCGM run of "
    "resume_diag_level_after_reset (2) since the reset.",
)
@click.option(
    "--diag-store",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The store `sre diag run` records in: when a GPU reset asks for a diagnostic and none "
    "given passes, its newest DCGM run of that level since the reset is judged instead.",
)
@execute_option
@_common
@json_option
def resume(
    node: str,
    report_file: str,
    diag_files: tuple[str, ...],
    diag_store: Path | None,
    execute: bool,
    config_path: Path | None,
    state_path: Path | None,
    audit_path: Path | None,
    controller: str | None,
    as_json: bool,
) -> int:
    """Resume a node we drained, when a fresh report shows it healthy (never an operator's)."""
    from sre_tools.remediation.model import validate_node

    validate_node(node, field="--node")
    if list(diag_files).count("-") + (report_file == "-") > 1:
        from sre_tools.exceptions import ValidationError

        raise ValidationError("stdin (-) can feed only one of --report and --diag", field="--diag")
    report = _read_report(report_file)
    diags = [d for file in diag_files for d in _read_diag(file)]
    engine = _engine(config_path, state_path, audit_path, controller, execute)
    if diag_store is None:
        _print_decision(engine.try_resume(node, report, diags), as_json, engine.dry_run)
        return EXIT_OK
    from sre_tools.cli.common import open_store
    from sre_tools.remediation.evidence import store_lookup

    with open_store(diag_store, create=False) as store:
        engine.diag_lookup = store_lookup(store)
        _print_decision(engine.try_resume(node, report, diags), as_json, engine.dry_run)
    return EXIT_OK


@remediation.command()
@click.option("--node", required=True, help="Slurm node name.")
@click.option("--reason", required=True, help="What keeps it drained (after our head).")
@execute_option
@_common
@json_option
def annotate(
    node: str,
    reason: str,
    execute: bool,
    config_path: Path | None,
    state_path: Path | None,
    audit_path: Path | None,
    controller: str | None,
    as_json: bool,
) -> int:
    """Say in a drain we hold why the node stays drained (never an operator's drain)."""
    from sre_tools.remediation.model import validate_node, validate_text

    validate_node(node, field="--node")
    validate_text(reason, field="--reason")
    engine = _engine(config_path, state_path, audit_path, controller, execute)
    _print_decision(engine.annotate(node, reason), as_json, engine.dry_run)
    return EXIT_OK


def _since(value: str | None) -> float | None:
    """``--since``: ISO-8601 / ``@unix``, or a duration back from now (``24h``, ``7d``)."""
    if value is None:
        return None
    import time

    from sre_tools.durations import parse_duration
    from sre_tools.exceptions import ValidationError
    from sre_tools.timeutil import parse_time

    text = value.strip()
    if text and text[0].isdigit() and text[-1].isalpha() and "T" not in text and "-" not in text:
        try:
            return time.time() - parse_duration(text, field="--since")
        except ValidationError:
            pass
    return parse_time(text, field="--since").timestamp()


@remediation.command()
@click.option("--since", default=None, help="ISO-8601 time, or a duration back from now (24h).")
@click.option("--node", default=None, help="Only this node.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@click.option(
    "--audit",
    "audit_path",
    type=store_location,
    default=None,
    help="Audit log: a JSON-lines file or a postgresql:// URL (default: "
    "$SRE_REMEDIATION_AUDIT or $XDG_STATE_HOME/sre-tools/remediation-audit.jsonl).",
)
@json_option
def audit(
    since: str | None, node: str | None, limit: int, audit_path: Path | None, as_json: bool
) -> int:
    """Recent decisions: acted, refused and why, dry runs, failures (newest last)."""
    from sre_tools.remediation.audit import read_audit
    from sre_tools.remediation.config import default_audit_path
    from sre_tools.remediation.model import validate_node

    if node is not None:
        validate_node(node, field="--node")
    records = read_audit(audit_path or default_audit_path(), since=_since(since), node=node)
    records = records[-limit:]

    def render(rows: list[dict[str, Any]]) -> None:
        con = console()
        if not rows:
            con.print("no decisions recorded", highlight=False)
            return
        con.print(
            table(
                None,
                ["time", "outcome", "code", "node", "action", "event", "message"],
                [
                    (
                        [
                            r.get("ts"),
                            _outcome(r),
                            r.get("code"),
                            r.get("node"),
                            r.get("action"),
                            r.get("event_id"),
                            r.get("message"),
                        ]
                    )
                    for r in rows
                ],
            )
        )

    emit(records, as_json, render)
    return EXIT_OK


@remediation.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--state", "state_path", type=store_location)
@click.option("--controller", default=None, help="Run sinfo on this host through ssh.")
@json_option
def status(
    config_path: Path | None, state_path: Path | None, controller: str | None, as_json: bool
) -> int:
    """Drains we hold, the budget they use, and what Slurm shows per partition."""
    engine = _engine(config_path, state_path, Path("/dev/null"), controller, False)
    data = engine.status()

    def render(d: dict[str, Any]) -> None:
        con = console()
        b = d["budget"]
        con.print(
            f"drained by us: {b['drained_by_us']} of max {b['max_drained_nodes']} node(s); "
            f"at most {b['max_drained_percent']:g}% of a partition; "
            f"owned reason prefix {d['reason_prefix']!r}",
            highlight=False,
            markup=False,
        )
        con.print(
            table(
                "partitions",
                ["partition", "nodes", "drained by us", "limit", "drained (all)"],
                [
                    (
                        [
                            p["partition"],
                            p["nodes"],
                            p["drained_by_us"],
                            p["limit"],
                            p["drained_total"],
                        ]
                    )
                    for p in d["partitions"]
                ],
            )
        )
        if d["drains"]:
            con.print(
                table(
                    "our drains",
                    ["node", "status", "action", "drained at", "actions", "in slurm", "reason"],
                    [
                        (
                            [
                                r["node"],
                                r["status"],
                                r["action"],
                                r["drained_at"],
                                r["actions_done"],
                                "yes" if r["in_slurm"] else "NO (stale)",
                                r["reason"],
                            ]
                        )
                        for r in d["drains"]
                    ],
                )
            )

    emit(data, as_json, render)
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(remediation())
