"""The NATS part of ``make bench``: decisions per second through request/reply with
concurrent clients, and approve-reply latency at a fixed offered load (open loop)."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import nats

from signoff.adapters.nats import NatsAdapter, NatsSettings
from signoff.adapters.nats.server import NatsServer
from signoff.client import SignoffClient
from signoff.engine import Engine

OnStores = Callable[[list[str], str, Callable[[str], Awaitable[dict[str, float]]]], Awaitable[None]]


def _settings() -> NatsSettings:
    tag = uuid.uuid4().hex[:8]
    return NatsSettings(
        prefix=f"bench{tag}",
        events_stream=f"BENCH{tag}_EVENTS",
        commands_stream=f"BENCH{tag}_COMMANDS",
        dead_stream=f"BENCH{tag}_DEAD",
    )


def _percentile(ms: list[float], q: float) -> float:
    return ms[min(len(ms) - 1, round(q * (len(ms) - 1)))]


async def nats_decisions(
    store: str, url: str, *, n: int, clients: int, rate: float, seconds: float = 5.0
) -> dict[str, float]:
    """Approves ``n`` approvals over NATS with ``clients`` concurrent clients, then
    offers ``rate`` approvals per second for ``seconds`` and measures each reply."""
    settings = _settings()
    offered = int(rate * seconds)
    async with Engine(store) as engine, NatsAdapter(engine, url, settings=settings):
        ids = await asyncio.gather(
            *(engine.request_approval(title=f"b{i}", requested_by="c") for i in range(n + offered))
        )
        connections = [await nats.connect(url) for _ in range(clients)]
        pool = [SignoffClient(nc, prefix=settings.prefix, timeout=30) for nc in connections]

        async def decide(client: SignoffClient, mine: list[str]) -> None:
            for approval_id in mine:
                await client.approve(approval_id, by="alice")

        started = time.perf_counter()
        await asyncio.gather(*(decide(c, ids[k:n:clients]) for k, c in enumerate(pool)))
        decided = time.perf_counter() - started

        latencies: list[float] = []

        async def timed(client: SignoffClient, approval_id: str) -> None:
            sent = time.perf_counter()
            await client.approve(approval_id, by="alice")
            latencies.append(1000 * (time.perf_counter() - sent))

        tasks: list[asyncio.Task[Any]] = []
        begin = time.perf_counter()
        for i, approval_id in enumerate(ids[n:]):
            delay = begin + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(timed(pool[i % clients], approval_id)))
        await asyncio.gather(*tasks)
        for nc in connections:
            await nc.close()
        admin = await nats.connect(url)
        for stream in (settings.events_stream, settings.commands_stream, settings.dead_stream):
            await admin.jetstream().delete_stream(stream)
        await admin.close()
    ms = sorted(latencies)
    return {
        "decisions/s": n / decided,
        "clients": clients,
        "offered/s": rate,
        "p50 ms": statistics.median(ms),
        "p99 ms": _percentile(ms, 0.99),
    }


async def nats_figures(
    stores: list[str],
    url: str | None,
    *,
    n: int,
    clients: int,
    rate: float,
    on_stores: OnStores,
) -> None:
    """Runs the NATS benchmark on each store, against ``url`` or a bundled broker."""
    with tempfile.TemporaryDirectory() as tmp:
        server = None if url else NatsServer(f"{tmp}/nats").start()
        target = url or (server.url if server else "")
        try:
            await on_stores(
                stores,
                f"NATS approve x{n}, {clients} clients",
                lambda s: nats_decisions(s, target, n=n, clients=clients, rate=rate),
            )
        finally:
            if server is not None:
                server.stop()
