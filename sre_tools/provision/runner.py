"""Run one of this repository's playbooks through ansible-runner and fold its events.

Inputs are checked before Ansible starts, each failure a one-line :class:`ValidationError` that
names the option (``--inventory``, ``--limit``, ``-e``, ``--playbook-dir``). The run's private
data directory (``--run-dir``) keeps ansible-runner's artifacts (``artifacts/<ident>/``: stdout,
job_events/, rc, status) and this module's ``summary.json`` next to them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sre_tools.exceptions import SreError, ValidationError
from sre_tools.provision.model import RunResult, RunTracker

# `sre ansible <command>` -> playbook file under the playbook directory.
PLAYBOOKS = {
    "validate": "validate.yml",
    "remediate": "remediate.yml",
    "upgrade": "rolling_upgrade.yml",
}
INVENTORY_TIMEOUT_S = 120
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class ProvisionError(SreError):
    """ansible-runner or ansible-playbook could not run (not a failed host: that is a result)."""


def default_playbook_dir() -> Path | None:
    """``$SRE_PLAYBOOK_DIR``, else ``playbooks/`` of the checkout this package runs from."""
    env = os.environ.get("SRE_PLAYBOOK_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parents[2] / "playbooks"
    return checkout if checkout.is_dir() else None


def default_run_root() -> Path:
    """``$SRE_ANSIBLE_RUN_ROOT``, else ``$XDG_STATE_HOME/sre-tools/ansible``."""
    env = os.environ.get("SRE_ANSIBLE_RUN_ROOT")
    if env:
        return Path(env)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "sre-tools" / "ansible"


def parse_extra_vars(items: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs; a VALUE is read as a YAML scalar (``true``, ``3``, ``"10%"``)."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValidationError(f"expected KEY=VALUE, got {item!r}", field="-e")
        if not _KEY.match(key):
            raise ValidationError(f"not a variable name: {key!r}", field=f"-e {key or '(empty)'}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw  # not YAML: keep the text, as ansible-playbook -e does
        if isinstance(value, dict | list):
            raise ValidationError(
                "VALUE must be a scalar (string, number, bool)", field=f"-e {key}"
            )
        out[key] = value
    return out


def resolve_playbook(command: str, playbook_dir: Path | None) -> Path:
    if playbook_dir is None:
        raise ValidationError(
            "no playbook directory (set --playbook-dir or $SRE_PLAYBOOK_DIR)",
            field="--playbook-dir",
        )
    name = PLAYBOOKS[command]
    path = playbook_dir / name
    if not path.is_file():
        raise ValidationError(f"{name} not found", source=str(playbook_dir), field="--playbook-dir")
    return path.resolve()


def _tool(name: str) -> str:
    """An Ansible executable next to this interpreter (a venv), else on PATH."""
    found = shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)
    if not found:
        raise ProvisionError(f"{name} not found: pip install 'sre-tools[ansible]'")
    return found


def _inventory_error(stderr: str) -> str:
    reason = ""
    origin = ""
    for raw in stderr.splitlines():
        line = raw.strip()
        m = re.match(r"\[WARNING\]: Failed to parse inventory with '[^']+' plugin: (.*)", line)
        if m and not reason:
            reason = m.group(1)
        if line.startswith("Origin: ") and not origin and not line.startswith("Origin: <"):
            origin = line.removeprefix("Origin: ")
        if line.startswith("[ERROR]: ") and not reason:
            reason = line.removeprefix("[ERROR]: ")
    text = reason or "cannot be parsed as an inventory"
    return f"{text} ({origin})" if origin else text


def list_hosts(
    inventory: Path, limit: str | None, env: Mapping[str, str] | None = None
) -> list[str]:
    """The inventory's hosts matching ``limit``, as Ansible parses them; bad input raises."""
    if not inventory.exists():
        raise ValidationError("does not exist", source=str(inventory), field="--inventory")
    argv = [_tool("ansible"), "all", "-i", str(inventory), "--list-hosts"]
    if limit:
        argv += ["--limit", limit]
    run_env = {
        **os.environ,
        **(env or {}),
        "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
        "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True",
        "ANSIBLE_NOCOLOR": "True",
        "ANSIBLE_FORCE_COLOR": "False",
    }
    try:
        proc = subprocess.run(
            argv,
            check=False,
            capture_output=True,
            text=True,
            env=run_env,
            timeout=INVENTORY_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise ProvisionError(
            f"reading the inventory took more than {INVENTORY_TIMEOUT_S} s: {inventory}"
        ) from None
    no_hosts = "leaves us with no hosts" in proc.stderr
    if proc.returncode != 0 and not no_hosts:
        raise ValidationError(
            _inventory_error(proc.stderr), source=str(inventory), field="--inventory"
        )
    hosts = [
        line.strip()
        for line in proc.stdout.splitlines()
        if line.startswith("    ") and line.strip()
    ]
    if not hosts:
        if limit:
            raise ValidationError(f"matches no host in {inventory}", field=f"--limit {limit}")
        raise ValidationError("has no hosts", source=str(inventory), field="--inventory")
    return hosts


@dataclass
class RunRequest:
    command: str  # validate, remediate, upgrade
    inventory: Path
    limit: str | None = None
    extra_vars: dict[str, Any] = field(default_factory=dict)
    playbook_dir: Path | None = None
    run_dir: Path | None = None
    timeout_s: int = 7200
    forks: int | None = None
    env: dict[str, str] = field(default_factory=dict)


def _ansible_env(playbook: Path, extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(extra)
    # The repository's ansible.cfg sits next to playbooks/; ansible-playbook runs with the
    # project directory as cwd, so name the file unless the caller chose one.
    cfg = playbook.parent.parent / "ansible.cfg"
    if "ANSIBLE_CONFIG" not in env and "ANSIBLE_CONFIG" not in os.environ and cfg.is_file():
        env["ANSIBLE_CONFIG"] = str(cfg)
    # ansible-runner turns host key checking off unless told otherwise: keep Ansible's default
    # (and ansible.cfg's) on. Only an explicit ANSIBLE_HOST_KEY_CHECKING in the caller's
    # environment changes it.
    if "ANSIBLE_HOST_KEY_CHECKING" not in os.environ:
        env.setdefault("ANSIBLE_HOST_KEY_CHECKING", "True")
    # ansible-runner runs `ansible-playbook` from PATH: put this interpreter's bin/ first so a
    # venv's Ansible is the one used even when the venv is not activated.
    env.setdefault(
        "PATH", os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    return env


def run_playbook(
    req: RunRequest,
    *,
    on_start: Callable[[list[str]], None] | None = None,
    on_event: Callable[[RunTracker, str], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> RunResult:
    """Check the inputs, run the playbook, return per-host outcomes (never raises for hosts)."""
    playbook = resolve_playbook(req.command, req.playbook_dir)
    env = _ansible_env(playbook, req.env)
    hosts = list_hosts(req.inventory.resolve(), req.limit, env)
    try:
        import ansible_runner
    except ImportError:
        raise ProvisionError(
            "ansible-runner is not installed: pip install 'sre-tools[ansible]'"
        ) from None
    _tool("ansible-playbook")  # fail early with the install hint

    ident = f"{req.command}-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}-{os.getpid()}"
    run_dir = (req.run_dir or default_run_root() / ident).resolve()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValidationError(
            f"cannot create: {exc.strerror or exc}", source=str(run_dir), field="--run-dir"
        ) from None

    tracker = RunTracker(hosts)
    if on_start is not None:
        on_start(hosts)

    def handle(event: dict[str, Any]) -> bool:
        host = tracker.feed(event)
        if host is not None and on_event is not None:
            on_event(tracker, host)
        return True  # keep every event in artifacts/<ident>/job_events/

    started = clock()
    kwargs: dict[str, Any] = {
        "private_data_dir": str(run_dir),
        "project_dir": str(playbook.parent),
        "playbook": playbook.name,
        "inventory": str(req.inventory.resolve()),
        "ident": ident,
        "envvars": env,
        "extravars": req.extra_vars,
        "event_handler": handle,
        "quiet": True,
        "timeout": req.timeout_s,
        # -e values may be secrets: pass them on the command line only, never in env/ files.
        "suppress_env_files": True,
    }
    if req.limit:
        kwargs["limit"] = req.limit
    if req.forks:
        kwargs["forks"] = req.forks
    try:
        runner = ansible_runner.run(**kwargs)
    except Exception as exc:  # ansible-runner's own errors (configuration, spawn)
        raise ProvisionError(f"ansible-runner failed: {type(exc).__name__}: {exc}") from exc
    result = tracker.result(str(runner.status), runner.rc)
    result.playbook = PLAYBOOKS[req.command]
    result.run_dir = str(run_dir)
    result.artifact_dir = str(getattr(runner.config, "artifact_dir", run_dir / "artifacts" / ident))
    result.duration_seconds = clock() - started
    _scrub_command_file(Path(result.artifact_dir))
    _write_summary(result)
    return result


def _scrub_command_file(artifact_dir: Path) -> None:
    """ansible-runner records the whole environment in ``command``: keep only the argv and cwd,
    so that no token or password from the caller's environment stays in the run directory."""
    import json

    path = artifact_dir / "command"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("env"), dict):
            data["env"] = sorted(k for k in data["env"] if k.startswith(("ANSIBLE_", "RUNNER_")))
        if isinstance(data, dict) and isinstance(data.get("command"), list):
            argv = data["command"]
            for i in range(1, len(argv)):
                if argv[i - 1] == "-e" and str(argv[i]).startswith("{"):
                    keys = sorted(json.loads(argv[i]))
                    argv[i] = f"<extra vars: {', '.join(keys)}>"
        path.write_text(json.dumps(data) + "\n", encoding="utf-8")
    except (OSError, ValueError):
        pass  # no command file (the run did not start): nothing to scrub


def _write_summary(result: RunResult) -> None:
    import json

    path = Path(result.artifact_dir) / "summary.json"
    try:
        path.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise ProvisionError(f"cannot write {path}: {exc.strerror or exc}") from None
