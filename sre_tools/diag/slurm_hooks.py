"""Slurm Prolog and Epilog hooks around ``sre diag run``.

slurmd runs them as root with the job's environment and no ``PATH``; what they do with it
(verified on Slurm 22.05.8 with the test cluster, tests/diag/test_slurm_hooks_cluster.py):

- **Prolog** (``sre-slurm-prolog``): DCGM level 1 (seconds) under a hard timeout. On a failure
  the node is drained with our reason (``sre: diag ev=prolog:<node>:<job>: level 1 CRIT: ...``)
  and the hook exits 1: slurmd then refuses the job. A batch job is requeued and held
  (``launch_failed_requeued_held``, ``scontrol release <job>`` lets it run elsewhere); an
  interactive ``srun``/``salloc`` cannot be requeued and is cancelled (srun prints "Prolog
  failure on node ..."). Had the hook not drained the node, Slurm would drain it with the
  reason "Prolog error"; it keeps a reason that is already set.
- **Epilog** (``sre-slurm-epilog``): when the job failed (``SLURM_JOB_EXIT_CODE`` or
  ``SLURM_JOB_DERIVED_EC`` not zero: a non-zero exit or a signal), DCGM level 2 (about two
  minutes), stored like any ``sre diag run``. On a failure the node is drained with our reason
  and the hook exits 0; only when that drain fails does it exit 1, so that Slurm drains the node
  ("Epilog error") rather than let it take the next job.

The environment is untrusted input: every value the hook uses is checked against a strict
pattern (node name, job id, integers) and otherwise ignored and named in the log; no value is
ever placed in a shell command line (commands are argv lists, run without a shell). The hook's
own options come from the role or formula that installed it (trusted).

Which results refuse a job is ``--fail-on`` (default ``crit``): ``warn``, ``unknown`` (the
diagnostic could not decide, e.g. DCGM's host engine is down) and ``timeout`` (the hook's
timeout killed the diagnostic) can be added. Exit codes: 0 the job may run (prolog) / done
(epilog); 1 refused, or a usage error in the hook's options (fails closed: the node drains with
Slurm's reason, and the line slurmd logs says why).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from sre_tools.exceptions import ValidationError
from sre_tools.remediation.guardrails import MAX_SLURM_REASON_CHARS
from sre_tools.remediation.model import NODE_RE, sanitize_text

HOOKS = ("prolog", "epilog")
FAIL_CLASSES = ("crit", "warn", "unknown", "timeout")
# sre diag run's Nagios exit codes.
_CLASS_BY_RC = {0: "ok", 1: "warn", 2: "crit", 3: "unknown"}
DEFAULT_LEVEL = {"prolog": 1, "epilog": 2}
# Slurm waits for the prolog before the job starts: level 1 takes seconds, the bound stays well
# under 30 s. The epilog holds the node in COMPLETING, level 2 takes about two minutes.
DEFAULT_TIMEOUT = {"prolog": 25.0, "epilog": 300.0}
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
JOB_ID_RE = re.compile(r"[0-9]{1,12}")
INT_RE = re.compile(r"-?[0-9]{1,12}")
CONF_RE = re.compile(r"/[A-Za-z0-9._/-]{1,4095}")
EXIT2_RE = re.compile(r"([0-9]{1,5}):([0-9]{1,5})")
MAX_OUTPUT_CHARS = 64_000
EXIT_OK = 0
EXIT_REFUSE = 1


@dataclass(frozen=True)
class HookConfig:
    """The hook's options (from the installer: trusted, still validated)."""

    hook: str
    sre: str
    level: int
    timeout_seconds: float
    fail_on: frozenset[str] = frozenset({"crit"})
    scontrol: str | None = "/usr/bin/scontrol"
    reason_prefix: str = "sre:"
    path: str = DEFAULT_PATH
    diag_args: tuple[str, ...] = ()
    log: str | None = None

    def __post_init__(self) -> None:
        if self.hook not in HOOKS:
            raise ValidationError(f"must be one of {', '.join(HOOKS)}", field="hook")
        if not os.path.isabs(self.sre):
            raise ValidationError(f"must be an absolute path, got {self.sre!r}", field="--sre")
        if self.scontrol is not None and not os.path.isabs(self.scontrol):
            raise ValidationError(
                f"must be an absolute path, got {self.scontrol!r}", field="--scontrol"
            )
        if self.level not in (1, 2, 3, 4):
            raise ValidationError(f"must be 1, 2, 3 or 4, got {self.level}", field="--level")
        if not 0 < self.timeout_seconds <= 3600:
            raise ValidationError(
                f"must be in (0, 3600] seconds, got {self.timeout_seconds:g}", field="--timeout"
            )
        unknown = sorted(self.fail_on - set(FAIL_CLASSES))
        if unknown:
            raise ValidationError(
                f"unknown class {unknown[0]!r} (known: {', '.join(FAIL_CLASSES)})",
                field="--fail-on",
            )
        prefix = self.reason_prefix
        if not 1 <= len(prefix) <= 32 or not prefix.isprintable() or prefix != prefix.strip():
            raise ValidationError(
                "must be 1-32 printable characters without surrounding spaces",
                field="--reason-prefix",
            )


@dataclass(frozen=True)
class JobEnv:
    """What the hook takes from Slurm's environment, validated; ``ignored`` names the variables
    that were set but invalid (their values are never echoed)."""

    node: str | None = None
    job_id: str | None = None
    exit_status: int | None = None  # SLURM_JOB_EXIT_CODE: a wait(2) status
    exit_code2: tuple[int, int] | None = None  # SLURM_JOB_EXIT_CODE2: exit:signal
    derived_ec: int | None = None  # SLURM_JOB_DERIVED_EC: the highest step exit status
    slurm_conf: str | None = None  # SLURM_CONF: slurmd's configuration file
    ignored: tuple[str, ...] = ()

    def failed(self) -> bool | None:
        """Did the job fail? None when Slurm gave nothing usable to tell."""
        known = [v for v in (self.exit_status, self.derived_ec) if v is not None]
        if self.exit_code2 is not None:
            known.extend(self.exit_code2)
        if not known:
            return None
        return any(v != 0 for v in known)


def read_job_env(environ: Mapping[str, str]) -> JobEnv:
    ignored: list[str] = []

    def token(name: str, pattern: re.Pattern[str]) -> str | None:
        value = environ.get(name)
        if value is None or value == "":
            return None
        if not pattern.fullmatch(value):
            ignored.append(name)
            return None
        return value

    def integer(name: str) -> int | None:
        value = token(name, INT_RE)
        return None if value is None else int(value)

    slurm_conf = token("SLURM_CONF", CONF_RE)
    if slurm_conf is not None and ("/../" in slurm_conf or not os.path.isfile(slurm_conf)):
        ignored.append("SLURM_CONF")
        slurm_conf = None
    code2 = token("SLURM_JOB_EXIT_CODE2", EXIT2_RE)
    pair = None
    if code2 is not None:
        a, b = code2.split(":")
        pair = (int(a), int(b))
    return JobEnv(
        node=token("SLURMD_NODENAME", NODE_RE),
        job_id=token("SLURM_JOB_ID", JOB_ID_RE),
        exit_status=integer("SLURM_JOB_EXIT_CODE"),
        exit_code2=pair,
        derived_ec=integer("SLURM_JOB_DERIVED_EC"),
        slurm_conf=slurm_conf,
        ignored=tuple(ignored),
    )


@dataclass(frozen=True)
class Completed:
    returncode: int | None  # None: killed at the timeout
    stdout: str = ""
    stderr: str = ""
    error: str | None = None  # could not run at all


Run = Callable[[Sequence[str], float, Mapping[str, str]], Completed]


def run_command(argv: Sequence[str], timeout: float, env: Mapping[str, str]) -> Completed:
    """argv without a shell, in its own session, killed with its children at the timeout."""
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            env=dict(env),
            start_new_session=True,
        )
    except OSError as exc:
        return Completed(None, error=f"cannot run {argv[0]}: {exc.strerror or exc}")
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        return Completed(None, out[-MAX_OUTPUT_CHARS:], err[-MAX_OUTPUT_CHARS:])
    return Completed(proc.returncode, out[-MAX_OUTPUT_CHARS:], err[-MAX_OUTPUT_CHARS:])


@dataclass(frozen=True)
class HookResult:
    """What the hook did: its exit code, one line for slurmd's log, and the facts for ours."""

    exit_code: int
    message: str
    outcome: str  # passed, skipped, refused, drained, drain_failed, no_node
    diag_class: str | None = None
    diag_rc: int | None = None
    drained_reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _first_problem(out: str, err: str) -> str:
    """The first line that says what is wrong: the NHC line's text (``ERROR: nhc: ...``)."""
    for line in (out + "\n" + err).splitlines():
        text = line.strip()
        if not text:
            continue
        for head in ("ERROR: nhc: ", "ERROR: "):
            if text.startswith(head):
                text = text[len(head) :]
                break
        return text.removeprefix("Health check failed: ")
    return ""


def drain_reason(prefix: str, hook: str, env: JobEnv, level: int, klass: str, what: str) -> str:
    event = f"{hook}:{env.node}" + (f":{env.job_id}" if env.job_id else "")
    head = f"{prefix} diag ev={event}: level {level} {klass.upper()}"
    text = sanitize_text(what, MAX_SLURM_REASON_CHARS)
    full = f"{head}: {text}" if text else head
    if len(full) > MAX_SLURM_REASON_CHARS:
        full = full[: MAX_SLURM_REASON_CHARS - 3] + "..."
    return full


def run_hook(
    config: HookConfig,
    environ: Mapping[str, str],
    *,
    run: Run = run_command,
    clock: Callable[[], float] = time.monotonic,
) -> HookResult:
    """Run the hook's diagnostic (the epilog only after a failed job) and judge it."""
    env = read_job_env(environ)
    details: dict[str, Any] = {"node": env.node, "job_id": env.job_id}
    if env.ignored:
        details["ignored_env"] = list(env.ignored)
    if config.hook == "epilog":
        failed = env.failed()
        details["job_failed"] = failed
        if not failed:
            why = "the job succeeded" if failed is False else "Slurm gave no exit code"
            return HookResult(
                EXIT_OK, f"sre epilog: {why}: no diagnostic", "skipped", details=details
            )
    argv = [config.sre, "diag", "run", "--level", str(config.level), "--format", "nhc"]
    if env.node is not None:  # the result is stored under the Slurm node's name
        argv += ["--node", env.node]
    argv += list(config.diag_args)
    child_env = {"PATH": config.path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
    start = clock()
    done = run(argv, config.timeout_seconds, child_env)
    details["duration_seconds"] = round(clock() - start, 3)
    if done.error is not None:
        klass, what = "unknown", done.error
    elif done.returncode is None:
        klass = "timeout"
        what = f"level {config.level} did not finish within {config.timeout_seconds:g}s"
    else:
        klass = _CLASS_BY_RC.get(done.returncode, "unknown")
        what = _first_problem(done.stdout, done.stderr)
    details["class"] = klass
    label = f"sre {config.hook}: level {config.level} {klass.upper()}"
    if klass == "ok" or klass not in config.fail_on:
        tail = f": {sanitize_text(what, 200)}" if klass != "ok" and what else ""
        return HookResult(
            EXIT_OK, f"{label}, job allowed{tail}", "passed", klass, done.returncode, None, details
        )
    if env.node is None or config.scontrol is None:
        why = "no valid SLURMD_NODENAME" if env.node is None else "draining is off"
        return HookResult(
            EXIT_REFUSE,
            f"{label} ({why}): {sanitize_text(what, 200)}",
            "no_node" if env.node is None else "refused",
            klass,
            done.returncode,
            None,
            details,
        )
    reason = drain_reason(config.reason_prefix, config.hook, env, config.level, klass, what)
    scontrol_env = dict(child_env)
    if env.slurm_conf is not None:  # slurmd's own configuration, for scontrol to find slurmctld
        scontrol_env["SLURM_CONF"] = env.slurm_conf
    drain = run(
        [config.scontrol, "update", f"NodeName={env.node}", "State=DRAIN", f"Reason={reason}"],
        30.0,
        scontrol_env,
    )
    drained = drain.error is None and drain.returncode == 0
    if not drained:
        details["drain_error"] = sanitize_text(
            drain.error or drain.stderr or f"exit {drain.returncode}", 200
        )
    # The prolog refuses the job either way; the epilog fails only when our drain did not
    # happen, so that Slurm drains the node itself.
    code = EXIT_OK if config.hook == "epilog" and drained else EXIT_REFUSE
    note = f"drained: {reason}" if drained else f"drain failed ({details['drain_error']})"
    return HookResult(
        code,
        f"{label}, {note}",
        "drained" if drained else "drain_failed",
        klass,
        done.returncode,
        reason if drained else None,
        details,
    )


def _write_log(path: str, config: HookConfig, result: HookResult, at: float) -> None:
    record = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
        "hook": config.hook,
        "level": config.level,
        "exit_code": result.exit_code,
        "outcome": result.outcome,
        "class": result.diag_class,
        "diag_rc": result.diag_rc,
        "reason": result.drained_reason,
        **result.details,
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, sort_keys=True) + "\n")
    except OSError as exc:  # the job's fate does not depend on our log
        print(f"sre {config.hook}: cannot write {path}: {exc.strerror}", file=sys.stderr)


def parse_args(argv: Sequence[str] | None) -> HookConfig:
    parser = argparse.ArgumentParser(
        prog="python -m sre_tools.diag.slurm_hooks",
        description="Slurm Prolog/Epilog hook: `sre diag run` on the node, drain on failure.",
    )
    parser.add_argument("hook", choices=HOOKS)
    parser.add_argument("--sre", default=os.path.join(os.path.dirname(sys.executable), "sre"))
    parser.add_argument("--level", type=int, default=None)
    parser.add_argument("--timeout", type=float, default=None, help="seconds")
    parser.add_argument(
        "--fail-on", default="crit", help="comma-separated: " + ",".join(FAIL_CLASSES)
    )
    parser.add_argument("--scontrol", default="/usr/bin/scontrol", help="'' = do not drain")
    parser.add_argument("--reason-prefix", default="sre:")
    parser.add_argument("--path", default=DEFAULT_PATH, help="PATH for the diagnostic")
    parser.add_argument("--log", default=None, help="append one JSON line per run here")
    parser.add_argument(
        "--diag-arg",
        action="append",
        default=[],
        help="one more argument for `sre diag run` (repeat: --diag-arg=--site --diag-arg=FILE)",
    )
    ns = parser.parse_args(argv)
    return HookConfig(
        hook=ns.hook,
        sre=ns.sre,
        level=ns.level if ns.level is not None else DEFAULT_LEVEL[ns.hook],
        timeout_seconds=ns.timeout if ns.timeout is not None else DEFAULT_TIMEOUT[ns.hook],
        fail_on=frozenset(c.strip() for c in ns.fail_on.split(",") if c.strip()),
        scontrol=ns.scontrol or None,
        reason_prefix=ns.reason_prefix,
        path=ns.path,
        diag_args=tuple(ns.diag_arg),
        log=ns.log,
    )


def main(
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
) -> int:
    stream = out or sys.stdout
    try:
        config = parse_args(argv)
    except ValidationError as exc:
        print(f"sre slurm hook: {exc}", file=stream)
        return EXIT_REFUSE
    except SystemExit as exc:  # argparse: a usage error fails closed
        return EXIT_REFUSE if exc.code else EXIT_OK
    at = time.time()
    result = run_hook(config, os.environ if environ is None else environ)
    print(result.message, file=stream)
    if config.log:
        _write_log(config.log, config, result, at)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
