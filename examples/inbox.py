"""The seed's pending-approvals UI, without the bookkeeping.

The seed's agent keeps ``pendingApprovals`` in its state by hand (with
``amount: 0 // would come from params``) and the UI re-renders on state sync.
Here the inbox is a view of the event stream: an approver's page comes from
``approval_inbox`` with the context the workflow attached, and a UI stays in
sync by watching the view's changes, resuming from its last position after a
disconnect.

Run: .venv/bin/python examples/inbox.py [STORE_URL]   (default memory://)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from signoff import ApprovalRejected, Engine, Step, Workflow, WorkflowEvent


class ExpenseWorkflow(Workflow):
    """Waits for a finance approver, with the amount in the approval's context."""

    name = "expense"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        expense = event.payload
        try:
            await self.wait_for_approval(
                step,
                timeout="7 days",
                title=f"Expense: {expense['description']}",
                context=expense,
                groups=["finance"],
            )
        except ApprovalRejected as rejected:
            return {"status": "rejected", "reason": rejected.reason}
        return {"status": "paid", "amount": expense["amount"]}


class InboxScreen:
    """What a UI holds: the rows of the inbox, kept current from the change feed."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[str, Any]] = {}
        self.position: int | None = None

    def apply(self, key: str, row: dict[str, Any] | None, position: int) -> None:
        """One change from ``engine.watch("approvals")``."""
        if row is None or row["status"] != "pending":
            self.rows.pop(key, None)
        else:
            self.rows[key] = row
        self.position = position

    def render(self) -> str:
        lines = [f"  {r['title']:<28} {r['context']['amount']:>8} EUR" for r in self.rows.values()]
        return "\n".join(lines) or "  (nothing pending)"


async def follow(engine: Engine, screen: InboxScreen, until: int) -> None:
    """Applies changes until the screen shows ``until`` pending approvals."""
    async for change in engine.watch("approvals", after=screen.position):
        screen.apply(change.key, change.row, change.position)
        if len(screen.rows) == until:
            return


async def main(store: str) -> None:
    engine = Engine(store)
    engine.register(ExpenseWorkflow)
    async with engine:
        screen = InboxScreen()
        expenses = [
            {"description": "team dinner", "amount": 420},
            {"description": "conference tickets", "amount": 1290},
            {"description": "new laptop", "amount": 2100},
        ]
        runs = [await engine.run_workflow("expense", e) for e in expenses]
        await asyncio.wait_for(follow(engine, screen, until=3), 10)
        print("inbox (live):")
        print(screen.render())

        # An approver's page, most urgent first, straight from the view.
        page = await engine.approval_inbox("erin", groups=["finance"], order="deadline")
        print(f"erin (finance) may decide {len(page.items)}; first: {page.items[0].title}")

        # The UI disconnects; meanwhile two expenses are decided.
        await engine.approve_workflow(runs[0], by="erin", groups=["finance"], reason="ok")
        await engine.reject_workflow(runs[2], by="erin", groups=["finance"], reason="too much")
        await engine.settle()

        # It reconnects from its last position and catches up with what changed.
        await asyncio.wait_for(follow(engine, screen, until=1), 10)
        print("inbox after reconnecting:")
        print(screen.render())
        for run_id in runs:
            info = await engine.get_workflow(run_id)
            print(f"  run {run_id[:8]}: {info.status} {info.result}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
