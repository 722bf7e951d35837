"""ansible.cfg's strategy (playbooks/strategy_plugins/sre_linear.py) and the node Python preflight.

Real ansible-playbook runs from the repository root (so the repository's ansible.cfg applies)
against this machine over the local connection:

- with mitogen installed (the ``ansible`` extra), tasks run through mitogen's connection:
  mitogen's own ``mitogen_get_stack`` action answers only when the connection is mitogen's;
- with ``ansible_mitogen`` unimportable (a package of that name that raises ImportError, first on
  PYTHONPATH), the plain linear strategy runs the play and a warning says why;
- playbooks/tasks/node_python.yml passes a Python that imports apt and stops, with a message
  naming the interpreter and both ways out, at one that cannot; with ANSIBLE_STRATEGY=linear
  (one of those ways) it lets that Python through.

SSH under mitogen, host keys included, is covered by tests/ansible/test_ssh_nodes.py, which runs
with the same ansible.cfg.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.ansible.conftest import (
    PLAYBOOKS_DIR,
    ROOT,
    mitogen_action_dir,
    mitogen_stack,
    tool,
    tool_env,
)


def run(
    tmp_path: Path,
    play: list[dict],
    env_update: dict[str, str] | None = None,
    python: str = sys.executable,
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook on ``play`` against host ``node1`` (local connection, ``python``)."""
    book = tmp_path / "play.yml"
    book.write_text(yaml.safe_dump(play), encoding="utf-8")
    env = tool_env()
    env.pop("ANSIBLE_CONFIG", None)
    env.pop("ANSIBLE_STRATEGY", None)
    env.update(
        {
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-local"),
            "ANSIBLE_LOCALHOST_WARNING": "false",
            **(env_update or {}),
        }
    )
    return subprocess.run(
        [
            tool("ansible-playbook"),
            "-i",
            "node1,",
            "-c",
            "local",
            "-e",
            f"ansible_python_interpreter={python}",
            str(book),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


STACK_PLAY = [
    {
        "name": "Probe.",
        "hosts": "node1",
        "gather_facts": False,
        "tasks": [
            {"name": "Connection stack.", "mitogen_get_stack": None, "register": "stack"},
            {"name": "Show.", "ansible.builtin.debug": {"msg": "STACK={{ stack | to_json }}"}},
        ],
    }
]


def test_shipped_strategy_runs_tasks_over_mitogen(tmp_path: Path) -> None:
    proc = run(tmp_path, STACK_PLAY, {"ANSIBLE_ACTION_PLUGINS": mitogen_action_dir()})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sre_linear: mitogen is not usable" not in proc.stderr
    stack = mitogen_stack(proc.stdout)
    # The action skips itself when the connection is not mitogen's; here it is mitogen's
    # local connection running this test's Python.
    assert '"skipped": true' not in stack, stack
    assert '"method": "local"' in stack, stack
    assert f'"python_path": ["{sys.executable}"]' in stack, stack


def test_plain_linear_strategy_skips_the_mitogen_action(tmp_path: Path) -> None:
    """The reference: with ANSIBLE_STRATEGY=linear, the same probe reports no mitogen."""
    proc = run(
        tmp_path,
        STACK_PLAY,
        {"ANSIBLE_ACTION_PLUGINS": mitogen_action_dir(), "ANSIBLE_STRATEGY": "linear"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stack = mitogen_stack(proc.stdout)
    assert '"skipped": true' in stack, stack


def test_without_mitogen_the_linear_strategy_runs_with_a_warning(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "ansible_mitogen"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text('raise ImportError("no mitogen in this test")\n')
    play = [
        {
            "name": "Plain.",
            "hosts": "node1",
            "gather_facts": False,
            "tasks": [{"name": "Say.", "ansible.builtin.command": {"argv": ["echo", "ran"]}}],
        }
    ]
    proc = run(tmp_path, play, {"PYTHONPATH": str(shadow.parent)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok=1" in proc.stdout and "failed=0" in proc.stdout, proc.stdout
    warning = " ".join(proc.stderr.split())
    assert "sre_linear: mitogen is not usable (ImportError: no mitogen in this test)" in warning
    assert "running the plain linear strategy" in warning


def preflight_play() -> list[dict]:
    preflight = str(PLAYBOOKS_DIR / "tasks" / "node_python.yml")
    return [
        {
            "name": "Preflight.",
            "hosts": "node1",
            "gather_facts": True,
            "gather_subset": ["!all", "min"],
            "tasks": [
                {
                    "name": "Node Python.",
                    "ansible.builtin.import_tasks": preflight,
                },
                {"name": "Reached.", "ansible.builtin.debug": {"msg": "PREFLIGHT PASSED"}},
            ],
        }
    ]


def has_apt(python: str) -> bool:
    return subprocess.run([python, "-c", "import apt"], capture_output=True).returncode == 0


def test_node_python_preflight_passes_a_python_with_apt(tmp_path: Path) -> None:
    if not has_apt("/usr/bin/python3"):
        pytest.fail("/usr/bin/python3 cannot import apt: apt-get install python3-apt")
    proc = run(tmp_path, preflight_play(), python="/usr/bin/python3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PREFLIGHT PASSED" in proc.stdout
    assert "changed=0" in proc.stdout, proc.stdout  # nothing to install


def test_node_python_preflight_stops_a_python_without_apt(tmp_path: Path) -> None:
    assert not has_apt(sys.executable), "this test needs a virtualenv Python without python3-apt"
    proc = run(tmp_path, preflight_play())
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "PREFLIGHT PASSED" not in proc.stdout
    message = " ".join(proc.stdout.split())
    assert f"{sys.executable} on node1 cannot import the apt bindings" in message
    assert "ansible_python_interpreter=/usr/bin/python3" in message
    assert "ANSIBLE_STRATEGY=linear" in message


def test_node_python_preflight_lets_plain_linear_through(tmp_path: Path) -> None:
    """ANSIBLE_STRATEGY=linear, the message's way out: the apt module re-executes itself under
    the system Python there, so the preflight does not stop a virtualenv Python."""
    proc = run(tmp_path, preflight_play(), {"ANSIBLE_STRATEGY": "linear"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PREFLIGHT PASSED" in proc.stdout
