"""A workflow for the NATS tests (also loaded by ``signoff serve --workflows``)."""

from __future__ import annotations

from typing import Any

from signoff.step import Step
from signoff.workflow import Workflow, WorkflowEvent


class NatsExpense(Workflow):
    """Reports progress, waits for an approval, then for a receipt event."""

    name = "nats-expense"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        await self.report_progress({"step": "approval", "status": "pending"})
        approval = await self.wait_for_approval(step, timeout="1 day", title="Expense")
        receipt = await step.wait_for_event("receipt", type="receipt", timeout="1 day")
        return {"approved": approval is not None, "receipt": receipt}
