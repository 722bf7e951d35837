"""Salt for the tests: load the custom modules without Salt, run salt-call, run a real master.

Unit tests load ``salt/_modules/gpu.py`` and ``salt/_beacons/gpu_health.py`` with plain importlib
(:func:`load_salt_file`) and inject the loader's globals (``__opts__``, ``__context__``,
``__salt__``, ``__grains__``) as module attributes, which is what Salt's loader does too.

Integration tests start a real ``salt-master`` and ``salt-minion`` (:class:`SaltPair`):

- both bind to 127.0.0.1 on free, non-default ports (``publish_port``, ``ret_port``);
- every path (``root_dir``, pki, cache, sockets, logs, pid files) lies in a temporary directory;
- ``open_mode: False`` and ``auto_accept: False``: the master trusts exactly one key, the test
  minion's, generated with ``salt-key --gen-keys`` and pre-seeded as accepted before either
  daemon starts (so the minion authenticates at once, without a retry delay);
- each daemon runs in its own session; :meth:`SaltPair.stop` terminates (then kills) the whole
  process group of each, so no Salt worker outlives the test.

Salt missing is an error, never a skip (:class:`SaltMissingError`, :func:`require_salt`): CI
installs it with the ``salt`` extra, and a skipped suite would hide exactly the breakage it exists
to catch.

Render tests read ``state.show_sls`` high data: :func:`show_sls` renders with a pillar of the
test's own, :func:`state_args` turns one state's argument list into a dict.
"""

from __future__ import annotations

import contextlib
import getpass
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from tests.helpers.procs import LOOPBACK, free_port, port_open

REPO = Path(__file__).resolve().parents[2]
SALT_DIR = REPO / "salt"
GPU_MODULE = SALT_DIR / "_modules" / "gpu.py"
GPU_BEACON = SALT_DIR / "_beacons" / "gpu_health.py"
FIXTURES = REPO / "tests" / "fixtures" / "gpu"
# The formulas salt/top.sls gives a GPU node, in order.
TOP_FORMULAS = [
    "gpu_base",
    "infiniband",
    "nvidia_driver",
    "nvidia_fabricmanager",
    "cuda_toolkit",
    "container_runtime",
    "nvidia_mig",
    "gpu_monitoring",
    "sre_agent",
]

START_TIMEOUT_SECONDS = 45.0
STOP_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 60.0
INSTALL_HINT = (
    "install it into the project's virtualenv: pip install -e '.[dev,salt]' "
    "(or pip install salt; it builds from source, about 3 minutes)"
)


class SaltMissingError(RuntimeError):
    """Salt (the package or its commands) is not installed."""


class SaltError(RuntimeError):
    """A Salt command or daemon failed; the message carries its output or log."""


# --- loading the custom modules without Salt -----------------------------------------------------


def load_salt_file(path: Path, name: str | None = None, **dunders: Any) -> ModuleType:
    """Import a Salt extension file by path, then set loader globals (``__opts__=...``)."""
    mod_name = name or f"_sre_salt_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for key, value in dunders.items():
        setattr(module, key, value)
    return module


# --- binaries ------------------------------------------------------------------------------------


def salt_version() -> str:
    """The installed Salt's version; :class:`SaltMissingError` when it cannot be imported."""
    try:
        import salt.version
    except ImportError as exc:
        raise SaltMissingError(f"Salt is not importable ({exc}): {INSTALL_HINT}") from None
    return str(salt.version.__version__)


def salt_bin(name: str) -> str:
    """``salt-call``, ``salt-master``, ...: next to this Python first (the venv), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if not found:
        raise SaltMissingError(
            f"{name} not found next to {sys.executable} or on PATH: {INSTALL_HINT}"
        )
    return found


PAIR_COMMANDS = ("salt-master", "salt-minion", "salt-key", "salt")


def require_salt(*commands: str, importable: bool = True) -> None:
    """:class:`SaltMissingError` unless Salt imports here (``importable``) and every command is
    installed (:func:`salt_bin`)."""
    if importable:
        salt_version()
    for name in commands:
        salt_bin(name)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


def _write_yaml(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n" + yaml.safe_dump(dict(data), sort_keys=False), encoding="utf-8")


# --- salt-call --local ---------------------------------------------------------------------------


def local_minion_config(
    workdir: Path,
    *,
    minion_id: str = "gpu-node-01",
    grains: Mapping[str, Any] | None = None,
    file_root: Path = SALT_DIR,
    pillar_root: Path = SALT_DIR / "pillar",
) -> Path:
    """A masterless minion config directory under ``workdir``; returns the directory."""
    conf = workdir / "conf"
    data: dict[str, Any] = {
        "id": minion_id,
        "file_client": "local",
        "root_dir": str(workdir / "root"),
        "pki_dir": str(workdir / "root" / "pki"),
        "cachedir": str(workdir / "root" / "cache"),
        "sock_dir": str(workdir / "root" / "sock"),
        "log_file": str(workdir / "minion.log"),
        "user": getpass.getuser(),
        "file_roots": {"base": [str(file_root)]},
        "pillar_roots": {"base": [str(pillar_root)]},
    }
    if grains:
        data["grains"] = dict(grains)
    _write_yaml(conf / "minion", data)
    return conf


def salt_call(conf: Path, *args: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> Any:
    """``salt-call --local -c CONF --out json ARGS``: the ``local`` return, parsed."""
    argv = [
        salt_bin("salt-call"),
        "--local",
        "-c",
        str(conf),
        "--out",
        "json",
        "-l",
        "quiet",
        *args,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise SaltError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    try:
        return json.loads(proc.stdout)["local"]
    except (ValueError, KeyError) as exc:
        raise SaltError(f"{' '.join(argv)}: unparsable output ({exc}):\n{proc.stdout}") from None


def get_template(conf: Path, source: str, dest: Path, **context: Any) -> str:
    """``cp.get_template SOURCE DEST`` with ``context`` (each value passed as JSON); returns the
    rendered text."""
    pairs = [f"{key}={json.dumps(value)}" for key, value in context.items()]
    salt_call(conf, "cp.get_template", source, str(dest), *pairs)
    return dest.read_text(encoding="utf-8")


def pillar_minion_config(workdir: Path, pillar: Mapping[str, Any], **config: Any) -> Path:
    """:func:`local_minion_config` whose pillar is ``pillar``: a pillar root in
    ``workdir/pillar`` whose top file gives every minion one sls holding it (as JSON)."""
    root = workdir / "pillar"
    root.mkdir(parents=True)
    (root / "top.sls").write_text("base:\n  '*':\n    - site\n", encoding="utf-8")
    (root / "site.sls").write_text(json.dumps(dict(pillar)), encoding="utf-8")
    return local_minion_config(workdir, pillar_root=root, **config)


def show_sls(workdir: Path, sls: str, pillar: Mapping[str, Any], **config: Any) -> dict[str, Any]:
    """``state.show_sls SLS`` (comma-separated names) with ``pillar``: the high data by state id.
    ``config`` goes to :func:`local_minion_config` (``grains=...``)."""
    data = salt_call(pillar_minion_config(workdir, pillar, **config), "state.show_sls", sls)
    assert isinstance(data, dict), data
    return data


def state_args(state: Mapping[str, Any], module: str | None = None) -> dict[str, Any]:
    """A state's arguments as one dict, without the ``order`` Salt adds.

    Salt's high data keeps them as a list of one-key maps next to the function's name
    (``{"pkg": ["installed", {"name": ...}, {"order": 10001}], "__sls__": ...}``). With
    ``module``, that module's arguments; without, every module's (the ``__`` keys skipped), with
    ``fun`` added: the function, ``pkg.installed``.
    """
    if module is not None:
        modules = {module: state[module]}
    else:
        modules = {name: items for name, items in state.items() if not name.startswith("__")}
    out: dict[str, Any] = {}
    for name, items in modules.items():
        for item in items:
            if isinstance(item, dict):
                out.update(item)
            elif module is None:
                out["fun"] = f"{name}.{item}"
    out.pop("order", None)
    return out


def remediation_master(
    work: Path, *, config: Path, slurm_conf: Path, **settings: Any
) -> dict[str, Any]:
    """A master's ``master_extra`` for the ``sre_remediate`` runner: its code from this
    repository, its state and audit log (``audit.jsonl``) in ``work``, ``settings`` added."""
    return {
        "runner_dirs": [str(SALT_DIR / "_runners")],
        "sre_remediation": {
            "config": str(config),
            "state": str(work / "remediation.db"),
            "audit": str(work / "audit.jsonl"),
            "slurm_conf": str(slurm_conf),
            **settings,
        },
    }


def remediation_settings(work: Path, slurm_conf: Path) -> dict[str, Any]:
    """``remediation_master`` for the orchestration tests: the guardrails let two nodes (50 %)
    drain with no cooldown (remediation.yaml in ``work``), fresh checks wait up to 60 s."""
    config = work / "remediation.yaml"
    settings = {"max_drained_nodes": 2, "max_drained_percent": 50, "cooldown_seconds": 0}
    _write_yaml(config, {"remediation": settings})
    return remediation_master(work, config=config, slurm_conf=slurm_conf, fresh_check_timeout=60)


def node_recording(source: Path, dest: Path, host: str) -> Path:
    """``source`` (a recording) written to ``dest`` with ``host`` as its host, as that node
    would have recorded it."""
    data = json.loads(source.read_text(encoding="utf-8"))
    data["host"] = host
    dest.write_text(json.dumps(data), encoding="utf-8")
    return dest


def audit_records(work: Path) -> list[dict[str, Any]]:
    """The remediation audit log (``remediation_master``'s ``audit.jsonl`` in ``work``)."""
    path = work / "audit.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def show_states(states: Mapping[str, Any]) -> str:
    """An orchestration's states, one line each, for an assertion's message."""
    return "\n".join(
        f"{k}: {v['result']} {str(v['comment'])[:800]} {str(v.get('changes'))[:1500]}"
        for k, v in states.items()
    )


# --- a real master and minion --------------------------------------------------------------------


class SaltPair:
    """A salt-master and one salt-minion on loopback in ``workdir``. Use as a context manager."""

    def __init__(
        self,
        workdir: Path,
        *,
        minion_id: str = "sre-it-gpu-01",
        beacons: Mapping[str, Any] | None = None,
        minion_extra: Mapping[str, Any] | None = None,
        master_extra: Mapping[str, Any] | None = None,
        file_root: Path = SALT_DIR,
        stop_timeout: float = STOP_TIMEOUT_SECONDS,
    ):
        self.workdir = workdir
        self.stop_timeout = stop_timeout
        self.minion_id = minion_id
        self.publish_port = free_port()
        self.ret_port = free_port()
        while self.ret_port == self.publish_port:
            self.ret_port = free_port()
        self.master_dir = workdir / "master"
        self.minion_dir = workdir / "minion"
        self.master_conf = self.master_dir / "conf"
        self.minion_conf = self.minion_dir / "conf"
        self.master_log = self.master_dir / "master.log"
        self.minion_log = self.minion_dir / "minion.log"
        self.beacons = dict(beacons or {})
        self.minion_extra = dict(minion_extra or {})
        self.master_extra = dict(master_extra or {})
        self.file_root = file_root
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        # Salt's IPC sockets live under its root_dir (it prepends root_dir to every other path),
        # and a minion's is named after a 32-digit hash: AF_UNIX's 107 bytes leave no room for a
        # pytest-xdist worker's temporary path. The roots (keys, cache, sockets) go in a short
        # directory of their own; configs and logs stay in ``workdir``.
        self.sock_base = Path(tempfile.mkdtemp(prefix="sre-salt-"))

    # configuration

    def root(self, base: Path) -> Path:
        """The daemon's root_dir: ``master`` or ``minion`` under the short directory."""
        return self.sock_base / base.name

    def _common(self, base: Path, log_file: Path) -> dict[str, Any]:
        return {
            "root_dir": str(self.root(base)),
            "pki_dir": str(self.root(base) / "pki"),
            "cachedir": str(self.root(base) / "cache"),
            "sock_dir": str(self.root(base) / "sock"),
            "pidfile": str(self.root(base) / "salt.pid"),
            "log_file": str(log_file),
            "log_level_logfile": "info",
            "user": getpass.getuser(),
        }

    def write_configs(self) -> None:
        pillar = self.master_dir / "pillar"
        pillar.mkdir(parents=True, exist_ok=True)
        (pillar / "top.sls").write_text("base: {}\n", encoding="utf-8")
        _write_yaml(
            self.master_conf / "master",
            {
                **self._common(self.master_dir, self.master_log),
                "interface": LOOPBACK,
                "publish_port": self.publish_port,
                "ret_port": self.ret_port,
                "open_mode": False,
                "auto_accept": False,
                "worker_threads": 2,
                "file_roots": {"base": [str(self.file_root)]},
                "pillar_roots": {"base": [str(pillar)]},
                "job_cache": False,
                "keep_jobs_seconds": 300,
                **self.master_extra,
            },
        )
        _write_yaml(
            self.minion_conf / "minion",
            {
                **self._common(self.minion_dir, self.minion_log),
                "id": self.minion_id,
                "master": LOOPBACK,
                "master_port": self.ret_port,
                "publish_port": self.publish_port,
                "acceptance_wait_time": 1,
                "random_reauth_delay": 0,
                "auth_safemode": False,
                "loop_interval": 1,
                "startup_states": "",
                "beacons": self.beacons,
                **self.minion_extra,
            },
        )

    def seed_key(self) -> None:
        """Generate the minion's key pair and accept its public key on the master: the only one."""
        minion_pki = self.root(self.minion_dir) / "pki"
        minion_pki.mkdir(parents=True, exist_ok=True)
        self._run(
            [
                salt_bin("salt-key"),
                "-c",
                str(self.master_conf),
                "--gen-keys=minion",
                f"--gen-keys-dir={minion_pki}",
            ],
        )
        accepted = self.root(self.master_dir) / "pki" / "minions"
        accepted.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(minion_pki / "minion.pub", accepted / self.minion_id)

    # processes

    def _run(self, argv: list[str], timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise SaltError(
                f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc.stdout

    def _spawn(self, name: str, argv: list[str]) -> None:
        out = (self.workdir / f"{name}.out").open("wb")
        self.procs[name] = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        out.close()

    def _alive(self, name: str) -> None:
        proc = self.procs[name]
        if proc.poll() is not None:
            raise SaltError(f"salt-{name} exited {proc.returncode}:\n{self.logs()}")

    def start_master(self) -> None:
        self._spawn("master", [salt_bin("salt-master"), "-c", str(self.master_conf), "-l", "error"])
        ipc = self.root(self.master_dir) / "sock" / "master_event_pub.ipc"
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            self._alive("master")
            if ipc.exists() and port_open(self.ret_port) and port_open(self.publish_port):
                return
            time.sleep(0.2)
        raise SaltError(f"salt-master not ready within {START_TIMEOUT_SECONDS:g}s:\n{self.logs()}")

    def start_minion(self, bus: Any = None) -> None:
        """Start the minion; ready once it answers ``test.ping``. With the master's event
        ``bus`` (:meth:`master_events`), wait for its start event first: each ping sent too early
        costs a whole ``salt -t`` timeout."""
        self._spawn("minion", [salt_bin("salt-minion"), "-c", str(self.minion_conf), "-l", "error"])
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        if bus is not None:
            self.wait_event(bus, f"salt/minion/{self.minion_id}/start", START_TIMEOUT_SECONDS)
        while time.monotonic() < deadline:
            self._alive("minion")
            with contextlib.suppress(SaltError, subprocess.TimeoutExpired):
                if self.salt("test.ping", timeout=5) is True:
                    return
            time.sleep(0.5)
        raise SaltError(
            f"salt-minion did not answer test.ping within {START_TIMEOUT_SECONDS:g}s:\n"
            f"{self.logs()}"
        )

    def start_synced(self) -> None:
        """Start the master, then the minion, then sync the custom code to the minion
        (``saltutil.sync_all``); a :class:`SaltError` carries the logs' tail."""
        try:
            self.start_master()
            self.start_minion()
            self.salt("saltutil.sync_all", timeout=60)
        except SaltError as exc:
            raise SaltError(f"{exc}\n{self.logs()[-4000:]}") from None

    def salt(self, fun: str, *args: str, timeout: float = 30) -> Any:
        """``salt <minion id> FUN ARGS`` through the master; the minion's return, parsed."""
        argv = [
            salt_bin("salt"),
            "-c",
            str(self.master_conf),
            "--out",
            "json",
            "--static",
            "-t",
            str(int(timeout)),
            self.minion_id,
            fun,
            *args,
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 15)
        try:
            data = json.loads(proc.stdout)
        except ValueError:
            raise SaltError(
                f"{' '.join(argv)} exited {proc.returncode}: unparsable output:\n"
                f"{proc.stdout}\n{proc.stderr}"
            ) from None
        if not isinstance(data, dict) or self.minion_id not in data:
            raise SaltError(
                f"{' '.join(argv)}: no return from {self.minion_id}: {data!r}\n{proc.stderr}"
            )
        return data[self.minion_id]

    def salt_run(self, fun: str, *args: str, timeout: float = 120) -> tuple[int, Any]:
        """``salt-run FUN ARGS`` on the master: (exit status, the parsed JSON output)."""
        argv = [salt_bin("salt-run"), "-c", str(self.master_conf), "--out", "json", fun, *args]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        # Salt's LocalClient prints "No minions matched the target. ..." on stdout before the
        # JSON when a runner asks a minion that is not there: the JSON starts at a line's "{".
        text = proc.stdout
        start = 0 if text.startswith("{") else text.find("\n{") + 1
        try:
            return proc.returncode, json.loads(text[start:])
        except ValueError:
            raise SaltError(
                f"{' '.join(argv)} exited {proc.returncode}: unparsable output:\n"
                f"{proc.stdout}\n{proc.stderr}\n{self.logs()}"
            ) from None

    def orchestrate(
        self, sls: str, pillar: Mapping[str, Any], *, timeout: float = 300
    ) -> tuple[int, dict[str, Any]]:
        """``salt-run state.orchestrate SLS pillar=...``: (exit status, states by ``__id__``)."""
        code, out = self.salt_run(
            "state.orchestrate", sls, f"pillar={json.dumps(pillar)}", timeout=timeout
        )
        [states] = out["data"].values()
        assert isinstance(states, dict), out
        return code, {value["__id__"]: value for value in states.values()}

    def accepted_keys(self) -> list[str]:
        out = self._run([salt_bin("salt-key"), "-c", str(self.master_conf), "-L", "--out", "json"])
        return list(json.loads(out).get("minions", []))

    @contextlib.contextmanager
    def master_events(self) -> Iterator[Any]:
        """The master's event bus, listening (``salt.utils.event.get_master_event``)."""
        import salt.config
        import salt.utils.event

        opts = salt.config.master_config(str(self.master_conf / "master"))
        bus = salt.utils.event.get_master_event(opts, opts["sock_dir"], listen=True)
        try:
            bus.subscribe("")  # everything; get_event filters by tag
            yield bus
        finally:
            bus.destroy()

    def master_opts(self) -> dict[str, Any]:
        """The master's configuration as Salt reads it (defaults filled in)."""
        import salt.config

        return dict(salt.config.master_config(str(self.master_conf / "master")))

    def wait_reactor(self, bus: Any, timeout: float = START_TIMEOUT_SECONDS) -> list[Any]:
        """Wait until the master's reactor listens; returns its reactor list.

        :meth:`start_master` returns once the ports listen, which can be before the reactor
        process subscribed to the bus, and an event fired then never reaches it. The reactor
        answers ``salt/reactors/manage/list`` signed with the master's key (what
        ``salt-run reactor.list`` sends), so a reply proves it is reading the bus.
        """
        import salt.utils.master

        key = salt.utils.master.get_master_key("root", self.master_opts())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in self.procs:
                self._alive(name)
            bus.fire_event({"key": key}, "salt/reactors/manage/list")
            reply = bus.get_event(
                wait=1, tag="salt/reactors/manage/list-results", full=True, match_type="startswith"
            )
            if reply:
                return list(reply["data"].get("reactors") or [])
        raise SaltError(f"the master's reactor did not answer within {timeout:g}s:\n{self.logs()}")

    def wait_event(self, bus: Any, prefix: str, timeout: float) -> dict[str, Any]:
        """The first event whose tag starts with ``prefix``: ``{"tag", "data"}``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in self.procs:
                self._alive(name)
            event = bus.get_event(wait=1, tag=prefix, full=True, match_type="startswith")
            if event:
                return dict(event)
        raise SaltError(f"no event {prefix}* within {timeout:g}s:\n{self.logs()}")

    def stop(self) -> None:
        """SIGTERM both daemons' process groups, wait, then SIGKILL whatever is left of them."""
        procs = [p for name in ("minion", "master") if (p := self.procs.get(name)) is not None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        for proc in procs:
            # Salt's workers are in the same group: kill whatever is left of it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while any(group_members(p.pid) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.sock_base, ignore_errors=True)

    def leftovers(self) -> dict[str, list[int]]:
        """Live (non-zombie) processes left in each daemon's process group: none after stop()."""
        found = {name: group_members(proc.pid) for name, proc in self.procs.items()}
        return {name: pids for name, pids in found.items() if pids}

    def logs(self) -> str:
        parts = []
        for label, path in (
            ("master log", self.master_log),
            ("master output", self.workdir / "master.out"),
            ("minion log", self.minion_log),
            ("minion output", self.workdir / "minion.out"),
        ):
            parts.append(f"--- {label} ({path}) ---\n{_tail(path)}")
        return "\n".join(parts)

    def __enter__(self) -> SaltPair:
        self.write_configs()
        self.seed_key()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def group_members(pgid: int) -> list[int]:
    """Live processes (zombies excluded) whose process group is ``pgid``, from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) >= 3 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members
