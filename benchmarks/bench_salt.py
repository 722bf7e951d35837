"""Salt reactor latency: from an event on the master's bus to the drain visible in Slurm.

Real daemons on loopback, as in tests/salt/test_reactor_scenarios.py: Slurm 22.05 (munged,
slurmctld, one slurmd for ``gpu01`` plus nodes defined without a slurmd), a salt-master routed
as salt/reactor/master.conf.example (remediation with ``execute: true``), a salt-minion with the
``gpu_health`` beacon on a recording that the script swaps.

Rows (one event at a time, each on a node of its own; "visible" = ``scontrol show node`` shows
our ``sre:`` reason, polled every 50 ms):

- reactor, runner route: a beacon-shaped event fired on the master's bus
  (``salt.utils.event.get_master_event().fire_event``) -> salt/reactor/gpu_health_runner.sls ->
  ``sre_remediate.handle`` -> scontrol drain;
- reactor, orchestration route: the same through salt/reactor/gpu_health.sls and
  salt/orch/gpu_remediate.sls (a second master; ``--no-orchestrate`` skips it);
- beacon on a real minion: the recording turns to a lost GPU; timed from the beacon's event on
  the master's bus (its ``_stamp``) to the drain, and from the recovery event to the resume
  (the master asks the minion for a fresh ``gpu.health`` first);
- references, same run: ``sre remediation event --execute`` as a whole process (the same engine
  without Salt), and a bare ``scontrol update state=drain``.

p50 is the median; p95 the nearest-rank 95th percentile. Goal: reactor p50 < 5 s. Exits 1 when
the goal is missed.

    .venv/bin/python benchmarks/bench_salt.py              # about 2-3 minutes on 2 cores
    .venv/bin/python benchmarks/bench_salt.py --events 10 --cycles 5 --no-orchestrate
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.salt import FIXTURES, SALT_DIR, SaltPair  # noqa: E402
from tests.helpers.slurm import SlurmCluster  # noqa: E402

GOAL_P50_SECONDS = 5.0
POLL_SECONDS = 0.05
STEP_TIMEOUT_SECONDS = 60.0
NODE = "gpu01"
LOST = FIXTURES / "faults" / "gpu-lost.json"
HEALTHY = FIXTURES / "h100-capture.json"
# No budget or cooldown in the way: every event here should drain (one node each).
GUARDRAILS = {
    "max_drained_nodes": 1000,
    "max_drained_percent": 100,
    "cooldown_seconds": 0,
    "node_exec": "local",
}
TAG = "salt/beacon/{}/gpu_health/sre/gpu/health/crit"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ratio(value: float, reference: float) -> str:
    share = value / reference
    return f"{share:.2f}x" if share < 1 else f"{share:.1f}x"


def event_data(node: str, event_id: str) -> dict[str, Any]:
    return {
        "minion": node,
        "node": node,
        "severity": "crit",
        "remediation": {
            "node": node,
            "action": "power_cycle",
            "event_id": event_id,
            "source": "salt-beacon",
            "checks": ["gpu.lost"],
            "gpus": [0],
            "reason": "GPU 0 fell off the bus (benchmark)",
        },
    }


def recording(source: Path, host: str) -> str:
    data = json.loads(source.read_text(encoding="utf-8"))
    data["host"] = host
    return json.dumps(data)


class Bench:
    def __init__(self, work: Path, cluster: SlurmCluster):
        self.work = work
        self.cluster = cluster
        self.guardrails = work / "remediation.yaml"
        self.guardrails.write_text(yaml.safe_dump(GUARDRAILS), encoding="utf-8")
        self.replay = work / "health.json"

    def reason(self, node: str) -> str:
        out = self.cluster.scontrol("show", "node", "-o", node).stdout
        return out.split(" Reason=", 1)[1] if " Reason=" in out else ""

    def drained(self, node: str) -> bool:
        return self.reason(node).startswith("sre:")

    def until(self, what: str, done: Callable[[], bool]) -> float:
        """Poll until ``done()``; the wall-clock time it first held."""
        deadline = time.monotonic() + STEP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if done():
                return time.time()
            time.sleep(POLL_SECONDS)
        raise SystemExit(f"bench_salt: {what} not within {STEP_TIMEOUT_SECONDS:g}s")

    def master_config(self, name: str, reactor_sls: str) -> dict[str, Any]:
        example = yaml.safe_load(
            (SALT_DIR / "reactor" / "master.conf.example").read_text(encoding="utf-8")
        )
        tags = [tag for entry in example["reactor"] for tag in entry]
        return {
            "runner_dirs": [str(SALT_DIR / "_runners")],
            "reactor": [{tag: [str(SALT_DIR / "reactor" / reactor_sls)]} for tag in tags],
            **{k: v for k, v in example.items() if k.startswith("reactor_")},
            "sre_remediation": {
                **example["sre_remediation"],
                "config": str(self.guardrails),
                "state": str(self.work / f"{name}.db"),
                "audit": str(self.work / f"{name}.jsonl"),
                "execute": True,
                "slurm_conf": str(self.cluster.conf),
                "fresh_check": {"replay": str(self.replay)},
            },
        }

    @contextmanager
    def salt(self, name: str, reactor_sls: str, *, minion: bool) -> Iterator[tuple[SaltPair, Any]]:
        beacons = {
            "gpu_health": [
                {"interval": 1},
                {"replay": str(self.replay)},
                {"node": NODE},
                {"cooldown": 0},
            ]
        }
        pair = SaltPair(
            self.work / name,
            minion_id=NODE,
            beacons=beacons,
            master_extra=self.master_config(name, reactor_sls),
            stop_timeout=5,
        )
        with pair:
            pair.start_master()
            with pair.master_events() as bus:
                pair.wait_reactor(bus)
                if minion:
                    pair.start_minion(bus)
                    pair.salt("saltutil.sync_all", timeout=120)
                yield pair, bus

    def bus_events(self, bus: Any, nodes: list[str], label: str) -> list[float]:
        """Fire one event per node on the master's bus; seconds until each drain shows."""
        out = []
        for i, node in enumerate(nodes):
            start = time.time()
            bus.fire_event(event_data(node, f"bench:{label}:{i}:{int(start)}"), TAG.format(node))
            out.append(self.until(f"{label} drain of {node}", partial(self.drained, node)) - start)
        return out

    def set_health(self, source: Path) -> None:
        tmp = self.replay.with_suffix(".tmp")
        tmp.write_text(recording(source, NODE), encoding="utf-8")
        os.replace(tmp, self.replay)

    def beacon_cycles(self, pair: SaltPair, bus: Any, cycles: int) -> tuple[list[float], ...]:
        """Fault -> drain and recovery -> resume, timed from the beacon's event on the bus."""
        drains, resumes = [], []
        prefix = f"salt/beacon/{NODE}/gpu_health/sre/gpu/health/"
        for _ in range(cycles):
            self.set_health(LOST)
            fired = stamp(pair.wait_event(bus, prefix + "crit", STEP_TIMEOUT_SECONDS))
            drains.append(self.until("beacon drain", lambda: self.drained(NODE)) - fired)
            self.set_health(HEALTHY)
            fired = stamp(pair.wait_event(bus, prefix + "ok", STEP_TIMEOUT_SECONDS))
            resumes.append(self.until("resume", lambda: not self.reason(NODE)) - fired)
        return drains, resumes

    def cli_events(self, nodes: list[str]) -> list[float]:
        """``sre remediation event --execute`` per node (whole process) until the drain shows."""
        sre = Path(sys.executable).parent / "sre"
        out = []
        for i, node in enumerate(nodes):
            event = json.dumps(event_data(node, f"bench:cli:{i}")["remediation"])
            argv = [
                str(sre),
                "remediation",
                "event",
                "--event",
                "-",
                "--execute",
                "--config",
                str(self.guardrails),
                "--state",
                str(self.work / "cli.db"),
                "--audit",
                str(self.work / "cli.jsonl"),
                "--json",
            ]
            start = time.time()
            proc = subprocess.run(
                argv,
                check=False,
                input=event,
                capture_output=True,
                text=True,
                timeout=STEP_TIMEOUT_SECONDS,
                env={**os.environ, **self.cluster.env},
            )
            if proc.returncode != 0:
                raise SystemExit(f"bench_salt: sre remediation event: {proc.stderr[-2000:]}")
            out.append(self.until(f"CLI drain of {node}", partial(self.drained, node)) - start)
        return out

    def bare_drains(self, nodes: list[str]) -> list[float]:
        out = []
        for node in nodes:
            start = time.time()
            self.cluster.scontrol(
                "update", f"nodename={node}", "state=drain", "reason=sre: bare scontrol"
            )
            out.append(self.until(f"bare drain of {node}", partial(self.drained, node)) - start)
        return out


def stamp(event: dict[str, Any]) -> float:
    """When the master put the event on its bus (``_stamp``, UTC)."""
    text = str(event["data"]["_stamp"])
    parsed = datetime.fromisoformat(text if "+" in text else text + "+00:00")
    return parsed.timestamp()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20, help="events per row (default 20)")
    parser.add_argument("--cycles", type=int, default=10, help="beacon fault/recovery cycles")
    parser.add_argument("--no-orchestrate", action="store_true", help="skip the orch route")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the clean-ups below
    n = args.events
    groups = {k: [f"{k}{i:03d}" for i in range(1, n + 1)] for k in ("run", "orch", "cli", "bare")}
    unserved = [node for nodes in groups.values() for node in nodes]
    rows: list[tuple[str, list[float]]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sre-bench-salt-") as tmp:
        work = Path(tmp)
        with SlurmCluster([NODE], unserved=unserved) as cluster:
            bench = Bench(work, cluster)
            bench.set_health(HEALTHY)
            with bench.salt("runner", "gpu_health_runner.sls", minion=True) as (pair, bus):
                rows.append(
                    (
                        "reactor, runner route (bus event)",
                        bench.bus_events(bus, groups["run"], "run"),
                    )
                )
                drains, resumes = bench.beacon_cycles(pair, bus, args.cycles)
                rows.append(("beacon event -> drain (real minion)", drains))
                rows.append(("recovery event -> fresh check -> resume", resumes))
            if not args.no_orchestrate:
                with bench.salt("orch", "gpu_health.sls", minion=False) as (_pair, bus):
                    rows.append(
                        (
                            "reactor, orchestration route",
                            bench.bus_events(bus, groups["orch"], "orch"),
                        )
                    )
            rows.append(("ref: sre remediation event (CLI)", bench.cli_events(groups["cli"])))
            rows.append(("ref: bare scontrol drain", bench.bare_drains(groups["bare"])))
    took = time.monotonic() - started
    ref_cli = statistics.median(rows[-2][1])
    ref_bare = statistics.median(rows[-1][1])
    goal_p50 = statistics.median(rows[0][1])
    load = os.getloadavg()
    print(
        f"bench_salt: Python {platform.python_version()}, {os.cpu_count()} CPUs, load average "
        f"{load[0]:.1f} at the end, {took:.0f} s in all; visible = scontrol shows the drain "
        f"(polled every {POLL_SECONDS * 1000:.0f} ms)"
    )
    header = ("measurement", "n", "p50", "p95", "min-max", "x CLI", "x scontrol")
    table = [header]
    for label, values in rows:
        p50 = statistics.median(values)
        table.append(
            (
                label,
                str(len(values)),
                f"{p50:.2f} s",
                f"{percentile(values, 95):.2f} s",
                f"{min(values):.2f}-{max(values):.2f} s",
                ratio(p50, ref_cli),
                ratio(p50, ref_bare),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for i, row in enumerate(table):
        print("| " + " | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    met = goal_p50 < GOAL_P50_SECONDS
    print(
        f"goal: reactor p50 < {GOAL_P50_SECONDS:g} s: {goal_p50:.2f} s, "
        f"{'met' if met else 'MISSED'}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
