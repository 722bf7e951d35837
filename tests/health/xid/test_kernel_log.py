"""Kernel-log backfill: /dev/kmsg, journalctl and dmesg with injected files and runners."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from sre_tools.health.xid.kernel_log import (
    KernelLogError,
    KernelLogReader,
    read_kernel_log,
    read_kmsg,
    run_command,
)

from .conftest import BOOT, T0

FELL = "NVRM: Xid (PCI:0000:18:00): 79, pid=1234, name=python, GPU has fallen off the bus."


class FakeRunner:
    """Answers per program name: a string (stdout) or an exception to raise."""

    def __init__(self, **answers: str | Exception):
        self.answers = answers
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout: float) -> str:
        self.calls.append((list(argv), timeout))
        answer = self.answers.get(argv[0], KernelLogError(f"{argv[0]}: not found"))
        if isinstance(answer, Exception):
            raise answer
        return answer


def kmsg_file(tmp_path: Path, records: list[str]) -> Path:
    path = tmp_path / "kmsg"
    path.write_text("".join(r + "\n" for r in records), encoding="utf-8")
    return path


def reader(tmp_path: Path, run: FakeRunner, kmsg: Path | None = None) -> KernelLogReader:
    return KernelLogReader(
        kmsg_path=kmsg or tmp_path / "no-kmsg",
        run=run,
        clock=lambda: T0,
        boot_time=lambda: BOOT,
        timeout=3.0,
    )


def test_read_kmsg_drops_continuation_lines(tmp_path: Path) -> None:
    path = kmsg_file(
        tmp_path,
        [
            "6,0,1000,-;Linux version 6.8",
            f"4,1,2000000,-;{FELL}",
            " SUBSYSTEM=pci",
            " DEVICE=+pci:0000:18:00.0",
            "6,2,3000000,-;last",
        ],
    )
    assert read_kmsg(path) == [
        "6,0,1000,-;Linux version 6.8",
        f"4,1,2000000,-;{FELL}",
        "6,2,3000000,-;last",
    ]


def test_read_kmsg_missing(tmp_path: Path) -> None:
    with pytest.raises(KernelLogError, match="no-such"):
        read_kmsg(tmp_path / "no-such")


def test_kmsg_first_when_it_holds_the_whole_boot(tmp_path: Path) -> None:
    run = FakeRunner()
    path = kmsg_file(tmp_path, ["6,0,1000,-;boot", f"4,1,2000000,-;{FELL}"])
    log = reader(tmp_path, run, path).read(86400)
    assert log.source == "kmsg"
    assert run.calls == []  # no command needed
    assert log.boot_time == BOOT
    assert log.since == T0 - 86400


def test_wrapped_kmsg_adds_the_journal(tmp_path: Path) -> None:
    # the buffer starts at sequence 500, 9000 s after boot: newer than the window start
    run = FakeRunner(journalctl=f"2026-11-20T07:00:00+0000 node1 kernel: {FELL}\n")
    path = kmsg_file(tmp_path, [f"4,500,9000000000,-;{FELL}"])
    log = reader(tmp_path, run, path).read(86400)
    assert log.source == "kmsg+journalctl"
    assert len(log.lines) == 2


def test_wrapped_kmsg_covering_the_window_needs_no_journal(tmp_path: Path) -> None:
    run = FakeRunner()
    path = kmsg_file(tmp_path, [f"4,500,1000000,-;{FELL}"])  # 1 s after boot
    log = reader(tmp_path, run, path).read(3600)
    assert log.source == "kmsg"
    assert run.calls == []


def test_journalctl_when_kmsg_unreadable(tmp_path: Path) -> None:
    run = FakeRunner(
        journalctl=f"2026-11-20T09:00:00+0000 node1 kernel: {FELL}\n-- No entries --\n"
    )
    log = reader(tmp_path, run).read(3600)
    assert log.source == "journalctl"
    argv, timeout = run.calls[0]
    assert argv[:6] == ["journalctl", "-k", "-b", "-o", "short-iso", "--no-pager"]
    assert argv[6].startswith("--since=")
    assert timeout == 3.0
    assert any("kmsg" in e for e in log.errors)


def test_dmesg_when_journalctl_times_out(tmp_path: Path) -> None:
    run = FakeRunner(
        journalctl=KernelLogError("journalctl timed out after 3s"), dmesg=f"[ 5.0] {FELL}\n"
    )
    log = reader(tmp_path, run).read(3600)
    assert log.source == "dmesg"
    assert [c[0][0] for c in run.calls] == ["journalctl", "dmesg"]
    assert any("timed out" in e for e in log.errors)


def test_every_source_failing_raises_one_error(tmp_path: Path) -> None:
    run = FakeRunner(
        journalctl=KernelLogError("journalctl timed out after 3s"),
        dmesg=KernelLogError("dmesg exited with status 1: Operation not permitted"),
    )
    with pytest.raises(KernelLogError) as info:
        read_kernel_log(3600, reader(tmp_path, run))
    text = str(info.value)
    assert "kmsg" in text and "timed out" in text and "not permitted" in text


def test_run_command_timeout_is_a_domain_error() -> None:
    with pytest.raises(KernelLogError, match="timed out"):
        run_command(["sleep", "5"], 0.2)


def test_run_command_failures() -> None:
    with pytest.raises(KernelLogError, match="status 1"):
        run_command(["false"], 5)
    with pytest.raises(KernelLogError, match="no-such-binary"):
        run_command(["/nonexistent/no-such-binary"], 5)
    assert run_command(["echo", "hi"], 5) == "hi\n"
