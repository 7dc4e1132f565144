"""The seed's escalation by schedule: a reminder after 4 hours, escalation after 24.

``ExpenseAgent.submit_for_approval`` starts the expense workflow, then schedules
``send_reminder`` in 4 hours and ``escalate_approval`` in 24 hours with the run's
id, as the seed's ``submitForApproval`` does with ``this.schedule(...)``. The
schedules are durable (they survive a restart and fire once across processes)
and idempotent (a retried submit does not schedule them twice). Each callback
first checks that the run still waits, as the seed's do.

Escalating hands the run's approval to the manager (``Engine.reassign``), so the
audit trail shows who was asked, when it changed and why. signoff also has
reminders and escalation built into approval policies (``wait_for_approval(...,
remind_every=..., escalate_after=..., escalation=[...])``); this example is the
hand-written way, with schedules.

Run: .venv/bin/python examples/escalation.py [STORE_URL]   (default memory://)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from signoff import (
    Engine,
    HistoryEntry,
    ManualClock,
    NotAnApproverError,
    Step,
    Workflow,
    WorkflowEvent,
)

TEAM_LEAD = "alice"
MANAGER = "manager"


class ExpenseWorkflow(Workflow):
    """Validate the expense, wait up to 7 days for the team lead's approval, process it."""

    name = "expense"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        expense: dict[str, Any] = event.payload
        validated: dict[str, Any] = await step.do(
            "validate", lambda: {**expense, "validated": True}
        )
        approval = await self.wait_for_approval(
            step,
            timeout="7 days",
            title=f"Expense: {expense['description']} (${expense['amount']:.2f})",
            context=expense,
            approvers=[TEAM_LEAD],
            requested_by=expense["requested_by"],
        )
        if approval is None:
            return {"status": "timed out"}
        return {"status": "approved", "approved_by": approval.get("approved_by"), **validated}


class ExpenseAgent:
    """The seed's ExpenseAgent: submit for approval, remind, escalate."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        engine.register(ExpenseWorkflow)
        # Schedules name their callbacks: every process that fires them registers them.
        engine.register_callback("send_reminder", self.send_reminder)
        engine.register_callback("escalate_approval", self.escalate_approval)

    async def submit_for_approval(self, expense: dict[str, Any]) -> str:
        """Starts the approval workflow; schedules a reminder and an escalation."""
        workflow_id = await self.engine.run_workflow("expense", expense)
        payload = {"workflow_id": workflow_id}
        await self.engine.schedule("4 hours", "send_reminder", payload, idempotent=True)
        await self.engine.schedule("24 hours", "escalate_approval", payload, idempotent=True)
        return workflow_id

    async def send_reminder(self, payload: dict[str, Any], engine: Engine) -> None:
        """Reminds the approvers, if the run still waits for them."""
        workflow = await engine.get_workflow(payload["workflow_id"])
        if workflow.status == "waiting" and workflow.waiting_for is not None:
            approval_id = workflow.waiting_for.approval_id
            assert approval_id is not None
            approval = await engine.get_approval(approval_id)
            print(
                f"[{engine.clock.now():%a %H:%M}] Reminder: approval still pending "
                f"({', '.join(approval.approvers)})"
            )

    async def escalate_approval(self, payload: dict[str, Any], engine: Engine) -> None:
        """Hands the approval to the manager, if the run still waits for it."""
        workflow = await engine.get_workflow(payload["workflow_id"])
        if workflow.status != "waiting" or workflow.waiting_for is None:
            return
        approval_id = workflow.waiting_for.approval_id
        assert approval_id is not None
        approval = await engine.get_approval(approval_id)
        if MANAGER in approval.approvers:
            return  # escalated already (a callback may run twice after a crash)
        print(f"[{engine.clock.now():%a %H:%M}] Escalating to manager")
        # "system" is reserved for signoff itself: the agent acts for the requester, who
        # may hand their request to other approvers; the reason says why.
        await engine.reassign(
            approval_id,
            by=approval.requested_by,
            approvers=[MANAGER],
            reason="escalated after 24 hours",
        )


def describe(entry: HistoryEntry) -> str:
    """One audit-trail line: time, stream, event, actor and reason."""
    reason = f" ({entry.reason})" if entry.reason else ""
    shown = {k: v for k, v in entry.data.items() if k in ("approvers", "name", "callback")}
    details = f" {shown}" if shown else ""
    return (
        f"  {entry.at:%a %H:%M} {entry.aggregate_type:<11} {entry.event:<15} "
        f"{entry.actor}{reason}{details}"
    )


async def main(store: str) -> None:
    clock = ManualClock()  # Thursday 2026-01-01 09:00 UTC until told otherwise
    async with Engine(store, clock=clock) as engine:
        agent = ExpenseAgent(engine)
        workflow_id = await agent.submit_for_approval(
            {"amount": 2400.0, "description": "New laptop", "requested_by": "carol"}
        )
        # Submitting again (say, a retried request) schedules nothing more.
        payload = {"workflow_id": workflow_id}
        await engine.schedule("4 hours", "send_reminder", payload, idempotent=True)
        await engine.settle()
        scheduled = await engine.list_schedules()
        assert len(scheduled) == 2
        print(f"Scheduled: {[(s.callback, f'{s.next_run:%a %H:%M}') for s in scheduled]}")

        clock.advance("5 hours")  # the reminder is due
        await engine.settle()

        clock.advance("20 hours")  # 25 hours after submitting: the escalation is due
        await engine.settle()
        waiting = (await engine.get_workflow(workflow_id)).waiting_for
        assert waiting is not None
        assert waiting.approval_id is not None
        approval = await engine.get_approval(waiting.approval_id)
        print(f"The approval now names: {approval.approvers}")
        assert approval.approvers == [MANAGER]

        clock.advance("1 hour")
        try:
            await engine.approve_workflow(workflow_id, by=TEAM_LEAD)
        except NotAnApproverError as error:
            print(f"refused: {error}")
        await engine.approve_workflow(
            workflow_id, by=MANAGER, reason="fine", metadata={"approved_by": MANAGER}
        )
        await engine.settle()

        info = await engine.get_workflow(workflow_id)
        print(f"\nRun {info.status}: {info.result}")
        assert info.status == "complete"
        print(f"Schedules still pending: {len(await engine.list_schedules())}")

        print("\nAudit trail (the run, its approval, the two schedules):")
        for stream in (workflow_id, waiting.approval_id, *(s.id for s in scheduled)):
            print()
            for entry in await engine.history(stream):
                print(describe(entry))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
