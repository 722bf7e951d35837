"""``sre ansible``: run the validate, remediate and rolling-upgrade playbooks through
ansible-runner, with a progress bar per host, then per-host findings (table or ``--json``).

Exit codes (``sre_tools.provision.model.ExitCode``): 0 every host reached and healthy (WARN
findings are listed, still 0), 1 ansible-playbook failed (a task other than the health gate, a
timeout), 2 invalid input, 3 a host has a CRIT finding (the health gate failed), 4 a host was
unreachable. When several apply, the first in the order 1, 4, 3 wins.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from sre_tools.cli.output import console, emit_json, label, markup_safe, table
from sre_tools.text import printable


def _options(f: Any) -> Any:
    decorators = [
        click.option(
            "-i",
            "--inventory",
            "inventory",
            required=True,
            type=click.Path(path_type=Path),
            help="Ansible inventory (file or directory).",
        ),
        click.option("-l", "--limit", default=None, help="Host pattern, as ansible --limit."),
        click.option(
            "-e",
            "--extra-var",
            "extra_vars",
            multiple=True,
            metavar="KEY=VALUE",
            help="Playbook variable (repeatable); VALUE is read as YAML (true, 3, '10%').",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print a versioned JSON document."),
        click.option(
            "--run-dir",
            "run_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Keep ansible-runner's artifacts here (default: "
            "$XDG_STATE_HOME/sre-tools/ansible/<command>-<time>).",
        ),
        click.option(
            "--playbook-dir",
            "playbook_dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Directory with validate.yml, remediate.yml, rolling_upgrade.yml "
            "(default: $SRE_PLAYBOOK_DIR or this checkout's playbooks/).",
        ),
        click.option("--forks", type=click.IntRange(min=1), default=None, help="Parallel hosts."),
        click.option(
            "--timeout",
            "timeout_s",
            type=click.IntRange(min=1),
            default=7200,
            show_default=True,
            help="Stop ansible-playbook after this many seconds (exit 1).",
        ),
    ]
    for decorator in reversed(decorators):
        f = decorator(f)
    return f


@click.group()
def ansible() -> None:
    """Run the health gate, remediation or a rolling upgrade over an inventory (ansible-runner).

    Exit codes: 0 healthy, 1 playbook failure, 2 invalid input, 3 CRIT host(s), 4 unreachable
    host(s).
    """


@ansible.command()
@_options
def validate(**kwargs: Any) -> int:
    """Post-provisioning health gate (playbooks/validate.yml)."""
    return _run("validate", **kwargs)


@ansible.command()
@_options
def remediate(**kwargs: Any) -> int:
    """Act on findings within guardrails (playbooks/remediate.yml; dry run unless
    -e remediate_execute=true)."""
    return _run("remediate", **kwargs)


@ansible.command()
@_options
def upgrade(**kwargs: Any) -> int:
    """Rolling driver upgrade: drain, upgrade, gate, resume (playbooks/rolling_upgrade.yml)."""
    return _run("upgrade", **kwargs)


def _run(
    command: str,
    *,
    inventory: Path,
    limit: str | None,
    extra_vars: tuple[str, ...],
    as_json: bool,
    run_dir: Path | None,
    playbook_dir: Path | None,
    forks: int | None,
    timeout_s: int,
) -> int:
    from sre_tools.provision.runner import (
        RunRequest,
        default_playbook_dir,
        parse_extra_vars,
        run_playbook,
    )

    request = RunRequest(
        command=command,
        inventory=inventory,
        limit=limit,
        extra_vars=parse_extra_vars(extra_vars),
        playbook_dir=playbook_dir or default_playbook_dir(),
        run_dir=run_dir,
        timeout_s=timeout_s,
        forks=forks,
    )
    progress = _Progress(enabled=not as_json or sys.stderr.isatty())
    try:
        result = run_playbook(request, on_start=progress.start, on_event=progress.update)
    finally:
        progress.stop()
    if as_json:
        emit_json(result.to_dict())
        click.echo(f"run directory: {result.run_dir}", err=True)
    else:
        render(result)
    return int(result.exit_code())


class _Progress:
    """One rich progress bar per host on stderr: tasks done, ok / changed / failed."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.bar: Any = None
        self.tasks: dict[str, Any] = {}

    def start(self, hosts: list[str]) -> None:
        if not self.enabled:
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            TextColumn("{task.completed:>3.0f} tasks"),
            TextColumn("{task.fields[counts]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True, highlight=False),
        )
        self.bar.start()
        for host in hosts:
            self._add(host)

    def _add(self, host: str) -> None:
        self.tasks[host] = self.bar.add_task(host, total=None, counts="")

    def update(self, tracker: Any, host: str) -> None:
        if self.bar is None:
            return
        if host not in self.tasks:
            self._add(host)
        out = tracker.hosts[host]
        counts = f"ok={out.ok} changed={out.changed} failed={out.failed}"
        if out.unreachable:
            counts += " [red]unreachable[/]"
        self.bar.update(self.tasks[host], completed=out.done, counts=counts)

    def stop(self) -> None:
        if self.bar is None:
            return
        for task in self.bar.tasks:  # a finished run: every bar full
            self.bar.update(task.id, total=max(task.completed, 1), completed=task.completed or 1)
        self.bar.stop()
        self.bar = None


def _gpu(finding: dict[str, Any]) -> str:
    gpu = finding.get("gpu")
    if not isinstance(gpu, dict):
        return "node"
    text = str(gpu.get("index", "?"))
    if gpu.get("mig"):
        text += f" {gpu['mig']}"
    return text


def render(result: Any) -> None:
    con = console()
    hosts = result.inventory_hosts
    rows = []
    for o in hosts:
        health = o.health
        rows.append(
            [
                o.host,
                label(o.status),
                o.ok,
                o.changed,
                o.failed,
                o.skipped,
                "-" if health is None else label(health.worst),
                "-" if health is None else (", ".join(health.actions) or "none"),
                "-" if health is None else len(health.problems()),
            ]
        )
    con.print(
        table(
            f"{result.playbook}: {len(hosts)} host(s)",
            [
                "host",
                "status",
                "ok",
                "changed",
                "failed",
                "skipped",
                "worst",
                "actions",
                "problems",
            ],
            rows,
        )
    )
    findings = [
        [
            o.host,
            _gpu(f),
            f.get("check", "?"),
            label(f.get("severity", "?")),
            f.get("action", "?"),
            f.get("summary", ""),
        ]
        for o in hosts
        if o.health is not None
        for f in o.health.problems()
    ]
    if findings:
        con.print(
            table("Findings", ["host", "GPU", "check", "severity", "action", "summary"], findings)
        )
    for o in result.outcomes:
        if o.broken or o.unreachable:
            for failure in o.failures:
                con.print(
                    f"[red]{markup_safe(o.host)}[/]: "
                    f"{markup_safe(failure['task'])}: {markup_safe(failure['msg'])}"
                )
    code = result.exit_code()
    style = "green" if code == 0 else "bold red"
    reason = markup_safe(result.reason())
    con.print(f"[{style}]{reason}[/] (exit {int(code)}, {result.duration_seconds:.1f} s)")
    con.print(f"run directory: {printable(result.artifact_dir)}", markup=False)
