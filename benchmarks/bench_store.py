"""The store on SQLite against PostgreSQL, the same work in the same run; prints one table.

    .venv/bin/python benchmarks/bench_store.py [--quick] [--pg-url URL]

(a) ``slo report``: ``sre slo report --store`` as a whole process, 100 SLOs x 30 days of SLI
    buckets (1-minute buckets: 4.32M rows; ``--quick``: 10-minute buckets, 432k rows). The stores
    are filled directly (COPY on PostgreSQL), which is not measured.
(b) ``sli import``: ``sre sli import`` of one CSV as a whole process (1,000,000 rows;
    ``--quick``: 100,000), into an empty store: parse, validate, one transaction.
(c) ``decisions``: remediation decisions per second with four processes deciding at once
    (each its own engine over a fake Slurm, all sharing one state and one audit log: a SQLite
    file and a JSON-lines file, or one PostgreSQL database); every event drains a node of its
    own and acts, so each decision takes the budget in a write transaction.

PostgreSQL: by default a server this script starts (Debian's PostgreSQL 15, tests/helpers/
postgres.py) with ``fsync`` on and ``synchronous_commit = off`` (a commit is not waited on to be
flushed: the durability SQLite's WAL with ``synchronous = NORMAL`` gives); ``--pg-url`` points at
another server (an empty database the script may fill). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_slo import run_process, sloth_spec  # noqa: E402

from sre_tools.store import Store  # noqa: E402

N_SLOS = 100
DAYS = 30
END = 1_767_225_600  # 2026-01-01T00:00:00Z

DECIDER = r"""
import json, sys, time
from sre_tools.remediation.config import RemediationConfig
from sre_tools.remediation.engine import Remediator
from sre_tools.remediation.slurm import SlurmClient
from tests.remediation.fakes import FakeSlurm, RecordingRunner

state, audit, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
nodes = [f"w{worker}n{i:05d}" for i in range(count)]
cfg = RemediationConfig(max_drained_nodes=100000, max_drained_percent=100, node_exec="local")
slurm = SlurmClient(FakeSlurm.cluster({f"gpu{worker}": nodes}), timeout=5)
rem = Remediator(cfg, slurm, state, audit, runner=RecordingRunner(), dry_run=False)
print("ready", flush=True)
sys.stdin.readline()
t0 = time.perf_counter()
acted = sum(
    rem.handle_event({"node": n, "action": "reboot", "event_id": f"e-{n}", "source": "bench"}).acted
    for n in nodes
)
print(json.dumps({"seconds": time.perf_counter() - t0, "acted": acted}), flush=True)
"""


def sre_argv() -> list[str]:
    """``sre`` from this checkout (PYTHONPATH is set in main), whatever the venv installed."""
    return [sys.executable, "-m", "sre_tools.cli.main"]


def buckets(bucket: int) -> Iterator[tuple[str, int, float, float]]:
    start = END - DAYS * 86400
    for i in range(N_SLOS):
        slo = f"bench-slo-{i:04d}"
        for n, t in enumerate(range(start, END, bucket)):
            total = 1000.0 + (n * 7 + i) % 50
            yield slo, t, total - ((n * 13 + i) % 97 == 0) * 20.0 - (n % 5), total


def fill(location: str | Path, bucket: int) -> int:
    with Store(location) as store:
        if store.postgres:
            with (
                store.conn.cursor() as cur,
                cur.copy("COPY sli_buckets (slo, start, good, total) FROM STDIN") as copy,
            ):
                for row in buckets(bucket):
                    copy.write_row(row)
            store.conn.execute("ANALYZE sli_buckets")
        else:
            with store.transaction() as cur:
                cur.executemany(
                    "INSERT INTO sli_buckets (slo, start, good, total) VALUES (?, ?, ?, ?)",
                    buckets(bucket),
                )
        return int(store.query("SELECT COUNT(*) FROM sli_buckets")[0][0])


def timed_process(argv: list[str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run_process(argv)
        out.append(time.perf_counter() - t0)
    return out


def bench_report(locations: dict[str, str | Path], bucket: int, work: Path, repeat: int) -> dict:
    spec = work / "bench.sloth.yaml"
    spec.write_text(sloth_spec(N_SLOS), encoding="utf-8")
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END))
    out = {}
    for engine, location in locations.items():
        rows = fill(location, bucket)
        argv = [*sre_argv(), "slo", "report", str(spec), "--store", str(location), "--at", at]
        run_process(argv)  # warm caches; not counted
        out[engine] = (timed_process(argv, repeat), f"{rows:,} rows")
    return out


def sli_csv(rows: int) -> str:
    buf = io.StringIO()
    buf.write("timestamp,slo,good,total\n")
    per_slo = rows // N_SLOS
    for i in range(N_SLOS):
        for n in range(per_slo):
            buf.write(f"@{END - 60 * (n + 1)},import-slo-{i:03d},{990 - n % 7},1000\n")
    return buf.getvalue()


def bench_import(locations: dict[str, str | Path], rows: int, work: Path) -> dict:
    csv = work / "import.csv"
    csv.write_text(sli_csv(rows), encoding="utf-8")
    out = {}
    for engine, location in locations.items():
        Store(location).close()  # created and migrated beforehand: not measured
        argv = [*sre_argv(), "sli", "import", str(csv), "--store", str(location)]
        out[engine] = (timed_process(argv, 1), f"{rows:,} rows")
    return out


def bench_decisions(targets: dict[str, tuple[str, str]], per_worker: int) -> dict:
    out = {}
    for engine, (state, audit) in targets.items():
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", DECIDER, state, audit, str(w), str(per_worker)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            for w in range(4)
        ]
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        t0 = time.perf_counter()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        results = [json.loads(p.communicate(timeout=1800)[0]) for p in procs]
        wall = time.perf_counter() - t0
        acted = sum(r["acted"] for r in results)
        if acted != 4 * per_worker:
            raise SystemExit(f"{engine}: {acted} of {4 * per_worker} decisions acted")
        out[engine] = ([wall], f"{acted / wall:,.0f} decisions/s")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller data (see the docstring)")
    parser.add_argument("--pg-url", help="an empty PostgreSQL database (default: start one)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    bucket = 600 if args.quick else 60
    import_rows = 100_000 if args.quick else 1_000_000
    per_worker = 250 if args.quick else 1000
    work = Path(tempfile.mkdtemp(prefix="sre-bench-store-"))
    server = None
    if args.pg_url:
        urls = [args.pg_url] * 3
    else:
        from tests.helpers.postgres import PostgresServer

        server = PostgresServer(settings={"fsync": "on", "synchronous_commit": "off"})
        server.start()
        urls = [server.database() for _ in range(3)]
    try:
        figures = {
            f"slo report ({N_SLOS} SLOs x {DAYS} d, {bucket // 60}-min buckets)": bench_report(
                {"sqlite": work / "report.db", "postgresql": urls[0]}, bucket, work, args.repeat
            ),
            f"sli import ({import_rows:,} rows)": bench_import(
                {"sqlite": work / "import.db", "postgresql": urls[1]}, import_rows, work
            ),
            f"decisions (4 writers x {per_worker})": bench_decisions(
                {
                    "sqlite": (str(work / "state.db"), str(work / "audit.jsonl")),
                    "postgresql": (urls[2], urls[2]),
                },
                per_worker,
            ),
        }
    finally:
        if server is not None:
            server.close()
    print(f"\n{platform.node()} {platform.machine()} {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")  # fmt: skip
    print(f"{'benchmark':<48} {'sqlite s':>10} {'postgresql s':>13} {'pg/sqlite':>10}  detail")
    for name, by_engine in figures.items():
        s_runs, s_note = by_engine["sqlite"]
        p_runs, p_note = by_engine["postgresql"]
        s, p = statistics.median(s_runs), statistics.median(p_runs)
        print(f"{name:<48} {s:>10.2f} {p:>13.2f} {p / s:>9.2f}x  sqlite {s_note}; pg {p_note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
