"""Debian 12 "nodes" in podman containers that Ansible reaches over SSH with verified host keys.

Each container runs systemd as PID 1 (the image from ``scripts/podman-image.sh`` plus
openssh-server and a Python virtualenv, see :func:`node_image`) and its own sshd on a free
127.0.0.1 port (``--network host``: every container shares the host's ports). Keys:

- one client key pair (ed25519) per :class:`PodmanNodes`, authorised for root in every node;
- one host key pair per container, generated before its sshd starts and copied in
  (:mod:`tests.helpers.sshd_node`, shared with molecule's create step), so
  ``known_hosts`` is written from keys we made, never from what a server offers (no keyscan, no
  trust on first use). Ansible then runs with ``host_key_checking=True`` and
  ``StrictHostKeyChecking=yes``: a node answering with any other key fails the connection.

Containers are named ``<prefix><random>-<i>`` and removed (by name) when the context ends.
"""

from __future__ import annotations

import hashlib
import secrets
import shutil
import subprocess
import tempfile
import warnings
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.helpers import sshd_node
from tests.helpers.podman import PODMAN, RUN_FLAGS, base_image, host_python, wait_systemd
from tests.helpers.procs import CommandError, file_lock, run, wait_port
from tests.helpers.sshd_node import Node

ROOT = Path(__file__).resolve().parents[2]
NODE_IMAGE_REPO = "localhost/sre-debian12-sshnode"
# The node image plus Salt in /opt/salt (sre_salt_node_image), for benchmarks/bench_fanout.py.
SALT_NODE_IMAGE_REPO = "localhost/sre-debian12-sshnode-salt-sre"
# Venv like roles/sre_agent's default (sre_agent_venv), so the gpu_health module finds `sre`.
SRE_VENV = "/opt/sre-tools/venv"
# What the node image adds to the base image; part of its tag.
NODE_PACKAGES = ["openssh-server", "python3-venv"]
SRE_DEPENDENCIES = ["click>=8.1", "rich>=13", "PyYAML>=6", "prometheus-client>=0.19"]


class NodeError(CommandError):
    """A container or its sshd did not come up; the message carries the evidence."""


def _build_layer(base: str, tag: str, steps: Sequence[Sequence[str]], copy: dict[str, str]) -> None:
    """Start ``base``, copy files in, run ``steps`` (argv lists) inside, commit as ``tag``."""
    name = f"sre-image-build-{secrets.token_hex(4)}"
    run([*PODMAN, "run", "-d", "--name", name, *RUN_FLAGS, base, "/sbin/init"])
    try:
        wait_systemd(name)
        for src, dst in copy.items():
            run([*PODMAN, "cp", src, f"{name}:{dst}"])
        for step in steps:
            run([*PODMAN, "exec", "-e", "DEBIAN_FRONTEND=noninteractive", name, *step], timeout=900)
        run([*PODMAN, "stop", "--time", "5", name])
        run(
            [*PODMAN, "commit", "--quiet", "--change", 'CMD ["/sbin/init"]', name, tag], timeout=300
        )
    finally:
        run([*PODMAN, "rm", "--force", "--time", "2", name], check=False)


# Run in a container of the base image (with /root/deps holding the wheels), then committed.
NODE_STEPS = [
    # Masked first: openssh-server's postinst would start sshd on the host's port 22.
    ["systemctl", "mask", "ssh.service", "ssh.socket"],
    ["apt-get", "update"],
    ["apt-get", "install", "-y", "--no-install-recommends", *NODE_PACKAGES],
    ["sh", "-c", "rm -f /etc/ssh/ssh_host_*"],
    ["python3", "-m", "venv", SRE_VENV],
    [
        f"{SRE_VENV}/bin/pip",
        "install",
        "--no-index",
        "--find-links",
        "/root/deps",
        "-q",
        *SRE_DEPENDENCIES,
    ],
    ["rm", "-rf", "/root/deps"],
    ["apt-get", "clean"],
    # As scripts/podman-image.sh leaves them: empty lists that look ancient, so apt's
    # cache_valid_time in the roles refreshes them.
    ["sh", "-c", "rm -rf /var/lib/apt/lists/* && touch -d @86400 /var/lib/apt/lists"],
]


def _prune(repo: str, keep: str) -> None:
    """Remove older tags of ``repo``; podman refuses the ones a container still uses."""
    out = run(
        [
            "podman",
            "images",
            "--format",
            "{{.Repository}}:{{.Tag}}",
            "--filter",
            f"reference={repo}",
        ],
        check=False,
    ).stdout
    for old in out.split():
        if old != keep and old.rsplit(":", 1)[0] == repo:
            subprocess.run(["podman", "rmi", old], capture_output=True, timeout=120, check=False)


def node_image() -> str:
    """Base image + openssh-server + a venv at SRE_VENV with sre-tools' dependencies.

    Tagged by a hash of the base image and this recipe; built once (about a minute), reused after.
    ssh.service and ssh.socket are masked before openssh-server is installed, so Debian's sshd
    never starts: with ``--network host`` it would bind the host's port 22. Debian's generated
    host keys are deleted: each node gets its own.
    """
    base = base_image()
    recipe = repr([base, NODE_STEPS, SRE_DEPENDENCIES])
    tag = f"{NODE_IMAGE_REPO}:{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"
    with file_lock("sre-debian12-sshnode"):
        if subprocess.run(["podman", "image", "exists", tag], check=False).returncode == 0:
            return tag
        # The containers cannot verify PyPI's certificate here (the host's CA bundle differs):
        # fetch the wheels on the host, install them offline, as roles/sre_agent does.
        with tempfile.TemporaryDirectory(prefix="sre-sshnode-") as tmp:
            deps = Path(tmp) / "deps"
            run(
                [
                    host_python(),
                    "-m",
                    "pip",
                    "download",
                    "-q",
                    "--only-binary=:all:",
                    "-d",
                    str(deps),
                    *SRE_DEPENDENCIES,
                ],
                timeout=300,
            )
            _build_layer(base, tag, NODE_STEPS, {str(deps): "/root/deps"})
        _prune(NODE_IMAGE_REPO, tag)
    return tag


def _missing_package_files(wheel: Path) -> list[str]:
    """Data files under sre_tools/ (outside __pycache__) that the wheel does not carry."""
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
    wanted = [
        str(p.relative_to(ROOT))
        for p in sorted((ROOT / "sre_tools").rglob("*"))
        if p.is_file() and p.suffix in (".yaml", ".yml", ".json") and "__pycache__" not in p.parts
    ]
    return [w for w in wanted if w not in names]


def _source_hash() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "sre_tools").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    digest.update((ROOT / "pyproject.toml").read_bytes())
    return digest.hexdigest()[:12]


def sre_node_image(workdir: Path) -> str:
    """:func:`node_image` with this checkout's sre-tools installed in SRE_VENV (a wheel).

    Tagged by a hash of sre_tools/ and pyproject.toml, so a code change builds a new layer.
    """
    return _sre_layer(workdir, node_image(), f"{NODE_IMAGE_REPO}-sre")


def sre_salt_node_image(workdir: Path) -> str:
    """:func:`sre_node_image` plus Salt (the host's version) in ``/opt/salt``, with the same
    sre-tools wheel and its dependencies installed into Salt's Python too, so the ``gpu``
    execution module (salt/_modules/gpu.py) loads on a minion there; what
    ``salt-pip install sre-tools`` does on a real minion. For benchmarks/bench_fanout.py: the
    same nodes answer Ansible over SSH and Salt through a master.

    Layers: :func:`node_image`, then Salt (:func:`tests.helpers.salt_containers.salt_image`
    with that base), then sre-tools (tagged by the source hash, like :func:`sre_node_image`).
    """
    from tests.helpers.salt_containers import SALT_VENV, salt_image

    return _sre_layer(workdir, salt_image(base=node_image()), SALT_NODE_IMAGE_REPO, SALT_VENV)


def _sre_layer(workdir: Path, base: str, repo: str, salt_venv: str | None = None) -> str:
    """``base`` with this checkout's sre-tools wheel in SRE_VENV (and in ``salt_venv``, with
    its dependencies, when given), committed as ``repo:<source hash>-<base tag>``."""
    tag = f"{repo}:{_source_hash()}-{base.rsplit(':', 1)[1][:6]}"
    with file_lock(repo.rsplit("/", 1)[-1]):
        if subprocess.run(["podman", "image", "exists", tag], check=False).returncode == 0:
            return tag
        wheels = workdir / "wheel"
        shutil.rmtree(wheels, ignore_errors=True)
        run(
            [host_python(), "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(ROOT)],
            timeout=300,
        )
        wheel = next(wheels.glob("sre_tools-*.whl"))
        steps = [
            [
                f"{SRE_VENV}/bin/pip",
                "install",
                "--no-deps",
                "--no-index",
                "-q",
                f"/root/{wheel.name}",
            ],
        ]
        copies = {str(wheel): f"/root/{wheel.name}"}
        venvs = [SRE_VENV]
        if salt_venv:
            # The dependencies as wheels fetched on the host (the containers cannot verify
            # PyPI's certificate), then the wheel itself, as into SRE_VENV.
            deps = workdir / "salt-deps"
            shutil.rmtree(deps, ignore_errors=True)
            run(
                [host_python(), "-m", "pip", "download", "-q", "--only-binary=:all:",
                 "-d", str(deps), *SRE_DEPENDENCIES],
                timeout=300,
            )  # fmt: skip
            copies[str(deps)] = "/root/salt-deps"
            steps += [
                [f"{salt_venv}/bin/pip", "install", "--no-index", "--find-links",
                 "/root/salt-deps", "-q", *SRE_DEPENDENCIES],
                [f"{salt_venv}/bin/pip", "install", "--no-deps", "--no-index", "-q",
                 f"/root/{wheel.name}"],
                ["rm", "-rf", "/root/salt-deps"],
            ]  # fmt: skip
            venvs.append(salt_venv)
        steps.append(["rm", "-f", f"/root/{wheel.name}"])
        missing = _missing_package_files(wheel)
        if missing:
            # A wheel without the health profiles cannot run `sre health`; pyproject's
            # package-data must list them. Until it does, put the checkout's files in place.
            warnings.warn(
                f"{wheel.name} lacks {', '.join(missing)}: add them to pyproject.toml's "
                "[tool.setuptools.package-data]; copying them from the checkout",
                stacklevel=3,
            )
            for i, rel in enumerate(missing):
                copies[str(ROOT / rel)] = f"/root/missing-{i}"
                for venv in venvs:
                    site = f"{venv}/lib/python3.11/site-packages"
                    steps.append(
                        ["install", "-D", "-m", "644", f"/root/missing-{i}", f"{site}/{rel}"]
                    )
                steps.append(["rm", "-f", f"/root/missing-{i}"])
        _build_layer(base, tag, steps, copies)
        _prune(repo, tag)
    return tag


@dataclass
class PodmanNodes:
    """Start ``count`` SSH-reachable nodes; use as a context manager (always cleans up)."""

    count: int
    workdir: Path
    prefix: str = "sre-nodes-"
    image: str | None = None  # default: node_image()
    host_prefix: str = "node"
    # Extra `podman run` arguments for every node (volumes: tests/helpers/drill_nodes.py).
    run_args: Sequence[str] = ()
    nodes: list[Node] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.run_id = secrets.token_hex(3)
        self.client_key = self.workdir / "id_ed25519"
        self.known_hosts = self.workdir / "known_hosts"

    def __enter__(self) -> PodmanNodes:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        image = self.image or node_image()
        client_pub = sshd_node.client_key(self.workdir).with_name("id_ed25519.pub").read_text()
        for i in range(self.count):
            node = Node(f"{self.prefix}{self.run_id}-{i}", f"{self.host_prefix}{i + 1}", 0, "")
            self.nodes.append(node)  # before `run`: stop() removes it whatever happens next
            sshd_node.start_container(node.name, node.host, image, self.run_args)
        for node in self.nodes:
            sshd_node.configure_sshd(node, self.workdir, client_pub)
        self.known_hosts.write_text(sshd_node.known_hosts_lines(self.nodes))
        for node in self.nodes:
            wait_port(node.port)

    def ssh_args(self) -> str:
        """``ansible_ssh_common_args``: only our known_hosts, never add a key."""
        return (
            f"-o UserKnownHostsFile={self.known_hosts} -o GlobalKnownHostsFile=/dev/null "
            "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes"
        )

    def inventory(
        self,
        path: Path,
        group: str = "gpu_nodes",
        hostvars: dict[str, dict[str, Any]] | None = None,
        group_vars: dict[str, Any] | None = None,
    ) -> Path:
        """Write a YAML inventory with every node in ``group``; return its path."""
        hosts = {}
        for node in self.nodes:
            hosts[node.host] = {
                "ansible_host": "127.0.0.1",
                "ansible_port": node.port,
                **(hostvars or {}).get(node.host, {}),
            }
        data = {
            "all": {
                "vars": {
                    "ansible_connection": "ssh",
                    "ansible_user": "root",
                    "ansible_ssh_private_key_file": str(self.client_key),
                    "ansible_ssh_common_args": self.ssh_args(),
                    "ansible_python_interpreter": "/usr/bin/python3",
                    **(group_vars or {}),
                },
                "children": {group: {"hosts": hosts}},
            }
        }
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def exec(self, node: Node, *argv: str, timeout: float = 120) -> str:
        return run([*PODMAN, "exec", node.name, *argv], timeout=timeout).stdout

    def stop(self) -> None:
        """Remove every container by name (retried: :func:`sshd_node.remove`)."""
        leftovers = sshd_node.remove([node.name for node in self.nodes])
        self.nodes.clear()
        if leftovers:
            warnings.warn(f"could not remove containers: {', '.join(leftovers)}", stacklevel=2)
