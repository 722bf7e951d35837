"""The Prolog and Epilog hooks under real Slurm 22.05 (munged, slurmctld, two slurmd on loopback:
tests/helpers/slurm.py), configured as the sre_agent role writes them (``Prolog=``, ``Epilog=``,
``PrologFlags=Alloc``). Jobs are submitted with srun and sbatch.

What is real: slurmd runs the hooks with its own environment (no PATH, SLURMD_NODENAME,
SLURM_JOB_ID, SLURM_JOB_EXIT_CODE, SLURM_CONF), the hooks run the real ``sre diag run`` (this
checkout), which stores its results in a real store, and scontrol drains the node in the real
slurmctld. What is not: ``dcgmi`` is a stand-in on the hooks' PATH that prints a recorded
``dcgmi diag -r N -j`` result (tests/fixtures/diag/dcgm, built from DCGM's source, see its
README) and exits 0, chosen per run level by the test. No GPU here.

Seen with Slurm 22.05.8 while writing this (the tests assert it): a prolog that exits 1 makes
slurmd refuse the job; ``srun`` answers "Prolog failure on node ..." and the job is cancelled (an
interactive job cannot be requeued); a batch job is requeued and held
(``launch_failed_requeued_held``). Slurm drains the node with the reason "Prolog error" unless
the node already has one: our hook's ``sre: diag ...`` reason stays.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sre_tools.diag import history
from sre_tools.store import Store
from tests.helpers.slurm import SlurmCluster, SlurmClusterError, find_binary

ROOT = Path(__file__).resolve().parents[2]
DCGM = ROOT / "tests" / "fixtures" / "diag" / "dcgm"
HGX = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"
NODES = ["gpu01", "gpu02"]
JOB_TIMEOUT = 120

# A stand-in dcgmi: prints the recorded result named for the run level it is asked for
# (levels.json next to it, {"1": "level1-pass.json", ...}) and exits 0, as dcgmi does when the
# diagnostic ran (a failed test is in the JSON, not the exit status).
FAKE_DCGMI = """#!{python}
import json, os, sys
here = os.path.dirname(os.path.abspath(__file__))
level = sys.argv[sys.argv.index("-r") + 1]
with open(os.path.join(here, "calls.log"), "a") as fh:
    fh.write(json.dumps(sys.argv[1:]) + "\\n")
name = json.load(open(os.path.join(here, "levels.json")))[level]
sys.stdout.write(open(os.path.join({fixtures!r}, name)).read())
"""

# The real CLI of this checkout: slurmd gives the hooks no PYTHONPATH, so the stand-in for the
# venv's `sre` entry point puts the checkout first (on a node, the venv has sre-tools installed).
SRE_ENTRY = """#!{python}
import sys
sys.path.insert(0, {root!r})
from sre_tools.cli.main import main
sys.exit(main())
"""

# What the sre_agent role installs as /usr/local/sbin/sre-slurm-{{prolog,epilog}}, plus the
# sys.path line for this checkout.
HOOK = """#!{python}
import sys
sys.path.insert(0, {root!r})
from sre_tools.diag.slurm_hooks import main
sys.exit(main({argv!r}))
"""


class Rig:
    def __init__(self, cluster: SlurmCluster, work: Path):
        self.cluster = cluster
        self.work = work
        self.bin = work / "bin"
        self.store = work / "diag.db"
        self.log = work / "hooks.jsonl"

    def levels(self, **files: str) -> None:
        """Which recorded result the fake dcgmi prints per level: levels(l1=..., l2=...)."""
        table = {k[1:]: f"{v}.json" for k, v in files.items()}
        (self.bin / "levels.json").write_text(json.dumps(table), encoding="utf-8")

    def dcgmi_calls(self) -> list[list[str]]:
        path = self.bin / "calls.log"
        return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []

    def hook_log(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(x) for x in self.log.read_text().splitlines()]

    def slurm(self, tool: str, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        proc = self.cluster.run([find_binary(tool), *args], check=False, timeout=JOB_TIMEOUT)
        if check and proc.returncode != 0:
            raise AssertionError(f"{tool} {args}: {proc.returncode} {proc.stderr}\n{self.logs()}")
        return proc

    def logs(self) -> str:
        return self.cluster.log(4000) + "\nhooks: " + json.dumps(self.hook_log())

    def job(self, job_id: str) -> dict[str, str]:
        out = self.slurm("scontrol", "show", "job", "--oneliner", job_id, check=True).stdout
        return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)

    def wait(self, what: str, cond: Any, timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = cond()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def hook_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    work = tmp_path_factory.mktemp("hooks")
    work.chmod(0o755)
    (work / "bin").mkdir()
    dcgmi = work / "bin" / "dcgmi"
    dcgmi.write_text(FAKE_DCGMI.format(python=sys.executable, fixtures=str(DCGM)))
    sre = work / "sre"
    sre.write_text(SRE_ENTRY.format(python=sys.executable, root=str(ROOT)))
    common = [
        "--sre",
        str(sre),
        "--scontrol",
        find_binary("scontrol"),
        "--path",
        f"{work / 'bin'}:/usr/bin:/bin",
        "--log",
        str(work / "hooks.jsonl"),
        "--diag-arg=--store",
        f"--diag-arg={work / 'diag.db'}",
        "--diag-arg=--replay",
        f"--diag-arg={HGX}",
    ]
    for hook in ("prolog", "epilog"):
        script = work / f"sre-slurm-{hook}"
        script.write_text(
            HOOK.format(python=sys.executable, root=str(ROOT), argv=[hook, *common]),
            encoding="utf-8",
        )
    for path in (dcgmi, sre, work / "sre-slurm-prolog", work / "sre-slurm-epilog"):
        path.chmod(0o755)
    cluster = SlurmCluster(
        NODES,
        cluster_name="hooktest",
        extra_conf=[
            f"Prolog={work / 'sre-slurm-prolog'}",
            f"Epilog={work / 'sre-slurm-epilog'}",
            "PrologFlags=Alloc",
            "PrologEpilogTimeout=120",
        ],
    )
    try:
        cluster.start()
    except SlurmClusterError as exc:
        pytest.fail(f"the Slurm test cluster did not start: {exc}", pytrace=False)
    try:
        yield Rig(cluster, work)
    finally:
        cluster.stop()


@pytest.fixture
def rig(hook_cluster: Rig) -> Iterator[Rig]:
    for name in ("levels.json", "calls.log"):
        (hook_cluster.bin / name).unlink(missing_ok=True)
    hook_cluster.log.unlink(missing_ok=True)
    hook_cluster.cluster.reset()
    yield hook_cluster
    for job in hook_cluster.slurm("squeue", "--noheader", "--format", "%i").stdout.split():
        hook_cluster.slurm("scancel", job)
    hook_cluster.cluster.reset()


def test_a_passing_level_1_lets_the_job_run(rig: Rig) -> None:
    rig.levels(l1="level1-pass", l2="level2-pass")
    start = time.monotonic()
    proc = rig.slurm("srun", "-w", "gpu01", "-N1", "/bin/echo", "job ran")
    took = time.monotonic() - start
    assert proc.returncode == 0 and proc.stdout.strip() == "job ran", rig.logs()
    (prolog,) = [r for r in rig.hook_log() if r["hook"] == "prolog"]
    assert (prolog["outcome"], prolog["class"], prolog["node"]) == ("passed", "ok", "gpu01")
    assert prolog["duration_seconds"] < 25
    assert rig.dcgmi_calls()[0][:4] == ["diag", "-r", "1", "-j"]
    # The job succeeded: the epilog ran no diagnostic.
    epilog = rig.wait("the epilog", lambda: [r for r in rig.hook_log() if r["hook"] == "epilog"])
    assert epilog[0]["outcome"] == "skipped" and epilog[0]["job_failed"] is False
    assert len(rig.dcgmi_calls()) == 1
    rig.wait("gpu01 idle again", lambda: rig.cluster.node_states()["gpu01"] == "idle")
    print(f"srun with a level-1 prolog: {took:.2f}s")


def test_a_failing_level_1_refuses_srun_and_drains_the_node(rig: Rig) -> None:
    rig.levels(l1="level1-row-remap-pending-gpu0")
    proc = rig.slurm("srun", "-w", "gpu01", "-N1", "--immediate=20", "/bin/echo", "job ran")
    assert proc.returncode != 0, rig.logs()
    assert "job ran" not in proc.stdout
    assert "Prolog failure on node gpu01" in proc.stderr, proc.stderr
    reason = rig.cluster.drain_reasons()["gpu01"]
    assert reason.startswith("sre: diag ev=prolog:gpu01:"), reason
    assert "level 1 CRIT: GPU 0 (GPU-0e614c50-7668-586d-be2d-2c3d1e4d53a7" in reason, reason
    assert "GPU 0 had memory errors and row remappings are pending" in reason, reason
    assert "drain" in rig.cluster.settled_states()["gpu01"]
    (prolog,) = [r for r in rig.hook_log() if r["hook"] == "prolog"]
    assert (prolog["outcome"], prolog["exit_code"], prolog["class"]) == ("drained", 1, "crit")
    # The refused job's allocation still ends with the epilog: no diagnostic (no exit code).
    assert [c[2] for c in rig.dcgmi_calls()] == ["1"]
    # The other node is untouched.
    assert rig.cluster.settled_states()["gpu02"] == "idle"


def test_a_failing_level_1_requeues_a_batch_job_held(rig: Rig) -> None:
    rig.levels(l1="level1-row-remap-pending-gpu0")
    out = rig.work / "job-%j.out"
    proc = rig.slurm(
        "sbatch", "-w", "gpu02", "-N1", "-o", str(out), "--wrap", "echo ran", check=True
    )
    job_id = proc.stdout.split()[-1]
    job = rig.wait(
        "the job requeued and held",
        lambda: (j := rig.job(job_id))["JobState"] == "PENDING" and j.get("Reason") != "None" and j,
    )
    assert job["Reason"] == "launch_failed_requeued_held", job
    assert int(job["Restarts"]) == 1 and job["Priority"] == "0", job  # held
    assert not (rig.work / f"job-{job_id}.out").exists()  # it never ran
    assert rig.cluster.drain_reasons()["gpu02"].startswith(f"sre: diag ev=prolog:gpu02:{job_id}:")


def test_the_epilog_of_a_failed_job_runs_level_2_stores_it_and_drains(rig: Rig) -> None:
    rig.levels(l1="level1-pass", l2="level2-memory-fail-gpu3")
    since = time.time() - 1
    proc = rig.slurm("srun", "-w", "gpu01", "-N1", "/bin/sh", "-c", "exit 3")
    assert proc.returncode == 3, rig.logs()
    epilog = rig.wait(
        "the epilog", lambda: [r for r in rig.hook_log() if r["hook"] == "epilog"], timeout=90
    )[0]
    assert (epilog["outcome"], epilog["class"], epilog["exit_code"]) == ("drained", "crit", 0)
    assert epilog["job_failed"] is True
    assert [c[2] for c in rig.dcgmi_calls()] == ["1", "2"]
    reason = rig.wait("the drain", lambda: rig.cluster.drain_reasons().get("gpu01"))
    assert reason.startswith("sre: diag ev=epilog:gpu01:"), reason
    assert "level 2 CRIT" in reason and "diag.dcgm.memory" in reason, reason
    # Stored like any `sre diag run`: the library call the remediation engine asks.
    store = Store(rig.store, create=False)
    run = history.latest(store, "gpu01", level=2, since=since)
    assert run is not None and run.level == 2 and run.status == "crit", run
    assert not history.passed(store, "gpu01", level=2, since=since)
    serials = store.query(
        "SELECT gpu_serial FROM diag_results WHERE run_id = ? AND severity = 'crit'", (run.run_id,)
    )
    assert serials == [("1752624008024",)], serials  # GPU 3's serial, kept with the result


def test_the_epilog_of_a_failed_job_on_a_healthy_node_leaves_it_in_service(rig: Rig) -> None:
    rig.levels(l1="level1-pass", l2="level2-pass")
    since = time.time() - 1
    proc = rig.slurm("srun", "-w", "gpu02", "-N1", "/bin/sh", "-c", "kill -TERM $$")
    assert proc.returncode != 0
    epilog = rig.wait(
        "the epilog", lambda: [r for r in rig.hook_log() if r["hook"] == "epilog"], timeout=90
    )[0]
    assert (epilog["outcome"], epilog["class"]) == ("passed", "ok"), epilog
    assert history.passed(Store(rig.store, create=False), "gpu02", level=2, since=since)
    # The hook logs before it exits: the node is COMPLETING until slurmd has its exit status.
    rig.wait("gpu02 idle again", lambda: rig.cluster.node_states()["gpu02"] == "idle")
    assert "gpu02" not in rig.cluster.drain_reasons()
