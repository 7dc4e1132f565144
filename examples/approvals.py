"""Standalone approvals: a payment that needs two of three approvers.

Run: .venv/bin/python examples/approvals.py [STORE_URL]
"""

from __future__ import annotations

import asyncio
import sys

from signoff import AlreadyVotedError, Engine, SelfApprovalError


async def main(store: str) -> None:
    async with Engine(store) as engine:
        # An agent asks for a decision, with what the approvers need to see.
        approval_id = await engine.request_approval(
            title="Pay invoice 2026-117",
            requested_by="agent:payables",
            context={"amount": 4200, "currency": "EUR", "payee": "ACME GmbH"},
            required_approvals=2,
            approvers=["alice", "bob", "dave"],
            timeout="7 days",
        )

        # The seed's approveMulti rules: one vote per person, no self-approval.
        await engine.approve(approval_id, by="alice", reason="matches PO-88")
        for attempt in ("alice", "agent:payables"):
            try:
                await engine.approve(approval_id, by=attempt)
            except (AlreadyVotedError, SelfApprovalError) as error:
                print(f"refused: {error}")
        info = await engine.approve(approval_id, by="bob", metadata={"ticket": "FIN-9"})
        print(f"{info.title}: {info.status} by {[v.voter for v in info.votes]}")

        # The audit trail is the event stream itself.
        for entry in await engine.history(approval_id):
            print(f"  {entry.version} {entry.at:%H:%M:%S} {entry.event:<10} {entry.actor}")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "memory://"))
