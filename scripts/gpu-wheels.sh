#!/usr/bin/env bash
# Here, before a session's one GPU call: the wheels scripts/gpu-session.sh installs on the GPU
# machine, which reaches no package index. This checkout's own wheel and every runtime and test
# dependency, for that machine's Python (3.12, x86_64; GPU_PY_VERSION to change it), into
# .gpu-wheels/ (git-ignored; about 5 MiB). Then: device run with carry [".gpu-wheels"] and
#   OUT="$OUT" bash scripts/gpu-session.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${GPU_WHEELS:-.gpu-wheels}"
PYV="${GPU_PY_VERSION:-3.12}"
PY="${PYTHON:-.venv/bin/python}"
rm -rf "$DEST"
mkdir -p "$DEST"
"$PY" -m pip wheel -q --no-deps -w "$DEST" .
"$PY" -m pip download -q -d "$DEST" --only-binary=:all: --implementation cp \
  --python-version "$PYV" --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  --platform manylinux_2_28_x86_64 \
  click rich PyYAML prometheus-client nvidia-ml-py pytest hypothesis
ls "$DEST"
du -sh "$DEST"
