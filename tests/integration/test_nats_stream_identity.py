"""The events stream belongs to one store: a reset or different store behind a stream that
kept its data is refused (not silently skipped), ``reset_events`` republishes the new
store's history, the same store resumes, old unlabelled streams are adopted, and engines
starting at once agree. Each test owns its broker and its data directory."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator

import nats
import orjson
import psycopg
import pytest

from signoff.adapters.nats import NatsAdapter, NatsSettings, StreamMismatchError
from signoff.adapters.nats.server import NatsServer, free_port
from signoff.adapters.nats.streams import STORE_ID_KEY
from signoff.engine import Engine
from tests.integration.nats_support import Served, served, stream_messages, unique_settings
from tests.integration.nats_support import wait_until as wait_for
from tests.integration.process_support import wait_for_line

Event = tuple[int, str, int]
"""(notification id, aggregate id, version)."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def two_stores(request: pytest.FixtureRequest, tmp_path: object) -> Iterator[tuple[str, str]]:
    """Two durable stores of one kind: two SQLite files, or two PostgreSQL schemas."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/a.db", f"sqlite:///{tmp_path}/b.db"
        return
    server = request.getfixturevalue("postgres_server")
    schemas = [f"t_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    yield f"{server}?schema={schemas[0]}", f"{server}?schema={schemas[1]}"
    with psycopg.connect(server, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


async def request_approvals(s: Served, n: int) -> None:
    """Stores ``n`` events in this engine's own store (not through the shared queue group)."""
    for i in range(n):
        await s.engine.request_approval(title=f"a{i}", requested_by="carol")


async def relayed(s: Served) -> list[Event]:
    """Waits until the stream holds as many events as the store, and returns them."""
    nc = await nats.connect(s.url)
    try:

        async def caught_up() -> bool:
            info = await nc.jetstream().stream_info(s.settings.events_stream)
            return info.state.messages == s.stored()

        await wait_for(caught_up)
    finally:
        await nc.close()
    return await in_stream(s.url, s.settings)


async def in_stream(url: str, settings: NatsSettings) -> list[Event]:
    """The events the stream holds, in stream order."""
    found = []
    for msg in await stream_messages(url, settings.events_stream, settings.events_subjects):
        body = orjson.loads(msg.data)
        found.append((int(msg.headers["Nats-Msg-Id"]), body["aggregate_id"], body["version"]))
    return found


def in_store(engine: Engine) -> list[Event]:
    """The events the store holds, in notification order."""
    found = engine.application.recorder.select_notifications(1, 10_000)
    return [(n.id, str(n.originator_id), n.originator_version) for n in found]


async def stream_label(url: str, stream: str) -> str | None:
    nc = await nats.connect(url)
    try:
        config = (await nc.jetstream().stream_info(stream)).config
        return (config.metadata or {}).get(STORE_ID_KEY)
    finally:
        await nc.close()


async def unlabel(url: str, stream: str) -> None:
    """Makes the stream look like one an older signoff created (no store id)."""
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        config = (await js.stream_info(stream)).config
        metadata = {k: v for k, v in (config.metadata or {}).items() if k != STORE_ID_KEY}
        await js.update_stream(dataclasses.replace(config, metadata=metadata, description=None))
    finally:
        await nc.close()


async def test_a_new_store_behind_a_kept_stream_is_refused_until_reset(two_stores, tmp_path):
    store_a, store_b = two_stores
    settings = unique_settings()
    with NatsServer(tmp_path / "nats") as broker:
        # Store A publishes its events
        async with served(store_a, broker.url, settings, cleanup=False) as s:
            await request_approvals(s, 5)
            published_a = await relayed(s)
            store_id_a = s.engine.application.store_id()
        assert await stream_label(broker.url, settings.events_stream) == store_id_a

        # The store is replaced by a new one (B) while the broker keeps its data; B's first
        # notification ids are ones the stream has already seen
        await asyncio.to_thread(broker.restart)
        async with Engine(store_b) as engine_b:
            for i in range(3):
                await engine_b.request_approval(title=f"b{i}", requested_by="dave")
            store_id_b = engine_b.application.store_id()

            # The adapter refuses to start: a clear error, not three events silently skipped
            with pytest.raises(StreamMismatchError) as refused:
                async with NatsAdapter(engine_b, broker.url, settings=settings):
                    pass
        error = refused.value
        assert (error.stream, error.stream_store_id, error.store_id) == (
            settings.events_stream,
            store_id_a,
            store_id_b,
        )
        assert "--reset-events" in str(error)
        assert "--streams" in str(error)
        assert await in_stream(broker.url, settings) == published_a

        # With reset_events the stream is B's: every event of B in it, once and in order
        reset = dataclasses.replace(settings, reset_events=True)
        async with served(store_b, broker.url, reset) as s:
            await request_approvals(s, 2)
            published_b = await relayed(s)
            assert published_b == in_store(s.engine)
            assert [n for n, _, _ in published_b] == list(range(1, 6))
            assert await stream_label(broker.url, settings.events_stream) == store_id_b


async def test_a_restarted_memory_store_is_refused(tmp_path):
    settings = unique_settings()
    with NatsServer(tmp_path / "nats") as broker:
        async with served("memory://", broker.url, settings, cleanup=False) as s:
            await request_approvals(s, 2)
            await relayed(s)

        # A memory:// store restarted is a new store, with a new id
        with pytest.raises(StreamMismatchError):
            async with served("memory://", broker.url, settings, cleanup=False):
                pass


async def test_the_same_store_restarted_resumes_without_doubles(durable_store_url, tmp_path):
    settings = unique_settings()
    with NatsServer(tmp_path / "nats") as broker:
        # Publish, stop, restart the broker
        async with served(durable_store_url, broker.url, settings, cleanup=False) as s:
            await request_approvals(s, 4)
            await relayed(s)
        await asyncio.to_thread(broker.restart)

        # The same store starts again and goes on where the stream ends
        async with served(durable_store_url, broker.url, settings) as s:
            await request_approvals(s, 3)
            published = await relayed(s)
            assert published == in_store(s.engine)
            assert [n for n, _, _ in published] == list(range(1, 8))


async def test_a_store_restored_from_an_older_copy_is_refused(tmp_path):
    db, copy = tmp_path / "e.db", tmp_path / "copy.db"
    settings = unique_settings()
    with NatsServer(tmp_path / "nats") as broker:
        # Publish three events, copy the store, publish three more
        async with served(f"sqlite:///{db}", broker.url, settings, cleanup=False) as s:
            await request_approvals(s, 3)
            await relayed(s)
            with sqlite3.connect(db) as source, sqlite3.connect(copy) as target:
                source.backup(target)
            await request_approvals(s, 3)
            await relayed(s)

        # The older copy has the same store id, but not the events the stream ends with
        with pytest.raises(StreamMismatchError) as refused:
            async with served(f"sqlite:///{copy}", broker.url, settings, cleanup=False):
                pass
        assert refused.value.stream_store_id == refused.value.store_id
        assert refused.value.notification_id == 6


async def test_an_unlabelled_stream_that_fits_the_store_is_adopted(two_stores, tmp_path):
    store_a, store_b = two_stores
    settings = unique_settings()
    with NatsServer(tmp_path / "nats") as broker:
        # A stream of an older signoff: A's events, no store id
        async with served(store_a, broker.url, settings, cleanup=False) as s:
            await request_approvals(s, 3)
            await relayed(s)
            store_id_a = s.engine.application.store_id()
        await unlabel(broker.url, settings.events_stream)
        assert await stream_label(broker.url, settings.events_stream) is None

        # Another store does not fit its last message: refused
        with pytest.raises(StreamMismatchError) as refused:
            async with served(store_b, broker.url, settings, cleanup=False):
                pass
        assert refused.value.stream_store_id is None
        assert refused.value.notification_id == 3

        # A itself fits: the stream is adopted (labelled) and A goes on without doubles
        async with served(store_a, broker.url, settings) as s:
            assert await stream_label(broker.url, settings.events_stream) == store_id_a
            await request_approvals(s, 2)
            published = await relayed(s)
            assert published == in_store(s.engine)
            assert [n for n, _, _ in published] == list(range(1, 6))


async def test_an_empty_unlabelled_stream_is_adopted(tmp_path):
    settings = unique_settings()
    with NatsServer(tmp_path / "nats") as broker:
        async with served(f"sqlite:///{tmp_path}/a.db", broker.url, settings, cleanup=False):
            pass
        await unlabel(broker.url, settings.events_stream)

        async with served(f"sqlite:///{tmp_path}/b.db", broker.url, settings) as s:
            assert await stream_label(broker.url, settings.events_stream) == (
                s.engine.application.store_id()
            )


async def start_together(store: str, url: str, settings: NatsSettings, n: int) -> None:
    """Starts ``n`` engines on ``store`` and their adapters at the same moment; every one
    must start, and the stream must then hold every event once."""
    engines = [Engine(store, poll_interval=0.02) for _ in range(n)]
    await asyncio.gather(*(e.start() for e in engines))
    adapters = [NatsAdapter(e, url, settings=settings) for e in engines]
    try:
        await asyncio.gather(*(a.start() for a in adapters))
        for i, engine in enumerate(engines):
            await engine.request_approval(title=f"t{i}", requested_by="carol")
        expected = in_store(engines[0])

        async def caught_up() -> bool:
            return await in_stream(url, settings) == expected

        await wait_for(caught_up)
    finally:
        for adapter in adapters:
            await adapter.stop()
        for engine in engines:
            await engine.close()


async def test_engines_starting_at_once_on_one_store_all_start(durable_store_url, tmp_path):
    with NatsServer(tmp_path / "nats") as broker:
        for _ in range(2):
            # A new stream, created by whichever engine comes first
            settings = unique_settings()
            await start_together(durable_store_url, broker.url, settings, 3)

            # An old unlabelled stream, adopted by all of them at once
            await unlabel(broker.url, settings.events_stream)
            await start_together(durable_store_url, broker.url, settings, 3)
            assert await stream_label(broker.url, settings.events_stream) is not None


async def test_engines_of_two_stores_starting_at_once_one_is_refused(two_stores, tmp_path):
    with NatsServer(tmp_path / "nats") as broker:
        for _ in range(3):
            settings = unique_settings()
            engines = [Engine(store) for store in two_stores]
            await asyncio.gather(*(e.start() for e in engines))
            adapters = [NatsAdapter(e, broker.url, settings=settings) for e in engines]
            try:
                outcomes = await asyncio.gather(
                    *(a.start() for a in adapters), return_exceptions=True
                )
                refused = [o for o in outcomes if isinstance(o, StreamMismatchError)]
                assert len(refused) == 1, outcomes
                assert outcomes.count(None) == 1, outcomes
            finally:
                for adapter in adapters:
                    await adapter.stop()
                for engine in engines:
                    await engine.close()


async def test_a_running_relay_stops_when_another_store_takes_the_stream(two_stores, tmp_path):
    store_a, store_b = two_stores
    settings = unique_settings()
    with NatsServer(tmp_path / "nats") as broker:
        async with served(store_a, broker.url, settings, cleanup=False) as a:
            await request_approvals(a, 2)
            await relayed(a)

            # Store B resets the stream while A still runs
            reset = dataclasses.replace(settings, reset_events=True)
            async with served(store_b, broker.url, reset, cleanup=False) as b:
                await request_approvals(b, 1)
                published_b = await relayed(b)

                # A's next event does not land in B's stream: A's relay stops and says why
                await request_approvals(a, 1)
                relay = a.adapter.relay
                assert relay is not None

                async def stopped() -> bool:
                    return relay.failure is not None

                await wait_for(stopped)
                assert isinstance(relay.failure, StreamMismatchError)
                assert await in_stream(broker.url, settings) == published_b


@pytest.mark.slow
async def test_serve_on_a_new_store_says_so_in_one_line_and_exits_2(tmp_path):
    port = free_port()

    def serve(db: str, *extra: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                *(sys.executable, "-m", "signoff", "serve", "--store", f"sqlite:///{db}"),
                *("--data-dir", str(tmp_path / "nats"), "--nats-port", str(port)),
                *("--views", "thread", *extra),
            ],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
        )

    async def request_approval() -> str:
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        try:
            body = orjson.dumps({"title": "t", "requested_by": "carol"})
            reply = orjson.loads((await nc.request("signoff.approval.request", body, 10)).data)
            return str(reply["result"]["id"])
        finally:
            await nc.close()

    def stop(process: subprocess.Popen[bytes]) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(30)

    processes: list[subprocess.Popen[bytes]] = []
    try:
        # serve on store A publishes an event, then stops (its bundled broker keeps its data)
        processes.append(first := serve(str(tmp_path / "a.db")))
        wait_for_line(first, "signoff serving")
        await request_approval()
        assert stop(first) == 0

        # serve on a new store B: one line that says what is wrong and the way out, exit 2
        processes.append(refused := serve(str(tmp_path / "b.db")))
        _, err = refused.communicate(timeout=60)
        output = err.decode()
        assert refused.returncode == 2, output
        assert "Traceback" not in output
        [line] = [line for line in output.splitlines() if "SIGNOFF_EVENTS" in line]
        assert "mirrors store" in line
        assert "--streams" in line
        assert "--reset-events" in line

        # serve with --reset-events starts on B, and the stream then holds B's events
        processes.append(reset := serve(str(tmp_path / "b.db"), "--reset-events"))
        wait_for_line(reset, "signoff serving")
        approval_id = await request_approval()
        assert stop(reset) == 0
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    with NatsServer(tmp_path / "nats", port=port) as broker:
        settings = NatsSettings()
        assert [a for _, a, _ in await in_stream(broker.url, settings)] == [approval_id]
