"""Speed checks for the SLO engine and the CLI; prints one table.

    .venv/bin/python benchmarks/bench_slo.py [--quick] [--cache-dir DIR]

(a) ``rules``: load a synthetic Sloth spec with 1,000 SLOs, generate the rules and write the YAML
    (in-process; goal < 2 s). Reference: ``yaml.dump`` of the same rule data with PyYAML's
    CSafeDumper (what writing them through PyYAML alone costs).
(b) ``report``: ``sre slo report --store`` as a whole process on a SQLite store with 100 SLOs and
    30 days of 1-minute buckets (4.32M rows; goal < 3 s). Reference: a bare Python process that
    opens the store and runs the same window sums in plain SQL (the floor of the work).
(c) ``help``: ``sre --help`` cold start, median of 10 whole-process runs (goal < 300 ms).
    Reference: ``python -c pass``.

The store is built once (executemany, one transaction) and cached under the temp folder; later
runs reuse it. Each figure is the median of several runs; the table also gives min and max.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sre_tools.slo.loader import load_texts  # noqa: E402
from sre_tools.slo.rules import generate, write  # noqa: E402
from sre_tools.store import Store  # noqa: E402

N_RULE_SLOS = 1000
N_STORE_SLOS = 100
DAYS = 30
BUCKET = 60
END = 1_767_225_600  # 2026-01-01T00:00:00Z, a whole minute
STORE_VERSION = 1  # bump when the synthetic data changes


@dataclass
class Row:
    name: str
    goal_s: float
    runs: list[float]
    ref_name: str
    ref_runs: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def ref(self) -> float:
        return statistics.median(self.ref_runs)


def timed(fn: Callable[[], object], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def sre_argv() -> list[str]:
    script = shutil.which("sre", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "sre_tools.cli.main"]


def run_process(argv: list[str]) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {argv}\n{proc.stderr}")


# -- (a) rules for 1,000 SLOs -------------------------------------------------------------------


def sloth_spec(count: int, service: str = "bench") -> str:
    """One Sloth document with ``count`` SLOs: events and raw SLIs, some with alerting blocks."""
    slos = []
    for i in range(count):
        name = f"slo-{i:04d}"
        window = "[{{.window}}]"
        job = f'job="j{i}"'
        if i % 2:
            sli = {
                "raw": {"error_ratio_query": f'1 - avg(avg_over_time(up{{job="j{i}"}}{window}))'}
            }
        else:
            sli = {
                "events": {
                    "error_query": f'sum(rate(http_requests_total{{{job},code=~"5.."}}{window}))',
                    "total_query": f"sum(rate(http_requests_total{{{job}}}{window}))",
                }
            }
        slo = {"name": name, "objective": [99.0, 99.5, 99.9, 99.95][i % 4], "sli": sli}
        if i % 3 == 0:
            slo["labels"] = {"team": f"team-{i % 7}"}
            slo["alerting"] = {
                "name": f"Bench{i:04d}Burn",
                "annotations": {"summary": f"SLO {name} burns."},
                "page_alert": {"labels": {"route": "pager"}},
                "ticket_alert": {"disable": i % 2 == 0},
            }
        slos.append(slo)
    doc = {
        "version": "prometheus/v1",
        "service": service,
        "labels": {"owner": "bench"},
        "slos": slos,
    }
    return yaml.dump(doc, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)


def bench_rules(repeat: int) -> Row:
    text = sloth_spec(N_RULE_SLOS)
    out_dir = Path(tempfile.mkdtemp(prefix="sre-bench-rules-"))
    out = out_dir / "rules.yml"
    phases: dict[str, list[float]] = {"load": [], "generate": [], "write": []}

    def full() -> None:
        t0 = time.perf_counter()
        slos = load_texts([("bench.yaml", text)])
        t1 = time.perf_counter()
        rule_file = generate(slos)
        t2 = time.perf_counter()
        with out.open("w", encoding="utf-8") as fh:
            write(rule_file, fh)
        t3 = time.perf_counter()
        for name, seconds in zip(phases, (t1 - t0, t2 - t1, t3 - t2), strict=True):
            phases[name].append(seconds)

    runs = timed(full, repeat)
    rule_file = generate(load_texts([("bench.yaml", text)]))
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    def dump_only() -> None:
        yaml.dump(rule_file, io.StringIO(), Dumper=dumper, sort_keys=False, width=1000)

    ref = timed(dump_only, repeat)
    size = out.stat().st_size
    shutil.rmtree(out_dir, ignore_errors=True)
    split = ", ".join(f"{k} {statistics.median(v):.3f} s" for k, v in phases.items())
    print(f"  rules: {N_RULE_SLOS} SLOs -> {len(rule_file['groups'])} groups, {size / 1e6:.1f} MB")
    print(f"  rules: median per phase: {split}")
    return Row(
        "(a) rules, 1,000 SLOs: load spec + generate + write YAML",
        2.0,
        runs,
        "yaml.dump of the same rules (CSafeDumper)",
        ref,
    )


# -- (b) report on a 4.32M-row store ------------------------------------------------------------


def store_rows(slo_ids: list[str]) -> Iterator[tuple[str, int, float, float]]:
    minutes = DAYS * 1440
    first = END - minutes * BUCKET
    for n, slo_id in enumerate(slo_ids):
        for m in range(minutes):
            total = 1000.0 + (m * 7 + n) % 97
            bad = float((m * 13 + n * 5) % 11 == 0) * ((m + n) % 5)
            yield (slo_id, first + m * BUCKET, total - bad, total)


def build_store(path: Path, slo_ids: list[str]) -> float:
    t0 = time.perf_counter()
    tmp = path.with_suffix(".building")
    for stale in (tmp, Path(f"{tmp}-wal"), Path(f"{tmp}-shm")):
        stale.unlink(missing_ok=True)
    with Store(tmp) as store:
        store.conn.execute("PRAGMA synchronous = OFF")
        store.conn.execute("BEGIN")
        store.conn.executemany(
            "INSERT INTO sli_buckets (slo, start, good, total) VALUES (?, ?, ?, ?)",
            store_rows(slo_ids),
        )
        store.conn.execute("COMMIT")
        store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    os.replace(tmp, path)
    return time.perf_counter() - t0


def cached_store(cache_dir: Path, slo_ids: list[str]) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"store-{len(slo_ids)}x{DAYS}d-v{STORE_VERSION}.db"
    expected = len(slo_ids) * DAYS * 1440
    if path.exists():
        with sqlite3.connect(path) as conn:
            (count,) = conn.execute("SELECT COUNT(*) FROM sli_buckets").fetchone()
        if count == expected:
            print(f"  store: reusing {path} ({count:,} rows)")
            return path
        path.unlink()
    seconds = build_store(path, slo_ids)
    print(f"  store: built {path} ({expected:,} rows) in {seconds:.1f} s")
    return path


PLAIN_SQL = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
end = int(sys.argv[2])
windows = [300, 1800, 3600, 7200, 21600, 86400, 259200, 2592000]
ids = [r[0] for r in conn.execute("SELECT DISTINCT slo FROM sli_buckets")]
for slo in ids:
    for w in windows:
        conn.execute(
            "SELECT SUM(total - good), SUM(total) FROM sli_buckets "
            "WHERE slo = ? AND start >= ? AND start < ?", (slo, end - w, end)
        ).fetchone()
"""


def bench_report(cache_dir: Path, repeat: int) -> Row:
    slo_ids = [f"bench-slo-{i:04d}" for i in range(N_STORE_SLOS)]
    db = cached_store(cache_dir, slo_ids)
    spec = cache_dir / f"report-{N_STORE_SLOS}.yaml"
    spec.write_text(sloth_spec(N_STORE_SLOS), encoding="utf-8")
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(END))
    argv = [*sre_argv(), "slo", "report", str(spec), "--store", str(db), "--at", at]
    env_cols = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "200"
    try:
        run_process(argv)  # warm the page cache; not counted
        runs = timed(lambda: run_process(argv), repeat)
        json_runs = timed(lambda: run_process([*argv, "--json"]), repeat)
    finally:
        if env_cols is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = env_cols
    ref = timed(lambda: run_process([sys.executable, "-c", PLAIN_SQL, str(db), str(END)]), repeat)
    print(f"  report --json: median {statistics.median(json_runs):.3f} s")
    return Row(
        "(b) sre slo report --store, 100 SLOs x 30d of 1m buckets",
        3.0,
        runs,
        "plain SQL window sums (python + sqlite3)",
        ref,
    )


# -- (c) cold start -----------------------------------------------------------------------------


def bench_help(repeat: int) -> Row:
    argv = [*sre_argv(), "--help"]
    run_process(argv)
    runs = timed(lambda: run_process(argv), repeat)
    ref = timed(lambda: run_process([sys.executable, "-c", "pass"]), repeat)
    return Row("(c) sre --help, whole process", 0.3, runs, "python -c pass", ref)


# -- table --------------------------------------------------------------------------------------


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def table(rows: list[Row]) -> str:
    header = [
        "benchmark",
        "goal",
        "median",
        "min-max",
        "goal met",
        "reference",
        "ref median",
        "x ref",
    ]
    lines = []
    for r in rows:
        lines.append(
            [
                r.name,
                f"< {fmt(r.goal_s)}",
                fmt(r.median),
                f"{fmt(min(r.runs))}-{fmt(max(r.runs))}",
                f"{'yes' if r.median < r.goal_s else 'NO'} ({r.median / r.goal_s:.0%} of goal)",
                r.ref_name,
                fmt(r.ref),
                f"{r.median / r.ref:.1f}x",
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for line in lines:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) + " |")
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "sre-tools-bench",
        help="where the synthetic store is cached (default: %(default)s)",
    )
    args = parser.parse_args()
    repeat = 3 if args.quick else 5
    started = time.perf_counter()
    libyaml = "yes" if getattr(yaml, "__with_libyaml__", False) else "no"
    print(
        f"sre_tools benchmarks: Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, PyYAML {yaml.__version__} (libyaml {libyaml}), "
        f"{os.cpu_count()} CPUs, {platform.platform()}"
    )
    rows = [
        bench_rules(repeat),
        bench_report(args.cache_dir, repeat),
        bench_help(10),
    ]
    print()
    print(table(rows))
    print(f"\ntotal benchmark time {time.perf_counter() - started:.0f} s")
    return 0 if all(r.median < r.goal_s for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
