"""A monitoring stack on loopback for the dashboard and alerting tests.

Three ``sre exporter --replay`` nodes (a healthy H100 pair with GPU 1 in MIG mode, a pair with
ECC errors and a pending row remap, an 8-GPU HGX on the h100-sxm-8 profile whose kernel log has
an XID),
``sre reliability metrics`` over a store with incidents and a drill run, a synthetic service
whose request counters feed two SLOs (one burning fast, one slowly), and a real Prometheus
scraping them every second and evaluating the generated SLO rules and the packaged GPU rules
every second. Optionally an Alertmanager too.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sre_tools.exporter.alerts import rules_text, with_runbook_base
from sre_tools.exporter.metric_names import SCRAPE_JOB
from sre_tools.slo.loader import load_texts
from sre_tools.slo.rules import generate, write
from tests.helpers.procs import LOOPBACK, CommandError, free_port, run, wait_port
from tests.helpers.prometheus import PrometheusServer, find_binary

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK_BASE = "https://runbooks.example.test/sre"
WAIT_SECONDS = 60.0
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

HEALTHY = ROOT / "tests/exporter/fixtures/h100-2gpu-healthy.json"
# node name -> (recording, kernel-log lines or None); gpu-ok's GPU 1 is switched to MIG mode with
# two instances when the stack starts (mig_recording).
NODES: dict[str, tuple[Path, list[str] | None]] = {
    "gpu-ok": (HEALTHY, None),
    "gpu-ecc": (ROOT / "tests/exporter/fixtures/h100-2gpu-faults.json", None),
    "gpu-xid": (
        ROOT / "tests/fixtures/gpu/hgx-h100-8-synthetic.json",
        # {now}: the stack's start (dmesg -T form), so the XID is recent (GpuXidEvent fires).
        [
            "[{now}] NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, "
            "GPU has fallen off the bus."
        ],
    ),
}
FAULTY_NODE = "gpu-ecc"

# Two SLOs on the synthetic service: errors per second out of 100 requests per second.
SLO_SPEC = """
version: "prometheus/v1"
service: "api"
labels:
  team: hpc
slos:
  - name: "fast"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(sre_test_requests_total{slo="fast",code="500"}[{{.window}}]))
        total_query: sum(rate(sre_test_requests_total{slo="fast"}[{{.window}}]))
    alerting:
      name: ApiFastBurn
  - name: "slow"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(sre_test_requests_total{slo="slow",code="500"}[{{.window}}]))
        total_query: sum(rate(sre_test_requests_total{slo="slow"}[{{.window}}]))
    alerting:
      name: ApiSlowBurn
"""
# 50 % errors pages (burn 500x); 0.5 % opens only a ticket (5x: above the ticket factors 3 and 1,
# below the page factors 14.4 and 6 of a 30d period).
ERROR_SHARE = {"fast": 0.5, "slow": 0.005}
REQUESTS_PER_SECOND = 100.0


def get_json(url: str, timeout: float = 10.0) -> Any:
    with _NO_PROXY.open(url, timeout=timeout) as resp:
        return json.load(resp)


# --- small HTTP servers in the test process -----------------------------------------------------


class _Quiet(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def http_server(handler: type[BaseHTTPRequestHandler]) -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer((LOOPBACK, 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.daemon = True
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _service_handler(started: float) -> type[BaseHTTPRequestHandler]:
    class Handler(_Quiet):
        def do_GET(self) -> None:
            elapsed = time.time() - started
            lines = ["# TYPE sre_test_requests counter"]
            for slo, share in ERROR_SHARE.items():
                total = REQUESTS_PER_SECOND * elapsed
                lines.append(f'sre_test_requests_total{{slo="{slo}",code="500"}} {total * share}')
                lines.append(
                    f'sre_test_requests_total{{slo="{slo}",code="200"}} {total * (1 - share)}'
                )
            body = ("\n".join(lines) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@dataclass
class Inbox:
    """What the webhook receivers got: (path, JSON body) in arrival order."""

    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        inbox = self

        class Handler(_Quiet):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with inbox.lock:
                    inbox.received.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        return Handler

    def on(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body in self.received if p == path]

    def wait_for(self, ready: Callable[[], bool], timeout: float = WAIT_SECONDS) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.25)
        return ready()


# --- processes ----------------------------------------------------------------------------------


def _sre(*args: str) -> list[str]:
    return [sys.executable, "-m", "sre_tools.cli.main", *args]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@contextlib.contextmanager
def processes(commands: dict[str, list[str]], workdir: Path) -> Iterator[dict[str, int]]:
    """Start each ``name: argv`` (with ``{port}`` filled in) and wait for its port."""
    procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    ports: dict[str, int] = {}
    try:
        for name, argv in commands.items():
            port = free_port()
            log = workdir / f"{name}.log"
            with log.open("wb") as fh:
                proc = subprocess.Popen(
                    [a.format(port=port) for a in argv],
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=_env(),
                    cwd=workdir,
                )
            procs.append((name, proc, log))
            ports[name] = port
        for name, proc, log in procs:
            try:
                wait_port(ports[name], timeout=WAIT_SECONDS)
            except CommandError as exc:
                raise CommandError(f"{name}: {exc}\n{log.read_text()[-3000:]}") from None
            if proc.poll() is not None:
                raise CommandError(f"{name} exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        yield ports
    finally:
        for _, proc, _ in procs:
            proc.terminate()
        for _, proc, _ in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def make_store(path: Path) -> Path:
    """A store with incidents (one open, one resolved, one planned) and one recorded drill run."""
    from sre_tools.chaos.results import record_run
    from sre_tools.reliability.incidents import insert_incidents
    from sre_tools.reliability.model import Incident
    from sre_tools.store import Store
    from sre_tools.timeutil import iso

    now = int(time.time())
    with Store(path) as store:
        insert_incidents(
            store,
            [
                Incident(None, now - 7200, now - 7000, now - 3600, "gpu", "gpu-ecc", "0"),
                Incident(None, now - 600, now - 540, None, "node", "gpu-xid"),
                Incident(None, now - 90000, None, now - 86400, "fabric", "gpu-ok", planned=True),
            ],
            sha256="monitoring-stack",
            source_name="monitoring-stack",
            force=True,
        )
        start = {
            "event": "run-start",
            "run_id": "r1",
            "execute": True,
            "source": "xid-inject.yaml",
            "ts": iso(now - 3000),
        }
        record_run(
            store,
            [
                start,
                {"event": "targets-resolved", "nodes": ["gpu-xid"]},
                {
                    "event": "expectation",
                    "name": "detected",
                    "node": "gpu-xid",
                    "status": "met",
                    "met": True,
                    "measures": "detect",
                    "elapsed": 12.5,
                },
                {
                    "event": "expectation",
                    "name": "alerted",
                    "node": "gpu-xid",
                    "status": "met",
                    "met": True,
                    "measures": "alert",
                    "elapsed": 48.0,
                },
                {
                    "event": "run-end",
                    "status": "completed",
                    "ts": iso(now - 2800),
                    "recover_seconds": 95.0,
                },
            ],
        )
    return path


MIG_INSTANCES = [
    {
        "index": i,
        "name": "NVIDIA H100 80GB HBM3 MIG 3g.40gb",
        "uuid": f"MIG-aaaaaaaa-1111-2222-3333-00000000000{i}",
        "gpu_instance_id": i + 1,
        "compute_instance_id": 0,
    }
    for i in range(2)
]


def mig_recording(workdir: Path) -> Path:
    """The healthy pair with GPU 1 in MIG mode, two 3g.40gb instances."""
    data = json.loads(HEALTHY.read_text())
    readings = data["devices"][1]["readings"]
    readings["mig_mode"] = {"value": [1, 1]}
    readings["mig_devices"] = {"value": MIG_INSTANCES}
    path = workdir / "h100-2gpu-mig.json"
    path.write_text(json.dumps(data))
    return path


def prometheus_config(
    ports: dict[str, int], rule_files: list[Path], alertmanager: str | None
) -> str:
    exporters = [
        {"targets": [f"{LOOPBACK}:{ports[name]}"], "labels": {"node": name}} for name in NODES
    ]
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {"job_name": SCRAPE_JOB, "static_configs": exporters},
            {
                "job_name": "sre-reliability",
                "static_configs": [{"targets": [f"{LOOPBACK}:{ports['reliability']}"]}],
            },
            {
                "job_name": "api",
                "static_configs": [{"targets": [f"{LOOPBACK}:{ports['service']}"]}],
            },
        ],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    return json.dumps(config, indent=2)  # JSON is YAML


def rule_files(workdir: Path) -> list[Path]:
    slo_rules = workdir / "slo.rules.yml"
    with slo_rules.open("w") as fh:
        write(generate(load_texts([("api.yaml", SLO_SPEC)])), fh)
    gpu_rules = workdir / "gpu-health.rules.yml"
    gpu_rules.write_text(with_runbook_base(rules_text(), RUNBOOK_BASE))
    return [slo_rules, gpu_rules]


@dataclass
class Stack:
    prometheus: PrometheusServer
    ports: dict[str, int]

    def query(self, expr: str) -> dict[str, Any]:
        url = f"{self.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        return get_json(url)

    def wait_for(self, expr: str, timeout: float = WAIT_SECONDS) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(expr)["data"]["result"]
            if result or time.monotonic() > deadline:
                return list(result)
            time.sleep(0.5)


@contextlib.contextmanager
def monitoring_stack(workdir: Path, alertmanager: str | None = None) -> Iterator[Stack]:
    store = make_store(workdir / "store.db")
    commands: dict[str, list[str]] = {}
    for name, (recorded, kernel_log) in NODES.items():
        recording = mig_recording(workdir) if name == "gpu-ok" else recorded
        argv = _sre(
            "exporter",
            "--replay",
            str(recording),
            "--listen",
            f"{LOOPBACK}:{{port}}",
            "--interval",
            "1s",
            "--log-level",
            "warning",
        )
        if name == "gpu-xid":  # an 8-GPU HGX profile: gpu_expected_count is exported
            argv += ["--profile", "h100-sxm-8"]
        if kernel_log is not None:
            log = workdir / f"{name}.kern.log"
            now = time.strftime("%a %b %e %H:%M:%S %Y")
            log.write_text("\n".join(line.format(now=now) for line in kernel_log) + "\n")
            argv += ["--kernel-log", str(log)]
        commands[name] = argv
    commands["reliability"] = _sre(
        "reliability", "metrics", "--store", str(store), "--listen", f"{LOOPBACK}:{{port}}"
    )
    with (
        processes(commands, workdir) as started,
        http_server(_service_handler(time.time())) as service,
    ):
        ports = dict(started, service=service.server_address[1])
        config = prometheus_config(ports, rule_files(workdir), alertmanager)
        tsdb = workdir / "tsdb"
        tsdb.mkdir()
        with PrometheusServer(tsdb, workdir=workdir, config_text=config) as prom:
            stack = Stack(prom, ports)
            # Every target up, and the SLO rules have recorded once.
            up = stack.wait_for(f"count(up == 1) == {len(commands) + 1}")
            assert up, f"targets not all up:\n{stack.query('up')}\n{prom.log()}"
            yield stack


# --- Alertmanager -------------------------------------------------------------------------------


def alertmanager_binary() -> str:
    for name in ("prometheus-alertmanager", "alertmanager"):
        with contextlib.suppress(Exception):
            return find_binary(name)
    raise CommandError(
        "prometheus-alertmanager is not installed (apt-get install prometheus-alertmanager; "
        "scripts/bootstrap.sh installs it with SRE_NEED_PROMETHEUS=1)"
    )


def amtool() -> str:
    return find_binary("amtool")


@contextlib.contextmanager
def alertmanager(config: Path, workdir: Path) -> Iterator[str]:
    """Alertmanager on 127.0.0.1 (no cluster gossip); yields its URL."""
    port = free_port()
    log = workdir / "alertmanager.log"
    data = workdir / "am-data"
    data.mkdir(exist_ok=True)
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [
                alertmanager_binary(),
                f"--config.file={config}",
                f"--storage.path={data}",
                f"--web.listen-address={LOOPBACK}:{port}",
                "--cluster.listen-address=",
                "--log.level=info",
            ],
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    try:
        try:
            wait_port(port, timeout=WAIT_SECONDS)
        except CommandError as exc:
            raise CommandError(f"{exc}\n{log.read_text()[-3000:]}") from None
        yield f"{LOOPBACK}:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return run([amtool(), "check-config", str(path)], timeout=60, check=False)
