"""Durations as people write them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.domain.durations import MAX_DURATION, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7 days", timedelta(days=7)),
        ("1 hour", timedelta(hours=1)),
        ("30 minutes", timedelta(minutes=30)),
        ("90 seconds", timedelta(seconds=90)),
        ("1 hour 30 minutes", timedelta(minutes=90)),
        ("2 weeks", timedelta(days=14)),
        ("1.5h", timedelta(minutes=90)),
        ("250 ms", timedelta(milliseconds=250)),
        (45, timedelta(seconds=45)),
        (timedelta(hours=2), timedelta(hours=2)),
    ],
)
def test_parses_durations(text: object, expected: timedelta):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "soon",
        "7",
        "days",
        "7 fortnights",
        "-1 hour",
        "0 seconds",
        0,
        -5,
        True,
        None,
        [1],
        "99999999 weeks",
        float("nan"),
        float("inf"),
        timedelta(0),
    ],
)
def test_refuses_what_is_not_a_positive_duration(text: object):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(st.integers(1, int(MAX_DURATION.total_seconds())))
def test_seconds_round_trip(seconds: int):
    assert parse_duration(f"{seconds} seconds") == timedelta(seconds=seconds)
