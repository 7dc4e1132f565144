"""The workflow runtime, told as stories, against every event store.

Workflows here are the seed's patterns (an expense approval gate, a
multi-approver gate, events, sleeps, retried steps). Step functions count
their calls in ``CALLS`` (keyed by run id and step name), so the stories can
tell that a finished step never runs again, however often a run is replayed.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel, PositiveInt

from signoff import (
    AlreadyExistsError,
    AlreadyVotedError,
    ApprovalRejected,
    ConflictError,
    Engine,
    InvalidInputError,
    ManualClock,
    NonRetryableError,
    NotAnApproverError,
    SelfApprovalError,
    Step,
    StepFailed,
    UnknownWorkflowError,
    Workflow,
    WorkflowEvent,
)

CALLS: Counter[tuple[str, str]] = Counter()
"""How often each step function ran, by (run id, step name)."""

RETURNED: dict[str, Any] = {}
"""What the last replay of each run got back from its wait, by run id."""


def counted(run_id: str, name: str, value: Any = None) -> Any:
    """Counts one execution of a step function and returns ``value``."""
    CALLS[run_id, name] += 1
    return value


# Workflows -------------------------------------------------------------------


class Expense(Workflow):
    """The seed's expense workflow: validate, report, wait for approval, process."""

    name = "expense"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        expense = dict(event.payload)

        def validate() -> dict[str, Any]:
            counted(event.id, "validate")
            if expense["amount"] <= 0:
                raise NonRetryableError("Invalid expense amount")
            return {**expense, "validated": True}

        validated = await step.do("validate", validate)
        await self.report_progress(
            {"step": "approval", "status": "pending", "amount": expense["amount"]}
        )
        approval = await self.wait_for_approval(
            step, timeout="7 days", title=f"Expense ${expense['amount']}", context=expense
        )
        RETURNED[event.id] = approval
        if approval is None:
            await step.report_error("Approval timeout")
            raise RuntimeError("Approval timeout")

        async def process() -> dict[str, Any]:
            counted(event.id, "process")
            return {"expense_id": f"e-{event.id}", **validated, "approved_by": approval}

        result = await step.do("process", process)
        await step.report_complete(result)
        return result


class ExpenseWithFallback(Workflow):
    """The expense gate, but a rejection is handled: the run returns a fallback."""

    name = "expense-fallback"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        try:
            approval = await self.wait_for_approval(step, timeout="7 days", context=event.payload)
        except ApprovalRejected as rejected:
            return {"status": "rejected", "by": rejected.by, "reason": rejected.reason}
        return {"status": "approved", "metadata": approval}


class CoolOffThenApproval(Workflow):
    """Sleeps an hour before asking for approval (decisions may arrive meanwhile)."""

    name = "cool-off"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        await step.sleep("cool-off", "1 hour")
        approval = await self.wait_for_approval(step, timeout="1 day")
        return {"approved": approval}


class ReadyThenApproval(Workflow):
    """Waits for a "ready" event before asking for approval."""

    name = "ready-then-approval"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        await step.wait_for_event("ready", type="ready")
        try:
            approval = await self.wait_for_approval(step, timeout="1 day")
        except ApprovalRejected as rejected:
            return {"rejected_by": rejected.by, "reason": rejected.reason}
        return {"approved": approval}


class MultiApprover(Workflow):
    """Two of alice, bob, carol and dave must approve."""

    name = "multi"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        approval = await self.wait_for_approval(
            step,
            timeout="7 days",
            required_approvals=2,
            approvers=["alice", "bob", "carol", "dave"],
            requested_by=event.payload.get("requested_by"),
        )
        return {"metadata": approval}


class Ping(Workflow):
    """Optionally naps, then waits for a "ping" event (an hour at most)."""

    name = "ping"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        if event.payload.get("nap"):
            await step.sleep("nap", "1 hour")
        payload = await step.wait_for_event("ping", type="ping", timeout="1 hour")
        return {"payload": payload}


class Nap(Workflow):
    """Sleeps an hour, then does one step."""

    name = "nap"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        await step.sleep("nap", "1 hour")
        return await step.do("after", lambda: counted(event.id, "after", "rested"))


class Flaky(Workflow):
    """A step that fails ``fail`` times with a retryable error, then succeeds."""

    name = "flaky"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        def charge() -> str:
            counted(event.id, "charge")
            if CALLS[event.id, "charge"] <= event.payload["fail"]:
                raise ConnectionError(f"gateway down (call {CALLS[event.id, 'charge']})")
            return "charged"

        policy = {"limit": 3, "delay": "1 second", "backoff": "constant"}
        return await step.do("charge", charge, retries=policy)


class CardDeclinedError(NonRetryableError):
    """No retry will help."""


def declined_charge(run_id: str) -> None:
    counted(run_id, "charge")
    raise CardDeclinedError("card 4242 declined")


class ChargeWithFallback(Workflow):
    """Catches the step's final failure and returns what it learned."""

    name = "charge-fallback"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        try:
            await step.do("charge", lambda: declined_charge(event.id), retries=5)
        except StepFailed as failed:
            return {
                "step": failed.step,
                "type": failed.error_type,
                "message": failed.message,
                "attempts": failed.attempts,
            }
        return "charged"


class ChargeStrict(Workflow):
    """Lets the step's final failure end the run."""

    name = "charge-strict"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        return await step.do("charge", lambda: declined_charge(event.id), retries=5)


class SameNameTwice(Workflow):
    """Uses the step name "fetch" twice (an error in workflow code)."""

    name = "same-name-twice"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        await step.do("fetch", lambda: counted(event.id, "fetch-1", 1))
        return await step.do("fetch", lambda: counted(event.id, "fetch-2", 2))


class Boom(Workflow):
    """Does one step, then raises."""

    name = "boom"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        await step.do("lookup", lambda: counted(event.id, "lookup", 7))
        raise LookupError("no such customer 7")


class Order(BaseModel):
    amount: PositiveInt
    currency: str = "EUR"


class TypedOrder(Workflow):
    """Declares a params model: params are validated, ``event.payload`` is an ``Order``."""

    name = "typed-order"
    params_model = Order

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        order = event.payload
        return {"type": type(order).__name__, "amount": order.amount, "currency": order.currency}


WORKFLOWS: list[type[Workflow]] = [
    Expense,
    ExpenseWithFallback,
    CoolOffThenApproval,
    ReadyThenApproval,
    MultiApprover,
    Ping,
    Nap,
    Flaky,
    ChargeWithFallback,
    ChargeStrict,
    SameNameTwice,
    Boom,
    TypedOrder,
]


# Fixtures --------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_counters() -> None:
    CALLS.clear()
    RETURNED.clear()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def engine(store_url: str, clock: ManualClock) -> AsyncIterator[Engine]:
    engine = Engine(store_url, clock=clock)
    for workflow in WORKFLOWS:
        engine.register(workflow)
    async with engine:
        yield engine


async def started(engine: Engine, name: str, params: Any = None, **kwargs: Any) -> str:
    """Starts a run and lets it reach its first wait (or its end)."""
    run_id = await engine.run_workflow(name, params, **kwargs)
    await engine.settle()
    return run_id


async def approval_of(engine: Engine, run_id: str) -> str:
    """The id of the approval the run waits for."""
    info = await engine.get_workflow(run_id)
    assert info.waiting_for is not None
    assert info.waiting_for.kind == "approval"
    assert info.waiting_for.approval_id is not None
    return info.waiting_for.approval_id


# The expense approval gate ---------------------------------------------------


async def test_an_approved_expense_completes_with_each_step_run_once(engine: Engine):
    # Start the seed's expense workflow: it validates, reports and waits for approval.
    run_id = await started(engine, "expense", {"amount": 42, "requested_by": "carol"})

    # It waits for a person, with its progress reported and only the first step done.
    info = await engine.get_workflow(run_id)
    assert info.status == "waiting"
    assert info.waiting_for is not None
    assert (info.waiting_for.name, info.waiting_for.kind) == ("approval", "approval")
    assert info.waiting_for.deadline == engine.clock.now() + timedelta(days=7)
    assert [p["kind"] for p in info.progress] == ["progress"]
    assert dict(CALLS) == {(run_id, "validate"): 1}

    # Alice approves, with metadata for the workflow.
    decided = await engine.approve_workflow(
        run_id, by="alice", reason="within budget", metadata={"cost_center": "R&D"}
    )
    assert decided is not None
    assert decided.status == "approved"
    await engine.settle()

    # The run completes with its result; wait_for_approval returned the metadata.
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert RETURNED[run_id] == {"cost_center": "R&D"}
    assert info.result == {
        "expense_id": f"e-{run_id}",
        "amount": 42,
        "requested_by": "carol",
        "validated": True,
        "approved_by": {"cost_center": "R&D"},
    }
    assert info.error is None
    assert info.waiting_for is None
    assert info.completed_at is not None

    # Every step function ran exactly once, though the run was replayed.
    assert dict(CALLS) == {(run_id, "validate"): 1, (run_id, "process"): 1}

    # Each report was recorded once: the progress report and the completion.
    assert [(p["kind"], p["value"]) for p in info.progress] == [
        ("progress", {"step": "approval", "status": "pending", "amount": 42}),
        ("complete", info.result),
    ]

    # The run's history tells the story in order, with who resolved the wait.
    history = await engine.history(run_id)
    assert [e.event for e in history] == [
        "Started",
        "StepRecorded",
        "ProgressReported",
        "WaitStarted",
        "WaitResolved",
        "StepRecorded",
        "ProgressReported",
        "Completed",
    ]
    assert [e.data["name"] for e in history if e.event == "StepRecorded"] == [
        "validate",
        "process",
    ]
    resolved = history[4]
    assert (resolved.actor, resolved.reason, resolved.data["outcome"]) == (
        "alice",
        "within budget",
        "approved",
    )


async def test_a_rejected_expense_errors_the_run_with_approval_rejected(engine: Engine):
    # Start the expense workflow; it waits for approval.
    run_id = await started(engine, "expense", {"amount": 5000})

    # Bob rejects it.
    decided = await engine.reject_workflow(run_id, by="bob", reason="over budget")
    assert decided is not None
    assert decided.status == "rejected"
    await engine.settle()

    # ApprovalRejected went unhandled in run(): the run errored, nothing was processed.
    info = await engine.get_workflow(run_id)
    assert info.status == "errored"
    assert info.error is not None
    assert info.error["type"] == "ApprovalRejected"
    assert "bob" in info.error["message"]
    assert "over budget" in info.error["message"]
    assert info.result is None
    assert (run_id, "process") not in CALLS


async def test_a_rejection_handled_in_run_returns_a_fallback(engine: Engine):
    # Start a workflow that catches ApprovalRejected.
    run_id = await started(engine, "expense-fallback", {"amount": 5000})

    # Bob rejects it.
    await engine.reject_workflow(run_id, by="bob", reason="over budget")
    await engine.settle()

    # The run completed with the fallback, which knows who rejected and why.
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {"status": "rejected", "by": "bob", "reason": "over budget"}


async def test_an_expense_nobody_decides_times_out_and_its_approval_expires(
    engine: Engine, clock: ManualClock
):
    # Start the expense workflow; its approval is pending with a 7-day deadline.
    run_id = await started(engine, "expense", {"amount": 42})
    approval_id = await approval_of(engine, run_id)
    approval = await engine.get_approval(approval_id)
    assert approval.status == "pending"
    assert approval.workflow_id == run_id
    assert approval.deadline == clock.now() + timedelta(days=7)

    # Six days pass: it still waits.
    clock.advance("6 days")
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"
    assert (await engine.get_approval(approval_id)).status == "pending"

    # Two more days pass: the approval expires and wait_for_approval returns None.
    clock.advance("2 days")
    await engine.settle()
    assert (await engine.get_approval(approval_id)).status == "expired"
    assert run_id in RETURNED
    assert RETURNED[run_id] is None

    # The workflow reported the timeout and raised, as the seed's does.
    info = await engine.get_workflow(run_id)
    assert info.status == "errored"
    assert info.error == {"type": "RuntimeError", "message": "Approval timeout"}
    assert [(p["kind"], p["value"]) for p in info.progress][-1] == ("error", "Approval timeout")
    assert (run_id, "process") not in CALLS

    # A decision after the deadline changes nothing.
    with pytest.raises(ConflictError):
        await engine.approve_workflow(run_id, by="alice")


# Decisions that come early ---------------------------------------------------


async def test_an_approval_sent_while_the_run_sleeps_is_kept_for_its_wait(
    engine: Engine, clock: ManualClock
):
    # Start a run that sleeps an hour before it asks for approval.
    run_id = await started(engine, "cool-off")
    info = await engine.get_workflow(run_id)
    assert info.waiting_for is not None
    assert info.waiting_for.kind == "sleep"

    # Alice approves before there is anything to approve: the decision is kept.
    assert await engine.approve_workflow(run_id, by="alice", metadata={"early": True}) is None
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"

    # The hour passes: the run reaches its approval, which the kept decision settles.
    clock.advance("1 hour")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {"approved": {"early": True}}
    approvals = [e for e in await engine.history(run_id) if e.event == "WaitStarted"]
    approval = await engine.get_approval(approvals[-1].data["detail"]["approval_id"])
    assert approval.status == "approved"
    assert [v.voter for v in approval.votes] == ["alice"]


async def test_a_rejection_sent_before_the_awaited_event_is_kept_for_the_approval(
    engine: Engine,
):
    # Start a run that waits for a "ready" event before it asks for approval.
    run_id = await started(engine, "ready-then-approval")
    info = await engine.get_workflow(run_id)
    assert info.waiting_for is not None
    assert info.waiting_for.event_type == "ready"

    # Bob rejects early; the run keeps waiting for its event.
    assert await engine.reject_workflow(run_id, by="bob", reason="not now") is None
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"

    # The event arrives: the run reaches its approval and meets the kept rejection.
    await engine.send_event(run_id, "ready")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {"rejected_by": "bob", "reason": "not now"}


# Several approvers -----------------------------------------------------------


async def test_two_approvers_are_needed_and_each_votes_once(engine: Engine):
    # Start a run that needs two of four named approvers.
    run_id = await started(engine, "multi", {})
    approval_id = await approval_of(engine, run_id)
    assert (await engine.get_approval(approval_id)).requested_by == "workflow:multi"

    # Alice approves: one vote is not enough, the run still waits.
    first = await engine.approve_workflow(run_id, by="alice", metadata={"a": 1})
    assert first is not None
    assert (first.status, first.approvals_needed) == ("pending", 1)
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"

    # Alice cannot vote again, and mallory is not an approver.
    with pytest.raises(AlreadyVotedError):
        await engine.approve_workflow(run_id, by="alice")
    with pytest.raises(NotAnApproverError):
        await engine.approve_workflow(run_id, by="mallory")

    # Bob's vote completes the quorum and the run, with both approvers' metadata.
    second = await engine.approve_workflow(run_id, by="bob", metadata={"b": 2})
    assert second is not None
    assert (second.status, second.approvals_needed) == ("approved", 0)
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {"metadata": {"a": 1, "b": 2}}
    assert [v.voter for v in (await engine.get_approval(approval_id)).votes] == ["alice", "bob"]


async def test_the_requester_of_a_workflow_approval_may_not_approve_it(engine: Engine):
    # Start a run whose approval is requested on carol's behalf.
    run_id = await started(engine, "multi", {"requested_by": "carol"})
    approval_id = await approval_of(engine, run_id)
    assert (await engine.get_approval(approval_id)).requested_by == "carol"

    # Carol, though a listed approver, cannot approve her own request.
    with pytest.raises(SelfApprovalError):
        await engine.approve_workflow(run_id, by="carol")

    # Nothing was counted: the approval still needs two votes.
    approval = await engine.get_approval(approval_id)
    assert (approval.status, approval.approvals_needed, approval.votes) == ("pending", 2, [])


# Standalone approval commands on a workflow's approval -------------------------


async def test_approving_the_approval_by_its_id_resumes_the_run(engine: Engine):
    # Start the expense workflow and find its approval, as an inbox UI would.
    run_id = await started(engine, "expense", {"amount": 42})
    approval_id = await approval_of(engine, run_id)

    # Approve it through the standalone approvals API.
    info = await engine.approve(approval_id, by="alice", metadata={"via": "inbox"})
    assert info.status == "approved"
    assert info.workflow_id == run_id
    await engine.settle()

    # The run went on and completed.
    run = await engine.get_workflow(run_id)
    assert run.status == "complete"
    assert RETURNED[run_id] == {"via": "inbox"}
    assert CALLS[run_id, "process"] == 1


async def test_pending_approvals_lists_a_waiting_runs_approval_with_its_context(
    engine: Engine,
):
    # Start the expense workflow; it waits for approval.
    run_id = await started(engine, "expense", {"amount": 42, "requested_by": "carol"})
    approval_id = await approval_of(engine, run_id)

    # The inbox lists its approval, with the context a person needs to decide.
    pending = {a.id: a for a in await engine.pending_approvals()}
    assert approval_id in pending
    listed = pending[approval_id]
    assert listed.workflow_id == run_id
    assert listed.title == "Expense $42"
    assert listed.context == {"amount": 42, "requested_by": "carol"}
    assert approval_id in {a.id for a in await engine.pending_approvals("alice")}

    # Once approved it leaves the inbox.
    await engine.approve_workflow(run_id, by="alice")
    await engine.settle()
    assert approval_id not in {a.id for a in await engine.pending_approvals()}


# Events and sleeps -------------------------------------------------------------


async def test_an_event_sent_before_the_wait_is_kept_for_it(engine: Engine, clock: ManualClock):
    # Start a run that naps an hour before it waits for a ping.
    run_id = await started(engine, "ping", {"nap": True})

    # The ping arrives during the nap.
    await engine.send_event(run_id, "ping", {"n": 1})
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"

    # The nap ends: the run takes the kept ping at once.
    clock.advance("1 hour")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {"payload": {"n": 1}}


async def test_an_event_sent_during_the_wait_resumes_the_run(engine: Engine):
    # Start a run that waits for a ping.
    run_id = await started(engine, "ping", {})
    info = await engine.get_workflow(run_id)
    assert info.waiting_for is not None
    assert (info.waiting_for.kind, info.waiting_for.event_type) == ("event", "ping")

    # An event of another type does not resume it.
    await engine.send_event(run_id, "pong", {"n": 0})
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"

    # The ping does, and its payload is what wait_for_event returns.
    await engine.send_event(run_id, "ping", {"n": 2}, by="sensor-7")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {"payload": {"n": 2}}


async def test_an_event_that_never_comes_times_out_as_none(engine: Engine, clock: ManualClock):
    # Start a run that waits an hour at most for a ping.
    run_id = await started(engine, "ping", {})

    # 59 minutes pass: it still waits.
    clock.advance("59 minutes")
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"

    # The hour is up: wait_for_event returns None.
    clock.advance("1 minute")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {"payload": None}


async def test_a_sleep_resumes_only_when_the_clock_has_moved_past_it(
    engine: Engine, clock: ManualClock
):
    # Start a run that sleeps an hour.
    run_id = await started(engine, "nap")
    info = await engine.get_workflow(run_id)
    assert info.status == "waiting"
    assert info.waiting_for is not None
    assert (info.waiting_for.kind, info.waiting_for.deadline) == (
        "sleep",
        clock.now() + timedelta(hours=1),
    )

    # Settling again, or 59 minutes passing, does not wake it.
    await engine.settle()
    clock.advance("59 minutes")
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "waiting"
    assert (run_id, "after") not in CALLS

    # The last minute passes: it wakes and completes.
    clock.advance("1 minute")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert (info.status, info.result) == ("complete", "rested")
    assert CALLS[run_id, "after"] == 1


# Retries and failures ----------------------------------------------------------


async def test_a_step_failing_twice_is_retried_after_its_delay_and_succeeds(
    engine: Engine, clock: ManualClock
):
    # Start a run whose step fails twice, retried every second.
    run_id = await started(engine, "flaky", {"fail": 2})

    # The first attempt failed; the run waits for the retry's delay.
    assert CALLS[run_id, "charge"] == 1
    assert (await engine.get_workflow(run_id)).status == "waiting"
    clock.advance("0.5 seconds")
    await engine.settle()
    assert CALLS[run_id, "charge"] == 1

    # A second later the second attempt runs and fails too.
    clock.advance("0.5 seconds")
    await engine.settle()
    assert CALLS[run_id, "charge"] == 2

    # Another second later the third attempt succeeds and the run completes.
    clock.advance("1 second")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert (info.status, info.result) == ("complete", "charged")
    assert CALLS[run_id, "charge"] == 3

    # Every attempt is recorded, with the errors of the failed ones.
    attempts = [e.data for e in await engine.history(run_id) if e.event == "StepRecorded"]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    assert [(a["error"] or {}).get("type") for a in attempts] == [
        "ConnectionError",
        "ConnectionError",
        None,
    ]
    assert attempts[0]["error"]["message"] == "gateway down (call 1)"
    assert attempts[2]["result"] == "charged"


async def test_a_non_retryable_error_fails_the_step_at_once_with_step_failed(engine: Engine):
    # Start a run whose step raises a NonRetryableError, and which catches StepFailed.
    run_id = await started(engine, "charge-fallback")

    # The step ran once (no retries) and run() saw StepFailed with the original error.
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert info.result == {
        "step": "charge",
        "type": "CardDeclinedError",
        "message": "card 4242 declined",
        "attempts": 1,
    }
    assert CALLS[run_id, "charge"] == 1


async def test_an_unhandled_step_failure_errors_the_run_with_the_original_error(
    engine: Engine, clock: ManualClock
):
    # Start a run that lets the non-retryable failure go unhandled.
    run_id = await started(engine, "charge-strict")

    # The run errored with the original exception's type and message.
    info = await engine.get_workflow(run_id)
    assert info.status == "errored"
    assert info.error == {"type": "CardDeclinedError", "message": "card 4242 declined"}

    # Time passing retries nothing.
    clock.advance("1 hour")
    await engine.settle()
    assert CALLS[run_id, "charge"] == 1


async def test_an_unhandled_exception_errors_the_run_with_its_type_and_message(engine: Engine):
    # Start a run that does a step and then raises.
    run_id = await started(engine, "boom")

    # The run errored with the exception's type and message; the step stays recorded.
    info = await engine.get_workflow(run_id)
    assert info.status == "errored"
    assert info.error == {"type": "LookupError", "message": "no such customer 7"}
    assert info.result is None
    assert info.completed_at is not None
    assert CALLS[run_id, "lookup"] == 1
    assert [e.event for e in await engine.history(run_id)] == [
        "Started",
        "StepRecorded",
        "Errored",
    ]


async def test_a_step_name_used_twice_errors_the_run_with_duplicate_step_error(
    engine: Engine,
):
    # Start a run whose code uses the step name "fetch" twice.
    run_id = await started(engine, "same-name-twice")

    # The run errored with DuplicateStepError; the second function never ran.
    info = await engine.get_workflow(run_id)
    assert info.status == "errored"
    assert info.error is not None
    assert info.error["type"] == "DuplicateStepError"
    assert "fetch" in info.error["message"]
    assert dict(CALLS) == {(run_id, "fetch-1"): 1}


# Starting runs -----------------------------------------------------------------


async def test_params_are_validated_by_the_params_model_before_anything_is_stored(
    engine: Engine,
):
    before = (await engine.get_workflows()).total

    # Bad params are refused, and nothing is stored.
    with pytest.raises(InvalidInputError):
        await engine.run_workflow("typed-order", {"amount": -3})
    with pytest.raises(InvalidInputError):
        await engine.run_workflow("typed-order", {"currency": "USD"})
    await engine.settle()
    assert (await engine.get_workflows()).total == before

    # Good params are stored with the model's defaults, and run() gets the model.
    run_id = await started(engine, "typed-order", {"amount": 3})
    info = await engine.get_workflow(run_id)
    assert info.params == {"amount": 3, "currency": "EUR"}
    assert info.status == "complete"
    assert info.result == {"type": "Order", "amount": 3, "currency": "EUR"}

    # A model instance is accepted as params too.
    run_id = await started(engine, "typed-order", Order(amount=9, currency="USD"))
    assert (await engine.get_workflow(run_id)).result == {
        "type": "Order",
        "amount": 9,
        "currency": "USD",
    }


async def test_a_run_can_be_started_under_an_id_of_its_own_once(engine: Engine):
    # Start a run under an id chosen by the caller.
    run_id = await started(engine, "expense", {"amount": 42}, id="expense-2026-117")
    assert run_id == "expense-2026-117"
    info = await engine.get_workflow("expense-2026-117")
    assert (info.name, info.status) == ("expense", "waiting")

    # The same id again is refused, and the first run is untouched.
    with pytest.raises(AlreadyExistsError):
        await engine.run_workflow("expense", {"amount": 1}, id="expense-2026-117")
    with pytest.raises(AlreadyExistsError):
        await engine.run_workflow("nap", id="expense-2026-117")
    await engine.settle()
    again = await engine.get_workflow("expense-2026-117")
    assert (again.params, again.status, again.version) == ({"amount": 42}, "waiting", info.version)
    assert (await engine.get_workflows()).total == 1


async def test_an_unknown_workflow_name_is_refused(engine: Engine):
    # Ask for a workflow nobody registered.
    with pytest.raises(UnknownWorkflowError):
        await engine.run_workflow("no-such-workflow", {"amount": 1})

    # Nothing was stored.
    assert (await engine.get_workflows()).total == 0


# Controlling runs --------------------------------------------------------------


async def test_a_paused_run_records_decisions_but_executes_nothing_until_resumed(
    engine: Engine,
):
    # Start the expense workflow; it waits for approval.
    run_id = await started(engine, "expense", {"amount": 42})
    approval_id = await approval_of(engine, run_id)

    # Pause it.
    paused = await engine.pause_workflow(run_id, by="ops", reason="audit")
    assert paused.status == "paused"

    # Alice approves meanwhile: the decision is recorded, but nothing executes.
    decided = await engine.approve_workflow(run_id, by="alice", metadata={"ok": 1})
    assert decided is not None
    assert decided.status == "approved"
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "paused"
    assert (await engine.get_approval(approval_id)).status == "approved"
    assert (run_id, "process") not in CALLS

    # Resume it: it goes on with the approval and completes.
    await engine.resume_workflow(run_id, by="ops")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert RETURNED[run_id] == {"ok": 1}
    assert CALLS[run_id, "process"] == 1


async def test_a_paused_sleep_does_not_wake_until_resumed(engine: Engine, clock: ManualClock):
    # Start a run that sleeps an hour, and pause it.
    run_id = await started(engine, "nap")
    await engine.pause_workflow(run_id)

    # The hour passes: the run stays paused and its step does not run.
    clock.advance("2 hours")
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "paused"
    assert (run_id, "after") not in CALLS

    # Resume it: it completes.
    await engine.resume_workflow(run_id)
    await engine.settle()
    assert (await engine.get_workflow(run_id)).status == "complete"
    assert CALLS[run_id, "after"] == 1


async def test_terminating_a_waiting_run_withdraws_its_approval(engine: Engine):
    # Start the expense workflow; it waits for approval.
    run_id = await started(engine, "expense", {"amount": 42})
    approval_id = await approval_of(engine, run_id)

    # Terminate it.
    info = await engine.terminate_workflow(run_id, by="ops", reason="duplicate")
    assert info.status == "terminated"
    await engine.settle()

    # Its approval is cancelled and off the inbox; the run executes nothing more.
    assert (await engine.get_approval(approval_id)).status == "cancelled"
    assert approval_id not in {a.id for a in await engine.pending_approvals()}
    info = await engine.get_workflow(run_id)
    assert (info.status, info.waiting_for) == ("terminated", None)
    assert (run_id, "process") not in CALLS

    # A decision now is refused.
    with pytest.raises(ConflictError):
        await engine.approve_workflow(run_id, by="alice")


async def test_restarting_a_run_runs_it_again_from_the_top(engine: Engine):
    # Start the expense workflow; it validated and waits for approval.
    run_id = await started(engine, "expense", {"amount": 42})
    first_approval = await approval_of(engine, run_id)
    assert CALLS[run_id, "validate"] == 1

    # Restart it.
    info = await engine.restart_workflow(run_id, by="ops")
    assert (info.status, info.generation) == ("queued", 2)
    await engine.settle()

    # It ran from the top: validated again, and waits on a new approval.
    info = await engine.get_workflow(run_id)
    assert (info.status, info.generation) == ("waiting", 2)
    assert CALLS[run_id, "validate"] == 2
    second_approval = await approval_of(engine, run_id)
    assert second_approval != first_approval
    assert (await engine.get_approval(first_approval)).status == "cancelled"
    assert [p["kind"] for p in info.progress] == ["progress"]

    # Approving the new approval completes the second generation.
    await engine.approve_workflow(run_id, by="alice")
    await engine.settle()
    info = await engine.get_workflow(run_id)
    assert info.status == "complete"
    assert CALLS[run_id, "validate"] == 2
    assert CALLS[run_id, "process"] == 1


# Listing runs ------------------------------------------------------------------


async def test_get_workflows_filters_and_pages_through_every_run_once(
    engine: Engine, clock: ManualClock
):
    # Start 7 expense runs for two teams (some in the same instant), and 2 failing runs.
    expenses = []
    for i in range(7):
        team = "a" if i % 2 == 0 else "b"
        expenses.append(
            await engine.run_workflow("expense", {"amount": 10 + i}, metadata={"team": team})
        )
        if i % 3 == 2:
            clock.advance("1 minute")
    booms = [await engine.run_workflow("boom", metadata={"team": "a"}) for _ in range(2)]
    await engine.settle()

    # Approve one team-a expense so it completes.
    await engine.approve_workflow(expenses[0], by="alice")
    await engine.settle()

    # Filters by status, name and metadata, alone and together.
    waiting = await engine.get_workflows(status="waiting")
    assert waiting.total == 6
    assert {r.id for r in waiting.items} == set(expenses[1:])
    assert {r.status for r in waiting.items} == {"waiting"}
    assert (await engine.get_workflows(name="expense")).total == 7
    assert {r.id for r in (await engine.get_workflows(name="boom")).items} == set(booms)
    team_a = await engine.get_workflows(metadata={"team": "a"})
    assert {r.id for r in team_a.items} == {*expenses[0::2], *booms}
    both = await engine.get_workflows(name="expense", status="waiting", metadata={"team": "a"})
    assert {r.id for r in both.items} == set(expenses[2::2])
    assert both.total == 3
    assert (await engine.get_workflows(status="complete")).items[0].id == expenses[0]
    assert (await engine.get_workflows(status="terminated")).total == 0

    # Pages of 2 cover every run exactly once, newest first, with the total on each.
    seen: list[str] = []
    cursor = None
    while True:
        page = await engine.get_workflows(limit=2, cursor=cursor)
        assert page.total == 9
        assert len(page.items) <= 2
        seen.extend(r.id for r in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(seen) == 9
    assert set(seen) == {*expenses, *booms}
    created = {r.id: r.created_at for r in (await engine.get_workflows(limit=20)).items}
    assert [created[i] for i in seen] == sorted(created.values(), reverse=True)

    # Paging works under a filter too.
    seen = []
    cursor = None
    while True:
        page = await engine.get_workflows(metadata={"team": "b"}, limit=1, cursor=cursor)
        seen.extend(r.id for r in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(expenses[1::2])

    # A cursor that get_workflows did not make is refused.
    with pytest.raises(InvalidInputError):
        await engine.get_workflows(cursor="not-a-cursor")


async def test_a_metadata_filter_tells_true_from_1(engine: Engine):
    # Start runs labelled with a boolean, an integer and a string that look alike.
    flagged = await engine.run_workflow("nap", metadata={"urgent": True})
    numbered = await engine.run_workflow("nap", metadata={"urgent": 1})
    worded = await engine.run_workflow("nap", metadata={"urgent": "1"})
    unflagged = await engine.run_workflow("nap", metadata={"urgent": False})
    zero = await engine.run_workflow("nap", metadata={"urgent": 0})
    await engine.settle()

    # Each filter finds the run labelled with exactly that JSON value, on every store.
    found = {}
    for value in (True, 1, "1", False, 0):
        page = await engine.get_workflows(metadata={"urgent": value})
        found[repr(value)] = {r.id for r in page.items}
    assert found == {
        "True": {flagged},
        "1": {numbered},
        "'1'": {worded},
        "False": {unflagged},
        "0": {zero},
    }


# Which engine executes a run ---------------------------------------------------


async def test_only_an_engine_that_registered_the_workflow_executes_its_runs(
    durable_store_url: str, clock: ManualClock
):
    store_url = durable_store_url

    # A service that only starts runs queues one, without executing it.
    starter = Engine(store_url, clock=clock)
    starter.register(Expense)
    run_id = await starter.run_workflow("expense", {"amount": 42})
    await starter.close()

    # An engine that knows other workflows only leaves the run queued.
    other = Engine(store_url, clock=clock)
    other.register(Nap)
    async with other:
        await other.settle()
        assert (await other.get_workflow(run_id)).status == "queued"
    assert dict(CALLS) == {}

    # An engine that registers the workflow picks the run up when it starts.
    worker = Engine(store_url, clock=clock)
    worker.register(Expense)
    async with worker:
        await worker.settle()
        assert (await worker.get_workflow(run_id)).status == "waiting"
        assert dict(CALLS) == {(run_id, "validate"): 1}
        await worker.approve_workflow(run_id, by="alice")
        await worker.settle()
        assert (await worker.get_workflow(run_id)).status == "complete"


async def test_a_decision_taken_by_another_engine_resumes_the_run(
    durable_store_url: str, clock: ManualClock
):
    store_url = durable_store_url

    # A worker executes the expense workflow; an API service that runs no workflows decides.
    worker = Engine(store_url, clock=clock)
    worker.register(Expense)
    api = Engine(store_url, clock=clock)
    async with worker, api:
        # The worker starts the run; it waits for approval.
        run_id = await worker.run_workflow("expense", {"amount": 42})
        await worker.settle()
        assert (await worker.get_workflow(run_id)).status == "waiting"

        # Alice approves through the API service: the run is ready to go on.
        decided = await api.approve_workflow(run_id, by="alice", metadata={"via": "api"})
        assert decided is not None
        assert decided.status == "approved"
        assert (await api.get_workflow(run_id)).status == "queued"

        # The worker picks the ready run up (it polls the index) and completes it.
        await worker.settle()
        info = await worker.get_workflow(run_id)
        assert info.status == "complete"
        assert RETURNED[run_id] == {"via": "api"}
        assert CALLS[run_id, "process"] == 1


async def test_the_index_is_rebuilt_from_the_event_log(tmp_path, clock: ManualClock):
    path = f"{tmp_path}/events.db"
    durable_store_url = f"sqlite:///{path}"

    # A run waits for an approval; a standalone approval is pending.
    async with Engine(durable_store_url, clock=clock) as engine:
        engine.register(Expense)
        run_id = await engine.run_workflow("expense", {"amount": 5})
        await engine.settle()
        standalone = await engine.request_approval(title="t", requested_by="carol")

    # The index tables are lost (a store written before they existed).
    with sqlite3.connect(path) as db:
        for table in ("signoff_runs", "signoff_approvals", "signoff_timers"):
            db.execute(f"DELETE FROM {table}")

    # A new engine rebuilds them from the events: listings, inbox and timers work again.
    async with Engine(durable_store_url, clock=clock) as engine:
        engine.register(Expense)
        page = await engine.get_workflows()
        inbox = {a.id for a in await engine.pending_approvals()}
        clock.advance("8 days")
        await engine.settle()
        info = await engine.get_workflow(run_id)

    assert [item.id for item in page.items] == [run_id]
    assert standalone in inbox
    assert info.status == "errored"
