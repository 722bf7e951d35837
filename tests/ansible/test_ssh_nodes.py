"""Ansible over real SSH to podman "nodes" (tests/helpers/podman_nodes.py), host keys verified.

Two Debian 12 systemd containers, each with its own sshd on a loopback port, its own host key
(generated here, written to known_hosts before any connection) and this repository's sre-tools
in /opt/sre-tools/venv. ``sre ansible validate`` runs the real playbooks/validate.yml with the
repository's ansible.cfg; the gpu_health module runs the node's ``sre`` against recorded NVML
sessions copied onto the nodes (no GPU in a container).

Then the host-key checks, with ansible.cfg's strategy (sre_linear: mitogen's ssh) and with plain
``linear`` (Ansible's ssh): a node whose key is not in known_hosts, and a node answering with
another node's key, are both refused (unreachable, exit 4) and known_hosts is left unchanged:
nothing is ever added on first use.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.podman_nodes import PodmanNodes, sre_node_image

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures" / "gpu"

pytestmark = pytest.mark.molecule  # podman, runc, debootstrap, root: left out of the default run


def sre(*args: str, cwd: Path, strategy: str | None = None) -> subprocess.CompletedProcess[str]:
    """``sre`` with the repository's ansible.cfg; ``strategy`` overrides its sre_linear."""
    script = shutil.which("sre", path=str(Path(sys.executable).parent))
    assert script, "the sre console script is not installed: pip install -e ."
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "220", "XDG_STATE_HOME": str(cwd / "state")}
    env.pop("ANSIBLE_CONFIG", None)  # the repository's ansible.cfg
    env.pop("ANSIBLE_HOST_KEY_CHECKING", None)
    env.pop("ANSIBLE_STRATEGY", None)
    if strategy is not None:
        env["ANSIBLE_STRATEGY"] = strategy
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
            fleet.nodes, ["h100-synthetic.json", "faults/dbe-volatile.json"], strict=True
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


# ssh's own words (plain linear strategy) and mitogen's (ansible.cfg's sre_linear strategy, which
# runs ssh with StrictHostKeyChecking=yes since host_key_checking is True).
HOST_KEY_REFUSED = (
    "Host key verification failed",
    "REMOTE HOST IDENTIFICATION HAS CHANGED",
    "Host key checking is enabled, and SSH reported an unrecognized or mismatching host key",
)


@pytest.mark.parametrize("strategy", [None, "linear"], ids=["sre_linear", "linear"])
def test_unknown_host_key_is_refused(
    nodes: PodmanNodes, tmp_path: Path, strategy: str | None
) -> None:
    inv = inventory(nodes, tmp_path / "hosts.yml")
    empty = tmp_path / "known_hosts_empty"
    empty.write_text("")
    text = inv.read_text().replace(str(nodes.known_hosts), str(empty))
    inv.write_text(text)
    proc = sre(
        "ansible",
        "validate",
        "-i",
        str(inv),
        "--limit",
        "node1",
        "--json",
        cwd=tmp_path,
        strategy=strategy,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    host = json.loads(proc.stdout)["hosts"][0]
    assert host["status"] == "unreachable"
    assert any(m in host["failures"][0]["msg"] for m in HOST_KEY_REFUSED), host
    assert empty.read_text() == ""  # no trust on first use


@pytest.mark.parametrize("strategy", [None, "linear"], ids=["sre_linear", "linear"])
def test_wrong_host_key_is_refused(
    nodes: PodmanNodes, tmp_path: Path, strategy: str | None
) -> None:
    inv = inventory(nodes, tmp_path / "hosts.yml")
    node1, node2 = nodes.nodes
    swapped = tmp_path / "known_hosts_swapped"
    # node1's port listed with node2's key: what a man in the middle would present.
    swapped.write_text(f"[127.0.0.1]:{node1.port} {node2.host_public_key}\n")
    inv.write_text(inv.read_text().replace(str(nodes.known_hosts), str(swapped)))
    proc = sre(
        "ansible",
        "validate",
        "-i",
        str(inv),
        "--limit",
        "node1",
        "--json",
        cwd=tmp_path,
        strategy=strategy,
    )
    assert proc.returncode == 4, proc.stdout + proc.stderr
    host = json.loads(proc.stdout)["hosts"][0]
    assert host["status"] == "unreachable"
    assert any(m in host["failures"][0]["msg"] for m in HOST_KEY_REFUSED), host
    assert swapped.read_text() == f"[127.0.0.1]:{node1.port} {node2.host_public_key}\n"
