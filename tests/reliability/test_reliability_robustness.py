"""Robustness: concurrent importers, SIGKILL mid-import, and fuzzed CSV input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import FULL_HEADER, HEADER, bulk_csv

from sre_tools.exceptions import ValidationError
from sre_tools.reliability.incidents import import_csv
from sre_tools.reliability.loader import parse_incidents_csv
from sre_tools.store import Store

SRE = [sys.executable, "-m", "sre_tools.cli.main"]


def count(path: Path) -> int:
    with Store(path, create=False) as store:
        return int(str(store.query("SELECT COUNT(*) FROM incidents")[0][0]))


def import_cmd(csv: Path, store: Path) -> list[str]:
    return [*SRE, "incident", "import", str(csv), "--store", str(store)]


def test_two_processes_importing_different_files_lose_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store.db"
    files = []
    for n, size in enumerate((6000, 4000, 5000)):
        path = tmp_path / f"part{n}.csv"
        path.write_text(bulk_csv(size, start=1_700_000_000 + n, tag=f"-p{n}"))
        files.append(path)
    Store(store).close()
    procs = [
        subprocess.Popen(import_cmd(path, store), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for path in files
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()
    assert count(store) == 15000
    with Store(store) as opened:
        assert opened.query("SELECT COUNT(*) FROM imports")[0][0] == 3
        assert opened.query("PRAGMA integrity_check") == [("ok",)]


@pytest.fixture(scope="module")
def big_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.csv"
    path.write_text(bulk_csv(200_000, start=1_600_000_000, step=7, tag="-big"))
    return path


@pytest.mark.parametrize("when", ["after-0.3s", "during-insert"])
def test_sigkill_during_large_import_leaves_committed_rows_and_no_partial_batch(
    tmp_path: Path, big_csv: Path, when: str
) -> None:
    store = tmp_path / "store.db"
    small = tmp_path / "small.csv"
    small.write_text(bulk_csv(250, tag="-small"))
    with Store(store) as opened:
        assert import_csv(opened, small.read_text(), str(small)) == 250
        before = opened.query("SELECT * FROM incidents ORDER BY id")
    wal = Path(f"{store}-wal")
    start = time.monotonic()
    proc = subprocess.Popen(
        import_cmd(big_csv, store), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    while proc.poll() is None and time.monotonic() - start < 60:
        elapsed = time.monotonic() - start
        if when == "after-0.3s" and elapsed >= 0.3:
            break
        if when == "during-insert" and wal.exists() and wal.stat().st_size > 2_000_000:
            break  # the big transaction is spilling pages into the WAL: mid-batch
        time.sleep(0.002)
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    print(f"{when}: exit {proc.returncode} after {time.monotonic() - start:.2f}s")
    with Store(store) as opened:
        assert opened.query("PRAGMA integrity_check") == [("ok",)]
        total = int(str(opened.query("SELECT COUNT(*) FROM incidents")[0][0]))
        assert total in (250, 250 + 200_000)
        imports = int(str(opened.query("SELECT COUNT(*) FROM imports")[0][0]))
        assert imports == (1 if total == 250 else 2)
        assert opened.query("SELECT * FROM incidents WHERE id <= 250 ORDER BY id") == before
    # The store is still writable afterwards.
    with Store(store) as opened:
        assert import_csv(opened, bulk_csv(5, tag="-after"), "after.csv") == 5
    assert count(store) == total + 5


# -- property tests: import_csv never raises anything but ValidationError -------------------

_TIMES = st.sampled_from(
    [
        "2026-11-01T10:00:00Z", "2026-11-01T12:00:00+02:00", "2026-11-01", "@1790000000", "",
        "x", "@", "@nan", "@inf", "@-1", "@1e400", "9999-12-31T23:00:00-05:00", "0001-01-01",
        "2026-02-30", "2026-11-01T25:00:00Z", "1970-01-01T00:00:00+01:00", " 2026-11-01 ",
    ]
)  # fmt: skip
_WORDS = st.sampled_from(
    ["gpu", "nvlink", "", "yes", "no", "true", "0", "1", "79", "-1", "1e3", "９", '"', '""', ","]
)
_FIELD = st.one_of(_TIMES, _WORDS, st.text(max_size=12))
_HEADERS = st.one_of(
    st.just(HEADER),
    st.just(FULL_HEADER),
    st.permutations(FULL_HEADER.split(",")).map(",".join),
    st.lists(st.sampled_from([*FULL_HEADER.split(","), "owner", ""]), max_size=11).map(",".join),
)
_ROW = st.lists(_FIELD, min_size=0, max_size=11).map(",".join)
_NEWLINE = st.sampled_from(["\n", "\r\n", "\r"])
_CSVISH = st.builds(
    lambda header, rows, nl: nl.join([header, *rows]) + nl,
    _HEADERS,
    st.lists(_ROW, max_size=6),
    _NEWLINE,
)


@pytest.fixture(scope="module")
def fuzz_store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp) / "fuzz.db") as store:
        yield store


def _check(store: Store, text: str) -> None:
    before = store.query("SELECT COUNT(*) FROM incidents")[0][0]
    try:
        imported = import_csv(store, text, "fuzz.csv", force=True)
    except ValidationError as exc:
        message = str(exc)
        assert message.startswith("fuzz.csv: ")
        assert "\n" not in message
        assert store.query("SELECT COUNT(*) FROM incidents")[0][0] == before
    else:
        assert imported == len(parse_incidents_csv(text, "fuzz.csv"))
        assert store.query("SELECT COUNT(*) FROM incidents")[0][0] == before + imported  # type: ignore[operator]


_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(text=st.text())
def test_arbitrary_text_only_raises_validation_error(fuzz_store: Store, text: str) -> None:
    _check(fuzz_store, text)


@_SETTINGS
@given(text=_CSVISH)
def test_csv_like_text_only_raises_validation_error(fuzz_store: Store, text: str) -> None:
    _check(fuzz_store, text)


@_SETTINGS
@given(
    header=st.sampled_from([HEADER, FULL_HEADER]),
    rows=st.lists(st.lists(_FIELD, min_size=7, max_size=7).map(",".join), max_size=4),
)
def test_well_shaped_rows_only_raise_validation_error(
    fuzz_store: Store, header: str, rows: list[str]
) -> None:
    if header == FULL_HEADER:
        rows = [f"{row},,," for row in rows]
    _check(fuzz_store, "\n".join([header, *rows]) + "\n")
