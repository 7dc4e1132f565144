"""Hypothesis strategies for approvals: people, groups, policies and requests."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

PEOPLE = ("alice", "bob", "carol", "dave", "erin", "frank")
GROUPS = ("finance", "legal", "ops")


def people() -> st.SearchStrategy[str]:
    """A person from a small cast, so that commands collide often."""
    return st.sampled_from(PEOPLE)


def group_sets() -> st.SearchStrategy[list[str]]:
    """The groups a voter claims membership of."""
    return st.lists(st.sampled_from(GROUPS), unique=True, max_size=2)


def _text(*, min_size: int = 0, max_size: int | None = None) -> st.SearchStrategy[str]:
    """Text a command accepts (no NUL characters: they are refused as invalid input)."""
    alphabet = st.characters(codec="utf-8", exclude_characters="\x00")
    return st.text(alphabet, min_size=min_size, max_size=max_size)


def json_values() -> st.SearchStrategy[Any]:
    """Small JSON documents, as found in approval context and metadata."""
    scalars = st.none() | st.booleans() | st.integers(-(10**6), 10**6) | _text(max_size=20)
    return st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(_text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    """A JSON object (the shape of ``context`` and ``metadata``)."""
    return st.dictionaries(_text(min_size=1, max_size=8), json_values(), max_size=4)


@st.composite
def approval_requests(draw: st.DrawFn) -> dict[str, Any]:
    """Keyword arguments of ``request_approval``: satisfiable or not, open or restricted."""
    approvers = draw(st.lists(people(), unique=True, max_size=4))
    groups = draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=1))
    return {
        "title": draw(_text(min_size=1, max_size=30).filter(str.strip)),
        "requested_by": draw(people()),
        "context": draw(json_objects()),
        "required_approvals": draw(st.integers(1, 4)),
        "approvers": approvers,
        "groups": groups,
        "rejection_threshold": draw(st.integers(1, 3)),
        "timeout": draw(st.none() | st.sampled_from(["1 hour", "1 day", "7 days"])),
    }
