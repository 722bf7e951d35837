"""Hostile output paths for ``-o``, ``--html`` and ``sre dashboards generate``: no output replaces
a store or one of the command's own inputs; a FIFO or a device is written into and stays what it
is; a symbolic link stays a link and the file it points to is replaced; a target that cannot be
a folder is one line, never a traceback (sre_tools/outputs.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.hostile.conftest import Sre

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "sre_tools/data/examples/slos/gpu-cluster.sloth.yaml"
HGX = ROOT / "tests/fixtures/gpu/hgx-h100-8-synthetic.json"
DMESG = ROOT / "tests/fixtures/xid/h100-boot-fallen-off-bus.dmesg"


@pytest.fixture
def store(sre: Sre, tmp_path: Path) -> Path:
    """A SQLite store with one incident that started a day before the reports' window ends."""
    path = tmp_path / "store.db"
    code, _, err = sre(
        "incident", "open", "--component", "gpu", "--started", "2026-11-01T00:00:00Z",
        "--store", str(path),
    )  # fmt: skip
    assert code == 0, err
    assert path.read_bytes().startswith(b"SQLite format 3\x00")
    return path


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_bytes(SPEC.read_bytes())
    return path


def _one_line(err: str, start: str, *pieces: str) -> None:
    assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
    assert err.startswith(start), err
    for piece in pieces:
        assert piece in err, err


def _bundle(sre: Sre, output: Path, store: Path, kernel_log: Path = DMESG) -> tuple[int, str, str]:
    return sre(
        "diag", "bundle", "-o", str(output), "--store", str(store), "--replay", str(HGX),
        "--kernel-log", str(kernel_log), "--node", "n01",
    )  # fmt: skip


HTML_COMMANDS = {
    "report": ["report", "--no-gpu", "--at", "2026-11-02T00:00:00Z"],
    "slo-report": ["slo", "report", str(SPEC), "--at", "2026-11-02T00:00:00Z"],
    "reliability-report": ["reliability", "report", "--until", "2026-11-02T00:00:00Z"],
    "drill-report": ["drill", "report"],
}


@pytest.mark.parametrize("argv", HTML_COMMANDS.values(), ids=HTML_COMMANDS.keys())
@pytest.mark.parametrize("how", ["--store", "$SRE_STORE"])
def test_html_never_replaces_the_store(
    sre: Sre, store: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], how: str
) -> None:
    before = store.read_bytes()
    if how == "--store":
        argv = [*argv, "--store", str(store)]
    else:
        monkeypatch.setenv("SRE_STORE", str(store))
        monkeypatch.chdir(store.parent)
    code, out, err = sre(*argv, "--html", store.name if how != "--store" else str(store))
    assert code == 2, out + err
    _one_line(err, "sre: error: --html: ", "store.db", "not overwritten")
    assert store.read_bytes() == before


def test_html_never_replaces_another_store(sre: Sre, store: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    other.write_bytes(store.read_bytes())
    link = tmp_path / "report.html"
    link.symlink_to(other.name)  # through a link too: the file it points to is a store
    for target in (other, link):
        code, _, err = sre("drill", "report", "--store", str(store), "--html", str(target))
        assert code == 2
        _one_line(err, f"sre: error: --html: {target}: is a SQLite database (a store)")
    assert other.read_bytes() == store.read_bytes() and link.is_symlink()


def test_report_refuses_before_creating_the_store(sre: Sre, tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    code, _, err = sre("report", "--no-gpu", "--examples", "--store", str(new), "--html", str(new))
    assert code == 2
    _one_line(err, f"sre: error: --html: {new}: is also an input of this command")
    assert not new.exists()  # refused before the store was created and seeded


def test_diag_bundle_never_replaces_the_store(sre: Sre, store: Path) -> None:
    before = store.read_bytes()
    code, out, err = _bundle(sre, store, store)
    # sre diag has Nagios codes: bad input is UNKNOWN (3), as the README's table says.
    assert code == 3 and out == "", err
    _one_line(err, f"sre: error: --output: {store}: is also an input of this command")
    assert store.read_bytes() == before
    assert sorted(p.name for p in store.parent.iterdir()) == ["store.db"]  # no temporary file


def test_diag_bundle_never_replaces_its_kernel_log(sre: Sre, store: Path, tmp_path: Path) -> None:
    log = tmp_path / "kern.log"
    log.write_bytes(DMESG.read_bytes())
    code, _, err = _bundle(sre, log, store, kernel_log=log)
    assert code == 3
    _one_line(err, f"sre: error: --output: {log}: is also an input of this command")
    assert log.read_bytes() == DMESG.read_bytes()


def test_gpu_capture_never_replaces_a_store(
    sre: Sre, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sre_tools.gpu import backend

    monkeypatch.setattr(backend, "RealBackend", lambda: backend.RecordedBackend.load(HGX))
    before = store.read_bytes()
    code, _, err = sre("gpu", "capture", "-o", str(store))
    assert code == 2
    _one_line(err, f"sre: error: --output: {store}: is a SQLite database (a store)")
    assert store.read_bytes() == before


@pytest.mark.parametrize("via", ["same-path", "symlink", "hard-link"])
def test_slo_rules_never_replace_their_spec(sre: Sre, spec: Path, tmp_path: Path, via: str) -> None:
    output = spec
    if via == "symlink":
        output = tmp_path / "rules.yaml"
        output.symlink_to(spec)
    elif via == "hard-link":
        output = tmp_path / "rules.yaml"
        os.link(spec, output)
    code, out, err = sre("slo", "rules", str(spec), "-o", str(output))
    assert code == 2 and out == "", err
    _one_line(err, f"sre: error: --output: {output}: is also an input of this command ({spec})")
    assert spec.read_bytes() == SPEC.read_bytes()


def test_symlink_output_stays_a_link_and_its_file_is_replaced(
    sre: Sre, spec: Path, tmp_path: Path
) -> None:
    target = tmp_path / "real" / "rules.yaml"
    target.parent.mkdir()
    target.write_text("old\n")
    target.chmod(0o640)
    link = tmp_path / "rules.yaml"
    link.symlink_to(target)
    code, out, err = sre("slo", "rules", str(spec), "-o", str(link))
    assert code == 0, err
    assert f"to {link}" in out
    assert link.is_symlink() and os.readlink(link) == str(target)
    rules = yaml.safe_load(target.read_text())
    assert {g["name"] for g in rules["groups"]} and stat.S_IMODE(target.stat().st_mode) == 0o640
    assert sorted(p.name for p in target.parent.iterdir()) == ["rules.yaml"]  # no temporary file


@contextmanager
def reading_fifo(path: Path) -> Iterator[list[bytes]]:
    """Read the FIFO at ``path`` from a thread until the writer is done; the chunks read so far.

    The test holds a write end open too, so the reader sees no end of file before the command
    opens the FIFO, and never hangs if the command does not open it at all."""
    read_fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    hold = os.open(path, os.O_WRONLY)
    os.set_blocking(read_fd, True)
    chunks: list[bytes] = []

    def drain() -> None:
        while chunk := os.read(read_fd, 65536):
            chunks.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield chunks
    finally:
        os.close(hold)
        reader.join(10)
        os.close(read_fd)
    assert not reader.is_alive()


def test_fifo_output_is_written_into(sre: Sre, spec: Path, store: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    with reading_fifo(fifo) as chunks:
        code, _, err = sre("slo", "rules", str(spec), "-o", str(fifo))
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    assert {g["name"] for g in yaml.safe_load(b"".join(chunks))["groups"]}

    archive = tmp_path / "bundle.tar.gz"
    with reading_fifo(fifo) as chunks:
        code, _, err = _bundle(sre, fifo, store)
    assert code == 0, err
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    archive.write_bytes(b"".join(chunks))
    with tarfile.open(archive, "r:gz") as tar:
        assert "sre-diag-bundle/MANIFEST.json" in tar.getnames()


def test_device_output_is_written_into(sre: Sre, spec: Path, store: Path, tmp_path: Path) -> None:
    node = tmp_path / "null"
    try:
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("mknod needs CAP_MKNOD (the FIFO test covers writing into a non-file)")
    for argv in (
        ("slo", "rules", str(spec), "-o", str(node)),
        ("drill", "report", "--store", str(store), "--html", str(node)),
    ):
        code, out, err = sre(*argv)
        assert code == 0 and str(node) in out, err
    code, _, err = _bundle(sre, node, store)
    assert code == 0, err
    st = node.lstat()
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)


def test_stdout_link_writes_the_rules_to_stdout(spec: Path, tmp_path: Path) -> None:
    """``-o`` naming standard output (a link to /proc/self/fd/1, as /dev/stdout is): the rules
    go down the pipe, the link stays, and the "wrote" line goes to standard error."""
    link = tmp_path / "myout"
    link.symlink_to("/proc/self/fd/1")
    done = subprocess.run(
        [sys.executable, "-m", "sre_tools.cli.main", "slo", "rules", str(spec), "-o", str(link)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {g["name"] for g in yaml.safe_load(done.stdout)["groups"]}
    assert done.stderr.startswith("wrote ") and done.stderr.count("\n") == 1
    assert link.is_symlink() and os.readlink(link) == "/proc/self/fd/1"


def test_writer_refuses_a_folder_and_a_link_to_one(tmp_path: Path) -> None:
    from sre_tools.exceptions import ValidationError
    from sre_tools.outputs import write_text

    folder = tmp_path / "folder"
    folder.mkdir()
    (tmp_path / "link").symlink_to(folder)
    for target in (folder, tmp_path / "link"):
        with pytest.raises(ValidationError, match=r"^--html: .*: is a directory$"):
            write_text(target, "x", field="--html")
    assert list(folder.iterdir()) == [] and (tmp_path / "link").is_symlink()


def _dashboard_targets(tmp_path: Path) -> dict[str, tuple[str, int, str]]:
    """name -> (DIRECTORY, exit code, message piece): 2 for a target that is not a folder (as
    click says for a regular file), 1 for a place that cannot be created or written."""
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    (tmp_path / "dangling").symlink_to("nowhere/at/all")
    return {
        "fifo": (str(tmp_path / "fifo"), 2, "DIRECTORY: {t}: not a directory"),
        "under-a-file": (str(tmp_path / "file/sub"), 1, "{t}: cannot create directory"),
        "under-a-fifo": (str(tmp_path / "fifo/x"), 1, "{t}: cannot create directory"),
        "symlink-loop": (str(tmp_path / "loop1"), 1, "{t}: cannot create directory"),
        "under-a-loop": (str(tmp_path / "loop1/x"), 1, "{t}: cannot create directory"),
        "dangling-link": (str(tmp_path / "dangling"), 1, "{t}: cannot create directory"),
        "proc-self": ("/proc/self", 1, "/proc/self/gpu-fleet.json: cannot write"),
    }


TARGET_IDS = [
    "fifo",
    "under-a-file",
    "under-a-fifo",
    "symlink-loop",
    "under-a-loop",
    "dangling-link",
    "proc-self",
]


@pytest.mark.parametrize("name", TARGET_IDS)
def test_dashboards_bad_target_is_one_line(sre: Sre, tmp_path: Path, name: str) -> None:
    target, expected, piece = _dashboard_targets(tmp_path)[name]
    code, out, err = sre("dashboards", "generate", target)
    assert code == expected and out == "", err
    _one_line(err, "sre: error: ", piece.format(t=target))


def test_dashboards_regular_file_target_is_a_usage_error(sre: Sre, tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    code, _, err = sre("dashboards", "generate", str(tmp_path / "file"))
    assert code == 2
    _one_line(err, "sre: usage error: ", "is a file")
    assert (tmp_path / "file").read_text() == "x"


def test_dashboards_into_a_new_folder(sre: Sre, tmp_path: Path) -> None:
    target = tmp_path / "a" / "b"
    code, out, err = sre("dashboards", "generate", str(target))
    assert code == 0, err
    assert sorted(p.name for p in target.iterdir()) == [
        "gpu-fleet.json",
        "reliability.json",
        "slos.json",
        "sre-tools.yml",
    ]
    assert out.splitlines() == [
        str(target / n)
        for n in ("gpu-fleet.json", "slos.json", "reliability.json", "sre-tools.yml")
    ]


NOBODY = 65534


def test_a_replaced_output_keeps_its_owner_group_and_mode(tmp_path: Path) -> None:
    """Root rewriting Prometheus' rules file (owned by the prometheus user, 0640) must leave it
    readable to Prometheus: same owner, group and mode. A user who may not chown keeps the
    mode on a file that is now theirs."""
    from sre_tools.outputs import write_text

    target = tmp_path / "slo.yml"
    target.write_text("old\n")
    target.chmod(0o640)
    root = os.geteuid() == 0
    if root:
        os.chown(target, NOBODY, NOBODY)
    write_text(target, lambda fh: fh.write("new\n"))
    st = target.stat()
    assert target.read_text() == "new\n" and stat.S_IMODE(st.st_mode) == 0o640
    owner = (NOBODY, NOBODY) if root else (os.geteuid(), os.getegid())
    assert (st.st_uid, st.st_gid) == owner


def test_a_writable_file_in_a_folder_we_may_not_write_is_rewritten_in_place(
    tmp_path: Path,
) -> None:
    """Grafana's provisioning folder is root's, its dashboards the grafana user's: that user
    regenerates them in place (no temporary file can be made there), as a plain open would."""
    import shutil
    import tempfile

    from sre_tools.outputs import write_text

    base = Path(tempfile.mkdtemp(prefix="sre-outputs-"))  # out of pytest's 0700 folder
    try:
        base.chmod(0o755)
        folder = base / "dashboards"
        folder.mkdir(mode=0o755)
        target = folder / "fleet.json"
        target.write_text("{}\n")
        if os.geteuid() == 0:
            # Root may write anywhere: the same situation for an unprivileged user, in a
            # child process that drops to nobody (a fork: nobody need not reach the venv).
            os.chown(target, NOBODY, NOBODY)
            pid = os.fork()
            if pid == 0:  # the child: never returns into pytest
                status = 1
                try:
                    os.setgid(NOBODY)
                    os.setuid(NOBODY)
                    write_text(target, lambda fh: fh.write("new\n"))
                    status = 0
                finally:
                    os._exit(status)
            _, wait_status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(wait_status) == 0
        else:
            folder.chmod(0o555)
            try:
                write_text(target, lambda fh: fh.write("new\n"))
            finally:
                folder.chmod(0o755)
        assert target.read_text() == "new\n"
        assert sorted(p.name for p in folder.iterdir()) == ["fleet.json"]
    finally:
        shutil.rmtree(base)
