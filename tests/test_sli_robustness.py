"""SLI store robustness: concurrent importers and SIGKILL in the middle of an import, on both
engines (a SQLite file, a PostgreSQL database)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sre_tools.sli.store import import_csv
from sre_tools.store import Store

SRE = [sys.executable, "-m", "sre_tools.cli.main"]
T0 = 1_790_000_000 - 1_790_000_000 % 60


def sli_csv(rows: int, slo: str, good: int, total: int, start: int = T0) -> str:
    lines = ["timestamp,slo,good,total"]
    lines += [f"@{start + 60 * i},{slo},{good},{total}" for i in range(rows)]
    return "\n".join(lines) + "\n"


def sums(path: Path | str) -> tuple[float, float, int]:
    with Store(path, create=False) as store:
        good, total, n = store.query("SELECT SUM(good), SUM(total), COUNT(*) FROM sli_buckets")[0]
    return float(str(good)), float(str(total)), int(str(n))


def test_concurrent_imports_into_the_same_buckets_add_up(
    tmp_path: Path, store_location: Path | str
) -> None:
    store = store_location
    Store(store).close()
    files = []
    # Three files with the same SLO and the same buckets: counts must add, none lost.
    for n in range(3):
        path = tmp_path / f"part{n}.csv"
        path.write_text(sli_csv(20_000, "svc-api", good=90 + n, total=100))
        files.append(path)
    procs = [
        subprocess.Popen(
            [*SRE, "sli", "import", str(p), "--store", str(store)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for p in files
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err.decode()
    good, total, buckets = sums(store)
    assert buckets == 20_000
    assert total == 3 * 100 * 20_000
    assert good == (90 + 91 + 92) * 20_000


def _importing(store: Path | str) -> bool:
    """Is an import's transaction writing its batch right now?"""
    if isinstance(store, Path):
        wal = Path(f"{store}-wal")
        return wal.exists() and wal.stat().st_size > 1_000_000
    with Store(store) as opened:
        rows = opened.query(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name = 'sre_tools' "
            "AND xact_start < now() - interval '50 milliseconds' "
            "AND (query LIKE 'INSERT INTO sli%' OR query LIKE 'COPY _sre_bulk%')"
        )
    return int(rows[0][0]) > 0


@pytest.mark.parametrize("when", ["early", "mid-batch"])
def test_sigkill_mid_import_keeps_committed_rows(
    tmp_path: Path, when: str, store_location: Path | str
) -> None:
    store = store_location
    with Store(store) as opened:
        import_csv(opened, sli_csv(500, "svc-committed", 99, 100), "committed.csv")
    before = sums(store)
    big = tmp_path / "big.csv"
    big.write_text(sli_csv(300_000, "svc-big", 95, 100, start=T0 - 300_000 * 60))
    proc = subprocess.Popen(
        [*SRE, "sli", "import", str(big), "--store", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    start = time.monotonic()
    while proc.poll() is None and time.monotonic() - start < 60:
        if when == "early" and time.monotonic() - start >= 0.3:
            break
        if when == "mid-batch" and _importing(store):
            break  # the import's transaction is writing pages: kill it inside the batch
        time.sleep(0.002)
    killed = proc.poll() is None
    if killed:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    print(f"{when}: killed={killed} after {time.monotonic() - start:.2f}s")
    with Store(store) as opened:
        if not opened.postgres:
            assert opened.query("PRAGMA integrity_check") == [("ok",)]
        committed = opened.query(
            "SELECT SUM(good), SUM(total), COUNT(*) FROM sli_buckets WHERE slo = 'svc-committed'"
        )[0]
        assert committed == (99 * 500, 100 * 500, 500)
        big_rows = opened.query("SELECT COUNT(*) FROM sli_buckets WHERE slo = 'svc-big'")[0][0]
        # All or nothing: a killed import leaves no partial batch.
        assert big_rows in (0, 300_000)
        if killed:
            assert big_rows == 0
        # The store still takes writes.
        import_csv(opened, sli_csv(3, "svc-after", 1, 1), "after.csv")
    assert sums(store)[2] == before[2] + big_rows + 3
