#!/usr/bin/env bash
# Quick start, command 1: set everything up and run the main job, the on-call report on the
# embedded store seeded with the bundled example SLOs, SLI data and incident log, plus the local
# GPU health when the machine has an NVIDIA driver.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" ""
STORE="${SRE_STORE:-$ROOT/.demo/store.db}"
echo "==> sre report --examples --store $STORE --gpus 128"
exec "$VENV/bin/sre" report --examples --store "$STORE" --gpus 128 "$@"
