"""Stand-ins for the GPU-only tools: small executables named ``dcgmi``, ``nvbandwidth`` and
``all_reduce_perf`` that print a recorded output (tests/fixtures/diag/) and exit with the recorded
code, sleep past a timeout, or die by a signal. Each writes its argv next to itself."""

from __future__ import annotations

import json
import stat
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "diag"
HGX = Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"

_SCRIPT = """#!{python}
import json, os, signal, sys, time
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, {argv_file!r}), "w") as fh:
    json.dump(sys.argv[1:], fh)
spec = {spec!r}
if os.environ.get("DCGMI_STOP_DIAG_HOSTNAME"):  # dcgmi's abort request
    with open(os.path.join(here, {abort_file!r}), "w") as fh:
        fh.write(os.environ["DCGMI_STOP_DIAG_HOSTNAME"] + " " + " ".join(sys.argv[1:]))
    sys.exit(0)
if spec.get("sleep"):
    time.sleep(spec["sleep"])
if spec.get("stdout"):
    with open(spec["stdout"], "rb") as fh:
        sys.stdout.buffer.write(fh.read())
    sys.stdout.flush()
if spec.get("stderr"):
    sys.stderr.write(spec["stderr"])
if spec.get("signal"):
    os.kill(os.getpid(), spec["signal"])
sys.exit(spec.get("rc", 0))
"""


FakeTool = Callable[..., Path]


@pytest.fixture
def tool_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory that is the whole PATH: only the fakes put there are found."""
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


@pytest.fixture
def fake_tool(tool_bin: Path) -> FakeTool:
    def make(
        name: str,
        fixture: str | None = None,
        *,
        rc: int = 0,
        sleep: float = 0,
        signal: int = 0,
        stderr: str = "",
    ) -> Path:
        spec = {
            "stdout": str(FIXTURES / fixture) if fixture else "",
            "rc": rc,
            "sleep": sleep,
            "signal": signal,
            "stderr": stderr,
        }
        script = tool_bin / name
        script.write_text(
            _SCRIPT.format(
                python=sys.executable,
                argv_file=f"{name}.argv",
                abort_file=f"{name}.abort",
                spec=spec,
            )
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return script

    return make


def argv_of(tool_bin: Path, name: str) -> list[str]:
    result: list[str] = json.loads((tool_bin / f"{name}.argv").read_text())
    return result
