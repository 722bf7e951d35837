#!/usr/bin/env bash
# Quick start, command 2: set everything up and run the whole test suite with the linters.
# .ci/run calls this verbatim. pytest's "no tests collected" (exit 5) is a failure here.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SRE_NEED_PROMETHEUS=1
SRE_NEED_SLURM=1
# shellcheck source=scripts/bootstrap.sh
source "$ROOT/scripts/bootstrap.sh" "dev,salt,ansible"

echo "==> ruff"
PY_DIRS=()
for d in sre_tools tests benchmarks scripts salt molecule roles; do [ -d "$d" ] && PY_DIRS+=("$d"); done
"$VENV/bin/ruff" check "${PY_DIRS[@]}"
"$VENV/bin/ruff" format --check "${PY_DIRS[@]}"
echo "==> mypy (strict on sre_tools.slo, sre_tools.sli, sre_tools.reliability)"
"$VENV/bin/mypy"
echo "==> yamllint"
"$VENV/bin/yamllint" --strict .
echo "==> pytest"
set +e
"$VENV/bin/pytest" -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
