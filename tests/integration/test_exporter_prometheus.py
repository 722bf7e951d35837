"""A real Prometheus scrapes ``sre exporter --replay`` and evaluates the GPU health alert rules.

Three exporters run as subprocesses on loopback, one per recording: a healthy H100, one with
uncorrected (volatile) ECC errors, one whose GPU fell off the bus. Prometheus 2.42 scrapes them
every second (each target labelled with its ``fixture``), loads
``sre_tools/data/alerts/gpu-health.rules.yml`` and evaluates it every second. The test reads the
metrics back through ``/api/v1/query`` and waits for the alerts in ``/api/v1/alerts``: the faults
raise theirs, the healthy node raises none of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sre_tools.exporter import metric_names as c
from tests.helpers.procs import LOOPBACK, free_port
from tests.helpers.prometheus import (
    MissingBinaryError,
    PrometheusError,
    PrometheusServer,
    find_binary,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "sre_tools" / "data" / "alerts" / "gpu-health.rules.yml"
SHARED = ROOT / "tests" / "fixtures" / "gpu"
OWN = ROOT / "tests" / "exporter" / "fixtures"
DEADLINE_SECONDS = 30.0


def fixture_path(shared: str, own: str) -> Path:
    """The checks engineer's shared recording when it exists, else this suite's own."""
    path = SHARED / shared
    return path if path.exists() else OWN / own


FIXTURES = {
    "healthy": fixture_path("h100-capture.json", "h100-2gpu-healthy.json"),
    "ecc": fixture_path("faults/dbe-volatile.json", "h100-2gpu-faults.json"),
    "lost": fixture_path("faults/gpu-lost.json", "h100-2gpu-faults.json"),
}


class Exporter:
    def __init__(self, name: str, recording: Path, workdir: Path):
        self.name = name
        self.recording = recording
        self.log_path = workdir / f"exporter-{name}.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> Exporter:
        for _attempt in range(3):  # the free port may be taken before the exporter binds it
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "sre_tools.cli.main",
                        "exporter",
                        "--replay",
                        str(self.recording),
                        "--listen",
                        self.address,
                        "--interval",
                        "1s",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_ready():
                return self
            self.stop()
        raise PrometheusError(f"exporter {self.name} did not start:\n{self.log()}")

    def _wait_ready(self) -> bool:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                return False
            try:
                with opener.open(f"http://{self.address}/-/ready", timeout=1) as resp:
                    if resp.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "<no log>"

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class ScrapingPrometheus(PrometheusServer):
    """The shared helper's server, but with our scrape jobs and rule file in its config."""

    def __init__(self, config: Path, *, workdir: Path):
        workdir.joinpath("tsdb").mkdir(parents=True, exist_ok=True)
        super().__init__(workdir / "tsdb", workdir=workdir)
        self.config = config

    def _command(self, port: int, config: Path) -> list[str]:
        return super()._command(port, self.config)


def prometheus_config(exporters: list[Exporter]) -> str:
    static = [{"targets": [e.address], "labels": {"fixture": e.name}} for e in exporters]
    doc = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": c.SCRAPE_JOB, "static_configs": static}],
    }
    return json.dumps(doc, indent=2)  # JSON is YAML


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    try:
        find_binary("prometheus")
    except MissingBinaryError as exc:
        pytest.fail(str(exc), pytrace=False)
    workdir = tmp_path_factory.mktemp("exporter-prometheus")
    exporters = [Exporter(name, path, workdir) for name, path in FIXTURES.items()]
    prom: ScrapingPrometheus | None = None
    try:
        for exporter in exporters:
            exporter.start()
        config = workdir / "scrape.yml"
        config.write_text(prometheus_config(exporters))
        prom = ScrapingPrometheus(config, workdir=workdir)
        try:
            prom.start()
        except PrometheusError as exc:
            pytest.fail(f"cannot start Prometheus: {exc}", pytrace=False)
        yield {"prometheus": prom, "exporters": {e.name: e for e in exporters}}
    finally:
        if prom is not None:
            prom.stop()
        for exporter in exporters:
            exporter.stop()


def api(prom: PrometheusServer, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{prom.url}{path}{query}", timeout=5) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]


def query(prom: PrometheusServer, expr: str) -> list[tuple[dict[str, str], float]]:
    data = api(prom, "/api/v1/query", query=expr)
    return [(r["metric"], float(r["value"][1])) for r in data["result"]]


def wait_for(what: str, fn: Any, stack: dict[str, Any]) -> Any:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}\n{e.log()}" for n, e in stack["exporters"].items())
            pytest.fail(
                f"timed out waiting for {what}\n--- prometheus\n"
                f"{stack['prometheus'].log(4000)}\n{logs}"
            )
        time.sleep(0.25)


def test_prometheus_scrapes_every_exporter(stack: dict[str, Any]) -> None:
    prom = stack["prometheus"]
    up = wait_for(
        "all targets up",
        lambda: (r := query(prom, f'up{{job="{c.SCRAPE_JOB}"}} == 1')) and len(r) == 3 and r,
        stack,
    )
    assert {m["fixture"] for m, _ in up} == set(FIXTURES)


def test_metrics_read_back_through_the_http_api(stack: dict[str, Any]) -> None:
    prom = stack["prometheus"]
    temps = wait_for(
        "healthy GPU telemetry",
        lambda: query(prom, f'{c.GPU_TEMPERATURE}{{fixture="healthy"}}'),
        stack,
    )
    recording = json.loads(FIXTURES["healthy"].read_text())
    first = recording["devices"][0]["readings"]
    assert temps[0][1] == first["temperature_c"]["value"]
    assert temps[0][0]["uuid"] == first["uuid"]["value"]
    info = query(prom, f'{c.GPU_INFO}{{fixture="healthy"}}')
    assert info and info[0][0]["driver_version"] == recording["system"]["driver_version"]["value"]
    ecc = wait_for(
        "ECC counters",
        lambda: query(
            prom,
            f'{c.GPU_ECC_ERRORS}{{fixture="ecc",error_type="uncorrected",counter="volatile"}} > 0',
        ),
        stack,
    )
    assert ecc[0][1] >= 1
    lost = query(prom, f'{c.GPU_UP}{{fixture="lost"}}')
    assert lost and all(v == 0 for _, v in lost)
    assert query(prom, f'{c.EXPORTER_COLLECTION_ERRORS}{{fixture="lost",reason="device_lost"}} > 0')
    # Collections go on in the background (1s interval), independently of the scrapes.
    assert wait_for(
        "several collections",
        lambda: query(prom, f'{c.EXPORTER_COLLECTIONS}{{fixture="healthy"}} >= 3'),
        stack,
    )


def _alerts(prom: PrometheusServer) -> list[dict[str, Any]]:
    return list(api(prom, "/api/v1/alerts")["alerts"])


def test_faults_raise_their_alerts_and_the_healthy_node_none(stack: dict[str, Any]) -> None:
    prom = stack["prometheus"]

    def fault_alerts() -> list[dict[str, Any]] | None:
        alerts = _alerts(prom)
        names = {(a["labels"]["alertname"], a["labels"].get("fixture")) for a in alerts}
        wanted = {("GpuUncorrectedEccErrors", "ecc"), ("GpuLost", "lost")}
        return alerts if wanted <= names else None

    alerts = wait_for("the ECC and lost-GPU alerts", fault_alerts, stack)
    by_name = {(a["labels"]["alertname"], a["labels"].get("fixture")): a for a in alerts}
    ecc = by_name[("GpuUncorrectedEccErrors", "ecc")]
    assert ecc["state"] == "firing"  # no `for`: it fires on the first evaluation
    assert ecc["labels"]["severity"] == "critical"
    assert ecc["labels"]["uuid"].startswith("GPU-")
    assert ecc["annotations"]["runbook_url"] == "runbooks/gpu-ecc.md#uncorrected"
    assert "<no value>" not in ecc["annotations"]["description"]
    lost = by_name[("GpuLost", "lost")]
    assert lost["state"] in {"pending", "firing"}  # for: 1m
    assert lost["annotations"]["runbook_url"] == "runbooks/gpu-lost.md#lost"
    # A little longer: the healthy node must still raise nothing of its own.
    time.sleep(2)
    healthy = [a for a in _alerts(prom) if a["labels"].get("fixture") == "healthy"]
    assert healthy == [], healthy
    assert not any(
        a["labels"]["alertname"] == "GpuUncorrectedEccErrors"
        for a in _alerts(prom)
        if a["labels"].get("fixture") != "ecc"
    )
