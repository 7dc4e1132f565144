"""Fault tests on a broker the test owns: restarted during a flood of durable commands and
during event relay, and still every command applied once, every event in the stream once."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import uuid

import nats
import orjson
import pytest

from signoff.adapters.nats.server import NatsServer
from signoff.engine import Engine
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


def serve(store: str, url: str, settings) -> subprocess.Popen[bytes]:
    """``signoff serve`` in a process of its own (so that it can be killed)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "signoff",
            "serve",
            "--store",
            store,
            "--nats",
            url,
            "--prefix",
            settings.prefix,
            "--streams",
            settings.events_stream[: -len("_EVENTS")],
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def relayed(url: str, stream: str) -> int:
    try:
        nc = await nats.connect(url, connect_timeout=1, max_reconnect_attempts=0)
    except Exception:
        return -1
    try:
        return int((await nc.jetstream().stream_info(stream)).state.messages)
    except Exception:
        return -1
    finally:
        await nc.close()


async def test_an_engine_killed_and_a_broker_restarted_during_relay_lose_and_double_nothing(
    tmp_path,
):
    store, total = f"sqlite:///{tmp_path}/e.db", 10_000
    tag = uuid.uuid4().hex[:8]
    settings = unique_settings(prefix=f"r{tag}", events_stream=f"R{tag}_EVENTS")

    # Events stored before any relay runs
    async with Engine(store) as engine:
        for first in range(0, total, 2000):
            await asyncio.gather(
                *(
                    engine.request_approval(title=f"{i}", requested_by="c")
                    for i in range(first, first + 2000)
                )
            )

    with NatsServer(tmp_path / "nats") as broker:
        # An engine starts relaying and is killed part of the way
        process = serve(store, broker.url, settings)
        try:
            await wait_until(lambda: _at_least(broker.url, settings, 1000), timeout=60)
            process.kill()
            process.wait()

            # The broker restarts; a new engine relays the rest, through another restart
            await asyncio.to_thread(broker.restart)
            process = serve(store, broker.url, settings)
            await wait_until(lambda: _at_least(broker.url, settings, 3000), timeout=60)
            await asyncio.to_thread(broker.restart)
            await wait_until(lambda: _at_least(broker.url, settings, total), timeout=60)
            process.send_signal(signal.SIGTERM)
            assert process.wait(30) == 0
        finally:
            if process.poll() is None:
                process.kill()
        messages = await stream_messages(
            broker.url, settings.events_stream, settings.events_subjects
        )

    # Every stored event in the stream exactly once, in order
    ids = [int(m.headers["Nats-Msg-Id"]) for m in messages]
    assert ids == list(range(1, total + 1))


async def _at_least(url: str, settings, n: int) -> bool:
    return await relayed(url, settings.events_stream) >= n
