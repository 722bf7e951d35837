"""Health engine speed: in-process check cycle per GPU, ``sre health --json`` whole process, and
the same beside nvidia-smi. Prints a table of medians and ratios measured in the same run.

On a GPU machine (the real NVML path):  python benchmarks/bench_health.py
Without one, against a recording:       python benchmarks/bench_health.py --replay FILE
(replay figures measure the engine, not NVML; the issue's goals are for the real GPU).

Goals: passive cycle <= 2 ms per GPU (InfoROM validation, ~68 ms, runs at most hourly);
``sre health --json`` <= 1.3x ``python3 -c "import pynvml; pynvml.nvmlInit()"``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path


def whole_process(argv: list[str], runs: int) -> float:
    """Median wall time of ``argv`` as a fresh process, after one warm-up run.

    The warm-up may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped for these runs): an
    installed package has its ``.pyc`` files, and a benchmark that compiles every module on each
    run measures the compiler, not the start-up (pynvml's own ``.pyc`` is always there).
    """
    return interleaved([argv], runs)[0]


def interleaved(argvs: list[list[str]], runs: int) -> list[float]:
    """Median wall time of each of ``argvs`` as a fresh process, the commands taking turns run
    by run (after one warm-up each), so that a machine that speeds up or slows down during the
    benchmark (a shared VM) moves every median alike and the ratios between them stay fair."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for argv in argvs:
        subprocess.run(argv, capture_output=True, check=False, timeout=120, env=env)
    times: list[list[float]] = [[] for _ in argvs]
    for _ in range(runs):
        for i, argv in enumerate(argvs):
            start = time.perf_counter()
            subprocess.run(argv, capture_output=True, check=False, timeout=120, env=env)
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def in_process_cycle(replay: Path | None, runs: int) -> tuple[float, int]:
    from sre_tools.gpu.backend import RealBackend, RecordedBackend
    from sre_tools.health.policy import load_policy
    from sre_tools.health.runner import run_health
    from sre_tools.health.state import CounterState

    policy = load_policy()
    state = CounterState()
    state.meta["inforom_validated_at"] = time.time()  # passive cycle: no InfoROM validation
    times = []
    gpus = 0
    for _ in range(runs):
        backend = RecordedBackend.load(replay) if replay else RealBackend()
        start = time.perf_counter()
        report = run_health(backend, policy, state=state, kernel_log_lines=[], host="bench")
        times.append(time.perf_counter() - start)
        gpus = max(gpus, len({f.gpu.index for f in report.findings if f.gpu is not None}))
    return statistics.median(times), max(gpus, 1)


def table_render(gpus: int) -> tuple[float, float]:
    """(engine seconds, table seconds) of ``sre health`` on a ``gpus``-GPU recording built from
    the HGX fixture, a third of the GPUs with an uncorrectable ECC error (so the table has rows)."""
    import contextlib
    import copy
    import io
    import json

    from sre_tools.cli.health import render
    from sre_tools.gpu.backend import RecordedBackend
    from sre_tools.health.policy import load_policy
    from sre_tools.health.runner import run_health
    from sre_tools.health.state import CounterState

    root = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "gpu"
    base = json.loads((root / "hgx-h100-8-synthetic.json").read_text(encoding="utf-8"))
    devices = []
    for i in range(gpus):
        dev = copy.deepcopy(base["devices"][i % 8])
        dev["index"] = i
        dev["readings"]["uuid"] = {"value": f"GPU-bench-{i:06d}"}
        if i % 3 == 0:
            dev["readings"]["ecc_errors(uncorrected,volatile)"] = {"value": 1}
        devices.append(dev)
    base["devices"] = devices
    start = time.perf_counter()
    report = run_health(
        RecordedBackend(base, "<bench>"),
        load_policy("generic"),
        state=CounterState(),
        kernel_log_lines=[],
        host="bench",
        timeout=600,
    )
    engine = time.perf_counter() - start
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        render(report, False)
    return engine, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--replay", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--table-gpus", type=int, default=2000, help="0: skip the table run")
    args = parser.parse_args()
    py = sys.executable
    rows: list[tuple[str, float, str]] = []
    cycle, gpus = in_process_cycle(args.replay, args.runs)
    rows.append(
        (
            f"in-process check cycle ({gpus} GPU)",
            cycle * 1000,
            f"{cycle * 1000 / gpus:.2f} ms/GPU (goal <= 2)",
        )
    )
    sre = [py, "-m", "sre_tools.cli.main", "health", "--json"]
    if args.replay:
        sre += ["--replay", str(args.replay)]
    ref_cmd = [py, "-c", "import pynvml; pynvml.nvmlInit()"]
    if args.replay:
        ref_cmd = [py, "-c", "import pynvml"]
    t_sre, t_ref, t_pass = interleaved([sre, ref_cmd, [py, "-c", "pass"]], args.runs)
    rows.append(("python -c pass", t_pass * 1000, "floor"))
    ref_name = "import pynvml; nvmlInit()" if not args.replay else "import pynvml (no GPU)"
    rows.append((ref_name, t_ref * 1000, "reference"))
    rows.append(
        ("sre health --json", t_sre * 1000, f"{t_sre / t_ref:.2f}x reference (goal <= 1.3)")
    )
    smi = shutil.which("nvidia-smi")
    if smi and not args.replay:
        t_q = whole_process([smi, "-q"], args.runs)
        fields = (
            "index,uuid,name,temperature.gpu,temperature.memory,power.draw,power.limit,"
            "clocks.sm,clocks.mem,utilization.gpu,utilization.memory,memory.used,"
            "memory.total,ecc.errors.uncorrected.volatile.total,pcie.link.gen.current,"
            "pcie.link.width.current,persistence_mode"
        )
        t_qg = whole_process([smi, f"--query-gpu={fields}", "--format=csv,noheader"], args.runs)
        rows.append(("nvidia-smi -q", t_q * 1000, f"{t_q / t_ref:.2f}x reference"))
        rows.append(
            ("nvidia-smi --query-gpu (17 fields)", t_qg * 1000, f"{t_qg / t_ref:.2f}x reference")
        )
    if args.table_gpus:
        engine, tab = table_render(args.table_gpus)
        rows.append((f"check cycle, {args.table_gpus} GPUs (recording)", engine * 1000, ""))
        rows.append((f"sre health table, {args.table_gpus} GPUs", tab * 1000, "goal well < 1 s"))
    print(f"{'measurement':40} {'median ms':>10}  note")
    for name, ms, note in rows:
        print(f"{name:40} {ms:10.2f}  {note}")


if __name__ == "__main__":
    main()
