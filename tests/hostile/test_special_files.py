"""Files that are not regular files (sre_tools.inputs.read_capped, the audit log): a FIFO without
a writer reads as empty at once (a plain open waits for a writer forever), a pipe with a writer
(``<(cat file)``) is read to its end, a directory is a one-line error, and the audit log refuses
a device or a FIFO instead of reading ``/dev/zero`` without end."""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sre_tools.exceptions import StoreError, ValidationError
from sre_tools.inputs import read_capped
from sre_tools.remediation.audit import MAX_LINE_BYTES, iter_audit, read_audit
from tests.hostile.conftest import Sre

ROOT = Path(__file__).resolve().parents[2]
HGX = ROOT / "tests" / "fixtures" / "gpu" / "hgx-h100-8-synthetic.json"
SLO_SPEC = ROOT / "sre_tools" / "data" / "examples" / "slos" / "gpu-cluster.sloth.yaml"
WATCHDOG_SECONDS = 5.0  # a reader still blocked after this is set free (and the test fails)


@contextlib.contextmanager
def unblocked(fifo: Path) -> Iterator[None]:
    """Set free, after :data:`WATCHDOG_SECONDS`, a reader that a plain ``open`` left waiting for
    a writer: open the write end for a moment, so that the test fails instead of hanging."""
    done = threading.Event()

    def watchdog() -> None:
        if done.wait(WATCHDOG_SECONDS):
            return
        while not done.is_set():
            with contextlib.suppress(OSError):  # ENXIO: no reader waiting (yet)
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            time.sleep(0.05)

    thread = threading.Thread(target=watchdog, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@contextlib.contextmanager
def fed(path: str | Path, data: bytes) -> Iterator[None]:
    """A writer (a thread) writing ``data`` into a FIFO, then closing it, already holding the
    FIFO open on entry: a reader that opened it before any writer would rightly read nothing.
    A reader kept open (never reading) lets the writer's open return, and keeps a write made
    before the reader under test opens from failing with EPIPE; closed on exit."""
    keeper = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    opened = threading.Event()

    def write() -> None:
        with contextlib.suppress(BrokenPipeError), open(path, "wb") as fh:
            opened.set()
            fh.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        assert opened.wait(5)
        yield
    finally:
        os.close(keeper)  # a writer left with no reader stops (EPIPE)
        thread.join(5)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo.csv"
    os.mkfifo(path)
    return path


def test_fifo_without_a_writer_reads_as_empty_at_once(fifo: Path) -> None:
    start = time.monotonic()
    with unblocked(fifo):
        assert read_capped(str(fifo), 1024) == (b"", str(fifo))
    assert time.monotonic() - start < 2.0


# Larger than a pipe's buffer (64 KiB): the reader must wait for the writer's later writes.
CONTENT = b"".join(b"line %06d of a file fed through a pipe\n" % i for i in range(20_000))


def test_fifo_with_a_writer_is_read_to_its_end(fifo: Path) -> None:
    with fed(fifo, CONTENT), unblocked(fifo):
        assert read_capped(str(fifo), len(CONTENT)) == (CONTENT, str(fifo))


def test_gzip_through_a_fifo_is_unpacked(tmp_path: Path) -> None:
    path = tmp_path / "incidents.csv.gz"
    os.mkfifo(path)
    with fed(path, gzip.compress(CONTENT)), unblocked(path):
        assert read_capped(str(path), len(CONTENT))[0] == CONTENT


def test_fifo_with_a_writer_keeps_its_cap(fifo: Path) -> None:
    with (
        fed(fifo, CONTENT),
        unblocked(fifo),
        pytest.raises(ValidationError, match="larger than 64 KiB"),
    ):
        read_capped(str(fifo), 64 * 1024)


def test_process_substitution_is_read_whole() -> None:
    """``sre ... <(cat file)`` names ``/dev/fd/N``, a pipe whose writer is still writing."""
    read_end, write_end = os.pipe()

    def write() -> None:
        with os.fdopen(write_end, "wb") as fh:
            fh.write(CONTENT)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        data, source = read_capped(f"/dev/fd/{read_end}", len(CONTENT))
    finally:
        os.close(read_end)
        writer.join(5)
    assert data == CONTENT
    assert source == f"/dev/fd/{read_end}"


def test_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        read_capped(str(tmp_path), 1024)
    assert str(info.value) == f"{tmp_path}: cannot read file: Is a directory"
    gz_dir = tmp_path / "logs.gz"
    gz_dir.mkdir()
    with pytest.raises(ValidationError, match="Is a directory"):
        read_capped(str(gz_dir), 1024)


# Every command that reads a file the user names: (argv with FILE, exit code, what it says).
FIFO_COMMANDS = {
    "incident-import": (["incident", "import", "FILE", "--store", "STORE"], 2, "empty file"),
    "sli-import": (["sli", "import", "FILE", "--store", "STORE"], 2, "empty file"),
    "slo-validate": (["slo", "validate", "FILE"], 2, "no SLO documents found"),
    "alert-windows": (
        ["slo", "validate", str(SLO_SPEC), "--alert-windows", "FILE"], 2, "FILE",
    ),
    "diag-import": (
        ["diag", "import", "FILE", "--store", "STORE"], 3, "not a recognised diagnostic output",
    ),
    "remediation-event": (["remediation", "event", "--event", "FILE"], 2, "event refused: "),
    "remediation-decide": (["remediation", "decide", "--report", "FILE"], 2, "not valid JSON"),
    "xid-explain": (["xid", "explain", "-f", "FILE"], 0, "no XID events found in 0 line(s)"),
    "drill-inventory": (
        ["drill", "run", "dcgm-inject", "--inventory", "FILE"], 2, "no chaos_targets group",
    ),
    "diag-bundle-kernel-log": (
        ["diag", "bundle", "-o", "OUT", "--replay", str(HGX), "--kernel-log", "FILE",
         "--store", "STORE", "--node", "hgx-h100-8"], 0, "item(s) collected",
    ),
}  # fmt: skip


@pytest.mark.parametrize(("argv", "code", "says"), FIFO_COMMANDS.values(), ids=FIFO_COMMANDS.keys())
def test_no_command_waits_on_a_fifo_without_a_writer(
    sre: Sre,
    tmp_path: Path,
    fifo: Path,
    remediation_env: None,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    code: int,
    says: str,
) -> None:
    """Each command reads the FIFO as the empty input it is and says so as it does for an
    empty file, within a second or two."""
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # diag bundle runs nothing
    replace = {"FILE": str(fifo), "STORE": str(tmp_path / "s.db"), "OUT": str(tmp_path / "b.tgz")}
    args = [replace.get(a, a) for a in argv]
    start = time.monotonic()
    with unblocked(fifo):
        rc, out, err = sre(*args)
    assert time.monotonic() - start < 3.0, "waited for a writer"
    assert "Traceback" not in err and "internal error" not in err, err
    assert rc == code, (out, err)
    assert says.replace("FILE", str(fifo)) in out + err, (out, err)


def test_a_remediation_config_fifo_without_a_writer_is_the_defaults(fifo: Path) -> None:
    from sre_tools.remediation.config import RemediationConfig, load_config

    start = time.monotonic()
    with unblocked(fifo):
        assert load_config(fifo) == RemediationConfig()
    assert time.monotonic() - start < 2.0


def test_an_exporter_password_file_fifo_is_not_waited_on(fifo: Path) -> None:
    """The exporter's basic-auth file (--basic-auth-file) goes through the same reader."""
    from sre_tools.exceptions import ValidationError
    from sre_tools.exporter.auth import BasicAuth

    start = time.monotonic()
    with unblocked(fifo), pytest.raises(ValidationError):
        BasicAuth.load(fifo)  # empty: no user, refused
    assert time.monotonic() - start < 2.0


def test_a_mig_config_fifo_is_not_waited_on(fifo: Path, tmp_path: Path) -> None:
    """The MIG layout file named by the policy (mig.config_file), read by `sre health`."""
    from sre_tools.gpu.backend import RecordedBackend
    from sre_tools.health.policy import load_policy
    from sre_tools.health.runner import run_health
    from sre_tools.health.state import CounterState
    from tests.health.checks.conftest import H100, load

    site = f"mig:\n  config_file: {fifo}\n  config_name: all-1g.10gb\n"
    start = time.monotonic()
    with unblocked(fifo):
        run_health(
            RecordedBackend(load(H100), "<test>"),
            load_policy(None, site, "site.yaml"),
            state=CounterState(),
            sysfs=tmp_path,
            kernel_log_lines=[],
            host="n1",
        )
    assert time.monotonic() - start < 2.0


# --- the audit log ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dev/zero", "DIR"])
def test_audit_log_that_is_not_a_regular_file_is_refused(
    sre: Sre, tmp_path: Path, fifo: Path, path: str
) -> None:
    target = {"DIR": str(tmp_path)}.get(path, path)
    start = time.monotonic()
    code, out, err = sre("remediation", "audit", "--audit", target)
    assert time.monotonic() - start < 3.0
    assert (code, out) == (1, "")
    assert err == f"sre: error: {target}: audit log: not a regular file or a pipe\n"
    with pytest.raises(StoreError, match="not a regular file"):
        list(iter_audit(target))


def test_audit_log_through_a_pipe_is_read_and_a_fifo_never_waited_on(
    tmp_path: Path, fifo: Path
) -> None:
    """A rotated, compressed log read through `<(zcat audit.jsonl.1.gz)`: a pipe is read to its
    end; a FIFO without a writer reads as empty at once."""
    start = time.monotonic()
    with unblocked(fifo):
        assert list(iter_audit(fifo)) == []
    assert time.monotonic() - start < 2.0
    with fed(fifo, record(1) + b"\n" + record(2) + b"\n"):
        assert [r["node"] for r in iter_audit(fifo)] == ["gpu01", "gpu02"]


def record(n: int) -> bytes:
    return json.dumps({"v": 1, "at": float(n), "node": f"gpu{n:02d}", "outcome": "acted"}).encode()


def test_audit_log_skips_an_over_long_line_and_reads_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Lines are read one at a time with a cap: an over-long line (none is written: a large
    record is slimmed to fit) is skipped with the usual warning, and the lines after it read."""
    path = tmp_path / "audit.jsonl"
    long_line = b'{"pad": "' + b"x" * (3 * MAX_LINE_BYTES) + b'"}'
    at_cap = b'{"pad": "' + b"y" * (MAX_LINE_BYTES - 12) + b'"}'
    assert len(at_cap) + 1 == MAX_LINE_BYTES
    path.write_bytes(b"\n".join([record(1), long_line, record(2), at_cap, record(3)]) + b"\n")
    with caplog.at_level(logging.WARNING, logger="sre_tools.remediation.audit"):
        records = read_audit(path)
    assert [r.get("node") for r in records] == ["gpu01", "gpu02", None, "gpu03"]
    assert [r.getMessage() for r in caplog.records] == [
        f"{path}: line 2 is not a JSON record, skipped"
    ]
    with pytest.raises(ValidationError, match=f"line 2: longer than {MAX_LINE_BYTES} bytes"):
        read_audit(path, strict=True)


def test_audit_log_without_a_final_newline_reads_its_last_record(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    path.write_bytes(record(1) + b"\n" + record(2))
    assert [r["node"] for r in read_audit(path)] == ["gpu01", "gpu02"]


def test_audit_warning_names_the_path_printably(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a\x1b[31m\nx.jsonl"
    path.write_bytes(b"garbage\n" + record(1) + b"\n")
    with caplog.at_level(logging.WARNING, logger="sre_tools.remediation.audit"):
        assert [r["node"] for r in read_audit(path)] == ["gpu01"]
    (message,) = [r.getMessage() for r in caplog.records]
    assert message == f"{tmp_path}/a\\x1b[31m\\x0ax.jsonl: line 1 is not a JSON record, skipped"


def test_records_appended_while_reading_wait_for_the_next_read(tmp_path: Path) -> None:
    """The log is read up to where it ended under the shared lock (a whole record), so a record
    a writer appends while the reader goes through the log is not read half-written."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(record(1) + b"\n" + record(2) + b"\n")
    records = iter_audit(path)
    assert next(records)["node"] == "gpu01"
    with path.open("ab") as fh:
        fh.write(record(3)[:10])
    assert [r["node"] for r in records] == ["gpu02"]
