"""Chaos drills on container nodes: the engine's own cost per run, and time to detect, alert,
drain and recover next to the intervals the site is configured with.

The site is the one tests/chaos_e2e uses (tests/helpers/drill_nodes.py, ``DrillSite``): two
podman containers with systemd reached over SSH (host keys verified), Debian's slurmd in each
registered with a slurmctld + munged on the host, ``sre exporter --replay --kernel-log`` in each,
Prometheus on the host scraping them (1 s scrape and evaluation; the shipped rules with ``for:``
of a minute or more cut to 5 s) and the remediation loop (``sre health`` over SSH +
``sre remediation decide --execute`` every 2 s).

1. Engine overhead: ``node-drain`` run in-process (``sre_tools.chaos.runner.Runner``, the
   transports the CLI builds from the inventory) as a dry run and with ``execute``. Every
   command goes through a wrapper that times it; every wait the drill asks for (its polls) goes
   through a timed sleep. overhead = wall - time in commands (SSH included) - waits. Next to it,
   the same commands replayed on one fresh SSH transport (connect included) in the same round:
   the raw cost a script doing the same would pay.
2. Time to detect/alert/drain/recover: ``sre drill run xid-inject`` and ``exporter-down``
   through the CLI, while watcher threads sample every 0.25 s what the site shows (the
   kernel-log file and the unit's state over SSH, the exporter's counter, Prometheus's ALERTS
   and ``up``, Slurm's reason). Times are from the fault (the tagged line first seen; the unit
   first seen inactive), so each carries up to about 0.3 s of sampling error. The drills' own
   journal measures (their polls are 5 to 15 s) are printed too.

    .venv/bin/python benchmarks/bench_drills.py                 # 5 rounds of (1), 1 of (2)
    .venv/bin/python benchmarks/bench_drills.py --rounds 3 --json out.json

Exit status: 0 every run passed; 1 a run did not pass (listed); 2 the site did not start.
Needs root, podman + runc, Slurm, munge and prometheus (what the container tests need).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sre_tools.chaos import actions, catalog  # noqa: E402
from sre_tools.chaos.runner import Runner  # noqa: E402
from sre_tools.chaos.safety import Safety, resolve_targets  # noqa: E402
from sre_tools.transport import Transport  # noqa: E402
from tests.helpers import drill_nodes as dn  # noqa: E402

NODE = "drill1"
SAMPLE = 0.25
SRE = str(Path(sys.executable).with_name("sre"))


# --- 1. engine overhead -----------------------------------------------------------------------


@dataclass
class Timed:
    """A transport that times every command and remembers its argv (for the raw replay)."""

    inner: Transport
    seconds: float = 0.0
    commands: list[tuple[list[str], bytes | None]] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.inner.target

    def run(self, argv: Sequence[str], timeout: float, input: bytes | None = None) -> Any:
        start = time.perf_counter()
        try:
            return self.inner.run(argv, timeout, input=input)
        finally:
            self.seconds += time.perf_counter() - start
            self.commands.append((list(argv), input))

    def close(self) -> None:
        self.inner.close()


def engine_round(site: dn.DrillSite, workdir: Path, execute: bool) -> dict[str, float]:
    exp = catalog.resolve("node-drain")[1]
    targets = resolve_targets([NODE], tuple(site.names), exp.blast_radius)
    timed: list[Timed] = []
    waits = [0.0]

    def factory(host: str) -> Transport:
        timed.append(Timed(site.transport(host)))
        return timed[-1]  # type: ignore[return-value]

    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        start = time.perf_counter()
        real_sleep(seconds)
        waits[0] += time.perf_counter() - start

    real_poll_until = actions.poll_until

    def poll_until(*args: Any, **kwargs: Any) -> Any:
        return real_poll_until(*args, **{**kwargs, "sleep": sleep})

    safety = Safety(workdir / "store.db")
    start = time.perf_counter()
    try:
        # The catalog's own waits (wait_node_responding's poll) sleep in poll_until: timed too.
        actions.poll_until = poll_until
        runner = Runner(
            exp,
            targets,
            safety=safety,
            journal_dir=workdir,
            execute=execute,
            transport_factory=factory,
            sleep=sleep,
            install_signals=False,
        )
        result = runner.run()
    finally:
        actions.poll_until = real_poll_until
        safety.close()
    wall = time.perf_counter() - start
    want = "passed" if execute else "dry-run"
    if result.status != want or result.restored is False:
        raise RuntimeError(f"node-drain ended {result.status}: {result.details}")
    in_commands = sum(t.seconds for t in timed)
    commands = [c for t in timed for c in t.commands]
    raw = 0.0
    if commands:  # the same commands on one fresh transport, connect included
        transport = site.transport(NODE)
        raw_start = time.perf_counter()
        for command, data in commands:
            transport.run(command, 30, input=data)
        raw = time.perf_counter() - raw_start
        transport.close()
        # The replay drained and resumed too: wait until Slurm answers for the node again.
        site.cluster.settled_states()
    return {
        "wall": wall,
        "commands": float(len(commands)),
        "in_commands": in_commands,
        "waits": waits[0],
        "overhead": wall - in_commands - waits[0],
        "raw_same_commands": raw,
    }


# --- 2. detect / alert / drain / recover ------------------------------------------------------


class Watcher:
    """One thread per probe, each sampling every SAMPLE seconds (a slow probe delays no other);
    ``first[name]`` is when ``name`` first held. A probe may name others in ``after``: it is
    only tried once those held (recovery after the fault was seen)."""

    def __init__(self, probes: dict[str, Callable[[], bool]], after: dict[str, str] | None = None):
        self.probes = probes
        self.after = after or {}
        self.first: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(name,), daemon=True) for name in probes
        ]

    def _run(self, name: str) -> None:
        probe = self.probes[name]
        while not self._stop.is_set() and name not in self.first:
            if self.after.get(name, name) in self.first or name not in self.after:
                try:
                    if probe():
                        self.first[name] = time.monotonic()
                except Exception:  # a probe that cannot answer yet has not held
                    pass
            self._stop.wait(SAMPLE)

    def __enter__(self) -> Watcher:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


def on_node(site: dn.DrillSite, argv: list[str]) -> Callable[[], str]:
    """A command on the node through its own SSH transport (about 10 ms a call, where podman
    exec costs a few hundred): for sampling the node's side finely."""
    transport = site.transport(NODE)

    def call() -> str:
        return transport.run(argv, 10).stdout.decode(errors="replace")

    return call


def metric(url: str, name: str) -> float:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=2) as resp:
        text = resp.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
    )


def run_cli_drill(site: dn.DrillSite, workdir: Path, name: str) -> dict[str, Any]:
    from tests.chaos_e2e.test_drills_e2e import drill_argv  # the tests' own argv

    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "journals").mkdir(exist_ok=True)
    proc = subprocess.run(
        drill_argv(site, workdir, name, NODE, execute=True),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    data: dict[str, Any] = json.loads(proc.stdout) if proc.stdout.strip() else {}
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited {proc.returncode}: {data} {proc.stderr[-1000:]}")
    events = [json.loads(x) for x in Path(data["journal"]).read_text().splitlines()]
    measures = {
        e["name"]: e["elapsed"] for e in events if e["event"] == "expectation" and e.get("met")
    }
    end = next(e for e in events if e["event"] == "run-end")
    measures["recover_seconds"] = end.get("recover_seconds")
    return {"journal": measures}


def xid_times(site: dn.DrillSite, workdir: Path) -> dict[str, Any]:
    port = site.exporter_ports[NODE]

    def drained() -> bool:
        reason = site.cluster.drain_reasons().get(NODE, "")
        return reason.startswith("sre:") and not reason.startswith("sre:drill")

    read_log = on_node(site, ["cat", dn.KERNEL_LOG])
    probes: dict[str, Callable[[], bool]] = {
        "fault": lambda: "sre-drill" in read_log(),
        "exporter counter": lambda: (
            metric(f"http://127.0.0.1:{port}/metrics", "gpu_xid_events_total") > 0
        ),
        "alert firing": lambda: bool(
            site.query(f'ALERTS{{alertname=~"GpuXid.*",alertstate="firing",node="{NODE}"}}')
        ),
        "drained": drained,
    }
    with Watcher(probes) as watcher:
        out = run_cli_drill(site, workdir, "xid-inject")
        done = time.monotonic()
    fault = watcher.first.get("fault")
    out["sampled"] = {
        k: (v - fault if fault else None) for k, v in watcher.first.items() if k != "fault"
    }
    out["sampled"]["drill run ended (rollback done)"] = done - fault if fault else None
    return out


def exporter_down_times(site: dn.DrillSite, workdir: Path) -> dict[str, Any]:
    up = f'up{{job="{dn.EXPORTER_JOB}",node="{NODE}"}}'
    stopped = {"seen": False}

    def fault() -> bool:
        inactive = dn.unit_active(site, NODE, "sre-exporter.service") != "active"
        stopped["seen"] = stopped["seen"] or inactive
        return inactive

    def target_down() -> bool:
        return bool(site.query(f"{up} == 0"))

    def back_up() -> bool:
        return (
            stopped["seen"]
            and bool(site.query(f"{up} == 1"))
            and not site.firing("GpuExporterDown", NODE)
        )

    probes: dict[str, Callable[[], bool]] = {
        "fault": fault,
        "target down (up == 0)": target_down,
        "alert firing": lambda: site.firing("GpuExporterDown", NODE),
        "recovered (up == 1, alert resolved)": back_up,
    }
    after = {"recovered (up == 1, alert resolved)": "alert firing"}
    with Watcher(probes, after) as watcher:
        out = run_cli_drill(site, workdir, "exporter-down")
    fault_at = watcher.first.get("fault")
    out["sampled"] = {
        k: (v - fault_at if fault_at else None) for k, v in watcher.first.items() if k != "fault"
    }
    return out


# --- report -----------------------------------------------------------------------------------


def p50(values: list[float]) -> float:
    return statistics.median(values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the overhead runs")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sre-bench-drills-"))
    failures: list[str] = []
    report: dict[str, Any] = {
        "machine": f"{platform.node()} {platform.machine()}, {os.cpu_count()} cores",
        "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "scrape_interval_s": dn.SCRAPE_SECONDS,
        "evaluation_interval_s": dn.EVALUATION_SECONDS,
        "remediation_loop_interval_s": 2.0,
        "slurmd_timeout_s": dn.SLURMD_TIMEOUT,
    }
    try:
        site = dn.DrillSite(work / "site")
        site.start()
    except Exception as exc:
        print(f"bench_drills: the site did not start: {exc}", file=sys.stderr)
        return 2
    try:
        rounds: dict[str, list[dict[str, float]]] = {"dry run": [], "execute": []}
        for i in range(args.rounds):
            for mode, execute in (("dry run", False), ("execute", True)):
                try:
                    rounds[mode].append(engine_round(site, work / f"r{i}-{mode[0]}", execute))
                except Exception as exc:
                    failures.append(f"node-drain {mode} round {i}: {exc}")
        report["overhead"] = {
            mode: {k: p50([r[k] for r in rs]) for k in rs[0]} for mode, rs in rounds.items() if rs
        }
        for name, fn in (("xid-inject", xid_times), ("exporter-down", exporter_down_times)):
            try:
                report[name] = fn(site, work / name)
            except Exception as exc:
                failures.append(f"{name}: {exc}")
    finally:
        site.stop()

    print(f"# bench_drills {report['date']} on {report['machine']}")
    print(f"\nnode-drain, median of {args.rounds} rounds (seconds)\n")
    print("| mode | wall | commands | in commands (SSH) | waits | engine overhead | raw same |")
    print("|---|---|---|---|---|---|---|")
    for mode, r in report.get("overhead", {}).items():
        print(
            f"| {mode} | {r['wall']:.3f} | {r['commands']:.0f} | {r['in_commands']:.3f} | "
            f"{r['waits']:.3f} | {r['overhead']:.3f} | {r['raw_same_commands']:.3f} |"
        )
    print(
        f"\nintervals: scrape {dn.SCRAPE_SECONDS} s, evaluation {dn.EVALUATION_SECONDS} s, "
        f"remediation loop 2 s, SlurmdTimeout {dn.SLURMD_TIMEOUT} s, rule for: 5 s (test)\n"
    )
    print("| drill | event | sampled from the fault (s) | the drill's journal (s) |")
    print("|---|---|---|---|")
    for name in ("xid-inject", "exporter-down"):
        data = report.get(name)
        if not data:
            continue
        for event, seconds in data["sampled"].items():
            print(f"| {name} | {event} | {'-' if seconds is None else f'{seconds:.2f}'} | |")
        for event, seconds in data["journal"].items():
            print(f"| {name} | {event} | | {'-' if seconds is None else seconds} |")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
