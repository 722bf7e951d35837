"""Each role's molecule scenarios, end to end, in podman containers with systemd as PID 1.

``molecule test`` per scenario: create, prepare, converge, idempotence (a second converge must
change nothing), testinfra verify, destroy. The image comes from scripts/podman-image.sh, built
once (about 2 minutes) and reused while its package list is unchanged.

Marked ``molecule``: select with ``-m molecule``, leave out with ``-m "not molecule"``. A missing
podman, runc, debootstrap or molecule FAILS these tests; they never skip.
Measured times on this project's CI kind of machine (2 cores) are in docs/ansible.md.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.ansible.conftest import ROOT, tool, tool_env

# (role, scenario, timeout in seconds). nvidia_driver/default really builds the module with DKMS.
SCENARIOS = [
    ("gpu_base", "default", 900),
    ("gpu_base", "alternative", 900),
    ("nvidia_driver", "default", 2400),
    ("nvidia_driver", "alternative", 900),
]
IMAGE_TIMEOUT = 900
LOG_TAIL = 12_000

pytestmark = pytest.mark.molecule


@pytest.fixture(scope="session")
def molecule_image() -> str:
    """Build or reuse the Debian 12 systemd image; its name."""
    for name in ("podman", "runc", "debootstrap", "molecule", "ansible-playbook"):
        tool(name)
    try:
        result = subprocess.run(
            [str(ROOT / "scripts" / "podman-image.sh")],
            cwd=ROOT,
            env=tool_env(),
            capture_output=True,
            text=True,
            timeout=IMAGE_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"scripts/podman-image.sh took over {IMAGE_TIMEOUT} s", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"scripts/podman-image.sh failed:\n{result.stderr}", pytrace=False)
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("role", "scenario", "timeout"),
    SCENARIOS,
    ids=[f"{role}-{scenario}" for role, scenario, _ in SCENARIOS],
)
def test_molecule_scenario(
    role: str, scenario: str, timeout: int, molecule_image: str, tmp_path: Path
) -> None:
    env = tool_env()
    env["SRE_MOLECULE_IMAGE"] = molecule_image
    # A container name and molecule state of its own: concurrent runs (another checkout, a
    # developer's instance of the same scenario) are left alone.
    env["SRE_MOLECULE_RUN_SUFFIX"] = f"-pytest{os.getpid()}"
    env["MOLECULE_EPHEMERAL_DIRECTORY"] = str(tmp_path / "molecule-state")
    log = tmp_path / f"molecule-{role}-{scenario}.log"
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as stream:
        # Its own process group, so a timeout stops molecule and every ansible-playbook under it.
        process = subprocess.Popen(
            [str(ROOT / "molecule" / "run.sh"), role, scenario, "test"],
            cwd=ROOT,
            env=env,
            stdout=stream,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            returncode: int | None = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            returncode = None
    elapsed = time.monotonic() - started
    print(f"molecule {role}/{scenario}: {elapsed:.0f} s")
    output = log.read_text(encoding="utf-8", errors="replace")
    if returncode is None:
        # A timed-out run may leave its container behind; the next run's destroy step removes it.
        pytest.fail(f"{role}/{scenario} ran past {timeout} s:\n{output[-LOG_TAIL:]}", pytrace=False)
    assert returncode == 0, f"{role}/{scenario} failed ({elapsed:.0f} s):\n{output[-LOG_TAIL:]}"
