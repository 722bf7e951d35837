"""Durations: parsing as operators write them, Prometheus formatting, and robustness."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sre_tools.durations import format_duration, humanize, parse_duration
from sre_tools.exceptions import ValidationError

DAY = 86400


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        pytest.param("90s", 90, id="seconds"),
        pytest.param("5m", 300, id="minutes"),
        pytest.param("24h", 86400, id="hours"),
        pytest.param("7d", 7 * DAY, id="days"),
        pytest.param("2w", 14 * DAY, id="weeks"),
        pytest.param("1y", 365 * DAY, id="year"),
        pytest.param("250ms", 0.25, id="milliseconds"),
        pytest.param("1h30m", 5400, id="compound"),
        pytest.param("1d2h3m4s", DAY + 2 * 3600 + 3 * 60 + 4, id="compound-all"),
        pytest.param("1.5h", 5400, id="fraction"),
        pytest.param("  30d\n", 30 * DAY, id="surrounding-space"),
        pytest.param("1m1m", 120, id="repeated-unit-adds"),
        pytest.param("100y", 100 * 365 * DAY, id="upper-limit"),
        pytest.param("0s1ms", 0.001, id="zero-part-plus-positive"),
    ],
)
def test_parse_valid(text: str, seconds: float):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        pytest.param("", "invalid duration", id="empty"),
        pytest.param("   ", "invalid duration", id="blank"),
        pytest.param("5", "invalid duration", id="bare-number"),
        pytest.param("5 m", "invalid duration", id="inner-space"),
        pytest.param("5M", "invalid duration", id="upper-case-unit"),
        pytest.param("-5m", "invalid duration", id="negative"),
        pytest.param("m5", "invalid duration", id="unit-first"),
        pytest.param("1.m", "invalid duration", id="dangling-dot"),
        pytest.param(".5m", "invalid duration", id="leading-dot"),
        pytest.param("1e3s", "invalid duration", id="exponent"),
        pytest.param("5min", "invalid duration", id="long-unit"),
        pytest.param("٣m", "invalid duration", id="non-ascii-digit"),
        pytest.param("0s", "must be greater than zero", id="zero"),
        pytest.param("0m0s", "must be greater than zero", id="zero-compound"),
        pytest.param("101y", "longer than 100 years", id="too-long"),
        pytest.param("9" * 400 + "s", "longer than 100 years", id="float-overflow"),
        pytest.param(5, "expected a duration", id="int"),
        pytest.param(2.5, "expected a duration", id="float"),
        pytest.param(None, "expected a duration", id="none"),
        pytest.param(["5m"], "expected a duration", id="list"),
        pytest.param(True, "expected a duration", id="bool"),
    ],
)
def test_parse_invalid(value: object, fragment: str):
    with pytest.raises(ValidationError) as info:
        parse_duration(value, field="spec.window", source="spec.yaml")
    assert fragment in info.value.reason
    assert (info.value.source, info.value.field) == ("spec.yaml", "spec.window")
    assert str(info.value).startswith("spec.yaml: spec.window: ")


def test_parse_error_without_location():
    with pytest.raises(ValidationError) as info:
        parse_duration("soon")
    assert str(info.value) == info.value.reason
    assert (info.value.source, info.value.field) == (None, None)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(30 * DAY, "30d", id="30d"),
        pytest.param(28 * DAY, "28d", id="28d"),
        pytest.param(5400, "1h30m", id="compound"),
        pytest.param(90, "1m30s", id="90s"),
        pytest.param(3600, "1h", id="hour"),
        pytest.param(DAY + 1, "1d1s", id="day-and-second"),
        pytest.param(0.25, "250ms", id="sub-second"),
        pytest.param(0, "0s", id="zero"),
        pytest.param(-5, "0s", id="negative"),
        pytest.param(59.6, "1m", id="rounds"),
    ],
)
def test_format(seconds: float, text: str):
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        pytest.param(None, "-", id="none"),
        pytest.param(math.inf, "never", id="inf"),
        pytest.param(42, "42.0s", id="seconds"),
        pytest.param(2592, "43.2m", id="minutes"),
        pytest.param(3 * 3600, "3.0h", id="hours"),
        pytest.param(12.5 * DAY, "12.5d", id="days"),
    ],
)
def test_humanize(seconds: float | None, text: str):
    assert humanize(seconds) == text


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=1, max_value=100 * 365 * DAY))
def test_format_parse_roundtrip(seconds: int):
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert format_duration(parse_duration(text)) == text


DURATION_ALPHABET = st.sampled_from(list("0123456789.msshdwy -+eE\t\nµ٣"))


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(),
        st.text(DURATION_ALPHABET, max_size=12),
        st.from_regex(r"\A(\d{1,25}(\.\d{0,5})?(ms|s|m|h|d|w|y|M|x)?){0,4}\Z"),
        st.none() | st.booleans() | st.integers() | st.floats() | st.lists(st.text(max_size=3)),
    )
)
def test_parse_raises_only_validation_error(value: object):
    try:
        seconds = parse_duration(value, field="f")
    except ValidationError as exc:
        assert exc.field == "f"
        assert "\n" not in str(exc)
    else:
        assert isinstance(value, str)
        assert 0 < seconds <= 100 * 365 * DAY
        assert math.isfinite(seconds)
