"""Shell completion as the README documents it: the scripts for bash, zsh and fish, and the
completions they ask ``sre`` for (commands, sub-commands, options), in a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _complete(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from sre_tools.cli.main import main; sys.exit(main())"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script(shell: str) -> None:
    proc = _complete({"_SRE_COMPLETE": f"{shell}_source"})
    assert proc.returncode == 0, proc.stderr
    assert "_SRE_COMPLETE" in proc.stdout and f"{shell}_complete" in proc.stdout


@pytest.mark.parametrize(
    ("words", "cword", "expected"),
    [
        ("sre dr", "1", {"drill"}),
        ("sre diag ", "2", {"run", "import", "history", "bundle"}),
        ("sre health --pro", "2", {"--profile"}),
        ("sre store ", "2", {"migrate", "copy", "grants"}),
    ],
    ids=["command", "sub-commands", "health-option", "store"],
)
def test_bash_completions(words: str, cword: str, expected: set[str]) -> None:
    proc = _complete({"_SRE_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword})
    assert proc.returncode == 0, proc.stderr
    offered = {line.split(",", 1)[1] for line in proc.stdout.splitlines() if "," in line}
    assert expected <= offered, proc.stdout
