"""Property: wherever an event of a real SQLite store is edited, deleted or swapped with
another, ``verify`` names that position first."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signoff.cli_audit import check
from tests.integration.raw_store import RawStore
from tests.integration.test_audit_chain import record_some_history


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One store with real history, copied for each example."""
    path = tmp_path_factory.mktemp("chain") / "pristine.db"
    asyncio.run(record_some_history(f"sqlite:///{path}", approvals=6))
    return path


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), how=st.sampled_from(["edit", "delete", "swap"]))
def test_the_first_tampered_position_is_named(
    pristine: Path, tmp_path: Path, data: st.DataObject, how: str
):
    # Copy the honest store and pick positions to tamper with.
    copy = tmp_path / f"{how}.db"
    shutil.copy(pristine, copy)
    url = f"sqlite:///{copy}"
    raw = RawStore(url)
    positions = raw.positions()
    where = data.draw(st.sampled_from(positions), label="position")

    # Tamper.
    if how == "edit":
        state = raw.event(where)[3]
        raw.edit(where, state[-1:], b" " + state[-1:])
        expected = (where, "edited")
    elif how == "delete":
        raw.delete(where)
        expected = (where, "deleted")
    else:
        other = data.draw(st.sampled_from([p for p in positions if p != where]), label="other")
        raw.swap(where, other)
        expected = (min(where, other), "reordered")
    raw.close()

    # Verify names it.
    report = check(url, None)
    assert report.first is not None
    assert (report.first.position, report.first.kind) == expected
