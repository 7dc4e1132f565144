"""The event relay: every stored event in SIGNOFF_EVENTS once, in order, across restarts."""

from __future__ import annotations

import nats
import orjson

from tests.integration.nats_support import (
    served,
    shared_nats,
    stream_messages,
    unique_settings,
    wait_until,
)
from tests.integration.nats_workflows import NatsExpense


async def stream_count(url: str, stream: str) -> int:
    nc = await nats.connect(url)
    try:
        return (await nc.jetstream().stream_info(stream)).state.messages
    finally:
        await nc.close()


async def relayed(s) -> int:
    return await stream_count(s.url, s.settings.events_stream)


async def test_every_event_is_published_once_with_its_subject_and_body(tmp_path):
    settings = unique_settings()
    async with served(
        f"sqlite:///{tmp_path}/e.db", shared_nats(), settings, workflows=(NatsExpense,)
    ) as s:
        # Make some history: an approval decided, a run that reports progress
        approval_id = await s.client.request_approval(title="Pay", requested_by="carol")
        await s.client.approve(approval_id, by="alice")
        run_id = await s.client.start_workflow("nats-expense", by="svc")
        await s.engine.settle()

        # The relay catches up with the store
        stored = s.stored()

        async def caught_up() -> bool:
            return await relayed(s) == stored

        await wait_until(caught_up)
        messages = await stream_messages(s.url, settings.events_stream, settings.events_subjects)

    # One message per stored event, in notification order, named by its notification id
    ids = [int(m.headers["Nats-Msg-Id"]) for m in messages]
    assert ids == sorted(ids)
    assert len(set(ids)) == stored == len(ids)
    bodies = [orjson.loads(m.data) for m in messages]
    assert [b["notification_id"] for b in bodies] == ids
    first = bodies[0]
    assert messages[0].subject == f"{settings.prefix}.events.approval.requested.{approval_id}"
    assert first["type"] == "Approval.Requested"
    assert first["aggregate_id"] == approval_id
    assert first["version"] == 1
    assert first["actor"] == "carol"
    assert first["data"]["title"] == "Pay"
    assert {"time", "command_id", "reason"} <= set(first)
    subjects = {m.subject.split(".", 1)[1] for m in messages}
    assert f"events.approval.approved.{approval_id}" in subjects
    assert any(
        b["aggregate_id"] == run_id
        and b["aggregate"] == "workflow"
        and "progress" in b["type"].lower()
        for b in bodies
    ), [b["type"] for b in bodies]


async def test_restarts_and_several_relays_neither_lose_nor_double(tmp_path):
    store, settings, url = f"sqlite:///{tmp_path}/e.db", unique_settings(), shared_nats()

    # A first engine relays some events, then stops
    async with served(store, url, settings, cleanup=False) as s:
        for i in range(30):
            await s.client.request_approval(title=f"a{i}", requested_by="carol")

    # Two engines on the same store relay to the same stream at once
    async with (
        served(store, url, settings, cleanup=False) as one,
        served(store, url, settings) as two,
    ):
        for i in range(100):
            target = one if i % 2 else two
            await target.client.request_approval(title=f"b{i}", requested_by="carol")
        stored = one.stored()

        async def caught_up() -> bool:
            return await relayed(one) == stored

        await wait_until(caught_up)
        messages = await stream_messages(url, settings.events_stream, settings.events_subjects)
        ids = [int(m.headers["Nats-Msg-Id"]) for m in messages]

    # Every event exactly once, in order
    assert ids == list(range(1, stored + 1))
