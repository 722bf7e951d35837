"""podman as this project's hosts need it, shared by the container test helpers.

podman 4.3 here works only with runc (crun fails on the hosts' hybrid cgroups), cgroupfs and
explicit ulimits; containers run systemd as PID 1 and share the host's network (test traffic stays
on loopback). molecule/base.yml carries the same flags for molecule.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers.procs import run

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
