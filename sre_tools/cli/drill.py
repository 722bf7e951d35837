"""``sre drill``: chaos drills that prove detection, alerting, remediation and rollback work.

Every run is a dry run unless ``--execute`` is given. Exit codes (also in the README):
0 the drill passed (or a dry run completed, or it was skipped: it does not apply to a target,
e.g. ``dcgm-inject`` without ``dcgmi``), 1 runtime failure (an action or a rollback failed,
a node could not be reached, the steady state was not restored, the lock is held, the abort
switch is set, a precondition refused, the store or a transport failed), 2 invalid input (a bad
experiment file or inventory field, a target outside the allowlist, the blast radius exceeded),
3 the drill failed (steady state not met, an expectation missed, a deviation), 4 the drill was
stopped (``sre drill abort``, a stop condition, SIGINT or SIGTERM).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from sre_tools.cli.common import Seconds, html_option, store_location, store_option
from sre_tools.cli.output import console, emit_json, table, wrote
from sre_tools.text import printable

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_INVALID = 2
EXIT_DRILL_FAILED = 3
EXIT_STOPPED = 4

_STATUS_EXIT = {
    "passed": EXIT_OK,
    "dry-run": EXIT_OK,
    "skipped": EXIT_OK,
    "recovered": EXIT_OK,
    "nothing-to-recover": EXIT_OK,
    "failed": EXIT_DRILL_FAILED,
    "error": EXIT_FAILURE,
    "aborted": EXIT_STOPPED,
    "interrupted": EXIT_STOPPED,
}


def exit_code(result: Any) -> int:
    code = _STATUS_EXIT.get(result.status, EXIT_FAILURE)
    if not result.rollbacks_ok or result.restored is False:
        return EXIT_FAILURE
    return code


def _operator() -> str:
    return os.environ.get("SUDO_USER") or os.environ.get("USER") or "unknown"


def _safety(store_path: Path | None) -> Any:
    from sre_tools.chaos.safety import Safety
    from sre_tools.store import default_store_path

    return Safety(store_path or default_store_path())


journal_dir_option = click.option(
    "--journal-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where run journals go (default: $SRE_DRILL_DIR or $XDG_STATE_HOME/sre-tools/drills).",
)


def _journal_dir(path: Path | None) -> Path:
    from sre_tools.chaos.journal import default_journal_dir

    return path or default_journal_dir()


@click.group()
def drill() -> None:
    """Chaos drills: steady state, fault, expectations, rollback (always). Dry run by default."""


@drill.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> int:
    """List the drills in the catalog."""
    from sre_tools.chaos import catalog
    from sre_tools.chaos.model import load_experiment

    rows = []
    for name in catalog.names():
        exp = load_experiment(str(catalog.path_of(name)))
        rows.append(
            {
                "name": name,
                "title": exp.title,
                "tags": list(exp.tags),
                "description": exp.description,
            }
        )
    if as_json:
        emit_json(rows)
    else:
        console().print(
            table(
                "Drills",
                ["name", "tags", "description"],
                [[r["name"], ",".join(r["tags"]), r["description"]] for r in rows],
            )
        )
    return EXIT_OK


@drill.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print the experiment (Chaos Toolkit JSON).")
def show(name: str, as_json: bool) -> int:
    """Show a drill (a catalog NAME or an experiment file)."""
    from sre_tools.chaos import catalog

    source, exp = catalog.resolve(name)
    if as_json:
        emit_json(exp.to_ctk())
        return EXIT_OK
    click.echo(f"{printable(exp.title)}  ({printable(source)})")
    click.echo(printable(exp.description))
    click.echo(f"blast radius: {exp.blast_radius.to_dict()}")
    for label, acts in (
        ("steady state", exp.hypothesis),
        ("method", exp.method),
        ("rollbacks", exp.rollbacks),
    ):
        click.echo(f"{label}:")
        for a in acts:
            click.echo(f"  - {a.type} {printable(a.name)}")
    if exp.expect:
        click.echo("expect:")
        for c in exp.expect:
            click.echo(f"  - {printable(c.name)} within {c.within:g} s")
    return EXIT_OK


@drill.command()
@click.argument("file")
def validate(file: str) -> int:
    """Validate an experiment file (or a catalog NAME)."""
    from sre_tools.chaos import catalog

    source, exp = catalog.resolve(file)
    click.echo(
        f"{printable(source)}: ok ({printable(exp.title)}, {len(exp.method)} method "
        f"activities, {len(exp.rollbacks)} rollbacks)"
    )
    return EXIT_OK


def _vars(values: tuple[str, ...]) -> dict[str, Any]:
    from sre_tools.exceptions import ValidationError

    out: dict[str, Any] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise ValidationError(f"expected KEY=VALUE, got {item!r}", field="--var")
        out[key] = int(value) if value.isdigit() else value
    return out


inventory_option = click.option(
    "--inventory",
    envvar="SRE_DRILL_INVENTORY",
    default=None,
    help="Ansible YAML inventory: its chaos_targets group is the allowlist and each node's "
    "variables say how to reach it (ansible_connection local, else SSH); or a config file "
    "with 'chaos_targets: [...]' (nodes reached locally) ($SRE_DRILL_INVENTORY).",
)
known_hosts_option = click.option(
    "--known-hosts",
    type=click.Path(dir_okay=False),
    default=None,
    help="known_hosts file for every SSH node (default: each host's sre_known_hosts_file or "
    "UserKnownHostsFile in ansible_ssh_common_args).",
)


def _preconditions(
    exp: Any,
    selected: tuple[str, ...],
    *,
    slo_specs: tuple[str, ...],
    prometheus_url: str | None,
    store_path: Path | None,
    min_budget: float,
    slo_period: str,
    timeout: float,
    remediation_state: Path | None,
    remediation_config: Path | None,
) -> list[Any]:
    """The checks ``sre drill run`` makes before it acts (see docs/drills.md, Preconditions)."""
    import time

    from sre_tools.chaos import preconditions as pre
    from sre_tools.slo.gate import validate_min_budget

    validate_min_budget(min_budget)
    checks: list[Any] = []
    if slo_specs:
        from sre_tools.cli import common
        from sre_tools.cli.slo import build_reports

        common.load_slos(slo_specs, slo_period)  # a bad spec is invalid input (exit 2), now

        def reports() -> list[Any]:
            return build_reports(
                slo_specs,
                prometheus_url,
                None if prometheus_url else store_path,
                (),
                None,
                slo_period,
                None,
                timeout,
            )

        checks.append(pre.error_budget(reports, min_budget))
    if prometheus_url:
        from sre_tools.sli.prometheus import PrometheusSource

        checks.append(
            pre.no_paging_alerts(PrometheusSource(prometheus_url, timeout=timeout), time.time)
        )
    if pre.drains(exp):
        from sre_tools.remediation.config import default_state_path

        state = remediation_state or default_state_path()
        checks.append(pre.drain_budget(state, remediation_config, len(selected)))
    return checks


@drill.command()
@click.argument("name")
@click.option("--targets", default=None, help="Comma-separated nodes (each on the allowlist).")
@click.option(
    "--limit",
    default=None,
    help="Narrow the candidates like ansible --limit: names, groups, fnmatch globs, "
    "!exclude, &intersect, separated by ',' or ':'.",
)
@inventory_option
@known_hosts_option
@click.option("--execute", is_flag=True, help="Act. Without it, a dry run: nothing is touched.")
@click.option(
    "--var", "variables", multiple=True, help="Override a configuration value: KEY=VALUE."
)
@click.option("--reason", default="", help="Why this drill runs (journaled).")
@click.option(
    "--break-stale-lock",
    is_flag=True,
    help="Take the fleet lock from a drill process that is no longer running.",
)
@click.option(
    "--slo-spec",
    "slo_specs",
    multiple=True,
    help="Refuse while an SLO of this spec pages or its budget is below --min-budget "
    "(repeatable; SLIs from --prometheus or the store).",
)
@click.option(
    "--min-budget",
    type=float,
    default=25.0,
    show_default=True,
    help="Percentage of error budget an SLO must have left for a drill to run.",
)
@click.option("--slo-period", default="30d", show_default=True, help="Period of Sloth specs.")
@click.option(
    "--prometheus",
    "prometheus_url",
    default=None,
    help="Prometheus API base URL: refuse while a page or critical alert fires; also the SLI "
    "source of --slo-spec.",
)
@click.option(
    "--timeout",
    type=Seconds(),
    default=30.0,
    show_default=True,
    help="Per-query timeout of the preconditions (seconds).",
)
@click.option(
    "--remediation-state",
    type=store_location,
    default=None,
    help="Remediation engine state, for its drain budget (default: $SRE_REMEDIATION_STATE or "
    "$XDG_STATE_HOME/sre-tools/remediation.db).",
)
@click.option(
    "--remediation-config",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Remediation configuration (default: $SRE_REMEDIATION_CONFIG, else built-in).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@store_option
@journal_dir_option
def run(
    name: str,
    targets: str | None,
    limit: str | None,
    inventory: str | None,
    known_hosts: str | None,
    execute: bool,
    variables: tuple[str, ...],
    reason: str,
    break_stale_lock: bool,
    slo_specs: tuple[str, ...],
    min_budget: float,
    slo_period: str,
    prometheus_url: str | None,
    timeout: float,
    remediation_state: Path | None,
    remediation_config: Path | None,
    as_json: bool,
    store_path: Path | None,
    journal_dir: Path | None,
) -> int:
    """Run a drill (a catalog NAME or an experiment FILE) on allowlisted targets."""
    from sre_tools.chaos import catalog
    from sre_tools.chaos.inventory import Inventory, inventory_transports, limit_hosts
    from sre_tools.chaos.runner import Runner
    from sre_tools.chaos.safety import resolve_targets

    if not inventory:
        from sre_tools.exceptions import ValidationError

        raise ValidationError("is required (or $SRE_DRILL_INVENTORY)", field="--inventory")
    source, exp = catalog.resolve(name)
    allowlist, factory = inventory_transports(inventory, known_hosts=known_hosts)
    requested = [t.strip() for t in targets.split(",") if t.strip()] if targets else None
    if limit is not None:
        inv = factory.inventory or Inventory(inventory)
        requested = list(limit_hosts(requested or allowlist, limit, inv))
    resolved = resolve_targets(requested, allowlist, exp.blast_radius)
    reached = factory.check(resolved.selected)
    checks = _preconditions(
        exp,
        resolved.selected,
        slo_specs=slo_specs,
        prometheus_url=prometheus_url,
        store_path=store_path,
        min_budget=min_budget,
        slo_period=slo_period,
        timeout=timeout,
        remediation_state=remediation_state,
        remediation_config=remediation_config,
    )
    mode = "EXECUTE" if execute else "dry run"
    click.echo(
        f"drill {printable(exp.title)} ({mode}) on: {printable(', '.join(resolved.selected))}",
        err=as_json,
    )

    from sre_tools.cli.progress import progress, wanted

    # A spinner with the step under way and the time so far (a drill waits minutes for alerts
    # and drains); the event lines print above it. Never with --json or off a terminal.
    with progress(f"drill {exp.title}", enabled=wanted(as_json)) as report:

        def show_event(record: dict[str, Any]) -> None:
            if as_json or record["event"] in ("run-start", "targets-resolved", "probe-result"):
                return
            what = record.get("name") or record.get("when") or ""
            status = record.get("status", record.get("met", ""))
            node = record.get("node", "")
            report(0, None, printable(f"{record['event']} {what} {node}".rstrip()))
            report.log(printable(f"  {record['event']:<15} {what} {node} {status}".rstrip()))

        safety = _safety(store_path)
        try:
            runner = Runner(
                exp,
                resolved,
                safety=safety,
                journal_dir=_journal_dir(journal_dir),
                execute=execute,
                operator=_operator(),
                reason=reason,
                variables=_vars(variables),
                transport_factory=factory,
                preconditions=checks,
                break_stale_lock=break_stale_lock,
                source=source,
                on_event=show_event,
                inventory=str(Path(inventory).resolve()),
                transports=reached,
            )
            result = runner.run()
            _record(safety.store, result.journal)
        finally:
            safety.close()
    data = {
        "run_id": result.run_id,
        "status": result.status,
        "targets": list(result.targets),
        "rollbacks_ok": result.rollbacks_ok,
        "restored": result.restored,
        "deviated": result.deviated,
        "details": result.details,
        "journal": str(result.journal),
    }
    if as_json:
        emit_json(data)
    else:
        click.echo(
            f"run {result.run_id}: {result.status}; rollbacks "
            f"{'ok' if result.rollbacks_ok else 'FAILED'}; journal {result.journal}"
        )
        for line in result.details:
            click.echo(f"  {printable(line)}")
    return exit_code(result)


def _record(store: Any, journal: Path) -> None:
    """The run's results into the store (``sre drill report``); a dry run is not recorded. A
    failure here is reported and does not change the run's exit code: the journal holds it all."""
    from sre_tools.chaos.journal import read_events
    from sre_tools.chaos.results import record_run
    from sre_tools.exceptions import SreError

    try:
        record_run(store, read_events(journal))
    except SreError as exc:
        click.echo(f"sre: warning: results not stored: {printable(exc)}", err=True)


@drill.command()
@click.argument("run_id", required=False)
@click.option("--all", "all_runs", is_flag=True, help="Stop every drill and refuse new ones.")
@click.option(
    "--clear", is_flag=True, help="Clear the abort flag (RUN_ID's, or the fleet-wide one)."
)
@click.option("--reason", default=None, help="Why (required to set the flag).")
@store_option
def abort(
    run_id: str | None, all_runs: bool, clear: bool, reason: str | None, store_path: Path | None
) -> int:
    """The kill switch: stop a running drill (RUN_ID) or all, and refuse new ones until cleared."""
    from sre_tools.chaos.safety import ALL_RUNS
    from sre_tools.exceptions import ValidationError

    if bool(run_id) == all_runs:
        raise ValidationError("give a RUN_ID or --all (not both)", field="RUN_ID")
    scope = ALL_RUNS if all_runs else str(run_id)
    safety = _safety(store_path)
    try:
        if clear:
            safety.clear_abort(scope)
            click.echo(f"abort flag cleared ({'all drills' if all_runs else scope})")
            return EXIT_OK
        if not reason or not reason.strip():
            raise ValidationError("is required", field="--reason")
        safety.set_abort(scope, reason, _operator())
        click.echo(
            f"abort flag set ({'all drills; new ones refused' if all_runs else scope}): "
            f"{printable(reason)}"
        )
    finally:
        safety.close()
    return EXIT_OK


@drill.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_option
@journal_dir_option
def status(as_json: bool, store_path: Path | None, journal_dir: Path | None) -> int:
    """The fleet lock, abort flags and recent runs."""
    from sre_tools.chaos.journal import read_events, summary
    from sre_tools.exceptions import ValidationError

    safety = _safety(store_path)
    try:
        holder = safety.holder()
        aborts = safety.aborts()
    finally:
        safety.close()
    runs = []
    directory = _journal_dir(journal_dir)
    if directory.is_dir():
        for path in sorted(directory.glob("*.jsonl"))[-20:]:
            try:
                runs.append(dict(summary(read_events(path))))
            except ValidationError:
                continue
    data = {"lock": holder.__dict__ if holder else None, "aborts": aborts, "runs": runs}
    if as_json:
        emit_json(data)
        return EXIT_OK
    if holder is None:
        click.echo("lock: free")
    else:
        state = {
            "dead": "STALE (process not running)",
            "unknown": "POSSIBLY STALE (its database session ended; is it still running?)",
        }.get(holder.state, "held")
        click.echo(f"lock: {state} by run {holder.run_id} (pid {holder.pid} on {holder.host})")
    for flag in aborts:
        click.echo(printable(f"abort flag: {flag['scope']}: {flag['reason']} ({flag['operator']})"))
    if runs:
        console().print(
            table(
                "Runs",
                ["run", "title", "status", "started", "targets"],
                [
                    [r["run_id"], r["title"], r["status"], r["started"], ",".join(r["targets"])]
                    for r in runs
                ],
            )
        )
    return EXIT_OK


def _journal_file(run_id: str, journal_dir: Path | None) -> Path:
    from sre_tools.chaos.journal import journal_path
    from sre_tools.chaos.model import validate_run_id

    return journal_path(_journal_dir(journal_dir), validate_run_id(run_id, "RUN_ID"))


@drill.command()
@click.argument("run_id")
@click.option("--ctk", is_flag=True, help="Export as a Chaos Toolkit journal (JSON).")
@journal_dir_option
def journal(run_id: str, ctk: bool, journal_dir: Path | None) -> int:
    """Print a run's journal (JSON lines), or its Chaos Toolkit export."""
    import json

    from sre_tools.chaos.journal import read_events, to_ctk_journal

    events = read_events(_journal_file(run_id, journal_dir))
    if ctk:
        emit_json(to_ctk_journal(events))
    else:
        for e in events:
            click.echo(json.dumps(e))
    return EXIT_OK


@drill.command()
@click.argument("run_id")
@click.option(
    "--inventory",
    default=None,
    help="The inventory to reach the run's nodes (default: the one its journal names).",
)
@known_hosts_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option(
    "--break-stale-lock",
    is_flag=True,
    help="Also take the lock of a holder on another host whose database session has ended "
    "(possibly dead: check that host first).",
)
@store_option
@journal_dir_option
def recover(
    run_id: str,
    inventory: str | None,
    known_hosts: str | None,
    as_json: bool,
    break_stale_lock: bool,
    store_path: Path | None,
    journal_dir: Path | None,
) -> int:
    """Finish the rollbacks of a run that was killed, from its journal."""
    from sre_tools.chaos.inventory import recover_transports
    from sre_tools.chaos.journal import read_events
    from sre_tools.chaos.runner import recover as recover_run

    path = _journal_file(run_id, journal_dir)
    factory = recover_transports(read_events(path), inventory, known_hosts=known_hosts)
    safety = _safety(store_path)
    try:
        result = recover_run(
            path,
            safety=safety,
            operator=_operator(),
            transport_factory=factory,
            break_stale=break_stale_lock,
        )
        _record(safety.store, path)
    finally:
        safety.close()
    if as_json:
        emit_json(
            {
                "run_id": result.run_id,
                "status": result.status,
                "rollbacks_ok": result.rollbacks_ok,
                "restored": result.restored,
                "details": result.details,
            }
        )
    else:
        click.echo(
            f"run {result.run_id}: {result.status}; rollbacks "
            f"{'ok' if result.rollbacks_ok else 'FAILED'}"
        )
        for line in result.details:
            click.echo(f"  {printable(line)}")
    return exit_code(result)


def _since(value: str | None) -> float | None:
    """``--since``: a duration back from now (``7d``) or a timestamp (ISO-8601, ``@unix``)."""
    if value is None:
        return None
    import time

    from sre_tools.durations import parse_duration
    from sre_tools.exceptions import ValidationError
    from sre_tools.timeutil import parse_time

    try:
        return time.time() - parse_duration(value, field="--since")
    except ValidationError:
        pass
    try:
        return parse_time(value, field="--since").timestamp()
    except ValidationError:
        raise ValidationError(
            f"expected a duration (7d, 12h) or a timestamp (2026-11-01T10:00:00Z), got {value!r}",
            field="--since",
        ) from None


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


@drill.command("report")
@click.option(
    "--since", default=None, help="Runs started since: a duration back (30d) or a timestamp."
)
@click.option("--drill", "drill_name", default=None, help="Only this drill.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@store_option
@html_option
def report(
    since: str | None,
    drill_name: str | None,
    as_json: bool,
    store_path: Path | None,
    html_path: Path | None,
) -> int:
    """Per drill: runs, pass/fail per expectation, median and max time to detect, alert, drain
    and recover (recorded by 'sre drill run --execute' and 'recover'). With --html FILE, also
    one self-contained HTML page."""
    from sre_tools.chaos.model import MEASURES
    from sre_tools.chaos.results import drill_report, load_runs
    from sre_tools.cli.common import open_store, store_file, write_html

    since_at = _since(since)
    with open_store(store_path, create=False) as store:
        rows = drill_report(load_runs(store, since=since_at, drill=drill_name))
        where = store.label
    if html_path is not None:
        window = f" since {since}" if since else ""
        write_html(
            html_path,
            {"drills": rows},
            title="Drill report" + window,
            sources=[f"Drill runs recorded in the store {where}{window}"],
            protect=[store_file(store_path)],
        )
        if not as_json:
            wrote(f"wrote {html_path}", html_path)
            return EXIT_OK
    if as_json:
        emit_json(rows)
        return EXIT_OK
    if not rows:
        click.echo("no drill runs recorded" + (f" since {since}" if since else ""))
        return EXIT_OK
    kinds = MEASURES
    console().print(
        table(
            "Drills",
            ["drill", "runs", "statuses", *[f"{k} median/max" for k in kinds]],
            [
                [
                    r["drill"],
                    r["runs"],
                    ", ".join(f"{s} {n}" for s, n in r["statuses"].items()),
                    *[
                        f"{_seconds(r['times'][k]['median_seconds'])} / "
                        f"{_seconds(r['times'][k]['max_seconds'])}"
                        if r["times"][k]["count"]
                        else "-"
                        for k in kinds
                    ],
                ]
                for r in rows
            ],
        )
    )
    console().print(
        table(
            "Expectations",
            ["drill", "expectation", "measures", "passed", "failed"],
            [
                [r["drill"], e["name"], e["measures"] or "-", e["passed"], e["failed"]]
                for r in rows
                for e in r["expectations"]
            ],
        )
    )
    return EXIT_OK
