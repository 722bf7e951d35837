#!/usr/bin/env bash
# Shared set-up for the two README commands: system packages, a virtual environment, the project.
# Usage: source scripts/bootstrap.sh [pip extras, e.g. "dev"]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${SRE_VENV:-$ROOT/.venv}"
EXTRAS="${1:-}"

if [ "$(id -u)" -eq 0 ]; then SUDO=""; else SUDO="sudo"; fi

need_apt=()
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
case ",$EXTRAS," in
  # The Ansible tests run apt-module tasks on this machine (local connection), which need the
  # system Python's apt bindings (tests/ansible/test_playbooks.py, test_strategy.py).
  *,ansible,*) [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import apt' >/dev/null 2>&1 \
    || need_apt+=(python3-apt) ;;
esac
if [ "${SRE_NEED_PROMETHEUS:-0}" = "1" ]; then
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
  command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
  # Alertmanager and amtool for the routing tests (tests/alerting); run directly, never as a
  # service.
  command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
fi
if [ "${SRE_NEED_SLURM:-0}" = "1" ]; then
  { command -v slurmctld || [ -x /usr/sbin/slurmctld ]; } >/dev/null 2>&1 || need_apt+=(slurm-wlm)
  { command -v munged || [ -x /usr/sbin/munged ]; } >/dev/null 2>&1 || need_apt+=(munge)
fi
if [ "${SRE_NEED_CHROMIUM:-0}" = "1" ]; then
  # The HTML report tests open the page in a real headless browser (tests/htmlreport).
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
fi
if [ "${SRE_NEED_CONTAINERS:-0}" = "1" ]; then
  # Provisioning targets: podman containers with systemd (runc: crun fails on these hosts'
  # hybrid cgroups), a Debian image built with debootstrap, the fixture apt repository (dpkg-dev,
  # gnupg), and the ssh client for the SSH-reachable test nodes (their sshd runs in the image).
  for tool_pkg in podman:podman runc:runc debootstrap:debootstrap dpkg-scanpackages:dpkg-dev \
      gpg:gnupg ssh-keygen:openssh-client; do
    command -v "${tool_pkg%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool_pkg%%:*}" ] \
      || need_apt+=("${tool_pkg#*:}")
  done
fi
if [ "${SRE_NEED_POSTGRESQL:-0}" = "1" ]; then
  # The server binaries (initdb, postgres, pg_ctl) the store tests start as an unprivileged user
  # (runuser, from util-linux); Debian 12 ships PostgreSQL 15.
  [ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
  command -v runuser >/dev/null 2>&1 || need_apt+=(util-linux)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  echo "==> apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  # --no-install-recommends keeps it small; policy-rc.d may refuse to start the packaged
  # prometheus service, which is fine: tests run their own servers on loopback.
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"sre_tools needs Python 3.11 or newer, found {sys.version.split()[0]}")
PY

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> python3 -m venv $VENV"
  python3 -m venv "$VENV"
fi
echo "==> pip install -e .${EXTRAS:+[$EXTRAS]}"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
PIP_LOG="$(mktemp)"
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    -e "$ROOT${EXTRAS:+[$EXTRAS]}" >"$PIP_LOG" 2>&1; then
  cat "$PIP_LOG" >&2
  echo "pip install failed" >&2
  exit 1
fi
rm -f "$PIP_LOG"
"$VENV/bin/python" -c 'import sre_tools' || { echo "install failed" >&2; exit 1; }
export PATH="$VENV/bin:$PATH"
