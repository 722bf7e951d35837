#!/usr/bin/env bash
# Run the site scenario (molecule/site/) from the repository root.
#
# Usage: molecule/site/run.sh [COMMAND [ARGS...]]   (default: test)
# Set SRE_MOLECULE_RUN_SUFFIX and MOLECULE_EPHEMERAL_DIRECTORY to keep concurrent runs apart.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
command="${1:-test}"
[ "$#" -gt 0 ] && shift
if [ -x "$ROOT/.venv/bin/molecule" ]; then
  export PATH="$ROOT/.venv/bin:$PATH"
fi
if [ -z "${SRE_MOLECULE_IMAGE:-}" ]; then
  SRE_MOLECULE_IMAGE="$("$ROOT/scripts/podman-image.sh")"
fi
export SRE_MOLECULE_IMAGE
export SRE_REPO_ROOT="$ROOT"
export SRE_MOLECULE_RUN_SUFFIX="${SRE_MOLECULE_RUN_SUFFIX:-}"

cd "$ROOT"
exec molecule --base-config "$ROOT/molecule/base.yml" "$command" --scenario-name site "$@"
