"""Scrape latency of ``sre exporter``; prints one table.

    .venv/bin/python benchmarks/bench_exporter.py [--replay FILE] [--scrapes N] [--real]

Goal: a scrape (``GET /metrics`` over loopback, as Prometheus sends it: keep-alive, gzip,
OpenMetrics Accept header) answers in p50 <= 5 ms on an 8-GPU node, whatever the GPUs are doing.
Scrapes only format the latest snapshot, so the figure does not depend on NVML: the replay run
here is representative; ``--real`` (on a GPU node) adds the real collection cost for reference.

Rows:

(a) ``collect()`` + text exposition in-process, uncached: what every scrape would cost without
    pre-rendering; (a') the pre-rendering itself, once per collection in the collection thread;
(b) HTTP scrape, plain text, keep-alive connection;
(c) HTTP scrape as Prometheus sends it (OpenMetrics Accept header, gzip);
(d) HTTP scrape with basic auth (sha256 credential);
(e) HTTP scrape while the collection loop runs every 200 ms, 75x the default rate (scrapes never
    wait for a collection, but share the GIL with it);
(f) one collection (health + telemetry + pre-rendering) on the same backend: not a scrape.

Each row: p50, p95 and max over ``--scrapes`` requests after a warm-up, and the body size.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from prometheus_client.exposition import generate_latest  # noqa: E402

from sre_tools.exporter.auth import BasicAuth  # noqa: E402
from sre_tools.exporter.exposition import Exposition  # noqa: E402
from sre_tools.exporter.poller import CollectionLoop  # noqa: E402
from sre_tools.exporter.prometheus_collector import make_registry  # noqa: E402
from sre_tools.exporter.server import ExporterServer, ListenAddress  # noqa: E402
from sre_tools.health.policy import load_policy  # noqa: E402

TARGET_P50_MS = 5.0
DEFAULT_REPLAYS = (
    ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json",
    ROOT / "tests" / "exporter" / "fixtures" / "h100-2gpu-healthy.json",
)
PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
TOKEN = "bench-token-0123456789abcdef"


@dataclass
class Row:
    name: str
    runs_ms: list[float]
    size: int
    target_ms: float | None = None

    def pct(self, q: float) -> float:
        ordered = sorted(self.runs_ms)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def timed(fn: Callable[[], int], n: int, warmup: int = 20) -> tuple[list[float], int]:
    size = 0
    for _ in range(warmup):
        size = fn()
    runs = []
    for _ in range(n):
        t0 = time.perf_counter()
        size = fn()
        runs.append((time.perf_counter() - t0) * 1000)
    return runs, size


def scraper(port: int, headers: dict[str, str]) -> Callable[[], int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

    def scrape() -> int:
        conn.request("GET", "/metrics", headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"scrape failed: HTTP {resp.status}")
        return len(body)

    return scrape


def build_loop(args: argparse.Namespace) -> CollectionLoop:
    policy = load_policy(args.profile)
    if args.real:
        from sre_tools.gpu.backend import RealBackend

        return CollectionLoop(RealBackend(), policy)
    from sre_tools.gpu.backend import RecordedBackend

    replay = args.replay or next(p for p in DEFAULT_REPLAYS if p.exists())
    print(f"  replay: {replay}")
    return CollectionLoop(
        RecordedBackend.load(replay),
        policy,
        source=f"replay:{replay}",
        sysfs=Path("/nonexistent-sysfs"),
        kernel_log_lines=[],
    )


def table(rows: list[Row]) -> str:
    head = f"{'':60} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'bytes':>8}  goal"
    lines = [head, "-" * len(head)]
    for r in rows:
        goal = ""
        if r.target_ms is not None:
            ok = r.pct(0.5) <= r.target_ms
            goal = f"p50 <= {r.target_ms:g} ms: {'ok' if ok else 'MISSED'}"
        lines.append(
            f"{r.name:60} {len(r.runs_ms):5d} {r.pct(0.5):8.3f} {r.pct(0.95):8.3f} "
            f"{max(r.runs_ms):8.3f} {r.size:8d}  {goal}"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replay", type=Path, default=None, help="recording to serve")
    parser.add_argument("--real", action="store_true", help="NVML instead of a recording")
    parser.add_argument("--profile", default="generic")
    parser.add_argument("--scrapes", type=int, default=500)
    parser.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = parser.parse_args()
    print(f"sre exporter scrape benchmark: Python {platform.python_version()}, {platform.node()}")
    loop = build_loop(args)
    for _ in range(3):  # rates and counters settle
        loop.collect_once()
    snap = loop.snapshot()
    gpus = len(snap.series.get("gpu_up", ()))
    series = sum(len(rows) for rows in snap.series.values())
    print(f"  snapshot: {gpus} GPU(s), {series} series, source {loop.source}")
    n = args.scrapes
    rows: list[Row] = []

    registry = make_registry(loop.snapshot)
    runs, size = timed(lambda: len(generate_latest(registry)), n)
    rows.append(Row("(a) collect() + text exposition, in-process, uncached", runs, size))
    exposition = Exposition(registry, loop.snapshot)
    loop.listeners.append(exposition.refresh)
    loop.collect_once()
    runs, _ = timed(lambda: exposition.refresh() or 0, max(10, n // 10), warmup=2)
    rows.append(Row("(a') pre-rendering per collection (text + OpenMetrics, gzip)", runs, 0))

    server = ExporterServer(exposition, ListenAddress("127.0.0.1", 0)).start()
    try:
        runs, size = timed(scraper(server.port, {}), n)
        rows.append(Row("(b) HTTP GET /metrics, text, keep-alive", runs, size, TARGET_P50_MS))
        prom_headers = {"Accept": PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip"}
        runs, size = timed(scraper(server.port, prom_headers), n)
        rows.append(
            Row(
                "(c) HTTP GET /metrics as Prometheus (OpenMetrics, gzip)", runs, size, TARGET_P50_MS
            )
        )
        loop.interval = 0.2
        loop.start()
        try:
            runs, size = timed(scraper(server.port, prom_headers), n)
        finally:
            loop.stop()
        rows.append(
            Row("(e) as (c), collections every 200 ms meanwhile", runs, size, TARGET_P50_MS)
        )
    finally:
        server.stop()

    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    auth = BasicAuth.from_text(f"prometheus:sha256:{digest}")
    server = ExporterServer(exposition, ListenAddress("127.0.0.1", 0), auth=auth).start()
    try:
        creds = base64.b64encode(f"prometheus:{TOKEN}".encode()).decode()
        headers = {**prom_headers, "Authorization": f"Basic {creds}"}
        runs, size = timed(scraper(server.port, headers), n)
        rows.insert(4, Row("(d) as (c), with basic auth (sha256)", runs, size, TARGET_P50_MS))
    finally:
        server.stop()

    collections = max(10, n // 20)
    runs, _ = timed(lambda: loop.collect_once().collections, collections, warmup=2)
    rows.append(Row("(f) one collection + pre-rendering (not a scrape)", runs, 0))

    print()
    print(table(rows))
    missed = [r for r in rows if r.target_ms is not None and r.pct(0.5) > r.target_ms]
    print(f"\nmedian scrape {statistics.median(rows[3].runs_ms):.3f} ms (goal {TARGET_P50_MS} ms)")
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
