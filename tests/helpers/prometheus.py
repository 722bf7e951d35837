"""A real Prometheus for integration tests: synthesize counters, backfill, serve on loopback.

Typical use::

    series = [CounterSeries("http_requests_total", {"code": "200"}, cumulative(start, per_minute))]
    write_openmetrics(series, tmp / "data.om")
    backfill(tmp / "data.om", tmp / "tsdb")
    with PrometheusServer(tmp / "tsdb", workdir=tmp) as prom:
        ...  # prom.url is http://127.0.0.1:<free port>

Design notes (Prometheus 2.42, the Debian package the CI installs):

- ``promtool tsdb create-blocks-from openmetrics`` cuts 2h blocks by default; 31 days of data is
  then ~370 blocks and takes tens of seconds. The (hidden) ``--max-block-duration`` flag makes it a
  couple of blocks in well under a second.
- The server runs with an empty configuration (no scrape jobs, no rules), so its head block stays
  empty: the backfilled blocks never overlap it and are served as they are. Retention is set to
  10y so that the old blocks are not deleted at start-up, and block compaction is switched off
  (min = max block duration, as Thanos sidecars do) so that no background work competes with the
  queries.
- Everything binds to 127.0.0.1 on a free port; ``/-/ready`` is polled with a deadline, and the
  server is terminated (then killed) on exit. Its log is kept in a file for failure reports.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from tests.helpers.procs import LOOPBACK, free_port

READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
# Larger than any test's data span, so promtool writes a handful of blocks instead of hundreds.
BACKFILL_BLOCK_DURATION = "744h"


class MissingBinaryError(RuntimeError):
    """``prometheus`` or ``promtool`` is not installed (the CI installs both)."""


class PrometheusError(RuntimeError):
    """promtool or the server failed; the message carries their output."""


def find_binary(name: str) -> str:
    """Absolute path of ``name`` ($PROMETHEUS_BIN / $PROMTOOL_BIN override the PATH lookup)."""
    override = os.environ.get(f"{name.upper()}_BIN")
    path = override or shutil.which(name)
    if not path or not os.access(path, os.X_OK):
        where = f"${name.upper()}_BIN={override!r}" if override else "PATH"
        raise MissingBinaryError(
            f"{name} not found on {where}: the integration tests need Prometheus and promtool "
            f"(Debian/Ubuntu: apt-get install prometheus; or set ${name.upper()}_BIN)"
        )
    return path


# --- synthetic counters -------------------------------------------------------------------------


@dataclass(frozen=True)
class CounterSeries:
    """One counter series: ``family`` without ``_total``; samples are (unix seconds, value)."""

    family: str
    labels: Mapping[str, str]
    samples: Sequence[tuple[float, float]] = field(repr=False)


def cumulative(start: int, increments: Iterable[float], step: int = 60) -> list[tuple[int, float]]:
    """Counter samples from per-step increments.

    The first sample is ``(start, 0)``; the sample at ``start + (i + 1) * step`` is the sum of
    ``increments[0..i]``. So increment ``i`` is what happened in the bucket
    ``[start + i*step, start + (i+1)*step)`` and shows up in the sample at the end of that bucket,
    which is exactly how the SQLite store keys its buckets (by their start).
    """
    out: list[tuple[int, float]] = [(start, 0.0)]
    value = 0.0
    t = start
    for inc in increments:
        if inc < 0:
            raise ValueError("counter increments must be >= 0")
        value += inc
        t += step
        out.append((t, value))
    return out


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def openmetrics_lines(series: Sequence[CounterSeries]) -> Iterator[str]:
    """OpenMetrics text: one ``# TYPE`` per family, each series contiguous, then ``# EOF``."""
    families: dict[str, list[CounterSeries]] = {}
    for s in series:
        if s.family.endswith("_total"):
            raise ValueError(f"family {s.family!r}: give the name without _total")
        families.setdefault(s.family, []).append(s)
    for family, members in families.items():
        yield f"# TYPE {family} counter"
        for s in members:
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(s.labels.items()))
            prefix = f"{family}_total{{{labels}}}" if labels else f"{family}_total"
            last = None
            for ts, value in s.samples:
                if last is not None and ts <= last:
                    raise ValueError(f"{prefix}: timestamps must increase ({ts} after {last})")
                last = ts
                yield f"{prefix} {_number(value)} {_number(ts)}"
    yield "# EOF"


def write_openmetrics(series: Sequence[CounterSeries], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for line in openmetrics_lines(series):
            fh.write(line)
            fh.write("\n")
    return path


def backfill(openmetrics: Path, out_dir: Path, *, timeout: float = 120.0) -> Path:
    """Create TSDB blocks in ``out_dir`` from an OpenMetrics file with promtool."""
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        find_binary("promtool"),
        "tsdb",
        "create-blocks-from",
        "openmetrics",
        f"--max-block-duration={BACKFILL_BLOCK_DURATION}",
        "--quiet",
        str(openmetrics),
        str(out_dir),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise PrometheusError(
            f"promtool exited {proc.returncode}: {(proc.stderr or proc.stdout).strip()[-4000:]}"
        )
    if not any(out_dir.iterdir()):
        raise PrometheusError(f"promtool wrote no blocks into {out_dir}")
    return out_dir


def backfill_series(series: Sequence[CounterSeries], workdir: Path) -> Path:
    """Write ``series`` as OpenMetrics under ``workdir`` and backfill them; return the TSDB path."""
    workdir.mkdir(parents=True, exist_ok=True)
    om = write_openmetrics(series, workdir / "series.om.txt")
    return backfill(om, workdir / "tsdb")


# --- the server ---------------------------------------------------------------------------------


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusServer:
    """``prometheus`` serving ``tsdb_path`` on 127.0.0.1:<free port> until :meth:`stop`."""

    def __init__(
        self,
        tsdb_path: Path,
        *,
        workdir: Path,
        ready_timeout: float = READY_TIMEOUT_SECONDS,
        extra_args: Sequence[str] = (),
        config_text: str | None = None,
    ):
        self.tsdb_path = tsdb_path
        # prometheus.yml's text; None: no scrape jobs and no rules (a backfilled TSDB only).
        self.config_text = config_text
        self.workdir = workdir
        self.ready_timeout = ready_timeout
        self.extra_args = tuple(extra_args)
        self.port: int | None = None
        self.log_path = workdir / "prometheus.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("Prometheus is not started")
        return f"http://{LOOPBACK}:{self.port}"

    def log(self, tail: int = 20_000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-tail:]
        except OSError:
            return "<no log>"

    def _command(self, port: int, config: Path) -> list[str]:
        return [
            find_binary("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={self.tsdb_path}",
            f"--web.listen-address={LOOPBACK}:{port}",
            "--storage.tsdb.retention.time=10y",
            # Equal min/max block durations disable compaction of the backfilled blocks.
            "--storage.tsdb.min-block-duration=2h",
            "--storage.tsdb.max-block-duration=2h",
            "--log.level=info",
            *self.extra_args,
        ]

    def start(self) -> PrometheusServer:
        config = self.workdir / "prometheus.yml"
        # No scrape jobs: the head stays empty and the backfilled blocks are all there is.
        config.write_text(
            self.config_text or "global:\n  evaluation_interval: 1m\nscrape_configs: []\n"
        )
        last_error = ""
        for _attempt in range(3):  # another process may grab the free port before Prometheus does
            port = free_port()
            with self.log_path.open("ab") as log:
                log.write(f"--- starting on {LOOPBACK}:{port}\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    self._command(port, config),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=self.workdir,
                )
            self.port = port
            try:
                self._wait_ready()
                return self
            except PrometheusError as exc:
                last_error = str(exc)
                self.stop()
                if "address already in use" not in self.log(4000):
                    break
        raise PrometheusError(f"{last_error}\n--- prometheus log ---\n{self.log()}")

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.ready_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise PrometheusError(f"prometheus exited with code {code} before it was ready")
            try:
                with _NO_PROXY.open(f"{self.url}/-/ready", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise PrometheusError(f"prometheus not ready after {self.ready_timeout:g}s")
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_TIMEOUT_SECONDS)

    def __enter__(self) -> PrometheusServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
