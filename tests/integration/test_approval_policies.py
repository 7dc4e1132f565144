"""Approval timeouts, reminders and escalation chains, on the advanceable clock."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from signoff import (
    AlreadyDecidedError,
    ApprovalRejected,
    Engine,
    InvalidInputError,
    ManualClock,
    NotAnApproverError,
    Step,
    Workflow,
    WorkflowEvent,
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
async def engine(store_url: str, clock: ManualClock):
    engine = Engine(store_url, clock=clock)
    engine.register(Gated)
    async with engine:
        yield engine


class Gated(Workflow):
    """Waits for an approval with the policy its params give."""

    name = "gated"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        try:
            decision = await self.wait_for_approval(step, **event.payload)
        except ApprovalRejected as rejected:
            return {"outcome": "rejected", "by": rejected.by, "reason": rejected.reason}
        return {"outcome": "timeout" if decision is None else "approved", "metadata": decision}


async def events_of(engine: Engine, aggregate_id: str) -> list[str]:
    return [e.event for e in await engine.history(aggregate_id)]


async def test_reminders_repeat_until_the_approval_is_decided(engine: Engine, clock: ManualClock):
    # An approval that reminds its approvers every 4 hours, for up to a day.
    approval_id = await engine.request_approval(
        title="Pay",
        requested_by="carol",
        approvers=["alice"],
        timeout="1 day",
        remind_every="4 hours",
    )

    # After 5 and 9 hours, two reminders were recorded, with whom they went to.
    clock.advance("5 hours")
    await engine.settle()
    clock.advance("4 hours")
    await engine.settle()
    trail = await engine.history(approval_id)
    reminded = [e for e in trail if e.event == "Reminded"]
    assert [r.data["count"] for r in reminded] == [1, 2]
    assert reminded[0].data["recipients"] == ["alice"]
    assert reminded[0].actor == "system"

    # Once decided, no more reminders.
    await engine.approve(approval_id, by="alice")
    clock.advance("12 hours")
    await engine.settle()
    assert (await events_of(engine, approval_id)).count("Reminded") == 2


@pytest.mark.parametrize(
    ("on_timeout", "status", "actor"),
    [
        ("expire", "expired", "system"),
        ("reject", "rejected", "system"),
        ("approve", "approved", "system"),
    ],
)
async def test_the_deadline_does_what_the_policy_says(
    engine: Engine, clock: ManualClock, on_timeout: str, status: str, actor: str
):
    approval_id = await engine.request_approval(
        title="Rotate keys", requested_by="carol", timeout="1 hour", on_timeout=on_timeout
    )

    clock.advance("61 minutes")
    await engine.settle()

    info = await engine.get_approval(approval_id)
    assert (info.status, info.decided_by, info.decision_reason) == (
        status,
        actor,
        "deadline passed",
    )
    with pytest.raises(AlreadyDecidedError):
        await engine.approve(approval_id, by="alice")


async def test_an_escalation_chain_hands_the_approval_up_with_new_deadlines(
    engine: Engine, clock: ManualClock
):
    # Alice has a day; then her manager, then the CFO, each with their own deadline.
    approval_id = await engine.request_approval(
        title="Wire $90,000",
        requested_by="carol",
        approvers=["alice"],
        timeout="1 day",
        on_timeout="escalate",
        escalation=[
            {"approvers": ["manager"], "timeout": "12 hours"},
            {"groups": ["cfo-office"], "timeout": "6 hours"},
        ],
    )

    # After a day: escalated to the manager, who has 12 hours; alice may no longer decide.
    clock.advance("25 hours")
    await engine.settle()
    info = await engine.get_approval(approval_id)
    assert (info.status, info.approvers) == ("pending", ["manager"])
    assert info.deadline == datetime(2026, 1, 2, 22, 0, tzinfo=UTC)
    with pytest.raises(NotAnApproverError):
        await engine.approve(approval_id, by="alice")

    # The manager does not decide either: the CFO office gets it, and decides.
    clock.advance("13 hours")
    await engine.settle()
    info = await engine.get_approval(approval_id)
    assert (info.approvers, info.groups) == ([], ["cfo-office"])
    decided = await engine.approve(approval_id, by="dora", groups=["cfo-office"])
    assert decided.status == "approved"
    escalations = [e for e in await engine.history(approval_id) if e.event == "Escalated"]
    assert [(e.data["level"], e.data["previous_approvers"]) for e in escalations] == [
        (1, ["alice"]),
        (2, ["manager"]),
    ]


async def test_escalate_after_moves_up_before_the_deadline_and_the_last_level_expires(
    engine: Engine, clock: ManualClock
):
    approval_id = await engine.request_approval(
        title="Grant admin",
        requested_by="carol",
        approvers=["alice"],
        timeout="2 days",
        escalate_after="4 hours",
        escalation=[{"approvers": ["bob"]}],
    )

    clock.advance("5 hours")
    await engine.settle()
    assert (await engine.get_approval(approval_id)).approvers == ["bob"]

    clock.advance("2 days")
    await engine.settle()
    assert (await engine.get_approval(approval_id)).status == "expired"
    with pytest.raises(AlreadyDecidedError):
        await engine.approve(approval_id, by="bob")


async def test_a_waiting_run_hears_of_reminders_and_escalations_and_gets_the_outcome(
    engine: Engine, clock: ManualClock
):
    # A run waits for alice, reminded every 6 hours, escalated to bob after a day.
    run_id = await engine.run_workflow(
        "gated",
        {
            "timeout": "3 days",
            "approvers": ["alice"],
            "remind_every": "6 hours",
            "escalate_after": "1 day",
            "escalation": [{"approvers": ["bob"]}],
        },
    )
    await engine.settle()

    # The run's wait shows the escalation; the run recorded the news.
    clock.advance("25 hours")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "waiting"
    assert (await events_of(engine, run_id)).count("WaitNoted") >= 2
    assert info.waiting_for is not None
    approval_id = info.waiting_for.approval_id
    assert approval_id is not None
    assert (await engine.get_approval(approval_id)).approvers == ["bob"]

    # Bob approves: the run completes with his metadata.
    await engine.approve_workflow(run_id, by="bob", metadata={"ok": True})
    await engine.settle()
    done = await engine.get_workflow(run_id)
    assert done.result == {"outcome": "approved", "metadata": {"ok": True}}


async def test_a_workflow_wait_that_rejects_on_timeout_raises_in_the_run(
    engine: Engine, clock: ManualClock
):
    run_id = await engine.run_workflow("gated", {"timeout": "1 hour", "on_timeout": "reject"})
    await engine.settle()

    clock.advance("2 hours")
    await engine.settle()

    result = (await engine.get_workflow(run_id)).result
    assert result == {"outcome": "rejected", "by": "system", "reason": "deadline passed"}


@pytest.mark.parametrize(
    "policy",
    [
        {"on_timeout": "reject"},  # no timeout to act on
        {"on_timeout": "escalate", "timeout": "1 day"},  # no chain
        {"escalate_after": "1 hour"},  # no chain
        {"remind_every": "soon"},
        {"timeout": "1 day", "on_timeout": "explode"},
        {"timeout": "1 day", "on_timeout": "escalate", "escalation": [{}]},
        {
            "required_approvals": 2,
            "approvers": ["a", "b"],
            "timeout": "1 day",
            "on_timeout": "escalate",
            "escalation": [{"approvers": ["m"]}],
        },
    ],
)
async def test_inconsistent_policies_are_refused(engine: Engine, policy: dict[str, Any]):
    with pytest.raises(InvalidInputError):
        await engine.request_approval(title="x", requested_by="carol", **policy)
    assert await engine.pending_approvals() == []
