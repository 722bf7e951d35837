"""Shared helpers for the Ansible tests: repository paths, the roles, the tool binaries.

The tools come from the ``ansible`` pip extra (ansible, ansible-lint, molecule) and from apt
(podman, runc, debootstrap). A missing tool fails the tests that need it: it never skips them,
since a silently skipped provisioning suite would hide the breakage it exists to catch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES_DIR = ROOT / "roles"
PLAYBOOKS_DIR = ROOT / "playbooks"
ROLES = sorted(p.name for p in ROLES_DIR.iterdir() if (p / "tasks" / "main.yml").is_file())


def pytest_configure(config: pytest.Config) -> None:
    # Also listed in pyproject's markers; registered here so --strict-markers accepts it anyway.
    config.addinivalue_line(
        "markers", "molecule: runs a role's molecule scenario in a podman container (minutes)"
    )


def tool(name: str) -> str:
    """Path of a command-line tool: the virtual environment's first, then PATH; fails if absent."""
    venv_bin = Path(sys.executable).parent
    found = shutil.which(name, path=os.pathsep.join([str(venv_bin), os.environ.get("PATH", "")]))
    if found is None:
        pytest.fail(
            f"{name} is not installed: pip install -e '.[ansible]' (ansible, ansible-lint, "
            "molecule) and apt-get install podman runc debootstrap",
            pytrace=False,
        )
    return found


def tool_env() -> dict[str, str]:
    """The environment with the virtual environment's bin first, as scripts/test.sh sets it."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("ANSIBLE_NOCOLOR", "1")
    env.setdefault("NO_COLOR", "1")
    return env


def mitogen_action_dir() -> str:
    """mitogen's action plugins (``mitogen_get_stack``), for probes of ansible.cfg's strategy."""
    import ansible_mitogen

    return str(Path(ansible_mitogen.__file__).parent / "plugins" / "action")


def mitogen_stack(stdout: str) -> str:
    """The text from the ``STACK=`` marker on, whitespace folded: what a probe play printed of
    ``mitogen_get_stack``'s result (``"skipped": true`` when the connection is not mitogen's)."""
    text = " ".join(stdout.split())
    return text[text.index("STACK=") :]


def play_role_tasks(
    tmp_path: Path,
    role: str,
    tasks_from: str,
    extra: dict[str, Any],
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``ansible-playbook`` on localhost running ``role``'s ``tasks_from`` with ``extra`` vars
    (HOME under ``tmp_path``)."""
    playbook = tmp_path / "play.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Role task file",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Run the role's task file.",
                            "ansible.builtin.include_role": {
                                "name": role,
                                "tasks_from": tasks_from,
                            },
                        }
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    extra_file = tmp_path / "extra.json"
    extra_file.write_text(json.dumps(extra), encoding="utf-8")
    run_env = {**tool_env(), **(env or {}), "ANSIBLE_ROLES_PATH": str(ROLES_DIR)}
    run_env["HOME"] = str(tmp_path / "home")
    return subprocess.run(
        [
            tool("ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            f"@{extra_file}",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=run_env,
        timeout=300,
        cwd=tmp_path,
    )
