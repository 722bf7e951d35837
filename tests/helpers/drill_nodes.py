"""Container nodes for chaos drills end to end: SSH, systemd, a real slurmd and an exporter.

:class:`DrillSite` starts, in this order:

- a :class:`~tests.helpers.slurm.SlurmCluster` on the host (munged + slurmctld) whose nodes are
  all ``external``: defined in slurm.conf with their own ports, served by the containers;
- :class:`~tests.helpers.podman_nodes.PodmanNodes` from :func:`drill_image`, each bind-mounting
  the cluster's directory at the same path, so slurm.conf, the spool and log directories and the
  host munged's socket (``AuthInfo=socket=...``) resolve inside the container as on the host.
  Each container runs, as systemd units:

  - ``slurmd.service``: Debian's own unit, ``SLURMD_OPTIONS=-N <node>`` in /etc/default/slurmd
    and /etc/slurm/slurm.conf a link to the host cluster's file (also what ``sinfo`` and
    ``scontrol`` read inside the container, as on a real node). The container's own
    ``munge.service`` is masked: every daemon and command authenticates through the host's
    munged, as one cluster shares one key;
  - ``sre-exporter.service``: ``sre exporter --replay`` of a recorded H100 with
    ``--kernel-log`` :data:`KERNEL_LOG` (a file: a container's ``/dev/kmsg`` is the host's kernel
    log, never written by tests), on its own loopback port (``--network host``);
  - ``nvidia-fabricmanager.service``: a STAND-IN (``sleep infinity``) under the real unit's name.
    The real daemon needs NVSwitch hardware; drills that stop and start the unit act on systemd
    exactly as on a node, but nothing behind it is a fabric manager.

- a :class:`~tests.helpers.prometheus.PrometheusServer` scraping every container's exporter
  (job ``sre-gpu-exporter``, 1 s scrape and evaluation) with the product's alert rules, ``for:``
  durations of a minute or more shortened (:func:`test_rules`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from sre_tools.transport import Transport
from sre_tools.transport.inventory import transport_for_host
from tests.helpers.podman import PODMAN
from tests.helpers.podman_nodes import (
    ROOT,
    SRE_VENV,
    PodmanNodes,
    _build_layer,
    _prune,
    _sre_layer,
    node_image,
)
from tests.helpers.procs import file_lock, free_ports, run, wait_port
from tests.helpers.prometheus import PrometheusServer
from tests.helpers.slurm import SlurmCluster
from tests.helpers.sshd_node import Node

DRILL_IMAGE_REPO = "localhost/sre-debian12-drillnode"
DRILL_PACKAGES = ["slurmd", "slurm-client", "munge"]
KERNEL_LOG = "/var/log/sre-drill-kern.log"
RECORDING = "/opt/sre-drill/h100-capture.json"
RECORDING_SRC = ROOT / "tests" / "fixtures" / "gpu" / "h100-capture.json"
# A synthetic HGX H100 8-GPU board (NVSwitch fabric registered), for the health checks of
# fabricmanager-stop: the single passthrough H100 above has no fabric to read.
HGX_RECORDING = "/opt/sre-drill/hgx-h100-8.json"
HGX_RECORDING_SRC = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"
HGX_PROFILE = "h100-sxm-8"
PROFILE = "h100"
# The recorded H100's bus id in the kernel log's spelling (its NVML bus id is 00000000:00:06.0).
RECORDING_PCI = "0000:00:06"
EXPORTER_JOB = "sre-gpu-exporter"
SCRAPE_SECONDS = 1
EVALUATION_SECONDS = 1
# slurmctld pings every SlurmdTimeout/3 s and marks a silent node DOWN after SlurmdTimeout.
SLURMD_TIMEOUT = 10
RULES_SRC = ROOT / "sre_tools" / "data" / "alerts" / "gpu-health.rules.yml"

EXPORTER_UNIT = f"""[Unit]
Description=sre exporter for chaos drills (a recorded H100; kernel log from {KERNEL_LOG})
After=network.target

[Service]
EnvironmentFile=/etc/default/sre-exporter
ExecStart={SRE_VENV}/bin/sre exporter --replay {RECORDING} --profile {PROFILE} \\
    --kernel-log {KERNEL_LOG} --interval 1s --listen ${{SRE_EXPORTER_LISTEN}}
Restart=on-failure
RestartSec=1

[Install]
WantedBy=multi-user.target
"""

FABRICMANAGER_STANDIN_UNIT = """[Unit]
Description=STAND-IN for nvidia-fabricmanager in drill tests (the real one needs NVSwitches)

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""

UNITS = "/etc/systemd/system"
DRILL_STEPS = [
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "--no-install-recommends", *DRILL_PACKAGES],
    # One munged for the whole cluster: the host's (its socket comes in with the bind mount).
    ["systemctl", "mask", "munge.service"],
    ["systemctl", "disable", "slurmd.service"],
    ["install", "-D", "-m", "644", "/root/exporter.service", f"{UNITS}/sre-exporter.service"],
    ["install", "-D", "-m", "644", "/root/fm.service", f"{UNITS}/nvidia-fabricmanager.service"],
    ["install", "-D", "-m", "644", "/root/recording.json", RECORDING],
    ["install", "-D", "-m", "644", "/root/hgx.json", HGX_RECORDING],
    ["sh", "-c", f"rm -f /root/*.service /root/*.json && touch {KERNEL_LOG}"],
    ["apt-get", "clean"],
    ["sh", "-c", "rm -rf /var/lib/apt/lists/*"],
]  # fmt: skip


def drill_image(workdir: Path) -> str:
    """:func:`node_image` + Slurm's node packages, munge and the drill units (tagged by the
    recipe, built once, about a minute), then this checkout's sre-tools wheel on top (tagged by
    the source hash, like :func:`tests.helpers.podman_nodes.sre_node_image`). The packages sit
    below the wheel so that a code change rebuilds only the wheel's layer."""
    base = node_image()
    recording = RECORDING_SRC.read_bytes() + HGX_RECORDING_SRC.read_bytes()
    recipe = repr([base, DRILL_STEPS, EXPORTER_UNIT, FABRICMANAGER_STANDIN_UNIT])
    digest = hashlib.sha256(recipe.encode() + recording).hexdigest()[:12]
    tag = f"{DRILL_IMAGE_REPO}-base:{digest}"
    with file_lock("sre-debian12-drillnode"):
        if subprocess.run(["podman", "image", "exists", tag], check=False).returncode != 0:
            files = Path(tempfile.mkdtemp(prefix="sre-drill-image-", dir=workdir))
            (files / "exporter.service").write_text(EXPORTER_UNIT)
            (files / "fm.service").write_text(FABRICMANAGER_STANDIN_UNIT)
            copies = {
                str(files / "exporter.service"): "/root/exporter.service",
                str(files / "fm.service"): "/root/fm.service",
                str(RECORDING_SRC): "/root/recording.json",
                str(HGX_RECORDING_SRC): "/root/hgx.json",
            }
            _build_layer(base, tag, DRILL_STEPS, copies)
            shutil.rmtree(files, ignore_errors=True)
            _prune(f"{DRILL_IMAGE_REPO}-base", tag)
    return _sre_layer(workdir, tag, DRILL_IMAGE_REPO)


def test_rules(text: str) -> str:
    """The product's rules with every ``for:`` of a minute or more cut to 5 s (``for: 10m`` on
    GpuExporterDown would make a test wait ten minutes); expressions and labels unchanged."""
    return re.sub(r"(\n\s+for: )\d+[mh]\n", r"\g<1>5s\n", text)


class DrillSite:
    """Slurm on the host, ``count`` container nodes serving it, one Prometheus; a context
    manager that always cleans up. With ``monitoring=False`` only Slurm and the nodes (no
    exporter unit started, no Prometheus, no remediation loop): for tests whose own automation
    drains and resumes (tests/chaos_e2e/test_acceptance_e2e.py)."""

    def __init__(
        self, workdir: Path, count: int = 2, host_prefix: str = "drill", *, monitoring: bool = True
    ):
        self.workdir = workdir
        self.monitoring = monitoring
        self.names = [f"{host_prefix}{i + 1}" for i in range(count)]
        self.cluster = SlurmCluster(
            [],
            external=self.names,
            partitions={"gpu": self.names},
            slurmd_timeout=SLURMD_TIMEOUT,
        )
        self.nodes: PodmanNodes | None = None
        self.prometheus: PrometheusServer | None = None
        self.remediation: RemediationLoop | None = None
        self.exporter_ports: dict[str, int] = {}
        self.inventory_path = workdir / "inventory.yml"

    # --- life cycle ------------------------------------------------------------------------

    def __enter__(self) -> DrillSite:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        image = drill_image(self.workdir)
        self.cluster.start()
        shared = str(self.cluster.workdir)
        self.nodes = PodmanNodes(
            len(self.names),
            self.workdir / "nodes",
            prefix="sre-drill-",
            image=image,
            host_prefix=self.names[0].rstrip("0123456789"),
            run_args=["-v", f"{shared}:{shared}"],
        )
        self.nodes.start()
        ports = free_ports(len(self.names))
        for node, port in zip(self.nodes.nodes, ports, strict=True):
            self.exporter_ports[node.host] = port
            self._configure(node, port)
        self.cluster.wait_idle(nodes=self.names)
        # chaos_targets: the drills' allowlist; UserKnownHostsFile in the SSH arguments: the
        # known_hosts the product's transport verifies host keys against.
        self.nodes.inventory(self.inventory_path, group="chaos_targets")
        if not self.monitoring:
            return
        for port in ports:
            wait_port(port, timeout=60)
        self.prometheus = PrometheusServer(
            self.workdir / "tsdb", workdir=self.workdir, config_text=self._prometheus_config()
        )
        self.prometheus.start()
        self.wait_for(lambda: self.targets_up() == len(self.names), 30, "scrape targets up")
        self.remediation = RemediationLoop(self)
        self.remediation.start()

    def _configure(self, node: Node, port: int) -> None:
        """The node's own slurmd name, exporter port and recording (the recorded host renamed
        to the node, so reports and the exporter speak for the node Slurm knows)."""
        assert self.nodes is not None
        recording = json.loads(RECORDING_SRC.read_text())
        recording["host"] = node.host
        local = self.workdir / f"recording-{node.host}.json"
        local.write_text(json.dumps(recording))
        run([*PODMAN, "cp", str(local), f"{node.name}:{RECORDING}"])
        # Files copied in and argv commands: no shell line built from names and paths.
        defaults = {
            "/etc/default/slurmd": f'SLURMD_OPTIONS="-N {node.host}"\n',
            "/etc/default/sre-exporter": f"SRE_EXPORTER_LISTEN=127.0.0.1:{port}\n",
        }
        for target, text in defaults.items():
            local = self.workdir / f"{node.host}-{Path(target).name}"
            local.write_text(text)
            run([*PODMAN, "cp", str(local), f"{node.name}:{target}"])
        self.nodes.exec(node, "mkdir", "-p", "/etc/slurm")
        self.nodes.exec(node, "ln", "-sf", str(self.cluster.conf), "/etc/slurm/slurm.conf")
        units = ["slurmd.service", "nvidia-fabricmanager.service"]
        units += ["sre-exporter.service"] if self.monitoring else []
        self.nodes.exec(node, "systemctl", "enable", "--now", *units)

    def _prometheus_config(self) -> str:
        rules = self.workdir / "gpu-health.test-rules.yml"
        rules.write_text(test_rules(RULES_SRC.read_text()))
        config = {
            "global": {
                "scrape_interval": f"{SCRAPE_SECONDS}s",
                "scrape_timeout": f"{SCRAPE_SECONDS}s",
                "evaluation_interval": f"{EVALUATION_SECONDS}s",
            },
            "rule_files": [str(rules)],
            "scrape_configs": [
                {
                    "job_name": EXPORTER_JOB,
                    "static_configs": [
                        {"targets": [f"127.0.0.1:{port}"], "labels": {"node": name}}
                        for name, port in self.exporter_ports.items()
                    ],
                }
            ],
        }
        return yaml.safe_dump(config, sort_keys=False)

    def stop(self) -> None:
        if self.remediation is not None:
            self.remediation.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        if self.nodes is not None:
            self.nodes.stop()
        self.cluster.stop()

    # --- access ----------------------------------------------------------------------------

    def node(self, host: str) -> Node:
        assert self.nodes is not None
        return next(n for n in self.nodes.nodes if n.host == host)

    def exec(self, host: str, *argv: str, check: bool = True) -> str:
        """``podman exec`` on the node: the test's own look, not the product's path."""
        proc = run([*PODMAN, "exec", self.node(host).name, *argv], check=check, timeout=60)
        return proc.stdout

    def hostvars(self, host: str) -> dict[str, Any]:
        data = yaml.safe_load(self.inventory_path.read_text())
        hostvars = dict(data["all"]["vars"])
        hostvars.update(data["all"]["children"]["chaos_targets"]["hosts"][host])
        return hostvars

    def transport(self, host: str, known_hosts: Path | None = None) -> Transport:
        """The product's SSH transport for ``host`` from the inventory, host key verified
        against the site's known_hosts (or ``known_hosts``)."""
        assert self.nodes is not None
        return transport_for_host(
            host, self.hostvars(host), known_hosts=known_hosts or self.nodes.known_hosts
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        assert self.prometheus is not None
        url = f"{self.prometheus.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url, timeout=5) as resp:
            body = json.load(resp)
        return list(body["data"]["result"])

    def targets_up(self) -> int:
        return sum(1 for r in self.query(f'up{{job="{EXPORTER_JOB}"}} == 1'))

    def firing(self, alert: str, node: str) -> bool:
        q = f'ALERTS{{alertname="{alert}",alertstate="firing",node="{node}"}}'
        return bool(self.query(q))

    @staticmethod
    def wait_for(predicate: Any, timeout: float, what: str, poll: float = 0.5) -> float:
        """Seconds until ``predicate()`` is true; AssertionError naming ``what`` after
        ``timeout``."""
        start = time.monotonic()
        while True:
            if predicate():
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise AssertionError(f"{what}: not within {timeout:g}s")
            time.sleep(poll)


def new_token() -> str:
    return secrets.token_hex(3)


def unit_active(site: DrillSite, host: str, unit: str) -> str:
    return site.exec(host, "systemctl", "is-active", unit, check=False).strip()


def journal(site: DrillSite, host: str, units: Sequence[str]) -> str:
    args = [a for u in units for a in ("-u", u)]
    return site.exec(host, "journalctl", "--no-pager", "-n", "40", *args, check=False)


# The remediation engine's configuration for the site: the product's defaults (budget, 1 h
# cooldown, the `sre:` reason prefix) except max_actions_per_drain: 0, so that after the drain the
# node stays drained for a person. XID 79 asks for a reboot, and nothing in a test reboots
# anything. FAKE_SSH (first on the engine's PATH) records and refuses any node-side command the
# engine would send, so a test can see that none was. The drain is what the drills expect.
REMEDIATION_CONFIG = "remediation:\n  max_actions_per_drain: 0\n"
FAKE_SSH = """#!/bin/sh
# Test stand-in for the remediation engine's node-side channel: record, refuse.
printf '%s\\n' "$*" >> "$(dirname "$0")/ssh-calls.log"
echo "node-side actions are refused in drill tests" >&2
exit 255
"""


class RemediationLoop:
    """What the Salt reactor does on a site (salt/reactor/gpu_health.sls -> orch.gpu_remediate),
    as a thread: every ``interval`` seconds, for each node, ``sre health --json`` on the node
    through the product's SSH transport, then ``sre remediation decide --report - --execute`` on
    the controller (this host, ``SLURM_CONF`` pointing at the site's cluster) for a report that
    is not OK. It never resumes: a drill's own rollback does (xid-inject's resume_if_healthy).
    ``events`` records each decision with its time, for the drills' time-to-drain."""

    def __init__(self, site: DrillSite, interval: float = 2.0):
        self.site = site
        self.interval = interval
        self.state = site.workdir / "remediation.db"
        self.audit = site.workdir / "remediation-audit.jsonl"
        self.config = site.workdir / "remediation.yml"
        self.config.write_text(REMEDIATION_CONFIG)
        self.bin = site.workdir / "remediation-bin"
        self.bin.mkdir(exist_ok=True)
        (self.bin / "ssh").write_text(FAKE_SSH)
        (self.bin / "ssh").chmod(0o755)
        self.ssh_calls = self.bin / "ssh-calls.log"
        self.drains: dict[str, list[float]] = {}
        self.events: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def health_argv(self) -> list[str]:
        return [
            f"{SRE_VENV}/bin/sre", "health", "--json", "--kernel-log", KERNEL_LOG,
            "--replay", RECORDING, "--profile", PROFILE,
        ]  # fmt: skip

    def remediation_argv(self, *args: str) -> list[str]:
        sre = str(Path(sys.executable).with_name("sre"))
        return [
            sre, "remediation", *args, "--config", str(self.config),
            "--state", str(self.state), "--audit", str(self.audit),
        ]  # fmt: skip

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="remediation-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)

    def _run(self) -> None:
        transports = {host: self.site.transport(host) for host in self.site.names}
        try:
            while not self._stop.is_set():
                for host, transport in transports.items():
                    try:
                        self.cycle(host, transport)
                    except Exception as exc:  # keep reacting; the test reads the errors
                        self.errors.append(f"{host}: {exc}")
                self._stop.wait(self.interval)
        finally:
            for transport in transports.values():
                transport.close()

    def cycle(self, host: str, transport: Transport) -> None:
        result = transport.run(self.health_argv(), 60)
        if result.rc == 0:  # OK: nothing for the engine
            return
        proc = subprocess.run(
            [*self.remediation_argv("decide", "--report", "-", "--node", host,
                                    "--source", "drill-site-reactor", "--execute", "--json")],
            input=result.stdout,
            capture_output=True,
            timeout=60,
            env={
                **os.environ,
                **self.site.cluster.env,
                "PATH": f"{self.bin}:{os.environ.get('PATH', '')}",
            },
            check=False,
        )  # fmt: skip
        try:
            decision = json.loads(proc.stdout or b"{}")
        except ValueError:
            decision = {"error": proc.stderr.decode(errors="replace")[-500:]}
        at = time.time()
        decision.update(at=at, host=host, rc=proc.returncode)
        self.events.append(decision)
        reason = self.site.cluster.drain_reasons().get(host, "")
        if reason.startswith("sre:") and not reason.startswith("sre:drill"):
            self.drains.setdefault(host, []).append(at)

    def drained_at(self, host: str, since: float) -> float | None:
        """When this loop first saw ``host`` drained by the engine (an ``sre:`` reason that is
        not a drill's) after one of its decisions, at or after ``since``."""
        return next((t for t in self.drains.get(host, []) if t >= since), None)
