"""Helpers of the NATS tests: the shared broker (skipped outside CI when it is away),
unique subjects and streams per test, owned brokers, and an engine served over NATS."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import nats
import pytest
from nats.aio.client import Client

from signoff.adapters.nats import NatsAdapter, NatsSettings
from signoff.adapters.nats.identity import Authenticator
from signoff.client import SignoffClient
from signoff.engine import Engine

SHARED_NATS = os.environ.get("SIGNOFF_TEST_NATS", "nats://127.0.0.1:4222")


def shared_nats_available() -> bool:
    """Tells whether the shared broker answers; in CI its absence is a failure."""
    parts = urlsplit(SHARED_NATS)
    try:
        socket.create_connection((parts.hostname, parts.port or 4222), timeout=3).close()
        return True
    except OSError:
        if os.environ.get("CI"):
            raise
        return False


def shared_nats() -> str:
    """The shared broker's URL, or a skip (outside CI only)."""
    if not shared_nats_available():
        pytest.skip(f"NATS not reachable at {SHARED_NATS} (outside CI only)")
    return SHARED_NATS


def unique_settings(**overrides: object) -> NatsSettings:
    """Subjects and streams no other test uses."""
    tag = uuid.uuid4().hex[:10]
    fields: dict[str, object] = {
        "prefix": f"t{tag}",
        "events_stream": f"T{tag}_EVENTS",
        "commands_stream": f"T{tag}_COMMANDS",
        "dead_stream": f"T{tag}_DEAD",
        "queue_group": f"q{tag}",
        "commands_consumer": f"c{tag}",
    }
    fields.update(overrides)
    return NatsSettings(**fields)  # type: ignore[arg-type]


async def delete_streams(url: str, settings: NatsSettings) -> None:
    """Removes a test's streams from a broker."""
    nc = await nats.connect(url)
    try:
        for name in (settings.events_stream, settings.commands_stream, settings.dead_stream):
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@dataclass
class Served:
    """An engine served over NATS, with a client and a raw connection to poke it."""

    engine: Engine
    adapter: NatsAdapter
    client: SignoffClient
    nc: Client
    settings: NatsSettings
    url: str

    def stored(self) -> int:
        """How many events the store holds."""
        return self.engine.application.recorder.max_notification_id() or 0


@contextlib.asynccontextmanager
async def served(
    store: str,
    url: str,
    settings: NatsSettings,
    *,
    auth: Authenticator | None = None,
    token: str | None = None,
    workflows: tuple[type, ...] = (),
    cleanup: bool = True,
) -> AsyncIterator[Served]:
    """Starts an engine on ``store`` and its NATS adapter on ``url``."""
    engine = Engine(store, poll_interval=0.02)
    for workflow in workflows:
        engine.register(workflow)
    try:
        async with engine, NatsAdapter(engine, url, settings=settings, auth=auth) as adapter:
            nc = await nats.connect(url, max_reconnect_attempts=-1, reconnect_time_wait=0.2)
            client = SignoffClient(nc, prefix=settings.prefix, token=token)
            try:
                yield Served(engine, adapter, client, nc, settings, url)
            finally:
                await nc.close()
    finally:
        if cleanup:
            await delete_streams(url, settings)


@dataclass(frozen=True)
class StoredMsg:
    """A message as a stream keeps it."""

    subject: str
    headers: dict[str, str]
    data: bytes


async def stream_messages(url: str, stream: str, subject: str) -> list[StoredMsg]:
    """Every message the stream holds, in order (through an ephemeral pull consumer)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        total = (await js.stream_info(stream)).state.messages
        sub = await js.pull_subscribe(subject, stream=stream)
        found: list[StoredMsg] = []
        while len(found) < total:
            batch = await sub.fetch(min(1000, total - len(found)), timeout=5)
            for msg in batch:
                await msg.ack()
                found.append(StoredMsg(msg.subject, dict(msg.headers or {}), msg.data))
        await sub.unsubscribe()
        return found
    finally:
        await nc.close()


async def wait_until(condition, *, timeout: float = 20.0, every: float = 0.05) -> None:
    """Waits until the async ``condition()`` holds."""
    import asyncio

    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(every)
