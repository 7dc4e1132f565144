"""The seed's reminder-and-escalation pattern as an approval policy (no callbacks to write).

The approval reminds its approver every 4 hours and escalates to the manager
after 24 hours; each reminder and escalation is an event on the approval and
reaches the waiting run. Compare examples/escalation.py, the hand-written way
with schedules.

Run: .venv/bin/python examples/escalation_policy.py [STORE_URL]   (default memory://)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from signoff import Engine, ManualClock, Step, Workflow, WorkflowEvent


class ExpenseWorkflow(Workflow):
    """Waits for alice; the policy reminds her and escalates to the manager."""

    name = "expense"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        expense = event.payload
        await self.report_progress({"step": "approval", "status": "pending"})
        approval = await self.wait_for_approval(
            step,
            title=f"Expense ${expense['amount']}",
            context=expense,
            approvers=["alice"],
            timeout="7 days",
            remind_every="4 hours",
            escalate_after="24 hours",
            escalation=[{"approvers": ["manager"], "timeout": "2 days"}],
        )
        if approval is None:
            raise RuntimeError("Approval timeout")
        return await step.do("process", lambda: {"paid": expense["amount"], **approval})


async def main(store: str) -> None:
    clock = ManualClock()
    async with Engine(store, clock=clock) as engine:
        engine.register(ExpenseWorkflow)
        run_id = await engine.run_workflow("expense", {"amount": 1200})
        await engine.settle()

        # A day and an hour pass: alice was reminded, then the manager took over.
        for hours in (5, 4, 4, 4, 4, 4):
            clock.advance(f"{hours} hours")
            await engine.settle()
        waiting = (await engine.get_workflow(run_id)).waiting_for
        assert waiting is not None
        approval_id = waiting.approval_id
        assert approval_id is not None
        approval = await engine.get_approval(approval_id)
        print(f"now decided by {approval.approvers}, deadline {approval.deadline:%Y-%m-%d %H:%M}")

        await engine.approve_workflow(run_id, by="manager", metadata={"approved_by": "manager"})
        await engine.settle()
        print("run:", (await engine.get_workflow(run_id)).result)
        for entry in await engine.history(approval_id):
            reason = entry.reason or ""
            print(f"  {entry.at:%m-%d %H:%M} {entry.event:<10} {entry.actor:<8} {reason}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
