#!/usr/bin/env bash
# Quick start, command 2: set everything up and run the whole test suite with the linters.
# .ci/run calls this verbatim. pytest's "no tests collected" (exit 5) is a failure here.
# Each step's wall time is printed in a table at the end, whether the run passes or fails.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STEP_NAMES=()
STEP_TIMES=()
STEP_RESULTS=()
RUN_START=$SECONDS
print_step_table() {
  local rc=$? i
  echo
  echo "==> step times (wall clock)"
  printf '%-44s %9s  %s\n' "step" "seconds" "result"
  for i in "${!STEP_NAMES[@]}"; do
    printf '%-44s %9s  %s\n' "${STEP_NAMES[$i]}" "${STEP_TIMES[$i]}" "${STEP_RESULTS[$i]}"
  done
  printf '%-44s %9s  %s\n' "total" "$((SECONDS - RUN_START))" "$([ "$rc" -eq 0 ] && echo ok || echo "failed (exit $rc)")"
}
trap print_step_table EXIT
# step NAME COMMAND...: run COMMAND, record its wall time and result; a failure stops the run.
step() {
  local name="$1" start=$SECONDS rc=0
  shift
  echo "==> $name"
  "$@" || rc=$?
  STEP_NAMES+=("$name")
  STEP_TIMES+=("$((SECONDS - start))")
  STEP_RESULTS+=("$([ "$rc" -eq 0 ] && echo ok || echo "failed (exit $rc)")")
  return "$rc"
}

SRE_NEED_PROMETHEUS=1
SRE_NEED_SLURM=1
SRE_NEED_CHROMIUM=1
SRE_NEED_CONTAINERS=1
# The store tests run the same cases on SQLite and on a real PostgreSQL 15 server they start.
SRE_NEED_POSTGRESQL=1
set_up() {
  # shellcheck source=scripts/bootstrap.sh
  source "$ROOT/scripts/bootstrap.sh" "dev,salt,ansible,chaos,postgresql"
}
step "set-up (apt, venv, pip)" set_up

PY_DIRS=()
for d in sre_tools tests benchmarks scripts salt molecule roles playbooks; do [ -d "$d" ] && PY_DIRS+=("$d"); done
step "ruff" "$VENV/bin/ruff" check "${PY_DIRS[@]}"
step "ruff format" "$VENV/bin/ruff" format --check "${PY_DIRS[@]}"
step "mypy" "$VENV/bin/mypy"
step "yamllint" "$VENV/bin/yamllint" --strict .
# pytest's exit 5 (no tests collected) fails the run like any other non-zero status.
run_pytest() {
  set +e
  "$VENV/bin/pytest" -p no:cacheprovider "$@"
  local rc=$?
  set -e
  if [ "$rc" -eq 5 ]; then
    echo "pytest collected no tests: failing" >&2
    return 1
  fi
  return "$rc"
}
# Both cores: tests start their own servers on free loopback ports, in their own temporary
# directories. --dist loadfile keeps each file on one worker, in order, so a module-scoped
# fixture (a Salt master, a Prometheus server, rendered formulas) starts once per file.
if [ "$#" -eq 0 ]; then
  step "pytest main suite (-n 2)" run_pytest -n 2 --dist loadfile
else
  step "pytest $*" run_pytest "$@"
fi
# Then the provisioning scenarios in podman containers with systemd: molecule per role
# (converge, idempotence, check mode, testinfra), Salt states applied masterless, the SSH
# transport against a real sshd (seconds), and the drill catalog end to end on container nodes
# with real Slurm and Prometheus, and acceptance.yml on container nodes with real Slurm
# (tests/chaos_e2e, about 3 minutes). Minutes each; SRE_SKIP_CONTAINERS=1 leaves them out
# of a local run (CI never sets it). Scenarios too slow for CI are marked `slow` and run with
# `pytest -m "molecule and slow"` (docs/testing.md).
if [ "$#" -eq 0 ] && [ "${SRE_SKIP_CONTAINERS:-0}" != "1" ]; then
  # The Debian 12 systemd image the scenarios start (built once, about 2 minutes, then reused
  # while its recipe is unchanged).
  step "podman image" bash "$ROOT/scripts/podman-image.sh"
  # Three workers on two cores: much of a scenario is waiting (apt, systemd, podman), and the
  # longest ones start first (tests/conftest.py).
  step "pytest containers (molecule, Salt, SSH; -n 3)" run_pytest -m "molecule and not slow" \
    -n 3 --dist load --maxschedchunk 1 tests/ansible tests/salt tests/transport
  # The drill catalog and acceptance.yml end to end (tests/chaos_e2e, about 3 minutes): one
  # site per module (a Slurm cluster and its container nodes; the drills' also a Prometheus), so
  # one process runs each module.
  # Not in the -n 3 run: --dist load would start a site on every worker, and --dist loadgroup
  # does not group with pytest 9.2 (pytest-dev/pytest-xdist#1386).
  step "pytest drills and acceptance end to end (containers)" run_pytest -m "molecule and not slow" tests/chaos_e2e
fi
