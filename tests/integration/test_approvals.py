"""The standalone approvals API, told as stories, against every event store."""

from __future__ import annotations

import pytest

from signoff import (
    AlreadyDecidedError,
    AlreadyVotedError,
    ApprovalNotFoundError,
    DeadlinePassedError,
    Engine,
    ForbiddenError,
    ManualClock,
    NotAnApproverError,
    SelfApprovalError,
)


@pytest.fixture
async def engine(store_url: str):
    async with Engine(store_url, clock=ManualClock()) as engine:
        yield engine


async def test_a_single_approval_is_approved_and_its_audit_trail_tells_the_story(engine: Engine):
    # Ask for a decision, with the context a person needs to decide.
    approval_id = await engine.request_approval(
        title="Pay $42 to ACME",
        requested_by="carol",
        context={"amount": 42, "currency": "USD"},
        description="Invoice 117",
        timeout="7 days",
    )

    # Someone approves it.
    info = await engine.approve(approval_id, by="alice", reason="ok", metadata={"ticket": "F-1"})

    # It is approved, with the approver's metadata, and the trail shows who, why and when.
    assert info.status == "approved"
    assert info.metadata == {"ticket": "F-1"}
    assert info.context == {"amount": 42, "currency": "USD"}
    trail = await engine.history(approval_id)
    assert [e.event for e in trail] == ["Requested", "VoteCast", "Approved"]
    assert [e.actor for e in trail] == ["carol", "alice", "alice"]
    assert trail[1].reason == "ok"
    assert trail[0].data["context"] == {"amount": 42, "currency": "USD"}
    assert len({e.command_id for e in trail[1:]}) == 1
    assert trail[0].at == engine.clock.now()


async def test_a_quorum_of_two_counts_distinct_allowed_approvers(engine: Engine):
    approval_id = await engine.request_approval(
        title="Delete the prod database",
        requested_by="carol",
        required_approvals=2,
        approvers=["alice", "bob", "dave"],
    )

    first = await engine.approve(approval_id, by="alice")
    with pytest.raises(AlreadyVotedError, match="already approved by this user"):
        await engine.approve(approval_id, by="alice")
    with pytest.raises(NotAnApproverError):
        await engine.approve(approval_id, by="mallory")
    with pytest.raises(SelfApprovalError):
        await engine.approve(approval_id, by="carol")
    second = await engine.approve(approval_id, by="bob")

    assert (first.status, first.approvals_needed) == ("pending", 1)
    assert (second.status, second.approvals_needed) == ("approved", 0)
    assert [v.voter for v in second.votes] == ["alice", "bob"]
    assert len(await engine.history(approval_id)) == 4


async def test_the_first_rejection_vetoes_by_default(engine: Engine):
    approval_id = await engine.request_approval(
        title="Send the newsletter", requested_by="carol", required_approvals=2
    )

    await engine.approve(approval_id, by="alice")
    info = await engine.reject(approval_id, by="bob", reason="typo in the subject")

    assert info.status == "rejected"
    assert info.decision_reason == "typo in the subject"
    with pytest.raises(AlreadyDecidedError):
        await engine.approve(approval_id, by="dave")


async def test_a_rejection_threshold_tolerates_dissent(engine: Engine):
    approval_id = await engine.request_approval(
        title="Raise the limit", requested_by="carol", required_approvals=2, rejection_threshold=2
    )

    after_one = await engine.reject(approval_id, by="bob")
    await engine.approve(approval_id, by="alice")
    final = await engine.approve(approval_id, by="dave")

    assert after_one.status == "pending"
    assert final.status == "approved"


async def test_an_approval_is_rejected_once_its_quorum_is_unreachable(engine: Engine):
    approval_id = await engine.request_approval(
        title="Grant admin",
        requested_by="carol",
        required_approvals=2,
        approvers=["alice", "bob"],
        rejection_threshold=5,
    )

    info = await engine.reject(approval_id, by="alice")

    assert info.status == "rejected"


async def test_group_members_may_decide(engine: Engine):
    approval_id = await engine.request_approval(
        title="Refund", requested_by="carol", groups=["finance"]
    )

    with pytest.raises(NotAnApproverError):
        await engine.approve(approval_id, by="erin", groups=["ops"])
    info = await engine.approve(approval_id, by="erin", groups=["finance"])

    assert info.status == "approved"
    assert info.votes[0].groups == ["finance"]


async def test_only_the_requester_may_cancel_and_a_cancelled_approval_takes_no_votes(
    engine: Engine,
):
    approval_id = await engine.request_approval(title="Export users", requested_by="carol")

    with pytest.raises(ForbiddenError):
        await engine.cancel(approval_id, by="alice")
    info = await engine.cancel(approval_id, by="carol", reason="no longer needed")

    assert info.status == "cancelled"
    with pytest.raises(AlreadyDecidedError):
        await engine.reject(approval_id, by="alice")


async def test_a_pending_approval_can_be_delegated_with_who_and_why(engine: Engine):
    approval_id = await engine.request_approval(
        title="Wire transfer", requested_by="carol", approvers=["alice"]
    )

    await engine.reassign(approval_id, by="alice", approvers=["bob"], reason="on holiday")

    with pytest.raises(NotAnApproverError):
        await engine.approve(approval_id, by="alice")
    assert (await engine.approve(approval_id, by="bob")).status == "approved"
    reassigned = (await engine.history(approval_id))[1]
    assert reassigned.event == "Reassigned"
    assert (reassigned.actor, reassigned.reason) == ("alice", "on holiday")
    assert reassigned.data["previous_approvers"] == ["alice"]
    assert reassigned.data["approvers"] == ["bob"]


async def test_a_vote_after_the_deadline_is_refused_and_the_approval_can_expire(engine: Engine):
    approval_id = await engine.request_approval(
        title="Rotate keys", requested_by="carol", timeout="1 hour"
    )
    clock = engine.clock
    assert isinstance(clock, ManualClock)

    clock.advance("61 minutes")

    with pytest.raises(DeadlinePassedError):
        await engine.approve(approval_id, by="alice")
    expired = engine.application.expire_approval(approval_id)
    assert expired.status == "expired"
    assert (await engine.history(approval_id))[-1].actor == "system"


async def test_pending_approvals_is_an_inbox_per_approver(engine: Engine):
    for_alice = await engine.request_approval(title="A", requested_by="carol", approvers=["alice"])
    for_anyone = await engine.request_approval(title="B", requested_by="carol")
    decided = await engine.request_approval(title="C", requested_by="carol")
    await engine.approve(decided, by="bob")

    everything = await engine.pending_approvals()
    alices = await engine.pending_approvals("alice")
    bobs = await engine.pending_approvals("bob")
    carols = await engine.pending_approvals("carol")

    assert [a.id for a in everything] == [for_alice, for_anyone]
    assert [a.id for a in alices] == [for_alice, for_anyone]
    assert [a.id for a in bobs] == [for_anyone]
    assert carols == []


async def test_unknown_ids_are_typed_not_found_errors(engine: Engine):
    with pytest.raises(ApprovalNotFoundError):
        await engine.get_approval("nope")
    with pytest.raises(ApprovalNotFoundError):
        await engine.approve("nope", by="alice")


async def test_approvals_outlive_the_engine(durable_store_url: str):
    store_url = durable_store_url
    async with Engine(store_url) as first:
        approval_id = await first.request_approval(title="Keep me", requested_by="carol")
        await first.approve(approval_id, by="alice")

    async with Engine(store_url) as second:
        info = await second.get_approval(approval_id)

    assert info.status == "approved"
