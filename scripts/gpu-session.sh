#!/usr/bin/env bash
# One call on a machine with a real NVIDIA GPU: real-NVML tests, a capture, the benchmarks.
# Read-only on the GPU. Results land in ${OUT:-./out}.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./out}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi -L > "$OUT/nvidia-smi-L.txt" 2>&1
nvidia-smi -q -x > "$OUT/nvidia-smi-q.xml" 2>&1
"$PY" -m sre_tools.gpu.smi_xml "$OUT/nvidia-smi-q.xml" > "$OUT/converted.json" 2> "$OUT/convert.txt"
"$PY" -m pytest -m gpu tests/gpu -v -p no:cacheprovider > "$OUT/pytest-gpu.txt" 2>&1
echo "pytest -m gpu exit $?" >> "$OUT/pytest-gpu.txt"
"$PY" -m sre_tools.cli.main gpu capture -o "$OUT/h100-capture.json" > "$OUT/capture.txt" 2>&1
"$PY" -m sre_tools.cli.main health --json > "$OUT/health.json" 2> "$OUT/health.err"
echo "sre health exit $?" >> "$OUT/health.err"
"$PY" benchmarks/bench_health.py > "$OUT/bench_health.txt" 2>&1
[ -f benchmarks/bench_exporter.py ] && "$PY" benchmarks/bench_exporter.py > "$OUT/bench_exporter.txt" 2>&1
tail -n 5 "$OUT"/*.txt
