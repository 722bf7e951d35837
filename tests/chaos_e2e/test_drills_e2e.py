"""The drill catalog end to end on container nodes reached over SSH (tests/helpers/drill_nodes.py):

- two podman containers with systemd, each with its own sshd (host keys verified), Debian's
  ``slurmd`` registered with a real slurmctld + munged on the host, ``sre-exporter.service``
  replaying a recorded H100 with ``--kernel-log /var/log/sre-drill-kern.log`` (a file: a
  container's /dev/kmsg is the host's kernel log, and nothing here writes there), and a STAND-IN
  ``nvidia-fabricmanager.service`` (``sleep infinity``: the real daemon needs NVSwitches);
- one Prometheus on the host scraping both exporters every second with the product's alert rules,
  ``for:`` durations of a minute or more cut to 5 s for the test (GpuExporterDown's ``for: 10m``
  would make a test wait ten minutes); everything else is the shipped file;
- the site's automation that drains (what the Salt reactor does): a loop that runs ``sre health
  --json`` on each node over SSH and ``sre remediation decide --execute`` on the controller, the
  product's guardrails and ``sre:`` reason, taking no node-side action after the drain.

Every drill runs through the CLI as an operator would, ``sre drill run NAME --inventory INV``
(targets, allowlist and SSH transports from the Ansible inventory), once as a dry run (nothing
on the node changes) and once with ``--execute``. One site per module: it starts once (about 15 s
with the images cached), and the tests run in order on it.
"""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sre_tools.chaos import catalog
from sre_tools.chaos.journal import read_events
from sre_tools.health.xid.model import drill_run_of, parse_drill_acks
from sre_tools.transport import TransportError
from tests.helpers.drill_nodes import (
    HGX_PROFILE,
    HGX_RECORDING,
    KERNEL_LOG,
    PROFILE,
    RECORDING,
    RECORDING_PCI,
    DrillSite,
    journal,
    unit_active,
)
from tests.helpers.podman_nodes import SRE_VENV

# One process runs the whole module (scripts/test.sh: its own step, no xdist): one site.
pytestmark = pytest.mark.molecule

SRE = str(Path(sys.executable).with_name("sre"))
NODE = "drill1"
OTHER = "drill2"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DrillSite]:
    with DrillSite(tmp_path_factory.mktemp("drill-site")) as s:
        yield s


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The controller's drill store and journals for one test."""
    (tmp_path / "journals").mkdir()
    return tmp_path


def drill_vars(site: DrillSite, name: str, host: str) -> list[str]:
    """``--var`` values for this site, only those the drill's configuration has."""
    assert site.prometheus is not None
    values: dict[str, Any] = {
        "sre": f"{SRE_VENV}/bin/sre",
        "health_profile": PROFILE,
        "health_replay": RECORDING,
        "kernel_log": KERNEL_LOG,
        "prometheus_url": site.prometheus.url,
        "exporter_url": f"http://127.0.0.1:{site.exporter_ports[host]}/metrics",
        "alert_node_label": "node",
    }
    known = catalog.resolve(name)[1].configuration
    return [arg for k, v in values.items() if k in known for arg in ("--var", f"{k}={v}")]


def drill_argv(
    site: DrillSite, home: Path, name: str, host: str, *, execute: bool, extra: tuple[str, ...] = ()
) -> list[str]:
    assert site.remediation is not None
    return [
        SRE, "drill", "run", name, "--inventory", str(site.inventory_path), "--targets", host,
        "--json", "--store", str(home / "store.db"), "--journal-dir", str(home / "journals"),
        "--remediation-state", str(site.remediation.state),
        "--remediation-config", str(site.remediation.config),
        "--reason", "drill e2e test", *drill_vars(site, name, host),
        *(["--execute"] if execute else []), *extra,
    ]  # fmt: skip


class Run:
    def __init__(self, proc: subprocess.CompletedProcess[str], seconds: float):
        self.rc = proc.returncode
        self.stderr = proc.stderr
        self.seconds = seconds
        try:
            self.data: dict[str, Any] = json.loads(proc.stdout)
        except ValueError:
            self.data = {}
        path = self.data.get("journal")
        self.events = read_events(Path(path)) if path else []

    def __repr__(self) -> str:
        return f"rc={self.rc} data={self.data} stderr={self.stderr[-2000:]}"

    def of(self, event: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == event]

    def expectation(self, name: str) -> dict[str, Any]:
        found = [e for e in self.of("expectation") if e["name"] == name]
        assert found, f"no expectation {name} in the journal: {self}"
        return found[-1]


def run_drill(
    site: DrillSite,
    home: Path,
    name: str,
    host: str = NODE,
    *,
    execute: bool,
    extra: tuple[str, ...] = (),
    timeout: float = 300,
) -> Run:
    start = time.monotonic()
    proc = subprocess.run(
        drill_argv(site, home, name, host, execute=execute, extra=extra),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Run(proc, time.monotonic() - start)


def node_snapshot(site: DrillSite, host: str) -> dict[str, str]:
    """What a drill could change on the node, read by the test itself (podman exec, sinfo)."""
    log = site.exec(host, "cat", KERNEL_LOG)
    state = {
        "kernel_log": hashlib.sha256(log.encode()).hexdigest(),
        "slurm": site.cluster.settled_states().get(host, "?"),
        "reason": site.cluster.drain_reasons().get(host, ""),
    }
    for unit in ("slurmd.service", "sre-exporter.service", "nvidia-fabricmanager.service"):
        state[unit] = unit_active(site, host, unit)
    return state


def healthy(site: DrillSite, host: str) -> None:
    """The node as every test starts and must leave it: units up, idle in Slurm, no drill lines,
    its exporter scraped."""
    snap = node_snapshot(site, host)
    assert snap["slurm"] == "idle", snap
    assert snap["reason"] == "", snap
    for unit in ("slurmd.service", "sre-exporter.service", "nvidia-fabricmanager.service"):
        assert snap[unit] == "active", (snap, journal(site, host, [unit]))
    # Drill lines stay in the log (it is never edited); every one's run is acknowledged.
    runs = {drill_run_of(line) for line in site.exec(host, "cat", KERNEL_LOG).splitlines()}
    acks = site.exec(host, "cat", "/var/lib/sre-tools/drill-acks", check=False)
    assert runs - {None} <= parse_drill_acks(acks.encode()), (runs, acks)


CATALOG = sorted(catalog.names())


@pytest.mark.parametrize("name", CATALOG)
def test_dry_run_touches_nothing_on_the_node(site: DrillSite, home: Path, name: str) -> None:
    healthy(site, NODE)
    before = node_snapshot(site, NODE)
    run = run_drill(site, home, name, execute=False)
    assert run.rc == 0, run
    assert run.data["status"] == "dry-run"
    ends = run.of("action-end") + run.of("rollback-end")
    assert ends, run
    assert {e["status"] for e in ends} == {"skipped"}
    assert run.of("probe-result") == []  # not even a probe ran
    assert node_snapshot(site, NODE) == before


def test_xid_inject_is_seen_alerted_drained_and_undone(site: DrillSite, home: Path) -> None:
    healthy(site, NODE)
    assert site.remediation is not None
    started = time.time()
    run = run_drill(site, home, "xid-inject", execute=True)
    assert run.rc == 0, run
    assert run.data["status"] == "passed", run
    # The GPU's address was resolved on the node (its `sre health`: the recording's GPU 0).
    (inject,) = [e for e in run.of("action-end") if e["name"] == "inject-xid"]
    assert f"NVRM: Xid (PCI:{RECORDING_PCI}): 79, " in inject["output"], inject
    # The rollback acknowledged the run where the node's health engine reads acknowledgments.
    acks = site.exec(NODE, "cat", "/var/lib/sre-tools/drill-acks")
    assert run.data["run_id"] in acks.split(), acks
    for name in (
        "xid-line-in-kernel-log",
        "health-xid-finding",
        "exporter-xid-counter",
        "gpu-xid-alert-firing",
        "drained-by-remediation",
    ):
        assert run.expectation(name)["met"] is True, (name, run)
    # The drain came from the remediation engine (the site loop's decision, its audit), with
    # the engine's own `sre:` reason, and the drill's rollback resumed exactly that drain.
    drained = site.remediation.drained_at(NODE, started)
    assert drained is not None, (site.remediation.events[-5:], site.remediation.errors[-5:])
    audit = [json.loads(x) for x in site.remediation.audit.read_text().splitlines()]
    ours = [a for a in audit if a.get("node") == NODE and a.get("source") == "drill-site-reactor"]
    assert ours and "XID 79" in ours[0]["reason"], audit
    resumed = [e for e in run.of("rollback-end") if e["name"] == "resume-if-healthy"]
    assert resumed and "reason was 'sre: reboot" in resumed[0]["output"], resumed
    # max_actions_per_drain: 0: the engine drained and tried no node-side action at all (FAKE_SSH
    # would have recorded any), and said the node stays drained for a person.
    calls = site.remediation.ssh_calls
    assert not calls.exists() or calls.read_text() == "", calls.read_text()
    assert any(a.get("code") == "attempts_exhausted" for a in ours), ours
    assert site.remediation.errors == []
    # Rollback: the drill's lines gone, the node resumed, and the other node never touched.
    assert run.data["rollbacks_ok"] is True and run.data["restored"] is True, run
    healthy(site, NODE)
    healthy(site, OTHER)


def test_node_drain_drains_and_resumes(site: DrillSite, home: Path) -> None:
    healthy(site, NODE)
    run = run_drill(site, home, "node-drain", execute=True)
    assert run.rc == 0, run
    assert run.data["status"] == "passed", run
    assert run.expectation("node-drained")["met"] is True
    healthy(site, NODE)


def test_exporter_down_fires_the_alert_and_rollback_resolves_it(
    site: DrillSite, home: Path
) -> None:
    healthy(site, NODE)
    run = run_drill(site, home, "exporter-down", execute=True)
    assert run.rc == 0, run
    assert run.data["status"] == "passed", run
    assert run.expectation("exporter-unit-stopped")["met"] is True
    assert run.expectation("exporter-down-alert-firing")["met"] is True
    assert not site.firing("GpuExporterDown", NODE)  # the rollback waited for it to resolve
    healthy(site, NODE)
    site.wait_for(lambda: site.targets_up() == 2, 30, "both exporters scraped again")


def test_slurmd_kill_makes_the_node_not_responding_and_rollback_restores_it(
    site: DrillSite, home: Path
) -> None:
    healthy(site, NODE)
    run = run_drill(site, home, "slurmd-kill", execute=True)
    assert run.rc == 0, run
    assert run.data["status"] == "passed", run
    assert run.expectation("node-not-responding")["met"] is True
    healthy(site, NODE)


def test_fabricmanager_stop_is_seen_by_the_health_engine(site: DrillSite, home: Path) -> None:
    """The unit is a STAND-IN (``sleep infinity`` under the real name: the real fabric manager
    needs NVSwitches) and the GPUs are a synthetic HGX H100 recording whose fabric stays
    registered, as GPUs may after the daemon exits. What is real: systemd stops and starts the
    unit, and the node's ``sre health --systemctl systemctl`` (its fabric.manager check) reads the
    unit's state from systemd and says crit + restart_fabric_manager, then ok after the rollback.
    Before that check existed this drill ended in a detection gap (exit 3)."""
    healthy(site, NODE)
    argv = drill_argv(site, home, "fabricmanager-stop", NODE, execute=True)
    replay = argv.index(f"health_replay={RECORDING}")
    argv[replay] = f"health_replay={HGX_RECORDING}"
    argv[argv.index(f"health_profile={PROFILE}")] = f"health_profile={HGX_PROFILE}"
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    run = Run(proc, time.monotonic() - start)
    assert run.rc == 0, run
    assert run.data["status"] == "passed", run
    assert run.expectation("fabricmanager-stopped")["met"] is True
    assert run.expectation("health-fabric-finding")["met"] is True
    assert run.data["rollbacks_ok"] is True and run.data["restored"] is True, run
    healthy(site, NODE)


def test_dcgm_inject_does_not_apply_without_dcgmi(site: DrillSite, home: Path) -> None:
    """NOT an end-to-end run of the DCGM fault: the nodes have no dcgmi (NVIDIA's DCGM cannot
    be installed here, and it needs a GPU). What runs for real: the catalog's requirement check
    over SSH names the missing command, and ``--execute`` is ``skipped`` with that reason (exit
    0): nothing injected, not even the steady state probed."""
    exp = catalog.resolve("dcgm-inject")[1]
    transports: list[Any] = []

    def transport_for(host: str) -> Any:
        transports.append(site.transport(host))
        return transports[-1]

    try:
        reason = catalog.skip_reason(exp, [NODE], transport_for, "test", exp.configuration)
    finally:
        for t in transports:
            t.close()
    assert reason is not None and "dcgmi" in reason and "not installed" in reason
    before = node_snapshot(site, NODE)
    run = run_drill(site, home, "dcgm-inject", execute=True)
    assert (run.rc, run.data.get("status")) == (0, "skipped"), run
    assert run.data["details"] == [reason], run
    assert run.of("action-start") == []
    assert node_snapshot(site, NODE) == before


def test_sigterm_during_a_run_rolls_back(site: DrillSite, home: Path) -> None:
    """SIGTERM to a running ``sre drill run`` while it waits on an expectation: the rollback
    resumes the node before the process exits 4."""
    healthy(site, NODE)
    # An expectation that never holds keeps the run waiting with the node drained.
    drill = home / "never-drained.yaml"
    text = catalog.path_of("node-drain").read_text()
    drill.write_text(text.replace('pattern: "^(drain|drained|draining)"', 'pattern: "^never$"'))
    assert drill.read_text() != text
    argv = drill_argv(site, home, "node-drain", NODE, execute=True)
    argv[3] = str(drill)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        site.wait_for(
            lambda: site.cluster.node_states().get(NODE, "").startswith("drain"), 60, "drained"
        )
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 4, (out, err)
    assert json.loads(out)["status"] == "interrupted"
    healthy(site, NODE)


def test_recover_after_sigkill_undoes_the_fault(site: DrillSite, home: Path) -> None:
    healthy(site, NODE)
    drill = home / "never-drained.yaml"
    text = catalog.path_of("node-drain").read_text()
    drill.write_text(text.replace('pattern: "^(drain|drained|draining)"', 'pattern: "^never$"'))
    argv = drill_argv(site, home, "node-drain", NODE, execute=True)
    argv[3] = str(drill)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        site.wait_for(
            lambda: site.cluster.node_states().get(NODE, "").startswith("drain"), 60, "drained"
        )
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert site.cluster.drain_reasons()[NODE].startswith("sre:drill")  # left behind
    journals = list((home / "journals").glob("*.jsonl"))
    assert len(journals) == 1
    run_id = journals[0].stem
    out = subprocess.run(
        [SRE, "drill", "recover", run_id, "--json", "--store", str(home / "store.db"),
         "--journal-dir", str(home / "journals"),
         "--inventory", str(site.inventory_path)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out
    assert json.loads(out.stdout)["rollbacks_ok"] is True
    healthy(site, NODE)


def test_a_node_outside_chaos_targets_is_refused(site: DrillSite, home: Path) -> None:
    """Only the inventory's chaos_targets group may be touched: an inventory without drill2 in
    it refuses drill2 (exit 2) before anything runs."""
    import yaml

    data = yaml.safe_load(site.inventory_path.read_text())
    hosts = data["all"]["children"]["chaos_targets"]["hosts"]
    data["all"]["children"] = {
        "chaos_targets": {"hosts": {NODE: hosts[NODE]}},
        "gpu_nodes": {"hosts": {OTHER: hosts[OTHER]}},
    }
    inventory = home / "narrow.yml"
    inventory.write_text(yaml.safe_dump(data))
    before = node_snapshot(site, OTHER)
    argv = drill_argv(site, home, "node-drain", OTHER, execute=True)
    argv[argv.index("--inventory") + 1] = str(inventory)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc
    assert OTHER in proc.stderr
    assert list((home / "journals").glob("*.jsonl")) == []
    assert node_snapshot(site, OTHER) == before


def test_an_unknown_host_key_is_refused(site: DrillSite, home: Path) -> None:
    """A known_hosts that holds another key for the node's address: the SSH transport refuses
    the connection, and a drill run through it acts on nothing."""
    assert site.nodes is not None
    stranger = home / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    port = site.node(NODE).port
    wrong = home / "known_hosts"
    pub = " ".join(stranger.with_name("stranger.pub").read_text().split()[:2])
    wrong.write_text(f"[127.0.0.1]:{port} {pub}\n")
    transport = site.transport(NODE, known_hosts=wrong)
    with pytest.raises(TransportError):
        transport.run(["true"], 10)
    transport.close()
    before = node_snapshot(site, NODE)
    run = run_drill(site, home, "node-drain", execute=True, extra=("--known-hosts", str(wrong)))
    assert run.rc == 1, run
    assert "refusing to connect" in run.stderr, run
    assert node_snapshot(site, NODE) == before
