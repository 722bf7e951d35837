"""The local transport: argv only (no shell), timeouts kill the process group, output capped."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from sre_tools.transport import LocalTransport, Result, Transport, TransportError, TransportTimeout

PY = sys.executable


def test_is_a_transport() -> None:
    with LocalTransport() as local:
        assert isinstance(local, Transport)
        assert local.run(["true"], timeout=10) == Result(0, b"", b"")


def test_exit_code_stdout_stderr_and_input() -> None:
    code = (
        "import sys; d = sys.stdin.read(); print(d.upper()); print('e', file=sys.stderr); "
        "sys.exit(3)"
    )
    res = LocalTransport().run([PY, "-c", code], timeout=30, input=b"abc")
    assert (res.rc, res.stdout, res.stderr, res.ok) == (3, b"ABC\n", b"e\n", False)


def test_large_input_to_a_command_that_does_not_read_it() -> None:
    res = LocalTransport().run(["true"], timeout=30, input=b"x" * (4 << 20))
    assert res.rc == 0


@pytest.mark.parametrize(
    "arg",
    ["$(touch {x})", "`touch {x}`", "; touch {x}", "| touch {x}", "&& touch {x}"],
    ids=["dollar-paren", "backticks", "semicolon", "pipe", "and"],
)
def test_no_shell_an_argument_stays_literal(tmp_path: Path, arg: str) -> None:
    marker = tmp_path / "x"
    literal = arg.format(x=marker)
    res = LocalTransport(cwd=tmp_path).run(["echo", literal], timeout=10)
    assert res.stdout == literal.encode() + b"\n"
    assert not marker.exists()


def test_a_bare_string_is_refused() -> None:
    with pytest.raises(TransportError, match="argv must be a list of strings, got str"):
        LocalTransport().run("echo hi", timeout=10)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("argv", "timeout", "message"),
    [
        ([], 10, "argv is empty"),
        (["echo", 3], 10, r"argv\[1\] must be a string, got int"),
        (["echo", "a\0b"], 10, r"argv\[1\] contains a NUL byte"),
        (["true"], 0, "timeout must be > 0 seconds"),
        (["true"], float("inf"), "timeout must be > 0 seconds"),
        (["true"], True, "timeout must be a number"),
    ],
    ids=["empty", "not-a-string", "nul", "zero-timeout", "inf-timeout", "bool-timeout"],
)
def test_bad_calls_are_refused(argv: list[object], timeout: float, message: str) -> None:
    with pytest.raises(TransportError, match=message):
        LocalTransport().run(argv, timeout=timeout)  # type: ignore[arg-type]


def test_missing_program_is_a_transport_error() -> None:
    with pytest.raises(TransportError, match="local: cannot run 'no-such-program-sre'"):
        LocalTransport().run(["no-such-program-sre"], timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): read its state.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    # A shell script (we run `sh` as a program, with argv) whose children hold the pipes open.
    script = f"sleep 60 & echo $! > {pids}; sleep 60 & echo $! >> {pids}; wait"
    started = time.monotonic()
    with pytest.raises(TransportTimeout, match=r"local: sh did not finish within 1 s"):
        LocalTransport().run(["sh", "-c", script], timeout=1)
    assert time.monotonic() - started < 10
    children = [int(p) for p in pids.read_text().split()]
    assert len(children) == 2
    deadline = time.monotonic() + 5
    while any(_alive(p) for p in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(p) for p in children), children


def test_timeout_while_a_background_child_holds_the_pipes(tmp_path: Path) -> None:
    """The command exits but leaves a child holding stdout: the timeout still holds."""
    pid_file = tmp_path / "pid"
    script = f"sleep 60 & echo $! > {pid_file}; exit 0"
    with pytest.raises(TransportTimeout):
        LocalTransport().run(["sh", "-c", script], timeout=1)
    pid = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)


def test_a_command_ignoring_sigterm_is_still_killed() -> None:
    """The group gets SIGKILL, which cannot be ignored."""
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    started = time.monotonic()
    with pytest.raises(TransportTimeout):
        LocalTransport().run([PY, "-c", code], timeout=1)
    assert time.monotonic() - started < 10


def test_output_is_capped_and_the_rest_drained() -> None:
    code = "import sys; sys.stdout.write('a' * 5_000_000); sys.stderr.write('b' * 10)"
    res = LocalTransport(max_output=1000).run([PY, "-c", code], timeout=30)
    assert res.rc == 0
    assert res.stdout == b"a" * 1000 and res.stdout_truncated
    assert res.stderr == b"b" * 10 and not res.stderr_truncated


def test_env_is_what_the_caller_gives() -> None:
    res = LocalTransport(env={"SRE_T": "1", "PATH": os.environ["PATH"]}).run(["env"], timeout=10)
    assert b"SRE_T=1" in res.stdout and b"HOME=" not in res.stdout


def test_write_and_read_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    local = LocalTransport()
    local.write_file(str(path), b"one", mode=0o600)
    local.write_file(str(path), b"two", mode=0o640)
    assert local.read_file(str(path)) == b"two"
    assert path.stat().st_mode & 0o777 == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temporary left behind
    with pytest.raises(TransportError, match=r"is larger than 2 bytes"):
        local.read_file(str(path), max_bytes=2)
    with pytest.raises(TransportError, match=r"local: cannot read .*missing: No such file"):
        local.read_file(str(tmp_path / "missing"))
    with pytest.raises(TransportError, match=r"local: cannot write .*: No such file"):
        local.write_file(str(tmp_path / "no" / "dir" / "f"), b"")
