"""Salt execution module ``gpu``: GPU health, XID explanations, MIG drift, drain and resume.

Thin by design (see docs/salt.md): every function checks its arguments, calls ``sre_tools`` and
returns plain JSON data. ``sre_tools`` is imported inside the functions, so loading this module
costs nothing and ``__virtual__`` can say clearly why it is unavailable.

Defaults come from the ``sre_tools`` key of the minion configuration, grains or pillar
(``config.get sre_tools:<name>``): ``profile``, ``config`` (health policy YAML), ``health_state``
(counter state file), ``node`` (Slurm node name), ``controller``, ``remediation_config``,
``remediation_state``, ``remediation_audit``, ``diag_site``, ``diag_store``.

CLI examples::

    salt 'gpu-*' gpu.health
    salt 'gpu-*' gpu.health replay=/srv/recordings/dbe-volatile.json
    salt 'gpu-*' gpu.xid_explain 'NVRM: Xid (PCI:0000:18:00): 79, pid=1, name=x, fallen off'
    salt 'gpu-*' gpu.mig_assert /etc/nvidia-mig-manager/config.yaml all-1g.10gb
    salt 'gpu-01' gpu.drain 'sre: DBE on GPU 0' execute=True
    salt 'gpu-01' gpu.resume execute=True
    salt 'gpu-07' gpu.diag level=3 nvbandwidth=True
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any

try:
    from salt.exceptions import CommandExecutionError, SaltInvocationError
except ImportError:  # loaded outside Salt (the unit tests load this file with importlib)

    class CommandExecutionError(Exception):  # type: ignore[no-redef]
        """Stand-in for salt.exceptions.CommandExecutionError."""

    class SaltInvocationError(Exception):  # type: ignore[no-redef]
        """Stand-in for salt.exceptions.SaltInvocationError."""


log = logging.getLogger(__name__)

__virtualname__ = "gpu"

MAX_XID_LINES = 100_000
MAX_XID_BYTES = 16 * 1024 * 1024
# The CLI's choice for recordings: no host sysfs leaks into a replay.


def __virtual__() -> str | tuple[bool, str]:
    try:
        import sre_tools  # noqa: F401
    except ImportError as exc:
        return (
            False,
            f"gpu: the sre_tools package is not importable from Salt's Python ({exc}); install "
            "sre-tools there (salt-pip install sre-tools, or the sre_agent formula with "
            "sre_agent:install_into_salt: true)",
        )
    return __virtualname__


# --- settings ----------------------------------------------------------------------------------


def _dunder(name: str) -> Any:
    """A loader-injected global (``__opts__``, ``__salt__``, ``__grains__``), or None."""
    return globals().get(name)


def _setting(name: str) -> Any:
    """``sre_tools:<name>`` from minion config, grains or pillar; else None."""
    salt_fns = _dunder("__salt__")
    if salt_fns is not None and "config.get" in salt_fns:
        value = salt_fns["config.get"](f"sre_tools:{name}")
        return value if value not in ("", None) else None
    opts = _dunder("__opts__") or {}
    block = opts.get("sre_tools") or {}
    return block.get(name) if isinstance(block, dict) else None


def _node(node: str | None) -> str:
    if node:
        return str(node)
    configured = _setting("node")
    if configured:
        return str(configured)
    grains = _dunder("__grains__") or {}
    if grains.get("host"):
        return str(grains["host"])
    opts = _dunder("__opts__") or {}
    return str(opts.get("id", "")).split(".", maxsplit=1)[0]


def _live_state_path() -> str | None:
    """Counter state of a live run: the ``health_state`` setting, else in Salt's cachedir.

    Salt keeps its own file so that its runs never race the systemd timer's ``sre health``.
    """
    configured = _setting("health_state")
    if configured:
        return str(configured)
    cachedir = (_dunder("__opts__") or {}).get("cachedir")
    return os.path.join(cachedir, "sre_tools", "health-state.json") if cachedir else None


def _counters(replay: str | None, state: str | None) -> Any:  # -> CounterState
    """``sre_tools.health.runner.counter_state``: ``state``, none for a replay, else live."""
    from pathlib import Path

    from sre_tools.health.runner import counter_state

    live = _live_state_path()
    return counter_state(
        replay or None,
        Path(state) if state else None,
        live_default=Path(live) if live else None,
    )


# --- health ------------------------------------------------------------------------------------


def _policy(profile: str | None, config: str | None) -> Any:
    from pathlib import Path

    from sre_tools.health.policy import load_policy_file

    profile = profile or _setting("profile")
    config = config or _setting("config")
    return load_policy_file(Path(config) if config else None, profile or None)


def _run(
    policy: Any, replay: str | None, state: str | None, timeout: float | None
) -> Any:  # -> sre_tools.health.model.HealthReport
    """One health run, the way ``sre health [--replay]`` does it."""
    from sre_tools.health.runner import run_replay_or_live

    return run_replay_or_live(
        policy, replay=replay or None, state=_counters(replay, state), timeout=timeout
    )


def _report(
    replay: str | None,
    profile: str | None,
    config: str | None,
    timeout: float | None,
    state: str | None,
) -> Any:
    from sre_tools.exceptions import SreError

    try:
        return _run(_policy(profile, config), replay, state, _timeout(timeout))
    except SreError as exc:
        raise CommandExecutionError(f"gpu.health: {exc}") from None
    except OSError as exc:
        raise CommandExecutionError(f"gpu.health: {exc}") from None


def _timeout(timeout: Any) -> float | None:
    if timeout in (None, ""):
        return None
    try:
        value = float(timeout)
    except (TypeError, ValueError):
        raise SaltInvocationError(f"timeout: expected seconds, got {timeout!r}") from None
    if not 0 < value <= 600:
        raise SaltInvocationError(f"timeout: expected 0 < seconds <= 600, got {value:g}")
    return value


def health(
    replay: str | None = None,
    profile: str | None = None,
    config: str | None = None,
    timeout: float | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    """Run every health check once; return the versioned HealthReport (``sre health --json``).

    replay
        A recording (``sre gpu capture``) to play back instead of NVML.
    profile
        Policy profile: ``generic``, ``h100-sxm-8``, ``a100-sxm-8``.
    config
        Site policy YAML on the minion (overrides the profile).
    timeout
        Collection watchdog in seconds (default: the policy's ``collection.timeout_seconds``).
    state
        Counter state file (default: ``<cachedir>/sre_tools/health-state.json``; none for replay).

    CLI example::

        salt '*' gpu.health profile=h100-sxm-8
    """
    return dict(_report(replay, profile, config, timeout, state).to_dict())


# --- active diagnostics ------------------------------------------------------------------------

DIAG_LEVELS = (1, 2, 3, 4)
# Whole-run bounds per DCGM level (seconds): 1 takes seconds, 2 about two minutes, 3 about
# fifteen, 4 an hour or more; nvbandwidth and NCCL add their own minutes.
DIAG_TIMEOUTS = {1: 120, 2: 900, 3: 3600, 4: 14400}
MAX_DIAG_OUTPUT = 32 * 1024 * 1024


def diag(
    level: int = 2,
    nvbandwidth: bool = False,
    nccl: bool = False,
    profile: str | None = None,
    site: str | None = None,
    store: str | None = None,
    replay: str | None = None,
    node: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run the active diagnostics on this node (``sre diag run --json``): DCGM at ``level``, and
    nvbandwidth / nccl-tests when asked. Returns the JSON: a combined report with its ``runs``
    and ``exit_code`` (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Results are stored as the CLI
    stores them (``store``: a store path; default the CLI's).

    The diagnostics stress the GPUs for up to hours (level 3 about fifteen minutes): run them
    only on a drained node (salt/orch/acceptance.sls does). ``timeout`` bounds the whole run
    (default per level: 120, 900, 3600, 14400 s).

    CLI example::

        salt 'gpu-node-07' gpu.diag level=3 nvbandwidth=True timeout=5400
    """
    import json
    import subprocess
    import sys

    try:
        lvl = int(level)
    except (TypeError, ValueError):
        raise SaltInvocationError(f"level: expected 1-4, got {level!r}") from None
    if lvl not in DIAG_LEVELS:
        raise SaltInvocationError(f"level: expected 1-4, got {lvl}")
    seconds = float(DIAG_TIMEOUTS[lvl]) if timeout in (None, "") else None
    if seconds is None:
        try:
            seconds = float(timeout)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise SaltInvocationError(f"timeout: expected seconds, got {timeout!r}") from None
        if not 0 < seconds <= 86400:
            raise SaltInvocationError(f"timeout: expected 0 < seconds <= 86400, got {seconds:g}")
    argv = [sys.executable, "-m", "sre_tools.cli.main", "diag", "run", "--level", str(lvl)]
    argv += ["--json", "--node", _node(node)]
    if nvbandwidth:
        argv.append("--nvbandwidth")
    if nccl:
        argv.append("--nccl")
    for option, value in (
        ("--profile", profile or _setting("profile")),
        ("--site", site or _setting("diag_site")),
        ("--store", store or _setting("diag_store")),
        ("--replay", replay),
    ):
        if value:
            argv += [option, str(value)]
    try:
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=seconds,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise CommandExecutionError(
            f"gpu.diag: level {lvl} did not finish within {seconds:g}s"
        ) from None
    out = proc.stdout[:MAX_DIAG_OUTPUT]
    try:
        data = json.loads(out) if out.lstrip().startswith("{") else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        tail = " ".join((proc.stderr or out).split())[-300:]
        raise CommandExecutionError(
            f"gpu.diag: sre diag run exited {proc.returncode} without a result: {tail}"
        )
    return data


# --- XIDs --------------------------------------------------------------------------------------


def _lines(lines: Any) -> list[str]:
    if isinstance(lines, str):
        text = lines
    elif isinstance(lines, list | tuple) and all(isinstance(x, str) for x in lines):
        text = "\n".join(lines)
    else:
        raise SaltInvocationError("lines: expected a string or a list of strings")
    if len(text.encode("utf-8", "replace")) > MAX_XID_BYTES:
        raise SaltInvocationError(f"lines: more than {MAX_XID_BYTES} bytes")
    out = text.splitlines()
    if len(out) > MAX_XID_LINES:
        raise SaltInvocationError(f"lines: more than {MAX_XID_LINES} lines")
    return out


def xid_explain(lines: Any, fabric_manager: bool = True) -> dict[str, Any]:
    """Explain XID kernel-log lines: every event with the catalog's buckets and our action, and
    one decision per GPU (``sre xid explain --json``).

    lines
        Kernel-log text (newline-separated) or a list of lines.
    fabric_manager
        False for nodes without NVSwitch / Fabric Manager (a solo XID 45 means restart the app).

    CLI example::

        salt '*' gpu.xid_explain 'NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, ...'
    """
    from sre_tools.health.xid.classify import analyze
    from sre_tools.health.xid.events import dedupe
    from sre_tools.health.xid.parser import parse_lines

    text_lines = _lines(lines)
    analysis = analyze(dedupe(parse_lines(text_lines)), fabric_manager=bool(fabric_manager))
    return {"lines": len(text_lines), **analysis.to_dict()}


# --- MIG ---------------------------------------------------------------------------------------


def mig_assert(
    config_file: str,
    config_name: str,
    replay: str | None = None,
    profile: str | None = None,
    config: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """Compare the GPUs' MIG layout with ``config_name`` of a mig-parted ``config_file``.

    Read-only: nothing is changed (apply a layout with mig-parted on a drained node). Returns
    ``in_sync``, the drifting findings and every ``mig.*`` finding of a health run.

    CLI example::

        salt '*' gpu.mig_assert /etc/nvidia-mig-manager/config.yaml all-1g.10gb
    """
    from pathlib import Path

    from sre_tools.exceptions import SreError, ValidationError
    from sre_tools.health.policy import Policy
    from sre_tools.mig.config import parse_mig_config

    if not isinstance(config_file, str) or not config_file:
        raise SaltInvocationError("config_file: expected the path of a mig-parted config")
    if not isinstance(config_name, str) or not config_name:
        raise SaltInvocationError("config_name: expected one of the file's mig-configs")
    try:
        try:
            text = Path(config_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise ValidationError(f"cannot read: {reason}", source=config_file) from None
        parsed = parse_mig_config(text, config_file)
        if config_name not in parsed.configs:
            known = ", ".join(sorted(parsed.configs))
            raise ValidationError(
                f"no config named {config_name!r} (known: {known})",
                source=config_file,
                field="mig-configs",
            )
        base = _policy(profile, config)
        data = copy.deepcopy(base.data)
        data["mig"] = {
            **data.get("mig", {}),
            "config_file": config_file,
            "config_name": config_name,
        }
        report = _run(Policy(data), replay, None, _timeout(timeout))
    except SreError as exc:
        raise CommandExecutionError(f"gpu.mig_assert: {exc}") from None
    findings = [f.to_dict() for f in report.findings if f.check.startswith("mig.")]
    drift = [f for f in findings if f["severity"] not in ("ok", "skipped")]
    return {
        "host": report.host,
        "source": report.source,
        "config_file": config_file,
        "config_name": config_name,
        "in_sync": not drift,
        "drift": drift,
        "findings": findings,
    }


# --- remediation -------------------------------------------------------------------------------


def _remediator(
    execute: bool,
    controller: str | None,
    remediation_config: str | None,
    state: str | None,
    audit: str | None,
) -> Any:
    """``Remediator.from_paths``, as ``sre remediation`` builds it, with Salt's settings."""
    from sre_tools.remediation import Remediator

    return Remediator.from_paths(
        remediation_config or _setting("remediation_config"),
        state or _setting("remediation_state"),
        audit or _setting("remediation_audit"),
        controller=controller or _setting("controller"),
        dry_run=not execute,
    )


def drain(
    reason: str,
    node: str | None = None,
    execute: bool = False,
    controller: str | None = None,
    remediation_config: str | None = None,
    state: str | None = None,
    audit: str | None = None,
) -> dict[str, Any]:
    """Drain this node in Slurm through the remediation guardrails (budget, cooldown, operator
    drains) and the audit log: ``Remediator.drain(node, reason, source="salt")``.

    A dry run unless ``execute=True`` (as ``sre remediation drain``). Returns the decision.

    CLI example::

        salt 'gpu-node-01' gpu.drain 'sre: DBE on GPU 0' execute=True
    """
    from sre_tools.exceptions import SreError

    if not isinstance(reason, str) or not reason.strip():
        raise SaltInvocationError("reason: expected a non-empty string")
    try:
        engine = _remediator(bool(execute), controller, remediation_config, state, audit)
        decision = engine.drain(_node(node), reason, source="salt")
    except SreError as exc:
        raise CommandExecutionError(f"gpu.drain: {exc}") from None
    return {**decision.to_dict(), "dry_run": engine.dry_run}


def resume(
    node: str | None = None,
    execute: bool = False,
    replay: str | None = None,
    profile: str | None = None,
    config: str | None = None,
    controller: str | None = None,
    remediation_config: str | None = None,
    state: str | None = None,
    audit: str | None = None,
    diag_timeout: float | None = None,
) -> dict[str, Any]:
    """Resume this node if *we* drained it and a fresh health run here shows it healthy:
    ``Remediator.try_resume(node, report)``. Never resumes an operator's drain. When the engine
    needs a diagnostic for it (after a GPU reset, or a drain by the Slurm hooks), ``gpu.diag``
    runs here first at the level it needs (``diag_timeout``: its bound) and goes with the report.

    A dry run unless ``execute=True``. Returns the decision and the fresh report's status.

    CLI example::

        salt 'gpu-node-01' gpu.resume execute=True
    """
    from sre_tools.exceptions import SreError

    report = _report(replay, profile, config, None, None)
    name = _node(node)
    try:
        engine = _remediator(bool(execute), controller, remediation_config, state, audit)
        level = engine.resume_diag_level(name)
        if level:
            import json

            from sre_tools.remediation.model import parse_diag_json

            result = diag(level=level, profile=profile, node=name, timeout=diag_timeout)
            diags = parse_diag_json(json.dumps(result), source="gpu.diag")
            decision = engine.try_resume(name, report, diags)
        else:
            decision = engine.try_resume(name, report)
    except SreError as exc:
        raise CommandExecutionError(f"gpu.resume: {exc}") from None
    return {
        **decision.to_dict(),
        "dry_run": engine.dry_run,
        "health": {"status": report.severity.value, "action": report.action.value},
    }
