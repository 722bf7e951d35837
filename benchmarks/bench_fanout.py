"""Fan-out: ``salt '*' gpu.health`` against Ansible's ``gpu_health`` module, same nodes, a ratio.

N Debian 12 systemd containers (tests/helpers/podman_nodes.py, default 8), each with its own
sshd on a loopback port (host keys generated here and verified) and a salt-minion, and one
recorded NVML session (tests/fixtures/gpu/h100-capture.json) copied to every node; both front
ends play that recording, so each node runs the same health checks for both:

- Salt: a salt-master on the host (127.0.0.1, free ports, temporary directories, ``open_mode``
  and ``auto_accept`` off, one key per minion generated with ``salt-key --gen-keys`` and
  accepted before any daemon starts); ``saltutil.sync_modules`` delivers salt/_modules/gpu.py;
  timed: ``salt '*' gpu.health replay=PATH`` as a whole process, until every minion returned.
  The minions run the checks in-process (sre-tools is installed into Salt's Python).
- Ansible: ``ansible gpu_nodes -m gpu_health -a replay=PATH`` (playbooks/library) over SSH with
  the shipped ansible.cfg (forks 20, pipelining, ControlPersist) with the plain linear strategy
  (as validate.yml), as a whole process; the module
  starts the node's ``sre health --json``. Two rows: *warm* (one SSH control directory kept
  from an untimed first run, as an operator's second command within ControlPersist's 300 s) and
  *cold* (a fresh control directory every round: TCP + SSH handshakes included).

References, timed in the same rounds (``--no-reference`` skips them): ``salt '*' test.ping``
and ``ansible -m ping`` (warm SSH), the cost of one command through each front end without the
health checks.

Each round runs Salt, Ansible warm, Ansible cold (then the references), in that order, so a
change in the machine's load hits all of them. Every node must return a report with the status
the recording gives on the host (``sre health --replay``) and as many findings, in every round
and in the untimed warm-up; otherwise the node is listed and the exit status is 1. p95 is the
nearest-rank 95th percentile.

    .venv/bin/python benchmarks/bench_fanout.py                   # 8 nodes, 5 rounds
    .venv/bin/python benchmarks/bench_fanout.py --nodes 2 --rounds 1 --json out.json

Exit status: 0 every node reported in every round; 1 a node failed to report (listed);
2 the set-up failed (image, containers, daemons). Needs root, podman + runc, the image from
scripts/podman-image.sh (built when missing) and Salt in this virtualenv (``.[salt]``).
Containers are named ``sre-bf-*`` and removed, and the master stopped, however the run ends.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.podman import PODMAN  # noqa: E402
from tests.helpers.podman_nodes import Node, PodmanNodes, sre_salt_node_image  # noqa: E402
from tests.helpers.salt import SaltPair, salt_bin  # noqa: E402
from tests.helpers.salt_containers import SALT_VENV  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "gpu" / "h100-capture.json"
REPLAY = "/srv/recordings/gpu.json"  # on every node, for both front ends
PREFIX = os.environ.get("SRE_BENCH_FANOUT_PREFIX", "sre-bf-")
MINION_UNIT = "sre-bf-salt-minion"
START_TIMEOUT_SECONDS = 300.0
ONELINE = re.compile(r"^(\S+) \| (SUCCESS|CHANGED|FAILED!|UNREACHABLE!)(?: \| rc=-?\d+)? => (.*)$")
SALT = "salt '*' gpu.health"
WARM = "ansible -m gpu_health, warm SSH"
COLD = "ansible -m gpu_health, cold SSH"
SALT_PING = "ref: salt '*' test.ping"
ANSIBLE_PING = "ref: ansible -m ping, warm SSH"


class SetupError(RuntimeError):
    """The nodes or the daemons did not come up; exit status 2."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Expected:
    """What the recording gives on the host: every node must report the same."""

    status: str
    findings: int

    def problem(self, report: Any) -> str:
        """Why ``report`` is not the expected one; empty when it is."""
        if not isinstance(report, dict):
            return f"no report: {str(report)[:200]}"
        if report.get("status") != self.status:
            return f"status {report.get('status')!r}, expected {self.status!r}"
        findings = report.get("findings")
        if not isinstance(findings, list) or len(findings) != self.findings:
            count = len(findings) if isinstance(findings, list) else findings
            return f"{count} findings, expected {self.findings}"
        if not str(report.get("source", "")).endswith(REPLAY):
            return f"source {report.get('source')!r} is not the recording {REPLAY}"
        return ""


def expected_report() -> Expected:
    sre = Path(sys.executable).parent / "sre"
    proc = subprocess.run(
        [str(sre), "health", "--replay", str(FIXTURE), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise SetupError(f"sre health --replay {FIXTURE}: {proc.stderr[-2000:]}") from None
    return Expected(str(report["status"]), len(report["findings"]))


@dataclass
class Row:
    label: str
    reference: bool = False  # a floor (ping), not part of the ratio
    seconds: list[float] = field(default_factory=list)
    # Round ("warm-up" or 1..n) -> node -> "" (reported as expected) or what went wrong.
    reports: dict[str, dict[str, str]] = field(default_factory=dict)

    def failures(self) -> list[str]:
        return [
            f"{self.label}, round {rnd}: {node}: {why}"
            for rnd, nodes in self.reports.items()
            for node, why in nodes.items()
            if why
        ]


# --- Salt ----------------------------------------------------------------------------------------


class SaltFleet:
    """A salt-master on the host (:class:`SaltPair`'s, without its minion) and one salt-minion
    per container, keys pre-seeded, ``gpu`` synced."""

    def __init__(self, work: Path, ids: list[str], timeout: float):
        self.ids = ids
        self.timeout = timeout
        self.keys = work / "keys"
        # SaltPair writes the master's configuration and seeds the key of its own minion id;
        # that minion never starts here: its key becomes the first node's.
        self.pair = SaltPair(work / "salt", minion_id=ids[0], stop_timeout=5)

    def seed_keys(self) -> dict[str, Path]:
        """A key pair per minion id, the public half accepted on the master: only these."""
        self.pair.write_configs()
        self.pair.seed_key()
        dirs = {self.ids[0]: self.pair.root(self.pair.minion_dir) / "pki"}
        accepted = self.pair.root(self.pair.master_dir) / "pki" / "minions"
        for minion_id in self.ids[1:]:
            keydir = self.keys / minion_id
            keydir.mkdir(parents=True)
            subprocess.run(
                [
                    salt_bin("salt-key"),
                    "-c",
                    str(self.pair.master_conf),
                    "--gen-keys=minion",
                    f"--gen-keys-dir={keydir}",
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
            (accepted / minion_id).write_bytes((keydir / "minion.pub").read_bytes())
            dirs[minion_id] = keydir
        return dirs

    def minion_config(self, minion_id: str) -> str:
        conf = {
            "id": minion_id,
            "master": "127.0.0.1",  # --network host: the host's loopback
            "master_port": self.pair.ret_port,
            "publish_port": self.pair.publish_port,
            "pki_dir": "/etc/salt/pki/minion",
            "acceptance_wait_time": 1,
            "random_reauth_delay": 0,
            "log_level_logfile": "info",
        }
        return "---\n" + yaml.safe_dump(conf, sort_keys=False)

    def salt(self, target: str, *args: str, timeout: float | None = None) -> tuple[float, Any, str]:
        """``salt TARGET ARGS`` through the master as a whole process: (seconds, JSON, stderr)."""
        wait = int(timeout or self.timeout)
        argv = [
            salt_bin("salt"),
            "-c",
            str(self.pair.master_conf),
            "--out",
            "json",
            "--static",
            "-t",
            str(wait),
            target,
            *args,
        ]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                argv, capture_output=True, text=True, timeout=wait + 60, check=False
            )
        except subprocess.TimeoutExpired:
            return time.perf_counter() - start, {}, f"salt did not exit within {wait + 60} s"
        seconds = time.perf_counter() - start
        try:
            data = json.loads(proc.stdout) if proc.stdout.strip() else {}
        except ValueError:
            data = {"(salt)": f"unparsable output, exit {proc.returncode}: {proc.stdout[-500:]}"}
        return seconds, data, proc.stderr[-2000:]

    def wait_minions(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        missing = list(self.ids)
        while time.monotonic() < deadline:
            _, data, _ = self.salt("*", "test.ping", timeout=10)
            missing = [m for m in self.ids if data.get(m) is not True]
            if not missing:
                return
            time.sleep(1)
        raise SetupError(f"minions did not answer test.ping: {', '.join(missing)}")

    def sync(self) -> None:
        _, data, err = self.salt("*", "saltutil.sync_modules", timeout=180)
        bad = {m: data.get(m) for m in self.ids if "modules.gpu" not in (data.get(m) or [])}
        # A minion that synced before (a retried start) returns []: ask it what it has.
        if bad:
            _, have, _ = self.salt("*", "sys.list_functions", "gpu", timeout=60)
            bad = {m: v for m, v in bad.items() if "gpu.health" not in (have.get(m) or [])}
        if bad:
            raise SetupError(f"saltutil.sync_modules did not deliver gpu: {bad}\n{err}")

    def health(self, expected: Expected) -> tuple[float, dict[str, str]]:
        seconds, data, err = self.salt("*", "gpu.health", f"replay={REPLAY}")
        reports = {
            m: expected.problem(data.get(m, f"no return ({err.strip()[-300:]})")) for m in self.ids
        }
        return seconds, reports

    def ping(self) -> tuple[float, dict[str, str]]:
        seconds, data, _ = self.salt("*", "test.ping")
        return seconds, {m: "" if data.get(m) is True else f"{data.get(m)!r}" for m in self.ids}


def start_minion(fleet: PodmanNodes, node: Node, salt: SaltFleet, keydir: Path) -> None:
    files = fleet.workdir / f"salt_{node.host}"
    files.mkdir(exist_ok=True)
    (files / "minion").write_text(salt.minion_config(node.host), encoding="utf-8")
    fleet.exec(node, "mkdir", "-p", "/etc/salt/pki/minion", "/srv/recordings")
    copies = {
        files / "minion": "/etc/salt/minion",
        keydir / "minion.pem": "/etc/salt/pki/minion/minion.pem",
        keydir / "minion.pub": "/etc/salt/pki/minion/minion.pub",
        FIXTURE: REPLAY,
    }
    for src, dst in copies.items():
        subprocess.run(
            [*PODMAN, "cp", str(src), f"{node.name}:{dst}"],
            check=True,
            capture_output=True,
            timeout=120,
        )
    fleet.exec(node, "chmod", "0400", "/etc/salt/pki/minion/minion.pem")
    fleet.exec(
        node,
        "systemd-run",
        f"--unit={MINION_UNIT}",
        f"{SALT_VENV}/bin/salt-minion",
        "-c",
        "/etc/salt",
        "-l",
        "error",
    )


def minion_logs(fleet: PodmanNodes) -> str:
    parts = []
    for node in fleet.nodes:
        proc = subprocess.run(
            [*PODMAN, "exec", node.name, "sh", "-c",
             f"journalctl --no-pager -n 20 -u {MINION_UNIT}; tail -n 20 /var/log/salt/minion"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        parts.append(f"--- {node.host} ---\n{proc.stdout}{proc.stderr}")
    return "\n".join(parts)


# --- Ansible -------------------------------------------------------------------------------------


class AnsibleFleet:
    def __init__(self, work: Path, inventory: Path, ids: list[str], timeout: float):
        self.work = work
        self.inventory = inventory
        self.ids = ids
        self.timeout = timeout
        self.warm = work / "cp-warm"
        self.warm.mkdir()
        self.cold_dirs = 0

    def run(
        self, control: Path, check: Callable[[dict[str, Any]], str], module: str = "gpu_health"
    ) -> tuple[float, dict[str, str]]:
        """``ansible gpu_nodes -m MODULE`` with the shipped ansible.cfg and the plain linear
        strategy (what validate.yml runs: for one task per node, mitogen's start-up per node
        costs more than it saves): (seconds, reports); ``check`` says what is wrong with a
        node's result (empty: nothing)."""
        env = {
            **os.environ,
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_STRATEGY": "linear",
            "ANSIBLE_LIBRARY": str(ROOT / "playbooks" / "library"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
            "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(self.work / "facts"),
            "ANSIBLE_NOCOLOR": "1",
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        }
        env.pop("ANSIBLE_HOST_KEY_CHECKING", None)  # verified keys, whatever the caller set
        argv = [
            str(Path(sys.executable).parent / "ansible"),
            "-i",
            str(self.inventory),
            "gpu_nodes",
            "-m",
            module,
            *(["-a", f"replay={REPLAY}"] if module == "gpu_health" else []),
            "--one-line",
        ]
        start = time.perf_counter()
        try:
            proc = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                env=env,
                cwd=self.work,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            why = f"ansible did not exit within {self.timeout:g} s"
            return time.perf_counter() - start, dict.fromkeys(self.ids, why)
        seconds = time.perf_counter() - start
        results: dict[str, str] = {}
        for line in proc.stdout.splitlines():
            m = ONELINE.match(line)
            if not m:
                continue
            host, state, payload = m.groups()
            try:
                result = json.loads(payload)
            except ValueError:
                result = {"msg": payload}
            if state in ("SUCCESS", "CHANGED"):
                results[host] = check(result)
            else:
                results[host] = f"{state} {str(result.get('msg', ''))[:300]}"
        tail = (proc.stderr.strip() or proc.stdout.strip())[-300:]
        reports = {
            h: results.get(h, f"no result (exit {proc.returncode}: {tail})") for h in self.ids
        }
        return seconds, reports

    def health(self, expected: Expected, *, cold: bool) -> tuple[float, dict[str, str]]:
        """gpu_health on every node, over the warm control directory or a fresh one."""

        def check(result: dict[str, Any]) -> str:
            return expected.problem(result.get("report"))

        if not cold:
            return self.run(self.warm, check)
        self.cold_dirs += 1
        control = self.work / f"cp-cold-{self.cold_dirs}"
        control.mkdir()
        try:
            return self.run(control, check)
        finally:
            close_masters(control)

    def ping(self) -> tuple[float, dict[str, str]]:
        return self.run(
            self.warm, lambda r: "" if r.get("ping") == "pong" else f"{r!r:.300}", "ping"
        )

    def close(self) -> None:
        close_masters(self.warm)


def close_masters(control: Path) -> None:
    """Stop the SSH ControlPersist masters whose sockets are in ``control``."""
    for sock in control.iterdir() if control.exists() else []:
        subprocess.run(
            ["ssh", "-S", str(sock), "-O", "exit", "placeholder"],
            capture_output=True,
            timeout=15,
            check=False,
        )


# --- the run -------------------------------------------------------------------------------------


def timed(row: Row, label: str, measure: Callable[[], tuple[float, dict[str, str]]]) -> None:
    seconds, reports = measure()
    row.reports[label] = reports
    if label != "warm-up":
        row.seconds.append(seconds)


def bench(nodes: int, rounds: int, timeout: float, work: Path, reference: bool) -> list[Row]:
    expected = expected_report()
    image = sre_salt_node_image(work)
    salt_row, warm, cold = Row(SALT), Row(WARM), Row(COLD)
    salt_ping, ansible_ping = Row(SALT_PING, reference=True), Row(ANSIBLE_PING, reference=True)
    with PodmanNodes(nodes, work / "nodes", prefix=PREFIX, image=image) as fleet:
        ids = [node.host for node in fleet.nodes]
        salt = SaltFleet(work, ids, timeout)
        try:
            keys = salt.seed_keys()
            salt.pair.start_master()
            for node in fleet.nodes:
                start_minion(fleet, node, salt, keys[node.host])
            try:
                salt.wait_minions()
                salt.sync()
            except SetupError as exc:
                raise SetupError(f"{exc}\n{salt.pair.logs()}\n{minion_logs(fleet)}") from None
            ansible = AnsibleFleet(work, fleet.inventory(work / "inventory.yml"), ids, timeout)
            try:
                # Untimed, checked: loads gpu on the minions, opens the warm SSH masters.
                timed(salt_row, "warm-up", lambda: salt.health(expected))
                timed(warm, "warm-up", lambda: ansible.health(expected, cold=False))
                for i in range(1, rounds + 1):
                    timed(salt_row, str(i), lambda: salt.health(expected))
                    timed(warm, str(i), lambda: ansible.health(expected, cold=False))
                    timed(cold, str(i), lambda: ansible.health(expected, cold=True))
                    if reference:
                        timed(salt_ping, str(i), salt.ping)
                        timed(ansible_ping, str(i), ansible.ping)
            finally:
                ansible.close()
        finally:
            salt.pair.stop()
    return [salt_row, warm, cold, *([salt_ping, ansible_ping] if reference else [])]


def summary(
    rows: list[Row], nodes: int, rounds: int, took: float, load_start: float
) -> dict[str, Any]:
    base = statistics.median(rows[0].seconds)
    out: dict[str, Any] = {
        "nodes": nodes,
        "rounds": rounds,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": round(load_start, 2),
        "load_average_end": round(os.getloadavg()[0], 2),
        "seconds_in_all": round(took, 1),
        "rows": [],
        "ratio_ansible_over_salt": {},
        "failures": [f for row in rows for f in row.failures()],
    }
    for row in rows:
        median = statistics.median(row.seconds)
        out["rows"].append(
            {
                "label": row.label,
                "seconds": [round(s, 3) for s in row.seconds],
                "median_seconds": round(median, 3),
                "p95_seconds": round(percentile(row.seconds, 95), 3),
                "reference": row.reference,
                "x_salt": None if row.reference else round(median / base, 2),
                "reports": row.reports,
            }
        )
    by_label = {row["label"]: row for row in out["rows"]}
    out["ratio_ansible_over_salt"] = {
        "warm": by_label[WARM]["x_salt"],
        "cold": by_label[COLD]["x_salt"],
    }
    return out


def print_table(result: dict[str, Any]) -> None:
    print(
        f"bench_fanout: {result['nodes']} nodes, {result['rounds']} rounds, Python "
        f"{result['python']}, {result['cpus']} CPUs, load average "
        f"{result['load_average_start']:.1f} at the start, {result['load_average_end']:.1f}"
        f" at the end, {result['seconds_in_all']:.0f} s in all (set-up included)"
    )
    header = ("measurement", "nodes", "rounds", "median", "p95", "min-max", "x salt", "reported")
    table = [header]
    for row in result["rows"]:
        secs = row["seconds"]
        timed_rounds = {k: v for k, v in row["reports"].items() if k != "warm-up"}
        good = sum(1 for nodes in timed_rounds.values() for why in nodes.values() if not why)
        total = sum(len(nodes) for nodes in timed_rounds.values())
        table.append(
            (
                row["label"],
                str(result["nodes"]),
                str(len(secs)),
                f"{row['median_seconds']:.2f} s",
                f"{row['p95_seconds']:.2f} s",
                f"{min(secs):.2f}-{max(secs):.2f} s",
                "-" if row["x_salt"] is None else f"{row['x_salt']:.2f}x",
                f"{good}/{total}",
            )
        )
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for i, r in enumerate(table):
        print("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(r)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    ratio = result["ratio_ansible_over_salt"]
    print(
        f"ratio ansible/salt (medians): warm SSH {ratio['warm']:.2f}x, "
        f"cold SSH {ratio['cold']:.2f}x"
    )
    for failure in result["failures"]:
        print(f"FAILED: {failure}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nodes", type=int, default=8, help="containers (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (default 5)")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds per salt/ansible command (300)"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the result as JSON")
    parser.add_argument(
        "--no-reference", action="store_true", help="skip the test.ping / ping reference rows"
    )
    args = parser.parse_args()
    if args.nodes < 1 or args.rounds < 1:
        parser.error("--nodes and --rounds must be at least 1")
    # SIGTERM/SIGHUP unwind like Ctrl-C: the containers are removed and the master stopped.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, _frame: sys.exit(128 + signum))
    started, load_start = time.monotonic(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sre-bench-fanout-") as tmp:
        try:
            rows = bench(args.nodes, args.rounds, args.timeout, Path(tmp), not args.no_reference)
        except (RuntimeError, subprocess.SubprocessError) as exc:  # SetupError, NodeError, ...
            print(f"bench_fanout: set-up failed: {exc}", file=sys.stderr)
            return 2
    took = time.monotonic() - started
    result = summary(rows, args.nodes, args.rounds, took, load_start)
    print_table(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    return 1 if result["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
