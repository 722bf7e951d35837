"""Per-host outcomes of a playbook run, folded from ansible-runner events (no I/O here).

An event is the dict ansible-runner hands its ``event_handler``: ``event`` (``runner_on_ok``,
``runner_on_failed``, ``runner_on_unreachable``, ``runner_on_skipped``, ``playbook_on_stats``...)
and ``event_data`` (``host``, ``task``, ``task_action``, ``resolved_action``, ``res``,
``ignore_errors``). The health module's result (``gpu_health``: ``findings``, ``worst``,
``actions``, ``summary``, ``report``) is read from ``res`` of its ``runner_on_ok`` /
``runner_on_failed`` events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

JSON_SCHEMA_VERSION = 1
HEALTH_ACTIONS = frozenset({"gpu_health"})


class ExitCode(IntEnum):
    """``sre ansible`` exit codes; the most severe outcome of the run wins (FAILED first)."""

    OK = 0  # every host reached, no task failed, no CRIT finding (WARN is reported, still 0)
    FAILED = 1  # ansible-playbook failed: a task other than the health gate, a timeout, no run
    INVALID = 2  # bad input: inventory path, --limit, -e, playbook directory
    CRIT = 3  # the health gate failed: a host has a CRIT finding (or a WARN the play fails on)
    UNREACHABLE = 4  # a host could not be reached


def _action_name(data: dict[str, Any]) -> str:
    action = str(data.get("resolved_action") or data.get("task_action") or "")
    return action.rsplit(".", 1)[-1]


def _message(res: Any) -> str:
    if not isinstance(res, dict):
        return ""
    for key in ("msg", "stderr", "module_stderr", "reason"):
        value = res.get(key)
        if value:
            return " ".join(str(value).split())
    return ""


@dataclass
class Health:
    """The last health-module result seen for a host."""

    worst: str
    actions: list[str]
    summary: dict[str, Any]
    findings: list[dict[str, Any]]

    @classmethod
    def from_result(cls, res: dict[str, Any]) -> Health:
        findings = [f for f in res.get("findings") or [] if isinstance(f, dict)]
        worst = str(res.get("worst") or "unknown")
        actions = [str(a) for a in res.get("actions") or []]
        summary = res.get("summary") if isinstance(res.get("summary"), dict) else {}
        return cls(worst=worst, actions=actions, summary=dict(summary or {}), findings=findings)

    def problems(self) -> list[dict[str, Any]]:
        return [f for f in self.findings if f.get("severity") in ("warn", "crit", "unknown")]

    def to_dict(self) -> dict[str, Any]:
        return {
            "worst": self.worst,
            "actions": self.actions,
            "summary": self.summary,
            "problems": self.problems(),
        }


@dataclass
class HostOutcome:
    host: str
    ok: int = 0
    changed: int = 0
    failed: int = 0
    skipped: int = 0
    ignored: int = 0
    unreachable: bool = False
    failures: list[dict[str, str]] = field(default_factory=list)
    health: Health | None = None
    last_task: str = ""

    @property
    def done(self) -> int:
        return self.ok + self.failed + self.skipped + self.ignored + int(self.unreachable)

    @property
    def crit(self) -> bool:
        return self.health is not None and self.health.worst == "crit"

    @property
    def gate_failed(self) -> bool:
        """Failed after a health report that was not OK: the gate's doing, not a broken task."""
        return bool(self.failed) and self.health is not None and self.health.worst != "ok"

    @property
    def broken(self) -> bool:
        """A task failed for another reason than the health gate or the host being unreachable
        (with ``ignore_unreachable`` an unreachable host's later tasks fail as a consequence)."""
        return bool(self.failed) and not self.gate_failed and not self.unreachable

    @property
    def status(self) -> str:
        """``unreachable``, ``crit``, ``failed``, ``warn``, ``ok`` or ``not run``."""
        if self.unreachable:
            return "unreachable"
        if self.crit:
            return "crit"
        if self.gate_failed and self.health is not None:
            return self.health.worst
        if self.failed:
            return "failed"
        if self.health is not None and self.health.worst in ("warn", "unknown"):
            return self.health.worst
        if self.done == 0:
            return "not run"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "status": self.status,
            "tasks": {
                "ok": self.ok,
                "changed": self.changed,
                "failed": self.failed,
                "skipped": self.skipped,
                "ignored": self.ignored,
                "unreachable": self.unreachable,
            },
            "health": None if self.health is None else self.health.to_dict(),
            "failures": self.failures,
        }


class RunTracker:
    """Fold events into :class:`HostOutcome` s; ``hosts`` are the inventory's (limit applied)."""

    def __init__(self, hosts: list[str]):
        self.hosts: dict[str, HostOutcome] = {h: HostOutcome(h) for h in hosts}
        self.expected = list(hosts)
        self.stats: dict[str, Any] | None = None

    def outcome(self, host: str) -> HostOutcome:
        if host not in self.hosts:
            self.hosts[host] = HostOutcome(host)  # localhost for a run_once summary, delegates
        return self.hosts[host]

    def feed(self, event: dict[str, Any]) -> str | None:
        """Apply one event; return the host it changed, if any."""
        kind = event.get("event", "")
        data = event.get("event_data") or {}
        if kind == "playbook_on_stats":
            self.stats = {k: data.get(k) for k in ("ok", "changed", "failures", "dark", "skipped")}
            return None
        host = data.get("host")
        if not host or not kind.startswith("runner_on_") or kind == "runner_on_start":
            return None
        out = self.outcome(str(host))
        raw = data.get("res")
        res: dict[str, Any] = raw if isinstance(raw, dict) else {}
        out.last_task = str(data.get("task") or "")
        if kind == "runner_on_ok":
            out.ok += 1
            out.changed += int(bool(res.get("changed")))
        elif kind == "runner_on_failed":
            if data.get("ignore_errors"):
                out.ignored += 1
            else:
                out.failed += 1
                out.failures.append({"task": out.last_task, "msg": _message(res)})
        elif kind == "runner_on_skipped":
            out.skipped += 1
        elif kind == "runner_on_unreachable":
            out.unreachable = True
            out.failures.append({"task": out.last_task, "msg": _message(res)})
        else:
            return None
        if _action_name(data) in HEALTH_ACTIONS and "findings" in res:
            out.health = Health.from_result(res)
        return out.host

    def result(self, runner_status: str, runner_rc: int | None) -> RunResult:
        return RunResult(
            outcomes=list(self.hosts.values()),
            expected=self.expected,
            runner_status=runner_status,
            runner_rc=runner_rc,
        )


@dataclass
class RunResult:
    outcomes: list[HostOutcome]
    expected: list[str]
    runner_status: str  # ansible-runner's: successful, failed, timeout, canceled, error
    runner_rc: int | None
    playbook: str = ""
    run_dir: str = ""
    artifact_dir: str = ""
    duration_seconds: float = 0.0

    @property
    def inventory_hosts(self) -> list[HostOutcome]:
        return [o for o in self.outcomes if o.host in self.expected]

    def exit_code(self) -> ExitCode:
        hosts = self.inventory_hosts
        other_failure = any(o.broken for o in self.outcomes)
        if self.runner_status in ("timeout", "canceled", "error") or other_failure:
            return ExitCode.FAILED
        if any(o.unreachable for o in hosts):
            return ExitCode.UNREACHABLE
        if any(o.crit or o.gate_failed for o in hosts):
            return ExitCode.CRIT
        if self.runner_status != "successful" or self.runner_rc not in (0, None):
            return ExitCode.FAILED  # ansible-playbook failed without a host to blame
        return ExitCode.OK

    def reason(self) -> str:
        """One line: why the exit code is what it is."""
        code = self.exit_code()
        hosts = self.inventory_hosts
        if code is ExitCode.OK:
            return f"{len(hosts)} host(s) healthy"
        if code is ExitCode.UNREACHABLE:
            names = [o.host for o in hosts if o.unreachable]
            return f"unreachable: {', '.join(names)}"
        if code is ExitCode.CRIT:
            names = [f"{o.host} ({o.status.upper()})" for o in hosts if o.crit or o.gate_failed]
            return f"health gate failed: {', '.join(names)}"
        if self.runner_status in ("timeout", "canceled", "error"):
            return f"ansible-playbook {self.runner_status} (rc {self.runner_rc})"
        failed = [o for o in self.outcomes if o.broken]
        if failed:
            first = failed[0].failures[0] if failed[0].failures else {"task": "", "msg": ""}
            return (
                f"playbook failed on {', '.join(o.host for o in failed)}: "
                f"{first['task']}: {first['msg']}"
            )[:400]
        return f"ansible-playbook failed (rc {self.runner_rc}); see the run directory"

    def to_dict(self) -> dict[str, Any]:
        code = self.exit_code()
        return {
            "schema_version": JSON_SCHEMA_VERSION,
            "kind": "sre.ansible.run",
            "playbook": self.playbook,
            "status": code.name.lower(),
            "exit_code": int(code),
            "reason": self.reason(),
            "duration_seconds": round(self.duration_seconds, 3),
            "runner": {"status": self.runner_status, "rc": self.runner_rc},
            "run_dir": self.run_dir,
            "artifact_dir": self.artifact_dir,
            "hosts": [o.to_dict() for o in self.inventory_hosts],
            "other_hosts": [o.to_dict() for o in self.outcomes if o.host not in self.expected],
        }
