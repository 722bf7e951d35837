"""One podman container with systemd reached over SSH with a host key we made: shared by
:class:`tests.helpers.podman_nodes.PodmanNodes` and molecule's create/destroy playbooks.

Keys are generated here, never learnt from a server: a client key pair (ed25519) authorised for
root, and one host key pair per container, copied in before its sshd starts. ``known_hosts`` is
written from those keys, so Ansible, mitogen and testinfra run with ``StrictHostKeyChecking=yes``
and a node answering with another key fails the connection. Each sshd listens on its own free
127.0.0.1 port (``--network host``: every container shares the host's ports). The image must
carry openssh-server with Debian's ssh.service masked (scripts/podman-image.sh does).

As a command, for molecule (molecule/create.yml, molecule/destroy.yml):

    python -m tests.helpers.sshd_node create --image IMAGE --workdir DIR \
        --instance-config FILE NAME [NAME ...]
    python -m tests.helpers.sshd_node destroy NAME [NAME ...]

``create`` starts the containers, writes ``DIR/id_ed25519`` (client key), ``DIR/known_hosts``
and molecule's instance config (address, port, user, identity file per instance). ``destroy``
removes the containers by name.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.helpers.podman import PODMAN, RUN_FLAGS, wait_systemd
from tests.helpers.procs import CommandError, free_port, run, wait_port

SSHD_CONFIG = "/etc/ssh/sre_test_sshd_config"
HOST_KEY = "/etc/ssh/sre_test_host_ed25519_key"
AUTHORIZED_KEYS = "/etc/ssh/sre_test_authorized_keys"
UNIT = "sre-test-sshd.service"


@dataclass
class Node:
    name: str  # container name
    host: str  # inventory hostname
    port: int
    host_public_key: str  # "ssh-ed25519 AAAA..."


def client_key(workdir: Path) -> Path:
    """``workdir/id_ed25519``, generated when missing; its path."""
    key = workdir / "id_ed25519"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sre-test-client",
             "-f", str(key)])  # fmt: skip
    return key


def start_container(name: str, hostname: str, image: str, extra_args: Sequence[str] = ()) -> None:
    """``podman run`` ``image`` with systemd; ``extra_args`` (volumes, ...) go before the image."""
    run([*PODMAN, "run", "-d", "--name", name, "--hostname", hostname, *RUN_FLAGS, *extra_args,
         image, "/sbin/init"])  # fmt: skip


def configure_sshd(node: Node, workdir: Path, client_pub: str) -> None:
    """Give the running container ``node.name`` its own host key and an sshd on a free loopback
    port for the client key ``client_pub``; fills in ``node.port`` and ``node.host_public_key``."""
    wait_systemd(node.name)
    key = workdir / f"host_key_{node.host}"
    for stale in (key, key.with_name(key.name + ".pub")):
        stale.unlink(missing_ok=True)
    run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{node.host}", "-f", str(key)])
    node.host_public_key = " ".join(key.with_name(key.name + ".pub").read_text().split()[:2])
    node.port = free_port()
    files = workdir / f"files_{node.host}"
    files.mkdir(exist_ok=True)
    (files / "sshd_config").write_text(
        f"Port {node.port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {HOST_KEY}\n"
        "PidFile /run/sre-test-sshd.pid\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\n"
        f"AuthorizedKeysFile {AUTHORIZED_KEYS}\n"
        "UsePAM no\n"
        # Ansible over mitogen and molecule's idempotence run open many sessions at once.
        "MaxStartups 100\n"
        "MaxSessions 100\n"
        "Subsystem sftp /usr/lib/openssh/sftp-server\n"
    )
    (files / "unit").write_text(
        "[Unit]\n"
        "Description=sshd for Ansible tests on a loopback port\n"
        "After=network.target\n\n"
        "[Service]\n"
        "RuntimeDirectory=sshd\n"
        f"ExecStartPre=/usr/sbin/sshd -t -f {SSHD_CONFIG}\n"
        f"ExecStart=/usr/sbin/sshd -D -e -f {SSHD_CONFIG}\n"
        "Restart=on-failure\n\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
    (files / "authorized_keys").write_text(client_pub)
    copies = {
        files / "sshd_config": SSHD_CONFIG,
        key: HOST_KEY,
        key.with_name(key.name + ".pub"): HOST_KEY + ".pub",
        files / "authorized_keys": AUTHORIZED_KEYS,
        files / "unit": f"/etc/systemd/system/{UNIT}",
    }
    for src, dst in copies.items():
        run([*PODMAN, "cp", str(src), f"{node.name}:{dst}"])
    run(
        [
            *PODMAN,
            "exec",
            node.name,
            "sh",
            "-c",
            f"chown root:root {HOST_KEY} {HOST_KEY}.pub {AUTHORIZED_KEYS} {SSHD_CONFIG}"
            f" && chmod 600 {HOST_KEY} && chmod 644 {AUTHORIZED_KEYS}",
        ]
    )
    out = subprocess.run(
        [*PODMAN, "exec", node.name, "systemctl", "enable", "--now", UNIT],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        journal = run(
            [*PODMAN, "exec", node.name, "journalctl", "-u", UNIT, "--no-pager"], check=False
        ).stdout
        raise CommandError(f"{node.name}: {UNIT} failed: {out.stderr.strip()}\n{journal}")


def known_hosts_lines(nodes: list[Node]) -> str:
    return "".join(f"[127.0.0.1]:{n.port} {n.host_public_key}\n" for n in nodes)


def remove(names: list[str]) -> list[str]:
    """Remove containers by name, retried (a loaded host can make podman's first ``rm`` give
    up); the names still there afterwards."""
    leftovers = []
    for name in names:
        for _ in range(3):
            subprocess.run(
                [*PODMAN, "rm", "--force", "--time", "2", name],
                capture_output=True,
                timeout=120,
                check=False,
            )
            exists = subprocess.run(
                ["podman", "container", "exists", name], capture_output=True, check=False
            )
            if exists.returncode != 0:
                break
            time.sleep(2)
        else:
            leftovers.append(name)
    return leftovers


def create(names: list[str], image: str, workdir: Path) -> list[Node]:
    """Start one SSH-reachable container per name (hostname = name); removes what it started
    when any of them fails."""
    workdir.mkdir(parents=True, exist_ok=True)
    client_pub = client_key(workdir).with_name("id_ed25519.pub").read_text()
    nodes = [Node(name, name, 0, "") for name in names]
    try:
        for node in nodes:
            start_container(node.name, node.host, image)
        for node in nodes:
            configure_sshd(node, workdir, client_pub)
        for node in nodes:
            wait_port(node.port)
    except BaseException:
        remove(names)
        raise
    return nodes


def _molecule_create(args: argparse.Namespace) -> None:
    workdir = Path(args.workdir)
    nodes = create(args.names, args.image, workdir)
    known_hosts = workdir / "known_hosts"
    known_hosts.write_text(known_hosts_lines(nodes))
    config: list[dict[str, Any]] = [
        {
            "instance": node.name,
            "address": "127.0.0.1",
            "port": node.port,
            "user": "root",
            "identity_file": str(workdir / "id_ed25519"),
            "connection": "ssh",
        }
        for node in nodes
    ]
    Path(args.instance_config).write_text(yaml.safe_dump(config, sort_keys=False))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.helpers.sshd_node")
    sub = parser.add_subparsers(dest="command", required=True)
    make = sub.add_parser("create")
    make.add_argument("--image", required=True)
    make.add_argument("--workdir", required=True)
    make.add_argument("--instance-config", required=True)
    make.add_argument("names", nargs="+")
    drop = sub.add_parser("destroy")
    drop.add_argument("names", nargs="+")
    args = parser.parse_args(argv)
    try:
        if args.command == "create":
            _molecule_create(args)
            return 0
        leftovers = remove(args.names)
    except CommandError as exc:
        print(f"sshd_node: {exc}", file=sys.stderr)
        return 1
    if leftovers:
        print(f"sshd_node: could not remove {', '.join(leftovers)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
