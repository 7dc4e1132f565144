"""The workflows ``make bench`` runs, in a module of their own so that the benchmark's
engine processes (``signoff.bench_worker``) register the very classes the in-process
figures use."""

from __future__ import annotations

import asyncio
from typing import Any

from signoff.step import Step
from signoff.workflow import Workflow, WorkflowEvent

HOLD_STEP = "hold"
"""The step of ``HoldingWorkflow``: engine processes report each time it starts."""


class ExpenseWorkflow(Workflow):
    """The seed's expense workflow, as in examples/expense.py but without printing."""

    name = "bench-expense"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        expense = event.payload
        validated = await step.do("validate", lambda: {**expense, "validated": True})
        await self.report_progress({"step": "approval", "status": "pending"})
        await self.wait_for_approval(step, timeout="7 days", title="Expense", context=expense)
        result = await step.do("process", lambda: {"expense_id": event.id, **validated})
        await step.report_complete(result)
        return result


async def _an_hour() -> bool:
    await asyncio.sleep(3600)
    return True


class HoldingWorkflow(Workflow):
    """One step that takes an hour: its runs are in flight when their engine is killed,
    and the step starts again on the engine that takes them over (the takeover figure)."""

    name = "bench-hold"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        return await step.do(HOLD_STEP, _an_hour)
