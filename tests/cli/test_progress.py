"""Progress bars: drawn on a real terminal (a pseudo-terminal as standard error), never with
``--json``, never on a pipe, and standard output the same either way.

Each case runs ``sre`` as its own process, because what decides is whether the process's stderr
is a terminal.
"""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sre_tools.gpu.backend import RecordedBackend, capture
from sre_tools.progress import EVERY, rows_in
from sre_tools.sli.store import parse_csv

ROOT = Path(__file__).resolve().parents[2]
HGX = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"
ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def _iso(minute: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_700_000_000 + 60 * minute))


def _sli_csv(path: Path, rows: int) -> Path:
    lines = ["timestamp,slo,good,total"]
    lines += [f"{_iso(i)},api-availability,99,100" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _incident_csv(path: Path, rows: int) -> Path:
    lines = ["started,resolved,component,host,gpu,category,planned"]
    lines += [
        f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z,2026-01-02T00:00:00Z,gpu,n{i},0,xid,false"
        for i in range(rows)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sre(*args: str, tty: bool, env: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    """(exit code, stdout, what reached stderr) of ``sre ARGS``, stderr a pseudo-terminal when
    ``tty``, else a pipe."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm-256color"}
    environment.pop("NO_COLOR", None)
    environment.update(env or {})
    argv = [sys.executable, "-m", "sre_tools.cli.main", *args]
    if not tty:
        proc = subprocess.run(argv, capture_output=True, env=environment, timeout=120)
        return proc.returncode, proc.stdout.decode(), proc.stderr
    leader, follower = pty.openpty()
    try:
        child = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=follower, env=environment, close_fds=True
        )
        os.close(follower)
        follower = -1
        out, _ = child.communicate(timeout=120)
        seen = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal is closed once the child is gone (EIO)
                break
            if not chunk:
                break
            seen += chunk
        return child.returncode, out.decode(), seen
    finally:
        os.close(leader)
        if follower != -1:
            os.close(follower)


def test_parse_reports_rows_read_up_to_the_file_length() -> None:
    rows = 3 * EVERY + 7
    text = "timestamp,slo,good,total\n" + "".join(f"{_iso(i)},s,1,1\n" for i in range(rows))
    heard: list[tuple[float, float | None, str | None]] = []
    samples = parse_csv(text, "x.csv", progress=lambda d, t, w: heard.append((d, t, w)))
    assert len(samples) == rows
    assert [d for d, _, _ in heard] == [EVERY, 2 * EVERY, 3 * EVERY]
    assert {t for _, t, _ in heard} == {rows_in(text)} == {rows + 1}
    assert {w for _, _, w in heard} == {"reading rows"}


def test_capture_reports_each_gpu() -> None:
    heard: list[tuple[float, float | None, str | None]] = []
    data = capture(RecordedBackend.load(HGX), progress=lambda d, t, w: heard.append((d, t, w)))
    assert heard == [(i, 8, f"GPU {i}") for i in range(8)]
    assert len(data["devices"]) == 8


@pytest.mark.parametrize(
    ("command", "maker", "rows"),
    [
        (("sli", "import"), _sli_csv, 4 * EVERY),
        (("incident", "import"), _incident_csv, 2 * EVERY),
    ],
    ids=["sli-import", "incident-import"],
)
def test_import_draws_a_bar_on_a_terminal_only(
    tmp_path: Path, command: tuple[str, ...], maker: object, rows: int
) -> None:
    csv = maker(tmp_path / "data.csv", rows)  # type: ignore[operator]

    def run(store: str, *extra: str, tty: bool, **kw: dict[str, str]) -> tuple[int, str, bytes]:
        return _sre(*command, str(csv), "--store", str(tmp_path / store), *extra, tty=tty, **kw)

    code, out, err = run("a.db", tty=True)
    assert code == 0, err[-2000:]
    assert f"imported {rows}" in out
    drawn = ANSI.sub(b"", err)
    assert b"importing" in drawn and b"data.csv" in drawn, err[-2000:]
    assert b"\x1b[" in err  # drawn and then erased (transient), with cursor control
    # The same import for a script: --json on a terminal, or stderr a pipe: no bar, and standard
    # output is what it always was.
    code, out, err = run("b.db", "--json", tty=True)
    assert code == 0 and b"importing" not in err and json.loads(out)
    code, out, err = run("c.db", tty=False)
    assert code == 0 and err == b"" and out.strip().startswith(f"imported {rows}")
    code, out, err = run("d.db", tty=True, env={"TERM": "dumb"})
    assert code == 0 and b"importing" not in err


def test_diag_run_shows_the_tool_under_way_except_for_machines(tmp_path: Path) -> None:
    from tests.diag.conftest import FIXTURES

    tools = tmp_path / "bin"
    tools.mkdir()
    dcgmi = tools / "dcgmi"
    dcgmi.write_text(
        f"#!{sys.executable}\nimport sys, time\ntime.sleep(0.5)\n"
        f"sys.stdout.write(open({str(FIXTURES / 'dcgm/level1-pass.json')!r}).read())\n",
        encoding="utf-8",
    )
    dcgmi.chmod(0o755)
    env = {"PATH": f"{tools}:{os.environ['PATH']}"}
    base = ("diag", "run", "--replay", str(HGX), "--no-store", "--node", "n1")
    code, out, err = _sre(*base, tty=True, env=env)
    assert code == 0 and "n1: ok" in out, err[-2000:]
    assert b"diagnostics: dcgmi diag -r 1" in ANSI.sub(b"", err), err[-2000:]
    # What a prolog and a script read: no bar on the terminal, output unchanged.
    code, out, err = _sre(*base, "--format", "nhc", tty=True, env=env)
    assert code == 0 and out == "" and b"dcgmi diag" not in err, err[-2000:]
    code, out, err = _sre(*base, "--json", tty=True, env=env)
    assert code == 0 and b"dcgmi diag" not in err and json.loads(out)


def test_drill_run_keeps_its_event_lines_on_stdout_with_a_spinner_on_the_terminal(
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n  children:\n    chaos_targets:\n      hosts:\n"
        "        n1:\n          ansible_connection: local\n",
        encoding="utf-8",
    )
    args = ("drill", "run", "node-drain", "--inventory", str(inventory), "--targets", "n1")
    env = {"XDG_STATE_HOME": str(tmp_path / "state"), "XDG_DATA_HOME": str(tmp_path / "data")}
    code, out, err = _sre(*args, tty=True, env=env)
    assert code == 0, err[-2000:]
    assert "action-start    drain-node n1" in out and "dry-run; rollbacks ok" in out
    assert b"drill node-drain" in ANSI.sub(b"", err), err[-2000:]
    code, piped_out, err = _sre(*args, tty=False, env=env)
    assert code == 0 and b"drill node-drain:" not in err
    strip = re.compile(r"drill-\d{8}T\d{6}Z-[0-9a-f]+")
    assert strip.sub("RUN", piped_out) == strip.sub("RUN", out)
