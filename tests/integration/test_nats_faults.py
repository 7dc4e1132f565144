"""Fault tests on a broker the test owns: restarted during a flood of durable commands and
during event relay, and still every command applied once, every event in the stream once."""

from __future__ import annotations

import asyncio
import sqlite3

import nats
import orjson
import pytest

from signoff.adapters.nats.server import NatsServer
from tests.integration.nats_support import served, stream_messages, unique_settings, wait_until

FLOOD = 10_000

pytestmark = pytest.mark.slow


def count(db: str, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute(sql).fetchone()[0])


async def publish_with_retries(url: str, subject: str, n: int) -> None:
    """Publishes n durable requests, each retried under its key until JetStream acks it."""
    nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    js = nc.jetstream(timeout=2)

    async def one(i: int) -> None:
        body = orjson.dumps({"title": f"flood {i}", "requested_by": "carol"})
        while True:
            try:
                await js.publish(subject, body, headers={"Nats-Msg-Id": f"flood-{i}"})
                return
            except Exception:
                await asyncio.sleep(0.1)

    try:
        for first in range(0, n, 250):
            await asyncio.gather(*(one(i) for i in range(first, min(n, first + 250))))
    finally:
        await nc.close()


async def test_broker_restarts_during_a_flood_and_the_relay_lose_and_double_nothing(tmp_path):
    db = f"{tmp_path}/e.db"
    settings = unique_settings(ack_wait=3.0)  # acks lost in a restart come back sooner
    with NatsServer(tmp_path / "nats") as broker:
        async with served(f"sqlite:///{db}", broker.url, settings, cleanup=False) as s:
            # Flood the commands stream while the engine applies and relays
            flood = asyncio.create_task(
                publish_with_retries(
                    broker.url, settings.subject("cmd", "approval", "request"), FLOOD
                )
            )

            # Restart the broker in the middle of the flood
            async def some_applied() -> bool:
                return s.stored() >= FLOOD // 4

            await wait_until(some_applied, timeout=60)
            await asyncio.to_thread(broker.restart)

            # ... and again while the relay still has events to publish
            async def most_applied() -> bool:
                return s.stored() >= FLOOD * 3 // 4

            await wait_until(most_applied, timeout=60)
            await asyncio.to_thread(broker.restart)
            await flood

            # Everything is applied and relayed
            async def settled() -> bool:
                try:
                    js = s.nc.jetstream()
                    queued = (await js.stream_info(settings.commands_stream)).state.messages
                    events = (await js.stream_info(settings.events_stream)).state.messages
                except Exception:
                    return False
                return queued == 0 and events == s.stored() == FLOOD

            await wait_until(settled, timeout=90)
            messages = await stream_messages(
                broker.url, settings.events_stream, settings.events_subjects
            )

    # Every command applied exactly once: one approval and one event each
    assert count(db, "SELECT count(*) FROM stored_events") == FLOOD
    assert count(db, "SELECT count(*) FROM signoff_approvals") == FLOOD
    titles = count(
        db, "SELECT count(DISTINCT json_extract(CAST(state AS TEXT), '$.title')) FROM stored_events"
    )
    assert titles == FLOOD

    # Every event in the stream exactly once, in order
    ids = [int(m.headers["Nats-Msg-Id"]) for m in messages]
    assert ids == list(range(1, FLOOD + 1))
