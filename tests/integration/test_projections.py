"""The views (inbox, board, audit trail, metrics) against every event store."""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Any

import pytest

from signoff import ApprovalRejected, Engine, InvalidInputError, ManualClock, Workflow
from signoff.projections.sql import fetch_all
from signoff.step import Step
from signoff.workflow import WorkflowEvent


class Expense(Workflow):
    name = "expense"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        amount = await step.do("validate", lambda: event.payload["amount"])
        await self.report_progress({"stage": "validated", "amount": amount})
        try:
            decision = await self.wait_for_approval(
                step,
                timeout="1 day",
                title=f"Expense of {amount}",
                context={"amount": amount},
                approvers=["alice", "bob"],
            )
        except ApprovalRejected:
            return "rejected"
        if decision is None:
            return "timed out"
        if event.payload.get("fail"):
            raise RuntimeError("payment provider down")
        return await step.do("pay", lambda: f"paid {amount}")


@pytest.fixture
async def engine(store_url: str):
    engine = Engine(store_url, clock=ManualClock())
    engine.register(Expense)
    async with engine:
        yield engine


async def test_the_inbox_shows_what_an_approver_needs_and_only_what_they_may_decide(
    engine: Engine,
):
    payment = await engine.request_approval(
        title="Pay ACME",
        requested_by="carol",
        context={"amount": 4200, "currency": "EUR"},
        description="Invoice 117",
        required_approvals=2,
        approvers=["alice", "bob", "dave"],
        timeout="2 days",
    )
    deletion = await engine.request_approval(
        title="Delete the logs", requested_by="alice", groups=["ops"], timeout="1 day"
    )
    anyone = await engine.request_approval(title="Order pizza", requested_by="dave")
    await engine.approve(payment, by="alice", reason="fine")

    everything = await engine.pending_approvals()
    assert [i.id for i in everything] == [payment, deletion, anyone]  # oldest first
    item = everything[0]
    assert item.context == {"amount": 4200, "currency": "EUR"}
    assert (item.title, item.description, item.requested_by) == (
        "Pay ACME",
        "Invoice 117",
        "carol",
    )
    assert (item.required_approvals, item.approvals_needed) == (2, 1)
    assert [(v.voter, v.decision, v.reason) for v in item.votes] == [("alice", "approve", "fine")]
    assert item.approvers == ["alice", "bob", "dave"]
    assert item.deadline == engine.clock.now() + timedelta(days=2)
    assert item.escalation_level == 0

    # alice voted on the payment and requested the deletion; she is not in ops.
    assert [i.id for i in await engine.pending_approvals("alice")] == [anyone]
    assert [i.id for i in await engine.pending_approvals("bob")] == [payment, anyone]
    assert [i.id for i in await engine.pending_approvals("erin", groups=["ops"])] == [
        deletion,
        anyone,
    ]
    assert [i.id for i in await engine.pending_approvals(groups=["ops"])] == [deletion, anyone]
    # The most urgent first; no deadline last.
    by_deadline = await engine.pending_approvals(order="deadline")
    assert [i.id for i in by_deadline] == [deletion, payment, anyone]

    await engine.approve(payment, by="bob")
    await engine.cancel(anyone, by="dave")
    assert [i.id for i in await engine.pending_approvals()] == [deletion]
    # Past its deadline, nobody can vote on it any more, so it leaves approvers' inboxes.
    engine.clock.advance("25 hours")  # type: ignore[attr-defined]
    assert await engine.pending_approvals("erin", groups=["ops"]) == []


async def test_the_inbox_pages_with_a_cursor(engine: Engine):
    ids = [await engine.request_approval(title=f"#{n}", requested_by="carol") for n in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        page = await engine.approval_inbox("alice", limit=3, cursor=cursor)
        seen += [i.id for i in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == ids
    with pytest.raises(InvalidInputError):
        await engine.approval_inbox(cursor="nonsense")
    with pytest.raises(InvalidInputError):
        await engine.approval_inbox(order="random")


async def test_escalation_and_reassignment_show_in_the_inbox(engine: Engine):
    approval = await engine.request_approval(
        title="Wire transfer",
        requested_by="carol",
        approvers=["alice"],
        timeout="1 day",
        on_timeout="escalate",
        escalation=[{"approvers": ["cfo"], "timeout": "1 day"}],
    )
    engine.clock.advance("1 day")  # type: ignore[attr-defined]
    await engine.settle()
    [item] = await engine.pending_approvals()
    assert (item.escalation_level, item.approvers) == (1, ["cfo"])
    assert [i.id for i in await engine.pending_approvals("cfo")] == [approval]
    assert await engine.pending_approvals("alice") == []

    await engine.reassign(approval, by="carol", approvers=["dave"], reason="cfo away")
    assert [i.id for i in await engine.pending_approvals("dave")] == [approval]
    assert await engine.pending_approvals("cfo") == []


async def test_the_board_agrees_with_every_run(engine: Engine):
    approved = await engine.run_workflow("expense", {"amount": 10})
    rejected = await engine.run_workflow("expense", {"amount": 20})
    failing = await engine.run_workflow("expense", {"amount": 30, "fail": True})
    waiting = await engine.run_workflow("expense", {"amount": 40}, metadata={"team": "a"})
    paused = await engine.run_workflow("expense", {"amount": 50})
    ended = await engine.run_workflow("expense", {"amount": 60})
    restarted = await engine.run_workflow("expense", {"amount": 70})
    await engine.settle()
    await engine.approve_workflow(approved, by="alice")
    await engine.reject_workflow(rejected, by="bob", reason="no")
    await engine.approve_workflow(failing, by="alice")
    await engine.pause_workflow(paused)
    await engine.terminate_workflow(ended)
    await engine.approve_workflow(restarted, by="alice")
    await engine.settle()
    await engine.restart_workflow(restarted)
    await engine.settle()

    page = await engine.get_workflows(limit=50)
    assert page.total == 7
    board = {s.id: s for s in page.items}
    for run_id, summary in board.items():
        info = await engine.get_workflow(run_id)
        assert summary.status == info.status, run_id
        assert summary.error == info.error
        assert summary.updated_at == info.updated_at
        assert summary.completed_at == info.completed_at
    assert board[failing].error == {"type": "RuntimeError", "message": "payment provider down"}
    assert (board[waiting].waiting_for or {}).get("kind") == "approval"
    assert (board[waiting].progress or {}).get("value") == {"stage": "validated", "amount": 40}
    assert [s.id for s in (await engine.get_workflows(metadata={"team": "a"})).items] == [waiting]
    statuses = {s.id: s.status for s in page.items}
    assert statuses[approved] == "complete"
    assert statuses[paused] == "paused"
    assert statuses[ended] == "terminated"
    assert statuses[restarted] == "waiting"


async def test_the_audit_trail_has_the_seeds_columns_and_links_approvals_to_their_run(
    engine: Engine,
):
    run_id = await engine.run_workflow("expense", {"amount": 10})
    await engine.settle()
    await engine.approve_workflow(run_id, by="alice", reason="within budget")
    await engine.settle()

    rows = await engine.audit_trail(workflow_id=run_id)
    decisions = [(r.aggregate_type, r.decision, r.decided_by) for r in rows]
    assert ("Approval", "requested", "workflow:expense") in decisions
    assert ("Approval", "approve", "alice") in decisions
    assert ("Approval", "approved", "alice") in decisions
    assert decisions[0] == ("WorkflowRun", "started", "api")
    assert decisions[-1][:2] == ("WorkflowRun", "completed")
    vote = next(r for r in rows if r.decision == "approve")
    assert (vote.workflow_id, vote.reason) == (run_id, "within budget")
    assert [r.position for r in rows] == sorted(r.position for r in rows)
    # Steps and progress are in the event log but not in the trail.
    assert all(r.event not in ("StepRecorded", "ProgressReported") for r in rows)


async def test_metrics_count_statuses_latency_and_overdue_approvals(engine: Engine):
    clock: ManualClock = engine.clock  # type: ignore[assignment]
    fast = await engine.request_approval(title="fast", requested_by="carol")
    slow = await engine.request_approval(title="slow", requested_by="carol")
    await engine.request_approval(title="late", requested_by="carol", timeout="1 hour")
    clock.advance("10 seconds")
    await engine.approve(fast, by="alice")
    clock.advance("50 seconds")
    await engine.reject(slow, by="bob")
    # The runtime has not fired the timeout yet (not settled): the approval is overdue.
    clock.advance("2 hours")

    metrics = await engine.metrics()
    assert metrics.approvals == {"approved": 1, "rejected": 1, "pending": 1}
    assert metrics.overdue_approvals == 1
    assert metrics.decisions == 2
    assert metrics.decision_latency_seconds["p50"] == pytest.approx(60, abs=0.01)
    assert metrics.decision_latency_seconds["p99"] == pytest.approx(60, abs=0.01)

    await engine.settle()
    assert (await engine.metrics()).overdue_approvals == 0


def _all_rows(sql: str, cursor: Any, db: Any) -> list[dict[str, Any]]:
    return fetch_all(cursor, sql)


async def test_rebuilding_a_view_gives_the_same_rows(engine: Engine):
    run_id = await engine.run_workflow("expense", {"amount": 10})
    await engine.run_workflow("expense", {"amount": 20})
    approval = await engine.request_approval(title="x", requested_by="carol", required_approvals=2)
    await engine.settle()
    await engine.approve_workflow(run_id, by="bob")
    await engine.approve(approval, by="alice")
    await engine.settle()
    models = engine.read_models

    def dump() -> dict[str, list[dict[str, Any]]]:
        tables = ("view_approvals", "view_approval_access", "view_runs", "view_audit")
        found = {}
        for table in tables:
            sql = f"SELECT * FROM {models.db.table(table)}"
            rows = models.query(functools.partial(_all_rows, sql))
            found[table] = sorted(rows, key=lambda r: str(list(r.values())))
        return found

    before = dump()
    assert before["view_runs"]
    assert before["view_audit"]
    for name in ("approvals", "runs", "audit"):
        models.runner.rebuild(name)
    assert dump() == before


async def _noop(payload: Any, schedule: Any) -> None:
    return None


async def test_upcoming_timers_list_what_the_runtime_will_fire(engine: Engine):
    clock: ManualClock = engine.clock  # type: ignore[assignment]
    approval = await engine.request_approval(
        title="Wire", requested_by="carol", timeout="2 days", remind_every="1 day"
    )
    run_id = await engine.run_workflow("expense", {"amount": 5})
    await engine.settle()
    engine.register_callback("noop", _noop)
    schedule = await engine.schedule(timedelta(hours=1), "noop", {})

    timers = await engine.upcoming_timers()
    assert [(t.kind, t.key) for t in timers][:1] == [("schedule", "schedule:once")]
    assert {(t.target_id, t.key) for t in timers} >= {
        (approval, "deadline"),
        (approval, "remind"),
        (schedule, "schedule:once"),
    }
    assert [t.due_at for t in timers] == sorted(t.due_at for t in timers)
    soon = await engine.upcoming_timers(before=clock.now() + timedelta(hours=2))
    assert [t.target_id for t in soon] == [schedule]
    only_approvals = await engine.upcoming_timers(kind="approval")
    assert {t.kind for t in only_approvals} == {"approval"}
    waiting = (await engine.get_workflow(run_id)).waiting_for
    assert waiting is not None
    assert (waiting.approval_id, "deadline") in {(t.target_id, t.key) for t in only_approvals}
    with pytest.raises(InvalidInputError):
        await engine.upcoming_timers(kind="sometime")
