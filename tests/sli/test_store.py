"""SLI counts in the store: import validation, re-import, additive buckets, exact windows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sre_tools.cli.main import main
from sre_tools.exceptions import StoreError, ValidationError
from sre_tools.sli.store import (
    Sample,
    StoreSource,
    import_csv,
    known_slos,
    make_sample,
    parse_csv,
    record,
)
from sre_tools.slo.model import SLO, BudgetingMethod, EventsSLI
from sre_tools.slo.report import STATUS_NO_DATA, build_report
from sre_tools.slo.windows import DEFAULT_WINDOWS
from sre_tools.store import Store

T0 = 1_700_000_040  # a whole minute (2023-11-14T22:14:00Z)
HEADER = "timestamp,slo,good,total"
SLI = EventsSLI("sum(rate(bad[{{.window}}]))", "sum(rate(all[{{.window}}]))")


def slo(
    name: str = "launch",
    budgeting: BudgetingMethod = BudgetingMethod.OCCURRENCES,
    *,
    target: float | None = None,
    slice_seconds: float | None = None,
) -> SLO:
    return SLO(
        service="jobs",
        name=name,
        objective=99.0,
        period_seconds=30 * 86400,
        sli=SLI,
        budgeting=budgeting,
        time_slice_target=target,
        time_slice_seconds=slice_seconds,
    )


@pytest.fixture
def store(store_location: str | Path) -> Iterator[Store]:
    """The same cases on both engines: a SQLite file and a PostgreSQL database."""
    with Store(store_location) as opened:
        yield opened


def rows(store: Store, slo_id: str = "jobs-launch") -> dict[int, tuple[float, float]]:
    found = store.query("SELECT start, good, total FROM sli_buckets WHERE slo = ?", (slo_id,))
    return {int(str(s)): (float(str(g)), float(str(t))) for s, g, t in found}


def csv_text(*lines: str) -> str:
    return "\n".join((HEADER, *lines)) + "\n"


# -- import ---------------------------------------------------------------------------------------


def test_import_valid_csv(store: Store):
    text = csv_text(
        "2023-11-14T22:14:00Z,jobs-launch,99,100",
        "@1700000070,jobs-launch,50,50",  # same minute as the row above: added to its bucket
        "2023-11-14T22:15:30+00:00,jobs-launch,0,0",
        "2023-11-14 22:16:00,jobs-launch,1.5,2.5",  # no zone: UTC
        "",
        "  ,  ,  ,  ",  # blank rows are skipped
        "@1700000040, jobs-other ,3,4",
    )
    assert import_csv(store, text, "data.csv") == 5
    assert rows(store) == {
        T0: (149.0, 150.0),
        T0 + 60: (0.0, 0.0),
        T0 + 120: (1.5, 2.5),
    }
    assert rows(store, "jobs-other") == {T0: (3.0, 4.0)}
    assert known_slos(store) == [("jobs-launch", 3, T0, T0 + 120), ("jobs-other", 1, T0, T0)]
    imported = store.query("SELECT kind, path, rows FROM imports")
    assert imported == [("sli", "data.csv", 5)]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("", "data.csv: empty file", id="empty"),
        pytest.param(
            "time,slo,good,total\n", "data.csv: header: row 1: header must be", id="bad-header"
        ),
        pytest.param(
            "timestamp,slo,good\n", "data.csv: header: row 1: header must be", id="short-header"
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,1"),
            "data.csv: row 2: expected 4 columns, got 3",
            id="missing-column",
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,1,2", "@1700000040,jobs-launch,1,2,3"),
            "data.csv: row 3: expected 4 columns, got 5",
            id="extra-column-row-3",
        ),
        pytest.param(
            csv_text("yesterday,jobs-launch,1,2"),
            "data.csv: row 2: timestamp: invalid timestamp 'yesterday'",
            id="bad-timestamp",
        ),
        pytest.param(
            csv_text("1969-12-31T00:00:00Z,jobs-launch,1,2"),
            "data.csv: row 2: timestamp: timestamp '1969-12-31T00:00:00Z' out of range",
            id="timestamp-before-1970",
        ),
        pytest.param(
            csv_text("9999-12-31T23:59:59-14:00,jobs-launch,1,2"),
            "data.csv: row 2: timestamp: timestamp '9999-12-31T23:59:59-14:00' out of range",
            id="timestamp-overflows-utc",
        ),
        pytest.param(
            csv_text("@1700000040,jobs launch,1,2"),
            "data.csv: row 2: slo: invalid SLO id 'jobs launch'",
            id="slo-id-with-space",
        ),
        pytest.param(
            csv_text("@1700000040,,1,2"), "data.csv: row 2: slo: invalid SLO id ''", id="empty-id"
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,many,2"),
            "data.csv: row 2: good: expected a number, got 'many'",
            id="good-not-number",
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,1,-2"),
            "data.csv: row 2: total: must be a finite number between 0 and 1e+15, got '-2'",
            id="negative-total",
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,nan,2"),
            "data.csv: row 2: good: must be a finite number",
            id="nan",
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,1,inf"),
            "data.csv: row 2: total: must be a finite number",
            id="inf",
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,1,2e15"),
            "data.csv: row 2: total: must be a finite number",
            id="too-large",
        ),
        pytest.param(
            csv_text("@1700000040,jobs-launch,1,2", "", "@1700000100,jobs-launch,3,2"),
            "data.csv: row 4: good: good (3) is greater than total (2)",
            id="good-over-total-after-blank-line",
        ),
        pytest.param(
            csv_text('@1700000040,"jobs-launch,1,2'),
            "data.csv: row ",
            id="unterminated-quote",
        ),
        pytest.param(
            csv_text("@1700000040," + "x" * 200_000 + ",1,2"),
            "data.csv: row 2: field larger than field limit",
            id="huge-field",
        ),
    ],
)
def test_import_errors_name_file_row_and_field(store: Store, text: str, message: str):
    before = store.query("SELECT COUNT(*) FROM sli_buckets")
    with pytest.raises(ValidationError) as info:
        import_csv(store, text, "data.csv")
    assert str(info.value).startswith(message), str(info.value)
    assert info.value.source == "data.csv"
    assert "\n" not in str(info.value)
    # Nothing from a rejected file reaches the store.
    assert store.query("SELECT COUNT(*) FROM sli_buckets") == before
    assert store.query("SELECT COUNT(*) FROM imports") == [(0,)]


def test_reimport_refused_unless_force(store: Store):
    text = csv_text("@1700000040,jobs-launch,9,10", "@1700000100,jobs-launch,10,10")
    assert import_csv(store, text, "day1.csv") == 2
    with pytest.raises(ValidationError) as info:
        import_csv(store, text, "copy-of-day1.csv")
    assert info.value.source == "copy-of-day1.csv"
    assert "already imported (same content as day1.csv); use --force" in info.value.reason
    assert rows(store) == {T0: (9.0, 10.0), T0 + 60: (10.0, 10.0)}
    assert import_csv(store, text, "day1.csv", force=True) == 2
    assert rows(store) == {T0: (18.0, 20.0), T0 + 60: (20.0, 20.0)}
    # A file with different content is a new import.
    assert import_csv(store, text + "\n", "day1.csv") == 2


def test_record_is_additive_per_bucket(store: Store):
    a = make_sample("jobs-launch", T0 + 5, 10, 10, bucket=60, source="cli")
    b = make_sample("jobs-launch", T0 + 59.9, 3, 5, bucket=60, source="cli")
    c = make_sample("jobs-launch", T0 + 60, 1, 1, bucket=60, source="cli")
    assert (a.start, b.start, c.start) == (T0, T0, T0 + 60)
    assert record(store, [a, b]) == 2
    assert record(store, [c, a]) == 2
    assert rows(store) == {T0: (23.0, 25.0), T0 + 60: (1.0, 1.0)}


def test_make_sample_validation():
    with pytest.raises(ValidationError) as info:
        make_sample("x", T0, 3, 2, bucket=60, source="command line", field="--good")
    assert str(info.value) == "command line: good: --good: good (3) is greater than total (2)"
    with pytest.raises(ValidationError, match="invalid SLO id"):
        make_sample("a\tb", T0, 1, 2, bucket=60, source="cli")
    with pytest.raises(ValidationError, match="invalid SLO id"):
        make_sample("x" * 257, T0, 1, 2, bucket=60, source="cli")


def test_parse_csv_bucket_size():
    samples = parse_csv(csv_text("@1700000399,a,1,1"), "x.csv", bucket=300)
    assert samples == [Sample("a", 1_700_000_100, 1.0, 1.0)]


# -- windows --------------------------------------------------------------------------------------


def fill(
    store: Store, slo_id: str, minutes: int, end: int, count
) -> dict[int, tuple[float, float]]:
    """One bucket per minute before ``end``; ``count(i)`` gives (good, total) for minute i."""
    data = {}
    for i in range(minutes):
        start = end - (minutes - i) * 60
        good, total = count(i)
        data[start] = (float(good), float(total))
    record(store, [Sample(slo_id, s, g, t) for s, (g, t) in data.items()])
    return data


def expected_ratio(data: dict[int, tuple[float, float]], begin: int, end: int) -> float | None:
    bad = sum(t - g for s, (g, t) in data.items() if begin <= s < end)
    total = sum(t for s, (g, t) in data.items() if begin <= s < end)
    return None if total == 0 else bad / total


def test_window_sums_are_exact(store: Store):
    end = T0 + 4 * 86400
    data = fill(store, "jobs-launch", 4 * 1440, end, lambda i: (100 + i % 7 - i % 5, 100 + i % 7))
    # Buckets that must not count: one starting exactly at `end`, one far in the past, other SLOs.
    record(store, [Sample("jobs-launch", end, 0, 1000), Sample("jobs-launch", 0, 0, 1000)])
    record(store, [Sample("jobs-other", end - 60, 0, 1000)])
    windows = [300, 1800, 3600, 7200, 6 * 3600, 86400, 3 * 86400, 30 * 86400]
    got = StoreSource(store).error_ratios(slo(), windows, end)
    for window in windows:
        want = expected_ratio(data, end - window, end)
        assert got[window] == pytest.approx(want, rel=1e-12, abs=0), window
    # The window [end - W, end) includes the bucket starting at end - W and ends before `end`.
    five = expected_ratio(data, end - 300, end)
    assert five == sum(i % 5 for i in range(4 * 1440 - 5, 4 * 1440)) / sum(
        100 + i % 7 for i in range(4 * 1440 - 5, 4 * 1440)
    )


def test_ratio_is_clamped_and_integer_at(store: Store):
    record(store, [Sample("jobs-launch", T0, 0, 10)])
    got = StoreSource(store).error_ratios(slo(), [60], T0 + 60.9)  # at is truncated to seconds
    assert got == {60: 1.0}


def test_zero_traffic_is_none(store: Store):
    record(store, [Sample("jobs-launch", T0, 0, 0), Sample("jobs-launch", T0 + 60, 0, 0)])
    source = StoreSource(store)
    occurrences = source.error_ratios(slo(), [300, 3600], T0 + 300)
    assert occurrences == {300: None, 3600: None}
    slices = slo("launch", BudgetingMethod.TIMESLICES, target=0.99, slice_seconds=60)
    assert source.error_ratios(slices, [300], T0 + 300) == {300: None}
    ratio_slices = slo("launch", BudgetingMethod.RATIO_TIMESLICES, slice_seconds=60)
    assert source.error_ratios(ratio_slices, [300], T0 + 300) == {300: None}
    # No rows at all for this SLO.
    assert source.error_ratios(slo("nothing"), [300], T0) == {300: None}
    report = build_report(slo("nothing"), DEFAULT_WINDOWS, source, T0)
    assert report.status == STATUS_NO_DATA
    assert report.budget_remaining is None and report.time_to_exhaustion_seconds is None


def slice_data(store: Store, end: int) -> None:
    """12 five-minute slices in the hour before ``end`` with known per-slice error ratios."""
    # per slice: (bad, total) spread over its five 1-minute buckets
    per_slice = {
        0: (5, 100),  # 5 %: bad
        1: (0, 100),
        2: (5, 500),  # exactly 1 % (exact in binary): not bad, a bad slice is above 1 %
        3: (50, 100),  # bad
        4: (0, 100),
        5: (0, 0),  # no traffic: not a slice
        6: (0, 50),
        7: (0, 100),
        8: (2, 100),  # bad
        9: (0, 100),
        10: (0, 100),
        11: (0, 100),
    }
    samples = []
    begin = end - 3600
    for index, (bad, total) in per_slice.items():
        start = begin + index * 300
        # traffic and errors spread evenly over the slice's five 1-minute buckets
        for minute in range(5):
            samples.append(Sample("jobs-launch", start + minute * 60, (total - bad) / 5, total / 5))
    record(store, samples)


def test_timeslices_from_store(store: Store):
    end = T0 + 7200
    slice_data(store, end)
    timeslices = slo("launch", BudgetingMethod.TIMESLICES, target=0.99, slice_seconds=300)
    got = StoreSource(store).error_ratios(timeslices, [3600, 1800, 900], end)
    assert got[3600] == pytest.approx(3 / 11)  # slices 0, 3, 8 bad; slice 5 has no traffic
    assert got[1800] == pytest.approx(1 / 6)  # slices 6..11: only 8 is bad
    assert got[900] == 0.0  # slices 9..11
    # A looser slice target: only the 50 % slice is bad.
    loose = slo("launch", BudgetingMethod.TIMESLICES, target=0.9, slice_seconds=300)
    assert StoreSource(store).error_ratios(loose, [3600], end)[3600] == pytest.approx(1 / 11)


def test_ratio_timeslices_from_store(store: Store):
    end = T0 + 7200
    slice_data(store, end)
    ratio_slices = slo("launch", BudgetingMethod.RATIO_TIMESLICES, slice_seconds=300)
    got = StoreSource(store).error_ratios(ratio_slices, [3600, 1800], end)
    ratios = [0.05, 0, 0.01, 0.5, 0, 0, 0, 0.02, 0, 0, 0]  # slice 5 has no traffic: left out
    assert got[3600] == pytest.approx(sum(ratios) / 11)
    assert got[1800] == pytest.approx(0.02 / 6)


def test_missing_store_is_a_runtime_error(tmp_path: Path):
    with pytest.raises(StoreError, match="store does not exist"):
        Store(tmp_path / "none.db", create=False)


def test_cli_record_import_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """The same counts through the CLI: record, import, then a JSON report read back."""
    import json

    db = str(tmp_path / "cli.db")
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "version: prometheus/v1\nservice: jobs\nslos:\n  - name: launch\n    objective: 99\n"
        "    sli:\n      events:\n        error_query: e[{{.window}}]\n"
        "        total_query: t[{{.window}}]\n"
    )
    at = "2023-11-14T22:14:00Z"
    assert main(["sli", "record", "--store", db, "--slo", "jobs-launch", "--good", "90",
                 "--total", "100", "--at", at]) == 0  # fmt: skip
    data = tmp_path / "more.csv"
    data.write_text(csv_text("2023-11-14T22:13:00Z,jobs-launch,100,100"))
    assert main(["sli", "import", str(data), "--store", db]) == 0
    assert main(["sli", "import", str(data), "--store", db]) == 2
    capsys.readouterr()
    args = ["slo", "report", str(spec), "--store", db, "--at", "2023-11-14T22:15:00Z", "--json"]
    assert main(args) == 0
    (report,) = json.loads(capsys.readouterr().out)
    assert report["id"] == "jobs-launch"
    assert report["burn_rates"]["5m"] == pytest.approx((10 / 200) / 0.01)
    assert report["period_error_ratio"] == pytest.approx(0.05)
    assert report["budget_remaining"] == pytest.approx(1 - 5)
    # Burn rate 5 everywhere: above both ticket factors (3, 1), below the page ones (14.4, 6).
    assert report["status"] == "ticket"
    assert report["firing"] == ["ticket-quick", "ticket-slow"]


def test_files_of_a_newer_schema_are_refused_and_left_alone(tmp_path: Path) -> None:
    """The store and the remediation state share create_schema: a file written by a newer
    sre_tools is refused with its path, and its rows are not touched."""
    import sqlite3

    from sre_tools.remediation.state import RemediationState

    for path, opener, what in (
        (tmp_path / "store.db", Store, "store"),
        (tmp_path / "state.db", RemediationState, "remediation state"),
    ):
        opener(path)  # creates the schema
        with sqlite3.connect(path) as conn:
            conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
        with pytest.raises(StoreError, match=rf"{what} schema version 99 is newer") as err:
            opener(path)
        assert str(path) in str(err.value)
        with sqlite3.connect(path) as conn:
            assert conn.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone() == ("99",)


def test_a_large_import_with_repeated_buckets_adds_up(store: Store):
    """Past the bulk threshold (COPY and one upsert on PostgreSQL): samples of one bucket in the
    file add up, and add to what the bucket already held."""
    from sre_tools.store import BULK_MIN_ROWS

    record(store, [make_sample("bulk-a", T0, 5, 10, bucket=60, source="t")])
    n = BULK_MIN_ROWS + 500
    lines = [f"@{T0 + 60 * (i // 2) + i % 2},bulk-a,{i % 3},3" for i in range(n)]
    assert import_csv(store, csv_text(*lines), "bulk.csv") == n
    got = rows(store, "bulk-a")
    assert len(got) == (n + 1) // 2
    assert got[T0] == (5 + 0 + 1, 10 + 3 + 3)
    expected_good = 5 + sum(i % 3 for i in range(n))
    assert sum(g for g, _ in got.values()) == expected_good
    assert sum(t for _, t in got.values()) == 10 + 3 * n
