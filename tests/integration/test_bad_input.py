"""Bad input gets a typed error and changes nothing: nothing appended, the engine keeps working."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff import Engine, InvalidInputError, ManualClock, SignoffError


def stored_count(engine: Engine) -> int:
    return engine.application.recorder.max_notification_id() or 0


@pytest.fixture
async def engine(tmp_path):
    async with Engine(f"sqlite:///{tmp_path}/events.db", clock=ManualClock()) as engine:
        yield engine


@pytest.mark.parametrize(
    "overrides",
    [
        {"title": ""},
        {"title": "   "},
        {"requested_by": ""},
        {"requested_by": "system"},
        {"required_approvals": 0},
        {"required_approvals": "two"},
        {"required_approvals": 3, "approvers": ["alice", "bob"]},
        {"required_approvals": 2, "approvers": ["carol", "alice"]},
        {"approvers": ["alice", "alice"]},
        {"approvers": [""]},
        {"groups": [""]},
        {"rejection_threshold": 0},
        {"timeout": "soon"},
        {"timeout": "-1 hour"},
        {"timeout": 0},
        {"context": {"blob": "x" * 300_000}},
        {"context": {"when": object()}},
        {"title": "Pay\x00"},
        {"context": {"note": ["nul \x00 inside"]}},
        {"context": {"key\x00": 1}},
        {"approvers": ["al\x00ice"]},
    ],
)
async def test_a_bad_request_is_refused_with_a_typed_error_and_stores_nothing(
    engine: Engine, overrides: dict[str, Any]
):
    request: dict[str, Any] = {"title": "Pay", "requested_by": "carol", **overrides}
    before = stored_count(engine)

    with pytest.raises(InvalidInputError) as caught:
        await engine.request_approval(**request)

    assert caught.value.code == "invalid_request"
    assert stored_count(engine) == before
    assert await engine.request_approval(title="still works", requested_by="carol")


async def test_bad_decisions_are_refused_and_store_nothing(engine: Engine):
    approval_id = await engine.request_approval(title="Pay", requested_by="carol")
    before = stored_count(engine)

    with pytest.raises(InvalidInputError):
        await engine.approve(approval_id, by="")
    with pytest.raises(InvalidInputError):
        await engine.approve(approval_id, by="system")
    with pytest.raises(InvalidInputError):
        await engine.approve(approval_id, by="alice", metadata={"x": {1, 2}})
    with pytest.raises(InvalidInputError):
        await engine.reassign(approval_id, by="carol")

    assert stored_count(engine) == before
    assert (await engine.get_approval(approval_id)).status == "pending"


wire_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)
fields = st.sampled_from(
    [
        "title",
        "requested_by",
        "context",
        "description",
        "required_approvals",
        "approvers",
        "groups",
        "rejection_threshold",
        "timeout",
    ]
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(request=st.dictionaries(fields, wire_values, max_size=9))
async def test_random_requests_are_either_stored_or_refused_cleanly(
    engine: Engine, request: dict[str, Any]
):
    before = stored_count(engine)

    try:
        approval_id = await engine.request_approval(**request)
    except TypeError:
        # Missing required keyword arguments: Python refuses the call itself.
        assert stored_count(engine) == before
        return
    except SignoffError as error:
        assert isinstance(error, InvalidInputError), error
        assert stored_count(engine) == before
        return

    assert stored_count(engine) == before + 1
    assert (await engine.get_approval(approval_id)).status == "pending"
