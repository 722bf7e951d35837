"""Wrapper overhead of ``sre diag`` against the tools' own runtime.

1. parse + judge a DCGM level-3 result for 8 GPUs (tests/fixtures/diag/dcgm/level3-pass.json);
2. parse + judge a 500-row nccl-tests all_reduce_perf table (generated in its format);
3. the prolog path as a whole process: ``sre diag run --level 1 --format nhc --no-store`` with a
   stand-in ``dcgmi`` that prints a recorded level-1 result at once, beside the stand-in alone
   (what the wrapper adds to a prolog; the real ``dcgmi diag -r 1`` takes seconds on its own).

Usage: .venv/bin/python benchmarks/bench_diag.py [--runs 15]
Prints medians; no GPU needed.
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

from sre_tools.diag.formats import judge_text  # noqa: E402
from sre_tools.diag.model import Inventory  # noqa: E402
from sre_tools.health.policy import load_policy  # noqa: E402

FIX = ROOT / "tests" / "fixtures" / "diag"
HGX = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"


def nccl_table(rows: int) -> str:
    head = (FIX / "nccl" / "h100-8-pass.txt").read_text().splitlines()
    header = [line for line in head if line.startswith("#") and "Out of bounds" not in line]
    header = [line for line in header if "Avg bus" not in line and "concluded" not in line]
    body = []
    for i in range(rows):
        size = 8 * (i + 1) * 1024 * 1024
        body.append(
            f"{size:12d}  {size // 4:12d}     float     sum      -1  1000.00  200.00  350.00"
            f"       0  1000.00  200.00  350.00       0"
        )
    tail = ["# Out of bounds values : 0 OK", "# Avg bus bandwidth    : 350 ", "#"]
    return "\n".join(header[:-1] + body + tail) + "\n"


def judge_ms(text: str, name: str, runs: int) -> float:
    policy = load_policy("h100-sxm-8")
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        judge_text(
            text, name, policy=policy, inventory=Inventory(), node="n", started=0.0,
            ended=0.0, label=name,
        )  # fmt: skip
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def process_ms(argv: list[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False, timeout=120)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    level3 = (FIX / "dcgm" / "level3-pass.json").read_text()
    table = nccl_table(500)
    rows = [
        ("judge DCGM level 3, 8 GPUs", judge_ms(level3, "level3", args.runs), "about 15 min"),
        ("judge nccl-tests, 500 rows", judge_ms(table, "nccl", args.runs), "minutes"),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        tool = Path(tmp) / "dcgmi"
        tool.write_text(f"#!/bin/sh\ncat {FIX / 'dcgm' / 'level1-pass.json'}\n")
        tool.chmod(0o755)
        env = {**os.environ, "PATH": f"{tmp}:/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
        bare = process_ms([str(tool), "diag", "-r", "1", "-j"], env, args.runs)
        wrapped = process_ms(
            [sys.executable, "-m", "sre_tools.cli.main", "diag", "run", "--level", "1",
             "--format", "nhc", "--no-store", "--replay", str(HGX)],
            env,
            args.runs,
        )  # fmt: skip
    rows.append(("stand-in dcgmi alone (process)", bare, "-"))
    rows.append(("sre diag run --level 1 --format nhc (process)", wrapped, "seconds (real dcgmi)"))
    print(f"{'what':50s} {'median ms':>10s}  tool's own runtime")
    for what, ms, tool_time in rows:
        print(f"{what:50s} {ms:10.1f}  {tool_time}")
    print(f"prolog path adds {wrapped - bare:.0f} ms beside the bare tool")
    return 0


if __name__ == "__main__":
    sys.exit(main())
