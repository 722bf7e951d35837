"""podman as this project's hosts need it, shared by the container test helpers.

podman 4.3 here works only with runc (crun fails on the hosts' hybrid cgroups), cgroupfs and
explicit ulimits; containers run systemd as PID 1 and share the host's network (test traffic stays
on loopback). molecule/base.yml carries the same flags for molecule.
"""

from __future__ import annotations

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
