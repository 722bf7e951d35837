"""podman as this project's hosts need it, shared by the container test helpers.

podman 4.3 here works only with runc (crun fails on the hosts' hybrid cgroups), cgroupfs and
explicit ulimits; containers run systemd as PID 1 and share the host's network (test traffic stays
on loopback). molecule/base.yml carries the same flags for molecule.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from tests.helpers.procs import CommandError, run

ROOT = Path(__file__).resolve().parents[2]

PODMAN = ["podman", "--runtime", "/usr/sbin/runc", "--cgroup-manager=cgroupfs"]
RUN_FLAGS = [
    "--ulimit",
    "nofile=10000:10000",
    "--ulimit",
    "nproc=4096:4096",
    "--systemd=always",
    "--network",
    "host",
]


def base_image() -> str:
    """The molecule base image: ``$SRE_MOLECULE_IMAGE``, or built/reused by
    scripts/podman-image.sh."""
    image = os.environ.get("SRE_MOLECULE_IMAGE")
    if image:
        return image
    return run([str(ROOT / "scripts" / "podman-image.sh")], timeout=900).stdout.strip()


def host_python() -> str:
    """The Python that builds and fetches wheels for the images: the checkout's venv, if any."""
    python = ROOT / ".venv" / "bin" / "python"
    return str(python) if python.exists() else "python3"


def wait_systemd(name: str, timeout: float = 180.0) -> None:
    """Wait until systemd in container ``name`` has booted (``running`` or ``degraded``);
    :class:`CommandError` with the container's log after ``timeout``."""
    deadline = time.monotonic() + timeout
    state = ""
    while time.monotonic() < deadline:
        proc = run(
            [*PODMAN, "exec", name, "systemctl", "is-system-running", "--wait"],
            timeout=timeout,
            check=False,
        )
        state = (proc.stdout.strip() or proc.stderr.strip())[-500:]
        if state in ("running", "degraded"):
            return
        time.sleep(1)  # `podman exec` right after `run` may find no systemd yet: ask again
    logs = run(["podman", "logs", "--tail", "30", name], check=False).stdout
    raise CommandError(f"{name}: systemd did not finish booting ({state!r}):\n{logs}")
