"""Request/reply commands over the shared broker: the protocol, its errors and idempotency."""

from __future__ import annotations

import orjson
import pytest

from signoff.errors import AlreadyVotedError, ConflictError, NotFoundError
from tests.integration.nats_support import served, shared_nats, unique_settings


async def ask(s, name: str, body: bytes, headers=None) -> dict:
    reply = await s.nc.request(f"{s.settings.prefix}.{name}", body, timeout=5, headers=headers)
    return orjson.loads(reply.data)


async def test_approval_round_trip_over_nats(tmp_path):
    # Serve an engine over the shared broker
    async with served(f"sqlite:///{tmp_path}/e.db", shared_nats(), unique_settings()) as s:
        # Request an approval and vote on it through the client
        approval_id = await s.client.request_approval(
            title="Pay", requested_by="carol", required_approvals=2
        )
        first = await s.client.approve(approval_id, by="alice")
        info = await s.client.approve(approval_id, by="bob", reason="ok")

        # The client returns typed views
        assert first.status == "pending"
        assert info.status == "approved"
        assert [v.voter for v in info.votes] == ["alice", "bob"]
        assert (await s.client.get_approval(approval_id)).status == "approved"
        assert await s.client.pending_approvals() == []
