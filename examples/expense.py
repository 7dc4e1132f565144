"""The seed's ExpenseWorkflow: validate, wait durably for a person, process.

Three expenses go through it on a ManualClock (a week passes in a method
call): one is approved, one rejected, one never decided and times out.
``ExpenseAgent`` is the seed's agent: approve, reject and the pending list,
read from the engine (no hand-kept list that could drift from the truth).

Run: .venv/bin/python examples/expense.py [STORE_URL]   (default memory://)
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from signoff import (
    ApprovalRejected,
    Engine,
    HistoryEntry,
    ManualClock,
    NonRetryableError,
    SelfApprovalError,
    Step,
    Workflow,
    WorkflowEvent,
)


class ExpenseParams(BaseModel):
    """The seed's ExpenseParams; ``run_workflow`` validates them before storing anything."""

    model_config = ConfigDict(extra="forbid")

    amount: float
    description: str
    requested_by: str


class InvalidExpenseError(NonRetryableError):
    """A bad expense fails its step at once: retrying would not make it valid."""


class ApprovalTimeoutError(Exception):
    """Nobody decided within the timeout."""


class ExpenseWorkflow(Workflow):
    """Validate the expense, wait up to 7 days for approval, then process it."""

    name = "expense"
    params_model = ExpenseParams

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        expense: ExpenseParams = event.payload

        # Step 1: validate. Reading the clock is fine here: inside step.do it runs
        # once and its result is recorded; a replay returns the recorded result.
        def validate() -> dict[str, Any]:
            if expense.amount <= 0:
                raise InvalidExpenseError("Invalid expense amount")
            return {**expense.model_dump(), "validated_at": datetime.now(UTC).isoformat()}

        validated: dict[str, Any] = await step.do("validate", validate)

        # Step 2: tell the world we wait (recorded once, not once per replay).
        await self.report_progress(
            {
                "step": "approval",
                "status": "pending",
                "message": f"Awaiting approval for ${expense.amount:.2f}",
            }
        )

        # Step 3: wait for a person. Nothing is held in memory meanwhile; the
        # requester may not approve their own expense.
        try:
            approval = await self.wait_for_approval(
                step,
                timeout="7 days",
                title=f"Expense: {expense.description} (${expense.amount:.2f})",
                context=expense.model_dump(),
                requested_by=expense.requested_by,
            )
        except ApprovalRejected as rejection:
            # The seed's "graceful degradation": a rejection is an answer, not a crash.
            await step.report_error(f"Expense rejected by {rejection.by}: {rejection.reason}")
            return {"status": "rejected", "rejected_by": rejection.by, "reason": rejection.reason}
        if approval is None:
            await step.report_error("Approval timeout - escalating to manager")
            raise ApprovalTimeoutError("Approval timeout")

        # Step 4: process. A random id is a side effect: it belongs in a step.
        async def process() -> dict[str, Any]:
            return {"expense_id": str(uuid.uuid4()), **validated}

        processed: dict[str, Any] = await step.do("process", process)
        result = {"status": "approved", "approved_by": approval.get("approved_by"), **processed}
        await step.report_complete(result)
        return result


@dataclass(frozen=True)
class PendingApproval:
    """One row of the seed's pending-approvals UI."""

    workflow_id: str
    amount: float
    description: str
    requested_by: str
    requested_at: datetime


class ExpenseAgent:
    """The seed's ExpenseAgent over the Engine: submit, approve, reject, list pending."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def submit_for_approval(self, expense: ExpenseParams) -> str:
        """Starts an expense workflow; returns its id."""
        return await self.engine.run_workflow("expense", expense)

    async def approve(self, workflow_id: str, approved_by: str) -> None:
        """Approves a waiting expense (the metadata is what wait_for_approval returns)."""
        await self.engine.approve_workflow(
            workflow_id,
            by=approved_by,
            reason="Expense approved",
            metadata={
                "approved_by": approved_by,
                "approved_at": self.engine.clock.now().isoformat(),
            },
        )

    async def reject(self, workflow_id: str, rejected_by: str, reason: str) -> None:
        """Rejects a waiting expense; its wait_for_approval raises ApprovalRejected."""
        await self.engine.reject_workflow(workflow_id, by=rejected_by, reason=reason)

    async def pending_approvals(self, approver: str | None = None) -> list[PendingApproval]:
        """Expenses waiting for a decision (for ``approver``: those they may decide)."""
        return [
            PendingApproval(
                workflow_id=info.workflow_id,
                amount=float(info.context["amount"]),
                description=str(info.context["description"]),
                requested_by=info.requested_by,
                requested_at=info.requested_at,
            )
            for info in await self.engine.pending_approvals(approver)
            if info.workflow_id is not None
        ]


SHOWN = ("name", "kind", "outcome", "decision", "error_type", "message", "value")


def describe(entry: HistoryEntry) -> str:
    """One audit-trail line: version, time, event, actor, reason and the telling fields."""
    data = {k: v for k, v in entry.data.items() if k in SHOWN and v not in (None, {}, [])}
    if isinstance(data.get("value"), dict):  # a wait's resolution: keep it short
        data["value"] = {k: v for k, v in data["value"].items() if k != "approval_id"}
    reason = f" ({entry.reason})" if entry.reason else ""
    details = str(data) if data else ""
    if len(details) > 90:
        details = details[:87] + "..."
    line = f"  {entry.version:>2} {entry.at:%m-%d %H:%M} {entry.event:<16} {entry.actor}{reason}"
    return f"{line} {details}".rstrip()


async def show(engine: Engine, label: str, workflow_id: str) -> None:
    """Prints a run's status, its result or error, and its audit trail."""
    info = await engine.get_workflow(workflow_id)
    outcome = info.result if info.error is None else info.error
    print(f"\n{label}: {info.status}  {outcome}")
    for entry in await engine.history(workflow_id):
        print(describe(entry))


async def main(store: str) -> None:
    clock = ManualClock()  # 2026-01-01 09:00 UTC until told otherwise
    async with Engine(store, clock=clock) as engine:
        engine.register(ExpenseWorkflow)
        agent = ExpenseAgent(engine)

        lunch = await agent.submit_for_approval(
            ExpenseParams(amount=42.5, description="Team lunch", requested_by="carol")
        )
        laptop = await agent.submit_for_approval(
            ExpenseParams(amount=2400, description="New laptop", requested_by="dave")
        )
        taxi = await agent.submit_for_approval(
            ExpenseParams(amount=18, description="Taxi to the airport", requested_by="erin")
        )
        await engine.settle()  # every run has reached its approval wait

        print("Pending for alice:")
        for item in await agent.pending_approvals("alice"):
            print(f"  ${item.amount:>8.2f}  {item.description:<20} by {item.requested_by}")

        try:
            await agent.approve(lunch, "carol")  # her own expense
        except SelfApprovalError as error:
            print(f"refused: {error}")

        clock.advance("2 hours")
        await agent.approve(lunch, "alice")
        await agent.reject(laptop, "bob", "Over the hardware budget")
        await engine.settle()

        clock.advance("8 days")  # nobody decides on the taxi: the 7-day timeout passes
        await engine.settle()

        await show(engine, "approved", lunch)
        await show(engine, "rejected", laptop)
        await show(engine, "timed out", taxi)
        print(f"\nStill pending: {await agent.pending_approvals()}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
