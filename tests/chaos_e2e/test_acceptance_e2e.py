"""acceptance.yml end to end: ``ansible-playbook playbooks/acceptance.yml`` against container
nodes over SSH, with real Slurm (tests/helpers/drill_nodes.py, ``DrillSite(monitoring=False)``):

- three podman containers with systemd, reached over SSH with verified host keys (the
  inventory's ``UserKnownHostsFile``, ``StrictHostKeyChecking=yes``), each running Debian's
  ``slurmd`` registered with a real slurmctld + munged on the host, and this checkout's ``sre``
  in the node's venv (``/opt/sre-tools/venv``, where the playbook looks for it);
- the remediation controller is this machine (inventory group ``slurm_controller``, local
  connection): ``sre remediation drain|resume|annotate --execute`` with the product's guardrails,
  ``sre:`` reason prefix and audit log, ``scontrol`` against the site's slurmctld;
- on each node ``sre diag run --level 3 --nvbandwidth --nccl --json`` and the gpu_health module
  run over SSH as the playbook runs them, storing results in the node's own store.

STAND-INS (no GPU here): ``dcgmi``, ``nvbandwidth`` and ``all_reduce_perf`` are small scripts in
``/opt/sre-standins/bin`` on each node (on the diagnostic's PATH through the playbook's
``sre_diag_environment``, as a site puts DCGM's own directory there) that print a recorded output
(tests/fixtures/diag, built from the tools' sources) and log their argv; the GPUs the node's
``sre`` names are a recording (the synthetic HGX H100 board, ``sre_diag_replay`` and
``gpu_health_replay``). Everything else is real: SSH, Ansible, Slurm, the engine, the store.

The nodes: ``accept1`` runs a batch job when the acceptance starts (the playbook must wait for
it) and passes level 3, ``accept2`` fails DCGM's memory test on GPU 3 (an RMA candidate),
``accept3`` was drained by an operator before the run. One site and one playbook run
per module (a module-scoped fixture); the tests read what that run left behind.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ansible.test_acceptance import TOOL
from tests.ansible.test_playbooks import CONTROLLER, PlayResult, audit, engine_vars, run_playbook
from tests.helpers.drill_nodes import HGX_PROFILE, HGX_RECORDING, DrillSite, journal
from tests.helpers.podman import PODMAN
from tests.helpers.podman_nodes import ROOT, SRE_VENV
from tests.helpers.procs import run

# One process runs the whole module (scripts/test.sh: its own step, no xdist): one site.
pytestmark = pytest.mark.molecule

PASSING, FAILING, HELD = "accept1", "accept2", "accept3"
DIAG = ROOT / "tests" / "fixtures" / "diag"
HGX_SRC = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"
STANDINS = "/opt/sre-standins"
NODE_STORE = "/var/lib/sre-tools/diag.db"
OPERATOR_REASON = "waiting for a PSU (ann)"
# Per node: the recorded outputs its stand-ins print (dcgmi, nvbandwidth, all_reduce_perf).
OUTPUTS = {
    PASSING: ("dcgm/level3-pass.json", "nvbandwidth/h100-8-pass.json", "nccl/h100-8-pass.txt"),
    FAILING: (
        "dcgm/level3-memory-fail-gpu3.json",
        "nvbandwidth/h100-8-pass.json",
        "nccl/h100-8-pass.txt",
    ),
    HELD: ("dcgm/level3-pass.json", "nvbandwidth/h100-8-pass.json", "nccl/h100-8-pass.txt"),
}
# dcgmi's exit status after a failed diagnostic: DCGM_ST_NVVS_ERROR (-30) as 8 bits
# (tests/fixtures/diag/README.md); the other stand-ins exit 0.
DCGMI_RC = {FAILING: 226}
# The job on the passing node runs until this file exists in the container: the watch below
# creates it once Slurm has shown the node draining for HOLD_SECONDS, so the playbook must
# wait for a job still running under its drain.
RELEASE = f"{STANDINS}/release"
HOLD_SECONDS = 3.0
DRAIN = "Drain the node in Slurm with our reason (on the controller)."
GATE = "Fail the nodes that did not pass; they stay drained."
RESUME = "Resume the node through the engine (on the controller)."


class SlurmWatch:
    """``sinfo`` every 0.25 s in a thread: every (state, reason) each node showed during the
    run, as slurmctld reported it (the drain of a node that passes lasts only seconds). Once
    :data:`PASSING` has been ``draining`` for :data:`HOLD_SECONDS`, it ends that node's job
    (:data:`RELEASE`)."""

    def __init__(self, site: DrillSite):
        self.site = site
        self.seen: dict[str, list[tuple[str, str]]] = {}
        self.draining_since: float | None = None
        self.released = False
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slurm-watch", daemon=True)

    def __enter__(self) -> SlurmWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            proc = self.site.cluster.sinfo(
                "--noheader", "--Node", "--format", "%N|%T|%E", check=False
            )
            if proc.returncode != 0:
                self.errors.append(proc.stderr.strip())
            for line in proc.stdout.splitlines():
                name, state, reason = (part.strip() for part in line.split("|", 2))
                seen = self.seen.setdefault(name, [])
                if not seen or seen[-1] != (state, reason):
                    seen.append((state, reason))
                if name == PASSING and state == "draining" and self.draining_since is None:
                    self.draining_since = time.monotonic()
                held = time.monotonic() - (self.draining_since or time.monotonic())
                if name == PASSING and held >= HOLD_SECONDS and not self.released:
                    self.released = True
                    try:
                        self.site.exec(PASSING, "touch", RELEASE)
                    except Exception as exc:  # the test reads the errors
                        self.errors.append(f"release: {exc}")
            self._stop.wait(0.25)


@dataclass
class Accepted:
    """What one acceptance run left: the playbook's result, what Slurm showed during it."""

    site: DrillSite
    home: Path
    result: PlayResult
    seconds: float
    watch: SlurmWatch
    job: str

    def evidence(self) -> str:
        """For a failing assertion: the failed tasks, where the whole playbook output is, the
        slurmd journal of every node and slurmctld's log."""
        parts = [
            str(self.result),
            f"playbook output (JSON): {self.home / 'acceptance.out.json'}, {self.seconds:.1f} s",
            f"Slurm during the run: {self.watch.seen} {self.watch.errors}",
        ]
        for host in self.site.names:
            parts.append(f"--- {host}: journalctl -u slurmd ---")
            parts.append(journal(self.site, host, ["slurmd.service"]))
        parts.append(self.site.cluster.log(3000))
        return "\n".join(parts)

    def node(self, host: str) -> dict[str, str]:
        """``scontrol show node``: its fields (State, Reason, ...)."""
        out = self.site.cluster.scontrol("show", "node", "--oneliner", host).stdout.strip()
        fields: dict[str, str] = {}
        key = ""
        # Reason=... runs to the next " Key=" (a reason has spaces; Slurm appends [user@time]).
        for token in out.split(" "):
            head, sep, value = token.partition("=")
            if sep and head.isalnum() and head[:1].isupper():
                key = head
                fields[key] = value
            elif key:
                fields[key] += " " + token
        return fields

    def mtimes(self, host: str, *paths: str) -> list[float]:
        """Modification times of files on the node."""
        code = "import os, sys; print(*(os.stat(p).st_mtime for p in sys.argv[1:]))"
        out = self.site.exec(host, "python3", "-c", code, *paths)
        return [float(x) for x in out.split()]

    def tool_calls(self, host: str) -> list[list[str]]:
        text = self.site.exec(host, "cat", f"{STANDINS}/bin/calls.log", check=False)
        return [json.loads(line) for line in text.splitlines() if line.startswith("[")]

    def stored(self, host: str) -> list[dict[str, Any]]:
        """``sre diag history --node HOST --json`` on the node, from the playbook's store."""
        out = self.site.exec(
            host, f"{SRE_VENV}/bin/sre", "diag", "history", "--node", host, "--json",
            "--store", NODE_STORE,
        )  # fmt: skip
        return list(json.loads(out)["results"])


def install_standins(site: DrillSite, host: str, workdir: Path) -> None:
    """The node's stand-in tools and their recorded outputs (podman cp: test set-up)."""
    local = workdir / f"standins-{host}"
    (local / "bin").mkdir(parents=True)
    (local / "out").mkdir()
    for tool, rel in zip(("dcgmi", "nvbandwidth", "all_reduce_perf"), OUTPUTS[host], strict=True):
        (local / "out" / tool).write_bytes((DIAG / rel).read_bytes())
        script = local / "bin" / tool
        rc = DCGMI_RC.get(host, 0) if tool == "dcgmi" else 0
        text = TOOL.format(python="/usr/bin/python3", output=f"{STANDINS}/out/{tool}")
        # <tool>.ran: when it ran (its mtime), next to calls.log.
        text += f"open(os.path.join(here, {tool + '.ran'!r}), 'w').close()\nsys.exit({rc})\n"
        script.write_text(text)
        script.chmod(0o755)
    name = site.node(host).name
    run([*PODMAN, "cp", str(local), f"{name}:{STANDINS}"])


def inventory(site: DrillSite, home: Path) -> dict[str, Any]:
    """The container nodes in gpu_nodes (SSH, verified host keys) and this machine, where
    slurmctld and scontrol are, as the Slurm controller the engine runs on."""
    assert site.nodes is not None
    node_vars = {
        "sre_become": False,  # Ansible logs in as root
        "sre_diag_environment": {"PATH": f"{STANDINS}/bin:/usr/bin:/bin"},
        "sre_diag_replay": HGX_RECORDING,
        "sre_diag_store": NODE_STORE,
        "gpu_health_replay": HGX_RECORDING,
        "gpu_health_profile": HGX_PROFILE,
    }
    path = site.nodes.inventory(
        home / "nodes.yml",
        group="gpu_nodes",
        # 2 of the 3 nodes may be ours at once: the passing and the failing one, in one batch.
        group_vars={**node_vars, **engine_vars(site.cluster, home, max_drained_percent=67)},
    )
    data: dict[str, Any] = yaml.safe_load(path.read_text())
    data["all"]["children"]["slurm_controller"] = {
        "hosts": {
            CONTROLLER: {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
            }
        }
    }
    return data


@pytest.fixture(scope="module")
def accepted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Accepted]:
    home = tmp_path_factory.mktemp("acceptance-site")
    with DrillSite(home / "site", count=3, host_prefix="accept", monitoring=False) as site:
        for host in site.names:
            install_standins(site, host, home)
        site.cluster.scontrol(
            "update", f"nodename={HELD}", "state=drain", f"reason={OPERATOR_REASON}"
        )
        job = site.cluster.run(
            ["sbatch", "--parsable", "-w", PASSING, "-N1", "-o", "/dev/null", "--chdir", "/tmp",
             "--time", "3", "--wrap", f"while [ ! -e {RELEASE} ]; do sleep 0.2; done"]
        ).stdout.strip()  # fmt: skip
        site.wait_for(lambda: job_field(site, job, "JobState") == "RUNNING", 30, "job running")
        inv = inventory(site, home)
        start = time.monotonic()
        with SlurmWatch(site) as watch:
            result = run_playbook(
                "acceptance.yml",
                inv,
                home,
                extra_vars={
                    "acceptance_batch": "100%",
                    "acceptance_level": 3,
                    "acceptance_nvbandwidth": True,
                    "acceptance_nccl": True,
                    "acceptance_drain_poll": 1,
                    "acceptance_drain_timeout": 60,
                },
            )
        yield Accepted(site, home, result, time.monotonic() - start, watch, job)


def job_field(site: DrillSite, job: str, field: str) -> str:
    out = site.cluster.scontrol("show", "job", "--oneliner", job, check=False).stdout
    return next((t.split("=", 1)[1] for t in out.split() if t.startswith(f"{field}=")), "")


def serials() -> dict[int, str]:
    """GPU index to serial in the recording the nodes' sre names the GPUs from."""
    devices = json.loads(HGX_SRC.read_text())["devices"]
    return {d["index"]: d["readings"]["serial"]["value"] for d in devices}


def test_the_run_fails_naming_only_the_failing_node(accepted: Accepted) -> None:
    result = accepted.result
    assert result.rc == 2, accepted.evidence()  # a host failed
    gate = result.results(GATE)
    assert not gate[PASSING].get("failed"), accepted.evidence()
    assert gate[PASSING]["msg"] == (
        f"{PASSING} passed acceptance (DCGM level 3, nvbandwidth, NCCL) and is back in service."
    )
    assert gate[FAILING]["failed"], accepted.evidence()
    message = gate[FAILING]["msg"]
    assert message.startswith(
        f"{FAILING} failed acceptance (DCGM level 3, nvbandwidth, NCCL) and stays drained"
    ), message
    assert "CRITICAL, required action(s): rma_candidate" in message, message
    assert "diag.dcgm.memory (GPU 3): GPU 3 failed memory" in message, message
    assert HELD not in gate, gate  # never reached the gate: left alone
    stats = result.stats
    assert stats[PASSING]["failures"] == 0 and stats[FAILING]["failures"] == 1, stats
    assert stats[HELD]["failures"] == 0 and stats[HELD]["unreachable"] == 0, stats


def test_the_passing_node_was_drained_with_our_reason_then_resumed(accepted: Accepted) -> None:
    seen = accepted.watch.seen.get(PASSING, [])
    drained = [(s, r) for s, r in seen if "drain" in s]
    assert drained, accepted.evidence()
    # Its job kept running under the drain (draining), the playbook waited for it, and only
    # then the node was drained (idle) and tested; the job was never killed.
    states = [s for s, _ in drained]
    assert states[0] == "draining" and "drained" in states, seen
    assert accepted.watch.released and not accepted.watch.errors, accepted.watch.errors
    assert job_field(accepted.site, accepted.job, "JobState") == "COMPLETED"
    assert job_field(accepted.site, accepted.job, "ExitCode") == "0:0"
    # dcgmi ran only after the job was let go (the node clock: one kernel for all containers).
    released, dcgmi = accepted.mtimes(PASSING, RELEASE, f"{STANDINS}/bin/dcgmi.ran")
    assert dcgmi > released, (released, dcgmi, accepted.evidence())
    assert all(r.startswith(f"sre: drain ev=manual:{PASSING}:") for _, r in drained), seen
    assert any("acceptance: DCGM level 3, nvbandwidth, NCCL" in r for _, r in drained), seen
    # Back in service: idle, no reason. Slurm may flag it not responding (idle*) until the
    # node answers its first ping after the resume (about a second).
    accepted.site.wait_for(lambda: accepted.node(PASSING)["State"] == "IDLE", 15, f"{PASSING} idle")
    assert "Reason" not in accepted.node(PASSING), accepted.node(PASSING)
    resume = json.loads(accepted.result.results(RESUME)[PASSING]["stdout"])
    assert (resume["outcome"], resume["code"]) == ("acted", "resumed"), resume
    # Every tool ran on the node, over SSH, as the playbook's diagnostic asked.
    calls = accepted.tool_calls(PASSING)
    assert [c[:4] for c in calls[:1]] == [["dcgmi", "diag", "-r", "3"]], calls
    assert [c[0] for c in calls] == ["dcgmi", "nvbandwidth", "all_reduce_perf"], calls


def test_the_failing_node_stays_drained_saying_why(accepted: Accepted) -> None:
    node = accepted.node(FAILING)
    assert node["State"] == "IDLE+DRAIN", (node, accepted.evidence())
    reason = node["Reason"]
    assert reason.startswith(f"sre: drain ev=manual:{FAILING}:"), reason
    assert ": acceptance failed: CRIT diag.dcgm.memory GPU 3: GPU 3 failed memory" in reason
    assert accepted.site.cluster.drain_reasons()[FAILING] == reason.rsplit(" [", 1)[0]
    assert RESUME not in [t for t, hosts in _tasks(accepted) if FAILING in hosts]
    assert accepted.tool_calls(FAILING)[0][:4] == ["dcgmi", "diag", "-r", "3"]


def test_a_node_an_operator_drained_is_left_alone(accepted: Accepted) -> None:
    node = accepted.node(HELD)
    assert node["State"] == "IDLE+DRAIN", node
    assert node["Reason"].rsplit(" [", 1)[0] == OPERATOR_REASON, node
    # Never drained by us, never tested: its reason stayed the operator's the whole run.
    assert {r for _, r in accepted.watch.seen[HELD]} == {OPERATOR_REASON}, accepted.watch.seen
    assert accepted.tool_calls(HELD) == []
    drain = json.loads(accepted.result.results(DRAIN)[HELD]["stdout"])
    assert drain["code"] == "operator_drain", drain
    report = accepted.result.results("Report the node an operator holds.")[HELD]["msg"]
    assert report.startswith(f"{HELD} skipped, not tested:"), report


def test_the_results_are_stored_on_the_node_with_the_gpu_serials(accepted: Accepted) -> None:
    by_index = serials()
    rows = accepted.stored(FAILING)
    assert {r["node"] for r in rows} == {FAILING}, rows
    assert {(r["kind"], r["level"]) for r in rows} >= {("dcgm", 3)}, rows
    failed = [r for r in rows if r["severity"] == "crit"]
    assert [(r["check"], r["gpu_index"], r["action"]) for r in failed] == [
        ("diag.dcgm.memory", 3, "rma_candidate")
    ], rows
    assert failed[0]["gpu_serial"] == by_index[3], failed
    rows = accepted.stored(PASSING)
    assert {r["kind"] for r in rows} == {"dcgm", "nvbandwidth", "nccl"}, rows
    assert {r["severity"] for r in rows} <= {"ok", "skipped"}, rows
    assert {r["gpu_serial"] for r in rows if r["gpu_index"] is not None} == set(
        by_index.values()
    ), rows
    # Nothing ran on the operator's node: it has no store at all.
    held = accepted.site.node(HELD).name
    assert run([*PODMAN, "exec", held, "test", "-e", NODE_STORE], check=False).returncode == 1


def test_the_audit_log_has_the_drain_and_resume_decisions(accepted: Accepted) -> None:
    records = audit(accepted.home)
    by_node = {
        host: [r["code"] for r in records if r["node"] == host] for host in accepted.site.names
    }
    assert by_node == {
        PASSING: ["drained", "resumed"],
        FAILING: ["drained", "annotated"],
        HELD: ["operator_drain"],
    }, records
    annotated = next(r for r in records if r["node"] == FAILING and r["code"] == "annotated")
    assert "diag.dcgm.memory GPU 3" in json.dumps(annotated), annotated


def _tasks(accepted: Accepted) -> list[tuple[str, set[str]]]:
    """Every task the playbook ran, with the hosts it ran on (not skipped)."""
    out = []
    for play in accepted.result.data["plays"]:
        for task in play["tasks"]:
            hosts = {h for h, r in task["hosts"].items() if not r.get("skipped")}
            out.append((task["task"]["name"], hosts))
    return out
