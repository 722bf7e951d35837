#!/usr/bin/env bash
# Run one role's molecule scenario against the local Debian 12 systemd image.
#
# Usage: molecule/run.sh ROLE SCENARIO [COMMAND [ARGS...]]
#   COMMAND is a molecule command (default: test); ARGS go to it, e.g.
#   molecule/run.sh nvidia_driver default converge
#   molecule/run.sh gpu_base alternative test --destroy never
# Builds or reuses the image with scripts/podman-image.sh (SRE_MOLECULE_IMAGE overrides it) and
# passes molecule/base.yml as the shared base configuration.
# Runs stay apart when each sets its own SRE_MOLECULE_RUN_SUFFIX (container name) and
# MOLECULE_EPHEMERAL_DIRECTORY (molecule's state); tests/ansible/test_molecule.py does. Without
# them, successive calls share one instance per role and scenario (converge, then verify, ...).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ "$#" -lt 2 ]; then
  sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
role="$1"
scenario="$2"
shift 2
command="${1:-test}"
[ "$#" -gt 0 ] && shift

if [ ! -f "$ROOT/roles/$role/molecule/$scenario/molecule.yml" ]; then
  echo "run.sh: no scenario roles/$role/molecule/$scenario/molecule.yml" >&2
  exit 2
fi
if [ -x "$ROOT/.venv/bin/molecule" ]; then
  export PATH="$ROOT/.venv/bin:$PATH"
fi
if [ -z "${SRE_MOLECULE_IMAGE:-}" ]; then
  SRE_MOLECULE_IMAGE="$("$ROOT/scripts/podman-image.sh")"
fi
export SRE_MOLECULE_IMAGE
# molecule/base.yml: the shipped ansible.cfg, the roles, tests/helpers/sshd_node.py.
export SRE_REPO_ROOT="$ROOT"
export SRE_MOLECULE_ROLE="$role"
export SRE_MOLECULE_RUN_SUFFIX="${SRE_MOLECULE_RUN_SUFFIX:-}"

cd "$ROOT/roles/$role"
exec molecule --base-config "$ROOT/molecule/base.yml" "$command" --scenario-name "$scenario" "$@"
