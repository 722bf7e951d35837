"""Ansible over real SSH to podman "nodes" (tests/helpers/podman_nodes.py), host keys verified.

Two Debian 12 systemd containers, each with its own sshd on a loopback port, its own host key
(generated here, written to known_hosts before any connection) and this repository's sre-tools
in /opt/sre-tools/venv. ``sre ansible validate`` runs the real playbooks/validate.yml with the
repository's ansible.cfg; the gpu_health module runs the node's ``sre`` against recorded NVML
sessions copied onto the nodes (no GPU in a container).

Then the host-key checks: a node whose key is not in known_hosts, and a node answering with
another node's key, are both refused (unreachable, exit 4) and known_hosts is left unchanged:
nothing is ever added on first use. validate.yml runs Ansible's plain linear strategy; the same
three cases then run a play under ansible.cfg's default strategy (sre_linear: mitogen's ssh
connection, the one the provisioning plays use).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import mitogen_action_dir, mitogen_stack
from tests.helpers.podman_nodes import PodmanNodes, sre_node_image

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "gpu"

pytestmark = pytest.mark.molecule  # podman, runc, debootstrap, root: left out of the default run


def sre(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = shutil.which("sre", path=str(Path(sys.executable).parent))
    assert script, "the sre console script is not installed: pip install -e ."
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "220", "XDG_STATE_HOME": str(cwd / "state")}
    env.pop("ANSIBLE_CONFIG", None)  # the repository's ansible.cfg
    env.pop("ANSIBLE_HOST_KEY_CHECKING", None)
    # A ControlPersist master from an earlier test would skip the new host-key check.
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(cwd / "cp")
    return subprocess.run(
        [script, *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory):
    for tool in ("podman", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (apt-get install podman runc openssh-client)")
    work = tmp_path_factory.mktemp("ssh-nodes")
    with PodmanNodes(2, work / "keys", prefix="sre-sshtest-", image=sre_node_image(work)) as fleet:
        for node, fixture in zip(
            fleet.nodes, ["h100-capture.json", "faults/dbe-volatile.json"], strict=True
        ):
            fleet.exec(node, "mkdir", "-p", "/srv/recordings")
            subprocess.run(
                ["podman", "cp", str(FIX / fixture), f"{node.name}:/srv/recordings/gpu.json"],
                check=True,
                timeout=60,
            )
        yield fleet


def inventory(fleet: PodmanNodes, path: Path) -> Path:
    return fleet.inventory(path, group_vars={"gpu_health_replay": "/srv/recordings/gpu.json"})


def test_validate_over_ssh_with_verified_host_keys(nodes: PodmanNodes, tmp_path: Path) -> None:
    before = nodes.known_hosts.read_text()
    inv = inventory(nodes, tmp_path / "hosts.yml")
    proc = sre("ansible", "validate", "-i", str(inv), "--json", cwd=tmp_path)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    hosts = {h["host"]: h for h in doc["hosts"]}
    assert hosts["node1"]["status"] == "ok"
    assert hosts["node2"]["status"] == "crit"
    assert hosts["node2"]["health"]["actions"] == ["reset_gpu"]
    # The module ran the node's own sre (the venv in the container), over SSH.
    events = Path(doc["artifact_dir"], "job_events")
    results = [json.loads(p.read_text()) for p in events.glob("*.json")]
    health = [
        e["event_data"]["res"]
        for e in results
        if e.get("event") == "runner_on_ok" and e["event_data"].get("task_action") == "gpu_health"
    ]
    assert {r["method"] for r in health} == {"cli"}
    assert {r["report"]["host"] for r in health} == {"node1", "node2"}
    assert nodes.known_hosts.read_text() == before


# ssh's own words (plain linear strategy: validate.yml) and mitogen's (ansible.cfg's sre_linear
# strategy, the provisioning plays; it runs ssh with StrictHostKeyChecking=yes).
HOST_KEY_REFUSED = (
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "Host key checking is enabled, and SSH reported an unrecognized or mismatching host key",
)


def test_unknown_host_key_is_refused(nodes: PodmanNodes, tmp_path: Path) -> None:
    inv = inventory(nodes, tmp_path / "hosts.yml")
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    text = inv.read_text().replace(str(nodes.known_hosts), str(empty))
    inv.write_text(text)
    proc = sre("ansible", "validate", "-i", str(inv), "--limit", "node1", "--json", cwd=tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    host = json.loads(proc.stdout)["hosts"][0]
    assert host["status"] == "unreachable"
    assert any(m in host["failures"][0]["msg"] for m in HOST_KEY_REFUSED), host
    assert empty.read_text() == ""  # no trust on first use


def test_wrong_host_key_is_refused(nodes: PodmanNodes, tmp_path: Path) -> None:
    inv = inventory(nodes, tmp_path / "hosts.yml")
    node1, node2 = nodes.nodes
    swapped = tmp_path / "known_hosts_swapped"
    # node1's port listed with node2's key: what a man in the middle would present.
    swapped.write_text(f"[127.0.0.1]:{node1.port} {node2.host_public_key}\n")
    inv.write_text(inv.read_text().replace(str(nodes.known_hosts), str(swapped)))
    proc = sre("ansible", "validate", "-i", str(inv), "--limit", "node1", "--json", cwd=tmp_path)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    host = json.loads(proc.stdout)["hosts"][0]
    assert host["status"] == "unreachable"
    assert any(m in host["failures"][0]["msg"] for m in HOST_KEY_REFUSED), host
    assert swapped.read_text() == f"[127.0.0.1]:{node1.port} {node2.host_public_key}\n"


MITOGEN_PLAY = [
    {
        "name": "Probe over mitogen.",
        "hosts": "gpu_nodes",
        "gather_facts": False,
        "become": True,
        "tasks": [
            {"name": "Connection stack.", "mitogen_get_stack": None, "register": "stack"},
            {"name": "Show.", "ansible.builtin.debug": {"msg": "STACK={{ stack | to_json }}"}},
            {"name": "Who.", "ansible.builtin.command": "id -u", "changed_when": False},
        ],
    }
]


def mitogen_playbook(inv: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """MITOGEN_PLAY with the repository's ansible.cfg (strategy sre_linear) on node1."""
    book = tmp_path / "probe.yml"
    book.write_text(yaml.safe_dump(MITOGEN_PLAY))
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1"}
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_HOST_KEY_CHECKING", "ANSIBLE_STRATEGY"):
        env.pop(name, None)
    env["ANSIBLE_ACTION_PLUGINS"] = mitogen_action_dir()
    env["ANSIBLE_SSH_CONTROL_PATH_DIR"] = str(tmp_path / "cp")
    ansible_playbook = Path(sys.executable).parent / "ansible-playbook"
    return subprocess.run(
        [str(ansible_playbook), "-i", str(inv), "--limit", "node1", str(book)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )


def test_mitogen_strategy_verifies_host_keys(nodes: PodmanNodes, tmp_path: Path) -> None:
    node1, node2 = nodes.nodes
    before = nodes.known_hosts.read_text()
    good = mitogen_playbook(inventory(nodes, tmp_path / "good.yml"), tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    stack = mitogen_stack(good.stdout)
    assert '"method": "ssh"' in stack and '"check_host_keys": "enforce"' in stack, stack
    assert nodes.known_hosts.read_text() == before

    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    swapped = tmp_path / "known_hosts_swapped"
    swapped.write_text(f"[127.0.0.1]:{node1.port} {node2.host_public_key}\n")
    for known in (empty, swapped):
        content = known.read_text()
        inv = inventory(nodes, tmp_path / f"{known.name}.yml")
        inv.write_text(inv.read_text().replace(str(nodes.known_hosts), str(known)))
        proc = mitogen_playbook(inv, tmp_path)
        assert proc.returncode == 4, proc.stdout + proc.stderr
        out = " ".join((proc.stdout + proc.stderr).split())
        assert "UNREACHABLE" in out, out
        assert any(m in out for m in HOST_KEY_REFUSED), out
        assert known.read_text() == content  # nothing added or changed
