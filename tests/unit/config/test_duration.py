"""Durations: Go/CEL syntax, as Kubernetes checks Istio's Duration fields."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from minimesh.config import format_duration, parse_duration


@pytest.mark.parametrize("text, seconds", [
    ("10s", 10.0), ("0.5s", 0.5), ("250ms", 0.25), ("1m", 60.0), ("1h", 3600.0), ("1m30s", 90.0),
    ("1h2m3.5s", 3723.5), ("1.5h", 5400.0), ("100us", 1e-4), ("100µs", 1e-4), ("7ns", 7e-9),
    ("0", 0.0), ("0s", 0.0), (".5s", 0.5), ("2.s", 2.0), ("+3s", 3.0),
])
def test_parse_duration(text, seconds):
    assert math.isclose(parse_duration(text), seconds)


@pytest.mark.parametrize("text", [
    "", " ", "10", "-1s", "1 s", "s", "1x", "1sec", "1.2.3s", "ten seconds", "1s ", " 1s", "1s-", "ms", "+", "1e3s",
])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize("value", [None, 5, 1.5, ["1s"]])
def test_parse_duration_rejects_non_strings(value):
    with pytest.raises(ValueError):
        parse_duration(value)


_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3}


@given(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 999), st.sampled_from(sorted(_UNIT_SECONDS))),
                min_size=1, max_size=4))
def test_parse_duration_sums_its_pieces(pieces):
    text = "".join(f"{whole}.{frac:03d}{unit}" for whole, frac, unit in pieces)
    expected = sum((whole + frac / 1000) * _UNIT_SECONDS[unit] for whole, frac, unit in pieces)
    assert math.isclose(parse_duration(text), expected, rel_tol=1e-9, abs_tol=1e-12)


@given(st.floats(min_value=0.001, max_value=1e6, allow_nan=False))
def test_format_duration_round_trips(seconds):
    assert math.isclose(parse_duration(format_duration(seconds)), seconds, rel_tol=1e-5)


@given(st.text(max_size=12))
def test_parse_duration_never_crashes_differently(text):
    try:
        assert parse_duration(text) >= 0
    except ValueError:
        pass
