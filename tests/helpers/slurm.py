"""A real Slurm cluster on loopback for integration tests: munged, slurmctld and one slurmd per
simulated node, all on one host.

Typical use::

    with SlurmCluster(nodes=[f"gpu{i:02d}" for i in range(1, 17)]) as cluster:
        cluster.scontrol("update", "nodename=gpu01", "state=drain", "reason=test")
        ...  # cluster.env == {"SLURM_CONF": ...} for any scontrol/sinfo the code under test runs

What works on Debian 12's Slurm 22.05 (``slurm-wlm``) and MUNGE 0.5 (``munge``), tried:

- **Several slurmd on one host work** with Debian's build: every node gets its own ``NodeName``
  line with ``NodeHostname=localhost NodeAddr=127.0.0.1 Port=<own port>``, and each daemon is
  started as ``slurmd -D -N <node>``. Sixteen of them register and go ``idle`` in about a second
  and take ~6 MB of memory each. So every simulated node is a real, registered node: drain,
  resume, ``sinfo -R`` and ``scontrol show node`` behave as on a cluster.
- A node defined in slurm.conf whose slurmd never starts stays ``UNKNOWN``: ``scontrol update
  state=drain`` works on it, but ``state=resume`` is refused ("Invalid node state specified").
  Hence one slurmd per node rather than placeholder nodes, except where a test needs many
  nodes that are only ever drained (a storm of events over a hundred nodes): ``unserved=`` names
  such nodes, defined in slurm.conf without a slurmd. With any of them, ``SlurmdTimeout=0`` keeps
  slurmctld from marking them ``DOWN`` ("Not responding", someone else's reason to the
  remediation engine); they show as ``unknown`` (``UNKNOWN+DRAIN`` once drained), and
  :meth:`SlurmCluster.reset` clears their drain (the resume answers an error, the drain goes).
- munged refuses a socket directory that is not world-executable, and runs as user ``munge``
  (when we are root) so its key directory must be reachable by that user: pytest's ``tmp_path``
  (under a 0700 directory) is not. The cluster therefore lives in its own 0755 directory from
  :func:`tempfile.mkdtemp`, removed on :meth:`SlurmCluster.stop`.
- ``AuthInfo=socket=...`` points slurmctld, slurmd and the client commands at that munged; the
  client commands find the cluster through ``SLURM_CONF`` (see :attr:`SlurmCluster.env`).
- Missing binaries are an error (:class:`MissingSlurmError`), never a skip: the CI installs
  ``slurm-wlm`` and ``munge`` (``apt-get install -y --no-install-recommends slurm-wlm munge``).

Every daemon runs in the foreground in its own session; :meth:`SlurmCluster.stop` terminates
them (then kills them), so nothing outlives the test session.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

from tests.helpers.procs import LOOPBACK, free_ports

START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 10.0
COMMAND_TIMEOUT_SECONDS = 20.0
BINARIES = ("munged", "slurmctld", "slurmd", "scontrol", "sinfo")
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")
INSTALL_HINT = (
    "the Slurm integration tests need MUNGE and Slurm "
    "(Debian/Ubuntu: apt-get install -y --no-install-recommends slurm-wlm munge)"
)


class MissingSlurmError(RuntimeError):
    """slurmctld, slurmd, scontrol, sinfo or munged is not installed."""


class SlurmClusterError(RuntimeError):
    """A daemon failed to start or a command failed; the message carries the logs."""


def find_binary(name: str) -> str:
    """Absolute path of ``name``: PATH first, then the sbin directories (not on a user's PATH)."""
    override = os.environ.get(f"{name.upper()}_BIN")
    path = override or shutil.which(name)
    if not path:
        for d in SBIN_DIRS:
            candidate = os.path.join(d, name)
            if os.access(candidate, os.X_OK):
                path = candidate
                break
    if not path or not os.access(path, os.X_OK):
        raise MissingSlurmError(f"{name} not found: {INSTALL_HINT}")
    return path


def find_binaries() -> dict[str, str]:
    return {name: find_binary(name) for name in BINARIES}


def default_nodes(count: int = 16, prefix: str = "gpu") -> list[str]:
    return [f"{prefix}{i:02d}" for i in range(1, count + 1)]


# The layout of the suite's one cluster (the ``slurm_cluster`` fixture in tests/conftest.py):
# 16 served nodes in partition ``gpu``, the first four also in ``debug`` (a small partition for
# the per-partition budget), and 96 nodes without a slurmd in ``sim`` for event storms.
SERVED_NODES = default_nodes(16)
SIMULATED_NODES = [f"sim{i:03d}" for i in range(1, 97)]
PARTITIONS = {"gpu": SERVED_NODES, "debug": SERVED_NODES[:4], "sim": SIMULATED_NODES}


def suite_cluster() -> SlurmCluster:
    """The suite's cluster (not started): :data:`SERVED_NODES`, :data:`SIMULATED_NODES`,
    :data:`PARTITIONS`. Ports are free ones and the directory is private, so every pytest
    worker can run its own."""
    return SlurmCluster(SERVED_NODES, unserved=SIMULATED_NODES, partitions=PARTITIONS)


class SlurmCluster:
    """munged + slurmctld + one slurmd per node, on loopback, in a private directory."""

    def __init__(
        self,
        nodes: Sequence[str] | None = None,
        *,
        partitions: Mapping[str, Sequence[str]] | None = None,
        start_timeout: float = START_TIMEOUT_SECONDS,
        cluster_name: str = "sretest",
        unserved: Sequence[str] = (),
        external: Sequence[str] = (),
        slurmd_timeout: int | None = None,
        extra_conf: Sequence[str] = (),
    ):
        self.nodes = list(default_nodes() if nodes is None else nodes)
        # Defined in slurm.conf, no slurmd: only ever drained (see the module notes).
        self.unserved = list(unserved)
        # Defined in slurm.conf with their own port, served by a slurmd this class does not
        # start (one in a container that bind-mounts :attr:`workdir`: tests/helpers/drill_nodes.py).
        self.external = list(external)
        self.slurmd_timeout = slurmd_timeout
        # More slurm.conf lines (Prolog=, Epilog=, PrologFlags=, ...), written before the nodes.
        self.extra_conf = list(extra_conf)
        self.partitions = dict(partitions or {"gpu": self.nodes + self.external + self.unserved})
        self.ports: dict[str, int] = {}
        self.start_timeout = start_timeout
        self.cluster_name = cluster_name
        self.bin = find_binaries()
        self.workdir: Path | None = None
        self._procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    # --- paths -----------------------------------------------------------------------------

    def _dir(self) -> Path:
        if self.workdir is None:
            raise SlurmClusterError("the cluster is not started")
        return self.workdir

    @property
    def conf(self) -> Path:
        return self._dir() / "slurm.conf"

    @property
    def env(self) -> dict[str, str]:
        """Environment for client commands: ``SLURM_CONF`` pointing at this cluster."""
        return {"SLURM_CONF": str(self.conf)}

    @property
    def munge_socket(self) -> Path:
        return self._dir() / "munge-run" / "munge.socket"

    def log(self, tail: int = 6000) -> str:
        if self.workdir is None:
            return "<not started>"
        parts = []
        for path in sorted((self.workdir / "log").glob("*.log")):
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            parts.append(f"--- {path.name} ---\n{text[-tail:]}")
        return "\n".join(parts) or "<no logs>"

    # --- commands --------------------------------------------------------------------------

    def run(
        self, argv: Sequence[str], *, check: bool = True, timeout: float = COMMAND_TIMEOUT_SECONDS
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **self.env},
            stdin=subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise SlurmClusterError(
                f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr.strip()}"
            )
        return proc

    def scontrol(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([self.bin["scontrol"], *args], check=check)

    def sinfo(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run([self.bin["sinfo"], *args], check=check)

    def node_states(self) -> dict[str, str]:
        """Node name to sinfo's long state (``idle``, ``drained``, ``idle*``, ...)."""
        out = self.sinfo("--noheader", "--Node", "--format", "%N|%T").stdout
        states = {}
        for line in out.splitlines():
            if "|" in line:
                name, state = line.split("|", 1)
                states[name.strip()] = state.strip()
        return states

    def settled_states(self, timeout: float = 15.0) -> dict[str, str]:
        """:meth:`node_states` once no served node is flagged not responding (``idle*``).

        Slurm 22.05 pings a node right after ``state=resume`` and shows it ``idle*`` until the
        answer comes (about a second here); a slurmd that is really gone stays ``*`` and the
        states come back with the flag after ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            states = self.node_states()
            flagged = [n for n in self.nodes if states.get(n, "").endswith("*")]
            if not flagged or time.monotonic() > deadline:
                return states
            time.sleep(0.2)

    def drain_reasons(self) -> dict[str, str]:
        """``sinfo -R``: drained/down node to its reason."""
        out = self.sinfo("-R", "--noheader", "--format", "%N|%E").stdout
        reasons = {}
        for line in out.splitlines():
            if "|" in line:
                names, reason = line.split("|", 1)
                hostnames = self.scontrol("show", "hostnames", names.strip()).stdout.split()
                for name in hostnames:
                    reasons[name] = reason.strip()
        return reasons

    def reset(self) -> None:
        """Resume every drained node, so the next test starts from an idle cluster."""
        for name, state in self.node_states().items():
            if "drain" in state or state.startswith("down"):
                self.scontrol("update", f"nodename={name}", "state=resume", check=False)
        self.wait_idle()

    def wait_idle(self, timeout: float | None = None, nodes: Sequence[str] | None = None) -> None:
        """Until ``nodes`` (default: the served ones) are all ``idle``."""
        deadline = time.monotonic() + (timeout or self.start_timeout)
        while True:
            self._check_alive()
            states = self.node_states()
            if all(states.get(name) == "idle" for name in nodes or self.nodes):
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(
                    f"nodes not idle after {timeout or self.start_timeout:g}s: {states}\n"
                    f"{self.log()}"
                )
            time.sleep(0.2)

    # --- life cycle ------------------------------------------------------------------------

    def _spawn(self, name: str, argv: Sequence[str], **kwargs: object) -> None:
        log = open(self._dir() / "log" / f"{name}.out", "ab")  # noqa: SIM115 (closed by stop)
        try:
            proc = subprocess.Popen(  # type: ignore[call-overload]
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, **self.env},
                **kwargs,
            )
        finally:
            log.close()
        self._procs.append((name, proc))

    def _check_alive(self) -> None:
        for name, proc in self._procs:
            code = proc.poll()
            if code is not None:
                out = self._dir() / "log" / f"{name}.out"
                text = out.read_text(errors="replace")[-3000:] if out.exists() else ""
                raise SlurmClusterError(f"{name} exited with code {code}\n{text}\n{self.log()}")

    def _start_munge(self) -> None:
        work = self._dir()
        key_dir = work / "munge-key"
        run_dir = work / "munge-run"
        key_dir.mkdir(mode=0o700)
        run_dir.mkdir(mode=0o755)
        key = key_dir / "munge.key"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, os.urandom(1024))
        finally:
            os.close(fd)
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("munge")
            except KeyError:
                user = None
            if user is not None:
                for path in (key_dir, key, run_dir):
                    os.chown(path, user.pw_uid, user.pw_gid)
                kwargs = {
                    "user": user.pw_uid,
                    "group": user.pw_gid,
                    "extra_groups": [g.gr_gid for g in grp.getgrall() if "munge" in g.gr_mem],
                }
        self._spawn(
            "munged",
            [
                self.bin["munged"],
                "--foreground",
                f"--socket={run_dir / 'munge.socket'}",
                f"--key-file={key}",
                f"--pid-file={run_dir / 'munged.pid'}",
                f"--log-file={work / 'log' / 'munged.log'}",
                f"--seed-file={run_dir / 'munged.seed'}",
                "--num-threads=4",
            ],
            **kwargs,
        )
        deadline = time.monotonic() + self.start_timeout
        while not self.munge_socket.exists():
            self._check_alive()
            if time.monotonic() > deadline:
                raise SlurmClusterError(f"munged did not create its socket\n{self.log()}")
            time.sleep(0.05)

    def _slurmd_timeout(self) -> int:
        if self.slurmd_timeout is not None:
            return self.slurmd_timeout
        return 0 if self.unserved else 300

    def _write_conf(self) -> None:
        work = self._dir()
        served = self.nodes + self.external
        ctld_port, unserved_port, *node_ports = free_ports(2 + len(served))
        self.ports = dict(zip(served, node_ports, strict=True))
        user = pwd.getpwuid(os.geteuid()).pw_name
        lines = [
            f"ClusterName={self.cluster_name}",
            f"SlurmctldHost=localhost({LOOPBACK})",
            f"SlurmctldPort={ctld_port}",
            f"SlurmdPort={node_ports[0]}",
            f"SlurmUser={user}",
            f"SlurmdUser={user}",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={work / 'state'}",
            f"SlurmdSpoolDir={work / 'spool'}/%n",
            f"SlurmctldPidFile={work / 'slurmctld.pid'}",
            f"SlurmdPidFile={work / 'spool'}/slurmd-%n.pid",
            f"SlurmctldLogFile={work / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={work / 'log'}/slurmd-%n.log",
            "MailProg=/bin/true",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "SwitchType=switch/none",
            "MpiDefault=none",
            "SchedulerType=sched/builtin",
            "SelectType=select/linear",
            "ReturnToService=2",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SlurmctldTimeout=30",
            f"SlurmdTimeout={self._slurmd_timeout()}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            *self.extra_conf,
        ]
        for name, port in self.ports.items():
            lines.append(
                f"NodeName={name} NodeHostname=localhost NodeAddr={LOOPBACK} Port={port} "
                "CPUs=1 RealMemory=100 State=UNKNOWN"
            )
        for name in self.unserved:  # nothing listens on their port: no slurmd
            lines.append(
                f"NodeName={name} NodeHostname=localhost NodeAddr={LOOPBACK} "
                f"Port={unserved_port} CPUs=1 RealMemory=100 State=UNKNOWN"
            )
        for i, (part, members) in enumerate(self.partitions.items()):
            default = "YES" if i == 0 else "NO"
            lines.append(
                f"PartitionName={part} Nodes={','.join(members)} Default={default} "
                "MaxTime=INFINITE State=UP"
            )
        self.conf.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def start(self) -> SlurmCluster:
        self.workdir = Path(tempfile.mkdtemp(prefix="sre-slurm-"))
        os.chmod(self.workdir, 0o755)
        try:
            for sub in ("state", "spool", "log"):
                (self.workdir / sub).mkdir()
            for name in self.nodes + self.external:
                (self.workdir / "spool" / name).mkdir()
            self._start_munge()
            self._write_conf()
            self._spawn("slurmctld", [self.bin["slurmctld"], "-D", "-f", str(self.conf)])
            self._wait_controller()
            for name in self.nodes:
                self._spawn(
                    f"slurmd-{name}", [self.bin["slurmd"], "-D", "-f", str(self.conf), "-N", name]
                )
            self.wait_idle()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_controller(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        while True:
            self._check_alive()
            proc = self.scontrol("ping", check=False)
            if "is UP" in proc.stdout:
                return
            if time.monotonic() > deadline:
                raise SlurmClusterError(
                    f"slurmctld not up after {self.start_timeout:g}s: {proc.stdout}\n{self.log()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        procs, self._procs = self._procs, []
        for _name, proc in reversed(procs):  # slurmd first, munged last
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for _name, proc in reversed(procs):
            try:
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> SlurmCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
