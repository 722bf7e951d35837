#!/usr/bin/env bash
# One call on a machine with a real NVIDIA GPU (read-only on the GPU): the real-NVML tests, a
# capture, `sre health`, the health and exporter benchmarks. Results land in ${OUT:-./out}:
# steps.txt (each step's exit status and seconds) and one file per step.
#
# The GPU machine reaches no package index: scripts/gpu-wheels.sh fills .gpu-wheels/ here first,
# the call carries it, and this script installs from it alone into a fresh venv (the wheel of
# this checkout, as roles/sre_agent installs it). Every step has its own time limit; together
# they stay under 9 minutes, inside one 10-minute device call.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
OUT="$(mkdir -p "${OUT:-./out}" && cd "${OUT:-./out}" && pwd)"
WHEELS="$REPO/${GPU_WHEELS:-.gpu-wheels}"
VENV="${GPU_VENV:-/tmp/sre-gpu-venv}"
PY="$VENV/bin/python"
: > "$OUT/steps.txt"

# step NAME SECONDS OUTFILE COMMAND...: run with a time limit, stdout+stderr to OUTFILE.
step() {
  local name="$1" limit="$2" file="$3" start rc
  shift 3
  start=$EPOCHREALTIME
  timeout -k 5 "$limit" "$@" > "$OUT/$file" 2>&1
  rc=$?
  awk -v n="$name" -v rc="$rc" -v a="$start" -v b="$EPOCHREALTIME" -v l="$limit" \
    'BEGIN { printf "%-14s rc=%-3s %6.1fs (limit %ss)\n", n, rc, b - a, l }' |
    tee -a "$OUT/steps.txt"
  return 0
}

rm -rf "$VENV"
step install 60 install.txt sh -c 'python3 -m venv "$0" && "$0/bin/python" -m pip install -q \
  --no-index --find-links "$1" sre-tools pytest hypothesis' "$VENV" "$WHEELS"
step smi 20 nvidia-smi.txt sh -c 'nvidia-smi -L && nvidia-smi -q -x > "$0/nvidia-smi-q.xml"' "$OUT"
step convert 20 convert.txt sh -c '"$0" -m sre_tools.gpu.smi_xml "$1/nvidia-smi-q.xml" > "$1/converted.json"' "$PY" "$OUT"
# The tests import sre_tools from the checkout (the same code as the wheel); -m gpu selects
# the real-NVML tests only.
step pytest-gpu 150 pytest-gpu.txt "$PY" -m pytest -p no:cacheprovider -m gpu -v \
  tests/gpu/test_real_nvml.py tests/exporter/test_real_nvml.py
# From outside the checkout: the installed wheel, not the source tree.
cd "$OUT" || exit 1
step capture 45 capture.txt "$VENV/bin/sre" gpu capture -o "$OUT/h100-capture.json"
step health 20 health.txt sh -c '"$0" health --json > "$1/health.json"' "$VENV/bin/sre" "$OUT"
step bench-health 150 bench_health.txt "$PY" "$REPO/benchmarks/bench_health.py"
step bench-export 90 bench_exporter.txt "$PY" "$REPO/benchmarks/bench_exporter.py"
cat "$OUT/steps.txt"
tail -n 8 "$OUT"/pytest-gpu.txt "$OUT"/bench_health.txt "$OUT"/bench_exporter.txt
