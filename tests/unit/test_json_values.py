"""What the event store can hold, and what it gives back unchanged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.json_values import inspect_json
from signoff.transcodings import FastJSONTranscoder

text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"))
plain_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | text
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


@given(plain_json)
def test_plain_json_is_stored_and_read_back_unchanged(value):
    transcoder = FastJSONTranscoder()

    problem, plain = inspect_json(value)

    assert problem is None
    if not (isinstance(value, dict) and value.keys() == {"_type_", "_data_"}):
        assert plain
        assert transcoder.decode(transcoder.encode(value)) == value


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("a\x00b", "NUL"),
        ({"k\x00": 1}, "NUL"),
        (float("nan"), "NaN"),
        ({"x": [float("inf")]}, "NaN"),
        (2**63, "64 bits"),
        ({"deep": [{"_type_": "datetime_iso", "_data_": "2026-01-01"}]}, "reserved"),
    ],
)
def test_what_the_store_cannot_hold_is_named(value, why):
    problem, _ = inspect_json(value)

    assert problem is not None
    assert why in problem


@pytest.mark.parametrize("value", [(1, 2), {"when": datetime(2026, 1, 1, tzinfo=UTC)}, {1: "x"}])
def test_values_that_come_back_changed_are_not_plain(value):
    assert inspect_json(value) == (None, False)
