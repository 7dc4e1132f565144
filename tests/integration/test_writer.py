"""The group-commit writer: batching stays invisible when units fail or the cache is stale."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from signoff.adapters.persistence import parse_store_url
from signoff.application import SignoffApplication
from signoff.commands import Decide, RequestApproval
from signoff.domain.approval import Approval
from signoff.domain.errors import AlreadyDecidedError, ConflictError
from signoff.indexing import index_for
from signoff.session import Session
from signoff.writer import GroupCommitWriter


@pytest.fixture
def app(tmp_path: Path):
    app = SignoffApplication(parse_store_url(f"sqlite:///{tmp_path}/w.db").env)
    yield app
    app.close()


@pytest.fixture
async def writer(app: SignoffApplication):
    writer = GroupCommitWriter(app, index_for=index_for)
    yield writer
    await asyncio.get_running_loop().run_in_executor(None, writer.stop)


def request(app: SignoffApplication, title: str = "t") -> str:
    return app.request_approval(RequestApproval(title=title, requested_by="carol"))


async def test_concurrent_units_share_transactions_and_each_gets_its_own_outcome(app, writer):
    ids = [request(app, f"a{n}") for n in range(50)]

    results = await asyncio.gather(
        *(
            writer.submit(
                lambda s, i=i: s.get(Approval, i).approve(s.app.cause("alice")) or "voted"
            )
            for i in ids
        ),
        writer.submit(lambda s: s.get(Approval, "missing")),
        return_exceptions=True,
    )

    assert results[:50] == ["voted"] * 50
    assert type(results[50]).__name__ == "ApprovalNotFoundError"
    assert writer.batches < writer.jobs  # several units per transaction
    assert all(app.get_approval(i).status == "approved" for i in ids)


async def test_a_unit_that_fails_half_way_changes_nothing_and_spares_its_batch(app, writer):
    good, bad = request(app), request(app)

    def half_done(session: Session) -> None:
        approval = session.get(Approval, bad)
        approval.approve(session.app.cause("alice"))  # emits events ...
        raise ConflictError("... then fails")

    results = await asyncio.gather(
        writer.submit(lambda s: s.get(Approval, good).approve(s.app.cause("bob"))),
        writer.submit(half_done),
        return_exceptions=True,
    )

    assert results[0] is None
    assert isinstance(results[1], ConflictError)
    assert app.get_approval(good).status == "approved"
    assert app.get_approval(bad).status == "pending"
    assert [e.event for e in app.history(bad)] == ["Requested"]


async def test_a_stale_cached_aggregate_is_reloaded_after_losing_the_race(app, writer, tmp_path):
    approval_id = request(app)
    await writer.submit(lambda s: s.get(Approval, approval_id).version)  # now cached

    # Another process decides it behind the writer's back.
    other = SignoffApplication(parse_store_url(f"sqlite:///{tmp_path}/w.db").env)
    other.reject(approval_id, Decide(by="bob", reason="no"))
    other.close()

    # The writer's next vote is judged on the fresh state: already decided.
    with pytest.raises(AlreadyDecidedError):
        await writer.submit(lambda s: s.get(Approval, approval_id).approve(s.app.cause("alice")))
    assert app.get_approval(approval_id).status == "rejected"
    assert [e.event for e in app.history(approval_id)].count("VoteCast") == 1
