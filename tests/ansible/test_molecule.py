"""Each role's molecule scenarios, end to end, in podman containers with systemd as PID 1.

Per scenario: ``molecule test --destroy never`` (create, prepare, converge, idempotence: a second
converge must change nothing, testinfra verify), then ``molecule converge -- --check`` on the
converged host (the converge playbook in check mode must report ``changed=0`` on every host), then
``molecule destroy``. (Not ``molecule check``: its sequence recreates the instance first.) The
image comes from scripts/podman-image.sh, built once (about 2 minutes) and reused
while its package list is unchanged.

Scenarios are found on disk (roles/<role>/molecule/<scenario>/molecule.yml), so a new role's
scenarios run without touching this file. Marked ``molecule``: select with ``-m molecule``, leave
out with ``-m "not molecule"``. A missing podman, runc, debootstrap or molecule FAILS these tests;
they never skip. Measured times on this project's CI kind of machine (2 cores) are in
docs/ansible.md.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.ansible.conftest import ROLES_DIR, ROOT, tool, tool_env
from tests.helpers.podman import base_image
from tests.helpers.procs import CommandError

# Time limits in seconds; nvidia_driver/default really builds the kernel module with DKMS.
# Limits leave room for a loaded machine (measured times: docs/ansible.md).
DEFAULT_TIMEOUT = 1500
TIMEOUTS = {
    ("nvidia_driver", "default"): 2400,
    ("nvidia_fabricmanager", "default"): 2400,
    ("nvidia_fabricmanager", "alternative"): 2400,
    ("container_runtime", "default"): 2400,
    ("container_runtime", "alternative"): 2400,
}
CHECK_TIMEOUT = 600
RUN_SH = ROOT / "molecule" / "run.sh"
# molecule/site (playbooks/site.yml on two containers, then the health gate) has its own run.sh.
SITE_RUN_SH = ROOT / "molecule" / "site" / "run.sh"
SITE_TIMEOUT = 3600
SITE_CHECK_TIMEOUT = 1800
LOG_TAIL = 12_000
RECAP = re.compile(r"^(?P<host>\S+)\s+:\s+ok=\d+\s+changed=(?P<changed>\d+)", re.MULTILINE)

# Scenarios CI's default container run leaves out to stay inside its time budget; they would run
# with `pytest -m "molecule and slow" tests/ansible`. None today: over SSH and mitogen every
# scenario and molecule/site fit in CI (docs/testing.md, figures in docs/benchmarks.md).
SLOW: set[tuple[str, str]] = set()

SCENARIOS = sorted(
    (path.parents[2].name, path.parent.name) for path in ROLES_DIR.glob("*/molecule/*/molecule.yml")
)

pytestmark = pytest.mark.molecule


@pytest.fixture(scope="session")
def molecule_image() -> str:
    """Build or reuse the Debian 12 systemd image; its name."""
    for name in ("podman", "runc", "debootstrap", "molecule", "ansible-playbook"):
        tool(name)
    try:
        return base_image()
    except CommandError as exc:
        pytest.fail(f"scripts/podman-image.sh failed: {exc}", pytrace=False)


def run_molecule(
    env: dict[str, str], log: Path, args: list[str], timeout: int, script: Path = RUN_SH
) -> int | None:
    """One molecule/run.sh (or ``script``) call, output appended to ``log``; its exit status,
    None on timeout."""
    with log.open("a", encoding="utf-8") as stream:
        stream.write(f"\n==> {script.relative_to(ROOT)} {' '.join(args)}\n")
        stream.flush()
        # Its own process group, so a timeout stops molecule and every ansible-playbook under it.
        process = subprocess.Popen(
            [str(script), *args],
            cwd=ROOT,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            return None


def check_mode_changes(output: str) -> dict[str, int]:
    """Changed counts per host from the last PLAY RECAP in ``output`` (molecule check's)."""
    recap = output.rsplit("PLAY RECAP", 1)
    if len(recap) != 2:
        return {}
    return {m["host"]: int(m["changed"]) for m in RECAP.finditer(recap[1])}


def test_scenarios_are_found() -> None:
    assert ("gpu_base", "default") in SCENARIOS
    assert ("nvidia_driver", "default") in SCENARIOS


@pytest.mark.parametrize(
    ("role", "scenario"),
    [
        pytest.param(role, scenario, id=f"{role}-{scenario}", marks=pytest.mark.slow)
        if (role, scenario) in SLOW
        else pytest.param(role, scenario, id=f"{role}-{scenario}")
        for role, scenario in SCENARIOS
    ],
)
def test_molecule_scenario(role: str, scenario: str, molecule_image: str, tmp_path: Path) -> None:
    timeout = TIMEOUTS.get((role, scenario), DEFAULT_TIMEOUT)
    converge_and_check(
        f"{role}/{scenario}", [role, scenario], RUN_SH, timeout, CHECK_TIMEOUT, molecule_image,
        tmp_path,
    )  # fmt: skip


def test_molecule_site(molecule_image: str, tmp_path: Path) -> None:
    """molecule/site: site.yml converged on two containers, idempotent, the health gate through
    `sre ansible validate` in verify, then site.yml in check mode reporting no change."""
    converge_and_check(
        "site", [], SITE_RUN_SH, SITE_TIMEOUT, SITE_CHECK_TIMEOUT, molecule_image, tmp_path
    )


def converge_and_check(
    name: str,
    prefix: list[str],
    script: Path,
    timeout: int,
    check_timeout: int,
    molecule_image: str,
    tmp_path: Path,
) -> None:
    """``test --destroy never``, then ``converge -- --check`` (changed=0 on every host), then
    ``destroy``, through ``script`` with ``prefix`` (molecule/run.sh takes role and scenario)."""
    env = tool_env()
    env["SRE_MOLECULE_IMAGE"] = molecule_image
    # A container name and molecule state of its own: concurrent runs (another checkout, a
    # developer's instance of the same scenario) are left alone.
    env["SRE_MOLECULE_RUN_SUFFIX"] = f"-pytest{os.getpid()}"
    env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(tmp_path / "molecule-state")
    log = tmp_path / f"molecule-{name.replace('/', '-')}.log"
    started = time.monotonic()
    try:
        rc = run_molecule(env, log, [*prefix, "test", "--destroy", "never"], timeout, script)
        tested = time.monotonic() - started
        output = log.read_text(encoding="utf-8", errors="replace")
        if rc is None:
            pytest.fail(f"{name} ran past {timeout} s:\n{output[-LOG_TAIL:]}", False)
        assert rc == 0, f"{name} failed ({tested:.0f} s):\n{output[-LOG_TAIL:]}"

        mark = len(output)
        # `molecule check` would destroy and recreate the instance first (its check_sequence).
        rc = run_molecule(env, log, [*prefix, "converge", "--", "--check"], check_timeout, script)
        check_output = log.read_text(encoding="utf-8", errors="replace")[mark:]
        assert rc == 0, f"{name} check mode failed:\n{check_output[-LOG_TAIL:]}"
        changes = check_mode_changes(check_output)
        tail = check_output[-LOG_TAIL:]
        assert changes, f"{name}: no PLAY RECAP in check mode:\n{tail}"
        assert all(n == 0 for n in changes.values()), (
            f"{name}: check mode on the converged host reports changes {changes}:\n{tail}"
        )
    finally:
        run_molecule(env, log, [*prefix, "destroy"], check_timeout, script)
        print(f"molecule {name}: {time.monotonic() - started:.0f} s")


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("PLAY RECAP ***\nhost-a : ok=5 changed=0 unreachable=0 failed=0\n", {"host-a": 0}),
        (
            "PLAY RECAP *\nx : ok=1 changed=3 unreachable=0\nPLAY RECAP *\n"
            "y   : ok=2    changed=1    unreachable=0\n",
            {"y": 1},
        ),
        ("no recap here", {}),
    ],
)
def test_check_mode_changes_reads_the_last_recap(output: str, expected: dict[str, int]) -> None:
    assert check_mode_changes(output) == expected
