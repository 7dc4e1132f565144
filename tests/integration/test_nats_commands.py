"""Request/reply commands over the shared broker: the protocol, its errors and idempotency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest

from signoff.errors import ConflictError, NotFoundError
from tests.integration.nats_support import served, shared_nats, unique_settings
from tests.integration.nats_workflows import NatsExpense


async def ask(s, name: str, body: bytes, headers=None) -> Any:
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


async def test_workflow_commands_over_nats(tmp_path):
    async with served(
        f"sqlite:///{tmp_path}/e.db", shared_nats(), unique_settings(), workflows=(NatsExpense,)
    ) as s:
        # Start a run; it reports progress and waits for approval
        run_id = await s.client.start_workflow(
            "nats-expense", {"amount": 5}, metadata={"team": "a"}
        )
        await s.engine.settle()
        waiting = await s.client.get_workflow(run_id)
        assert waiting.status == "waiting"
        assert "pending" in str(waiting.progress[0])

        # Approve it, pause and resume it, then deliver the receipt
        vote = await s.client.approve_workflow(run_id, by="alice")
        assert vote is not None
        assert vote.status == "approved"
        await s.engine.settle()
        assert (await s.client.control_workflow("pause", run_id, by="ops")).status == "paused"
        assert (await s.client.control_workflow("resume", run_id)).status != "paused"
        await s.client.send_event(run_id, "receipt", {"n": 1})
        await s.engine.settle()

        # The run completed with the event's payload; listing finds it
        done = await s.client.get_workflow(run_id)
        assert done.status == "complete"
        assert done.result == {"approved": True, "receipt": {"n": 1}}
        page = await s.client.list_workflows(metadata={"team": "a"})
        assert [r.id for r in page.items] == [run_id]


BAD_BODIES = [
    (b"{not json", "invalid_request"),
    (b"[1, 2]", "invalid_request"),
    (b'{"title": 5, "requested_by": "carol"}', "invalid_request"),
    (b'{"title": "x", "requested_by": "carol", "surprise": 1}', "invalid_request"),
    (b'{"title": "x", "requested_by": "carol", "required_approvals": "2"}', "invalid_request"),
    (b'{"title": "x", "requested_by": "carol", "timeout": "soonish"}', "invalid_request"),
    (b'{"title": "x", "requested_by": "system"}', "invalid_request"),
    (b"\xff\xfe", "invalid_request"),
]


async def test_bad_bodies_get_error_replies_and_store_nothing(tmp_path):
    settings = unique_settings(max_body=2048)
    async with served(f"sqlite:///{tmp_path}/e.db", shared_nats(), settings) as s:
        # Send malformed, ill-typed and oversized bodies, unknown ids and subjects
        before = s.stored()
        for body, code in BAD_BODIES:
            answer = await ask(s, "approval.request", body)
            assert answer["ok"] is False, body
            assert answer["error"]["code"] == code, (body, answer)
        big = orjson.dumps({"title": "x", "requested_by": "c", "description": "y" * 4000})
        answer = await ask(s, "approval.request", big)
        assert answer["error"]["code"] == "invalid_request"
        assert "exceeds the limit" in answer["error"]["message"]
        answer = await ask(s, "approval.approve", b'{"id": "nope", "by": "alice"}')
        assert answer["error"]["code"] == "not_found"
        answer = await ask(s, "workflow.start", b'{"name": "unregistered"}')
        assert answer["error"]["code"] == "invalid_request"
        answer = await ask(s, "workflow.explode", b"{}")
        assert answer["error"]["code"] == "invalid_request"

        # Nothing was appended, and the service still serves
        assert s.stored() == before
        assert await s.client.request_approval(title="fine", requested_by="carol")
        with pytest.raises(NotFoundError):
            await s.client.get_workflow("missing")


async def test_a_repeated_key_returns_the_first_outcome_and_appends_nothing(durable_store_url):
    store, settings = durable_store_url, unique_settings()
    async with served(store, shared_nats(), settings, cleanup=False) as s:
        # Request once under a key, and again under the same key
        first = await s.client.request_approval(
            title="Pay", requested_by="carol", idempotency_key="req-1"
        )
        count = s.stored()
        again = await s.client.request_approval(
            title="Pay", requested_by="carol", idempotency_key="req-1"
        )
        assert again == first
        assert s.stored() == count

        # A vote under a key: a repeat replays the reply, a fresh vote is refused
        body = b'{"id": "%s", "by": "alice", "idempotency_key": "vote-1"}' % first.encode()
        one = await ask(s, "approval.approve", body)
        two = await ask(s, "approval.approve", body)
        assert one == two
        assert one["ok"] is True
        with pytest.raises(ConflictError):  # already voted
            await s.client.approve(first, by="alice")

        # The same key for another command is a conflict
        with pytest.raises(ConflictError):
            await s.client.request_approval(
                title="Other", requested_by="carol", idempotency_key="req-1"
            )
        stored = s.stored()

    # After a restart of the engine, the key is still known
    async with served(store, shared_nats(), settings) as s:
        again = await s.client.request_approval(
            title="Pay", requested_by="carol", idempotency_key="req-1"
        )
        assert again == first
        assert s.stored() == stored


async def test_the_header_key_and_the_body_key_are_one_key(tmp_path):
    async with served(f"sqlite:///{tmp_path}/e.db", shared_nats(), unique_settings()) as s:
        body = b'{"title": "t", "requested_by": "carol"}'
        one = await ask(s, "approval.request", body, headers={"Nats-Msg-Id": "k-9"})
        count = s.stored()
        two = await ask(s, "approval.request", body[:-1] + b', "idempotency_key": "k-9"}')
        assert one == two
        assert s.stored() == count
        clash = await ask(
            s,
            "approval.request",
            body[:-1] + b', "idempotency_key": "other"}',
            headers={"Nats-Msg-Id": "k-9"},
        )
        assert clash["error"]["code"] == "invalid_request"


async def test_engines_in_one_queue_group_share_the_requests(tmp_path):
    store, settings = f"sqlite:///{tmp_path}/e.db", unique_settings()
    async with (
        served(store, shared_nats(), settings, cleanup=False) as one,
        served(store, shared_nats(), settings) as two,
    ):
        # Many requests through one client
        ids = [
            await one.client.request_approval(title=f"t{i}", requested_by="c") for i in range(40)
        ]

        # Both engines answered some, and every approval exists once
        assert len(set(ids)) == 40
        answered = [x.adapter.service.answered for x in (one, two)]  # type: ignore[union-attr]
        assert sum(answered) == 40
        assert min(answered) > 0
        assert len(await two.client.pending_approvals(limit=1000)) == 40


async def test_the_client_covers_every_approval_command(tmp_path):
    async with served(
        f"sqlite:///{tmp_path}/e.db", shared_nats(), unique_settings(), workflows=(NatsExpense,)
    ) as s:
        # Reassign, then reject an approval; cancel another
        first = await s.client.request_approval(title="A", requested_by="carol", approvers=["x"])
        moved = await s.client.reassign(first, by="carol", approvers=["bob"], reason="away")
        assert moved.approvers == ["bob"]
        rejected = await s.client.reject(first, by="bob", reason="no")
        assert rejected.status == "rejected"
        second = await s.client.request_approval(title="B", requested_by="carol")
        assert (await s.client.cancel(second, by="carol")).status == "cancelled"

        # A rejected run errors (the decision is kept if the run is not there yet: None)
        run_id = await s.client.start_workflow("nats-expense", id="run-early")
        assert run_id == "run-early"
        vote = await s.client.reject_workflow(run_id, by="dave", reason="no")
        assert vote is None or vote.status == "rejected"
        await s.engine.settle()
        assert (await s.client.get_workflow(run_id)).status == "errored"

        # A run started under a key gets an id derived from it, once
        keyed = await s.client.start_workflow("nats-expense", idempotency_key="start-1")
        again = await s.client.start_workflow("nats-expense", idempotency_key="start-1")
        assert keyed == again != run_id


async def test_the_views_are_served_over_nats(tmp_path):
    async with served(f"sqlite:///{tmp_path}/e.db", shared_nats(), unique_settings()) as s:
        decided = await s.client.request_approval(title="Pay", requested_by="carol")
        await s.client.approve(decided, by="alice", reason="ok")
        pending = await s.client.request_approval(
            title="Wire", requested_by="carol", timeout="1 day", approvers=["bob"]
        )

        # The inbox, page by page, and only what bob may decide
        page = await s.client.approval_inbox("bob", order="deadline", limit=1)
        assert [i.id for i in page.items] == [pending]
        assert page.next_cursor is None

        # The audit trail in log order, with the seed's columns
        trail = await s.client.audit_trail(aggregate_id=decided)
        assert [(e.decision, e.decided_by) for e in trail] == [
            ("requested", "carol"),
            ("approve", "alice"),
            ("approved", "alice"),
        ]
        assert await s.client.audit_trail(aggregate_id=decided, after=trail[-1].position) == []

        # Metrics and the timers the runtime will fire
        metrics = await s.client.metrics()
        assert metrics.approvals == {"approved": 1, "pending": 1}
        timers = await s.client.upcoming_timers(kind="approval")
        assert [(t.target_id, t.key) for t in timers] == [(pending, "deadline")]
        soon = await s.client.upcoming_timers(before=timers[0].due_at - timedelta(seconds=1))
        assert soon == []

        # A bad kind is a typed error, as every other bad body
        reply = await ask(s, "timers.upcoming", b'{"kind": "sometime"}')
        assert reply["error"]["code"] == "invalid_request"
