"""Property tests: ``parse_csv`` raises only ValidationError, and what it accepts is sound."""

from __future__ import annotations

import csv
import io
import time

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sre_tools.exceptions import ValidationError
from sre_tools.sli.store import CSV_HEADER, MAX_COUNT, parse_csv
from sre_tools.timeutil import MAX_FUTURE_SECONDS

SETTINGS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

timestamps = st.one_of(
    st.datetimes(timezones=st.none() | st.timezones()).map(lambda d: d.isoformat()),
    st.integers(min_value=-(2**40), max_value=2**40).map(lambda n: f"@{n}"),
    st.floats().map(lambda x: f"@{x}"),
    st.sampled_from(
        [
            "2026-11-01T10:00:00Z",
            "2026-11-01",
            "@1700000000",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00+14:00",
            "1970-01-01T00:00:00+01:00",
            "yesterday",
            "@",
            "",
        ]
    ),
    st.text(max_size=12),
)
slo_ids = st.one_of(
    st.sampled_from(["jobs-launch", "api-availability", " padded ", "with space", "", "x" * 300]),
    st.text(max_size=10),
)
counts = st.one_of(
    st.integers(min_value=-5, max_value=10**16).map(str),
    st.floats().map(repr),
    st.sampled_from(["nan", "inf", "-inf", "1e15", "1e16", "1_000", " 7 ", "0x10", "", "1,5"]),
    st.text(max_size=6),
)
rows = st.lists(
    st.one_of(
        st.tuples(timestamps, slo_ids, counts, counts).map(list),
        st.lists(st.text(max_size=5), max_size=6),  # wrong column counts, blank rows
    ),
    max_size=8,
)
headers = st.one_of(
    st.just(list(CSV_HEADER)),
    st.just([" timestamp", "slo ", "good", "total"]),
    st.permutations(list(CSV_HEADER)),
    st.lists(st.sampled_from([*CSV_HEADER, "time", ""]), max_size=5),
)


@st.composite
def csv_documents(draw: st.DrawFn) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(draw(headers))
    writer.writerows(draw(rows))
    return buf.getvalue()


def check(text: str) -> None:
    try:
        samples = parse_csv(text, "data.csv")
    except ValidationError as exc:
        assert exc.source == "data.csv"
        assert "\n" not in str(exc)
        event("rejected")
        return
    event("accepted")
    for sample in samples:
        assert 0 <= sample.good <= sample.total <= MAX_COUNT
        assert sample.start % 60 == 0
        assert sample.slo and sample.slo == sample.slo.strip()


@SETTINGS
@given(st.text(max_size=400))
def test_random_text(text: str):
    check(text)


@SETTINGS
@given(st.text(max_size=200).map(lambda t: ",".join(CSV_HEADER) + "\n" + t))
def test_random_text_after_valid_header(text: str):
    check(text)


@SETTINGS
@given(csv_documents())
def test_structured_rows(text: str):
    check(text)


@SETTINGS
@given(
    st.lists(
        st.tuples(
            # Up to now: a time more than MAX_FUTURE_SECONDS ahead is refused (tested below).
            st.integers(min_value=0, max_value=int(time.time())),
            st.sampled_from(["a", "b-c", "x.y_z"]),
            st.integers(min_value=0, max_value=10**6),
            st.integers(min_value=0, max_value=10**6),
        ),
        max_size=20,
    )
)
def test_valid_rows_all_accepted(data: list[tuple[int, str, int, int]]):
    lines = [",".join(CSV_HEADER)]
    for at, slo, a, b in data:
        lines.append(f"@{at},{slo},{min(a, b)},{max(a, b)}")
    samples = parse_csv("\n".join(lines) + "\n", "data.csv")
    assert [(s.slo, s.start, s.good, s.total) for s in samples] == [
        (slo, at - at % 60, float(min(a, b)), float(max(a, b))) for at, slo, a, b in data
    ]


@SETTINGS
@given(ahead=st.integers(min_value=MAX_FUTURE_SECONDS + 60, max_value=2**33))
def test_a_time_ahead_of_now_is_refused(ahead: int) -> None:
    """9999-12-31 typed for 2025-12-31 would sit in every window and never age out."""
    at = int(time.time()) + ahead
    text = ",".join(CSV_HEADER) + f"\n@{at},a,1,1\n"
    with pytest.raises(ValidationError) as err:
        parse_csv(text, "data.csv")
    assert "row" in str(err.value) or "timestamp" in str(err.value)
    assert "in the future" in str(err.value)
