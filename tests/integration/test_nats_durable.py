"""Durable commands through the SIGNOFF_COMMANDS stream: acked after commit, applied once,
refused or failing commands moved to the dead-letter subject with the reason."""

from __future__ import annotations

import orjson
from nats.aio.msg import Msg

from signoff.adapters.nats import routes
from tests.integration.nats_support import (
    served,
    shared_nats,
    stream_messages,
    unique_settings,
    wait_until,
)


async def stream_count(s, stream: str) -> int:
    info = await s.nc.jetstream().stream_info(stream)
    return int(info.state.messages)


async def test_durable_commands_are_applied_once_and_leave_the_queue(durable_store_url):
    async with served(durable_store_url, shared_nats(), unique_settings()) as s:
        # Publish requests, each twice under the same key
        for i in range(20):
            body = {"title": f"t{i}", "requested_by": "carol"}
            for _ in range(2):
                await s.client.publish_durable("approval.request", body, idempotency_key=f"r{i}")

        # Every command is applied once and acked (the work queue empties)
        async def applied() -> bool:
            pending = await s.client.pending_approvals(limit=1000)
            queued = await stream_count(s, s.settings.commands_stream)
            return len(pending) == 20 and queued == 0

        await wait_until(applied)
        assert s.stored() == 20


async def test_a_refused_command_moves_to_the_dead_letter_subject_with_its_reason(tmp_path):
    settings = unique_settings()
    async with served(f"sqlite:///{tmp_path}/e.db", shared_nats(), settings) as s:
        # A vote on an unknown approval cannot succeed later
        await s.client.publish_durable(
            "approval.approve", {"id": "nope", "by": "alice"}, idempotency_key="v1"
        )

        async def dead() -> bool:
            return await stream_count(s, settings.dead_stream) == 1

        await wait_until(dead)
        [letter] = await stream_messages(s.url, settings.dead_stream, settings.dead_subjects)

    assert letter.subject == f"{settings.prefix}.dead.approval.approve"
    assert letter.headers["Signoff-Error-Code"] == "not_found"
    assert "nope" in letter.headers["Signoff-Reason"]
    assert orjson.loads(letter.data) == {"id": "nope", "by": "alice"}
    assert s.stored() == 0


async def test_a_failing_command_is_redelivered_then_dead_lettered(tmp_path, monkeypatch):
    settings = unique_settings(max_deliver=3)
    attempts: list[int] = []

    async def broken(engine, msg, key):
        attempts.append(1)
        raise RuntimeError("disk on fire")

    route = routes.ROUTES["approval.request"]
    monkeypatch.setitem(
        routes.ROUTES,
        "approval.request",
        route.__class__(route.name, route.request, route.result, broken, actor=route.actor),
    )
    async with served(f"sqlite:///{tmp_path}/e.db", shared_nats(), settings) as s:
        # A command whose engine call keeps failing
        await s.client.publish_durable(
            "approval.request", {"title": "t", "requested_by": "c"}, idempotency_key="f1"
        )

        # It is tried max_deliver times, then moved aside with the reason
        async def dead() -> bool:
            return await stream_count(s, settings.dead_stream) == 1

        await wait_until(dead)
        [letter] = await stream_messages(s.url, settings.dead_stream, settings.dead_subjects)
        assert len(attempts) == 3
        assert letter.headers["Signoff-Error-Code"] == "internal"
        assert letter.headers["Signoff-Deliveries"] == "3"
        assert await stream_count(s, settings.commands_stream) == 0


async def test_a_command_without_a_key_is_applied_once_when_its_ack_is_lost(tmp_path, monkeypatch):
    settings = unique_settings(ack_wait=1.0)
    real_ack, lost = Msg.ack, list[int]()

    async def losing_ack(msg: Msg) -> None:
        if not lost:
            lost.append(msg.metadata.sequence.stream)
            raise ConnectionError("ack lost on the way")
        await real_ack(msg)

    monkeypatch.setattr(Msg, "ack", losing_ack)
    async with served(f"sqlite:///{tmp_path}/e.db", shared_nats(), settings) as s:
        # A keyless command whose first ack never reaches the broker
        await s.nc.jetstream().publish(
            f"{settings.prefix}.cmd.approval.request",
            orjson.dumps({"title": "t", "requested_by": "carol"}),
        )

        # It is redelivered, found in the ledger, and acked without a second approval
        async def acked() -> bool:
            return bool(lost) and await stream_count(s, settings.commands_stream) == 0

        await wait_until(acked)
        assert s.stored() == 1
