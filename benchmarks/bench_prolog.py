"""What the level-1 prolog hook adds to a job start, beside a bare prolog and none.

One real Slurm 22.05 cluster per variant (tests/helpers/slurm.py: munged, slurmctld, one slurmd
on loopback, ``PrologFlags=Alloc``), each timing ``srun -w gpu01 -N1 /bin/true`` end to end:

1. no prolog;
2. a bare prolog (``/bin/true``): what any prolog costs (slurmd forks it, waits, reports);
3. the sre_agent prolog hook (sre_tools.diag.slurm_hooks) running ``sre diag run --level 1``
   with a stand-in ``dcgmi`` that prints a recorded passing level-1 result at once
   (tests/fixtures/diag/dcgm/level1-pass.json).

The real ``dcgmi diag -r 1`` takes seconds on its own; this measures what the wrapper adds.

Usage: .venv/bin/python benchmarks/bench_prolog.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers.slurm import SlurmCluster, find_binary  # noqa: E402

DCGM = ROOT / "tests" / "fixtures" / "diag" / "dcgm" / "level1-pass.json"
HOOK = """#!{python}
import sys
sys.path.insert(0, {root!r})
from sre_tools.diag.slurm_hooks import main
sys.exit(main({argv!r}))
"""
SRE = """#!{python}
import sys
sys.path.insert(0, {root!r})
from sre_tools.cli.main import main
sys.exit(main())
"""


def prolog_lines(variant: str, work: Path) -> list[str]:
    if variant == "none":
        return []
    if variant == "bare":
        return ["Prolog=/bin/true", "PrologFlags=Alloc"]
    (work / "bin").mkdir()
    dcgmi = work / "bin" / "dcgmi"
    dcgmi.write_text(f"#!/bin/sh\ncat {DCGM}\n", encoding="utf-8")
    sre = work / "sre"
    sre.write_text(SRE.format(python=sys.executable, root=str(ROOT)), encoding="utf-8")
    argv = ["prolog", "--sre", str(sre), "--path", f"{work / 'bin'}:/usr/bin:/bin"]
    argv += ["--scontrol", find_binary("scontrol"), "--diag-arg=--no-store"]
    hook = work / "sre-slurm-prolog"
    hook.write_text(HOOK.format(python=sys.executable, root=str(ROOT), argv=argv))
    for path in (dcgmi, sre, hook):
        path.chmod(0o755)
    return [f"Prolog={hook}", "PrologFlags=Alloc"]


def measure(variant: str, runs: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="bench-prolog-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        cluster = SlurmCluster(["gpu01"], extra_conf=prolog_lines(variant, work))
        with cluster:
            srun = [find_binary("srun"), "-w", "gpu01", "-N1", "/bin/true"]
            env = {**os.environ, **cluster.env}
            times = []
            for i in range(runs + 1):
                start = time.perf_counter()
                proc = subprocess.run(
                    srun, env=env, capture_output=True, text=True, timeout=120, check=False
                )
                took = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(f"{variant}: srun failed: {proc.stderr}\n{cluster.log()}")
                if i:  # the first job warms slurmd's caches
                    times.append(took)
            return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    rows = []
    for variant in ("none", "bare", "sre-level-1"):
        times = measure(variant, args.runs)
        rows.append((variant, statistics.median(times), min(times), max(times)))
    base = rows[0][1]
    bare = rows[1][1]
    print(f"srun -N1 /bin/true, {args.runs} runs each (median, min, max; seconds)")
    print(f"{'prolog':14s} {'median':>8s} {'min':>8s} {'max':>8s} {'vs none':>8s} {'vs bare':>8s}")
    for name, med, lo, hi in rows:
        print(f"{name:14s} {med:8.3f} {lo:8.3f} {hi:8.3f} {med - base:+8.3f} {med - bare:+8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
