"""The seed's approveMulti: a sensitive action that needs two distinct approvers.

The seed keeps the votes in agent state and checks "already approved by this
user" by hand. Here the quorum is part of the approval the workflow waits
on (``wait_for_approval(required_approvals=2, approvers=[...])``): signoff
counts the votes, refuses a second vote by the same person and anyone not
on the list, and resumes the run once the quorum is reached.

Run: .venv/bin/python examples/multi_approver.py [STORE_URL]   (default memory://)
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from signoff import (
    AlreadyVotedError,
    Engine,
    ManualClock,
    NotAnApproverError,
    Step,
    Workflow,
    WorkflowEvent,
)

APPROVERS = ["alice", "bob", "dave"]


class DropTableWorkflow(Workflow):
    """Drops a production table once two of three DBAs have approved."""

    name = "drop-table"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        table = event.payload["table"]
        approval = await self.wait_for_approval(
            step,
            timeout="1 day",
            title=f"Drop production table {table}",
            context={"table": table, "rows": event.payload["rows"]},
            requested_by=event.payload["requested_by"],
            required_approvals=2,
            approvers=APPROVERS,
        )
        if approval is None:
            raise TimeoutError("not enough approvals within a day")

        def drop() -> dict[str, Any]:
            return {"dropped": table}  # the real DROP TABLE would run here, once

        result: dict[str, Any] = await step.do("drop", drop)
        return {**result, "approval": approval}


class MultiApprovalAgent:
    """The seed's MultiApprovalAgent: ``approve_multi`` returns whether the quorum is met."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def approve_multi(self, workflow_id: str, user_id: str, **metadata: Any) -> bool:
        """Casts ``user_id``'s vote; True once enough people approved.

        Raises:
            AlreadyVotedError: ``user_id`` has voted on this approval before.
            NotAnApproverError: ``user_id`` is not one of the approvers.
        """
        info = await self.engine.approve_workflow(workflow_id, by=user_id, metadata=metadata)
        if info is None:  # the run has not reached its approval yet: the vote is kept
            return False
        approvers = [v.voter for v in info.votes if v.decision == "approve"]
        print(f"  {user_id} approved: {info.status}, approvers so far {approvers}")
        return info.status == "approved"


async def main(store: str) -> None:
    async with Engine(store, clock=ManualClock()) as engine:
        engine.register(DropTableWorkflow)
        agent = MultiApprovalAgent(engine)

        run_id = await engine.run_workflow(
            "drop-table", {"table": "legacy_orders", "rows": 1_204_331, "requested_by": "carol"}
        )
        await engine.settle()
        waiting = await engine.get_workflow(run_id)
        assert waiting.waiting_for is not None
        approval_id = waiting.waiting_for.approval_id
        print(f"{waiting.status}: {waiting.waiting_for.kind} {approval_id}")

        met = await agent.approve_multi(run_id, "alice", checked_backup="2026-01-01")
        print(f"  quorum reached: {met}")
        for voter in ("alice", "mallory"):  # a second vote; someone not on the list
            try:
                await agent.approve_multi(run_id, voter)
            except (AlreadyVotedError, NotAnApproverError) as error:
                print(f"  refused ({type(error).__name__}): {error}")
        print(f"status after one approval: {(await engine.get_workflow(run_id)).status}")

        met = await agent.approve_multi(run_id, "bob", change_ticket="CHG-7")
        print(f"  quorum reached: {met}")
        await engine.settle()

        done = await engine.get_workflow(run_id)
        print(f"{done.status}: {done.result}")

        # Who approved, from the audit trail: the approval's Approved event and the
        # run's WaitResolved event both list them.
        assert approval_id is not None
        for entry in await engine.history(approval_id):
            if entry.event == "Approved":
                print(f"approved by {entry.data['approvers']} (deciding vote: {entry.actor})")
        for entry in await engine.history(run_id):
            if entry.event == "WaitResolved":
                print(f"run resumed with approvers {entry.data['value']['approvers']}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
