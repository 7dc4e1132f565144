"""Several engine processes on one PostgreSQL schema (part of ``make bench``).

- expense cycles with k engine processes: the in-process ``expense cycle`` benchmark
  (N runs started and all waiting for approval, then all approved and complete), the
  same N runs spread over k processes of ``signoff.bench_worker``; cycles/s is N over
  the time from the start orders to the last completion, and the CPU per cycle is that
  of the engine processes together (not PostgreSQL's). Each k, and the in-process
  figure it is compared with, runs on a fresh schema.
- takeover: two engine processes with a short lease; A executes M runs whose step takes
  an hour, A is SIGKILLed, and each run's wait is the time from the kill until its step
  starts again on B. B finds them by polling once their leases ran out, so the wait is
  the lease A had left (up to a whole lease, as A renews every third of one) plus up to
  a poll interval, plus the claim and the replay.

How the work is spread: each engine process starts its share of the runs and approves
them itself when the driver tells it to, one order per process and phase over a pipe. A
command readies its run on the engine that took it, which claims the run in the same
transaction and executes it, so the work spreads with the commands as behind a load
balancer. A driver sending every command over NATS (a queue group) would put its
clients and the broker on the critical path, on the same cores, with a round trip per
command: the figure would measure them as much as the engines (the NATS line of
``make bench`` measures that path).
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

import psycopg
from psycopg import sql

from signoff.adapters.persistence import parse_store_url
from signoff.bench_processes import EngineProcess, EngineProcessError, engine_processes
from signoff.bench_support import postgres_store, report

FreshStore = Callable[[], AbstractContextManager[str]]
"""Gives the URL of an empty store, removed on exit."""
InProcess = Callable[[str, int], Awaitable[dict[str, float]]]
"""The in-process expense benchmark (``signoff.bench.expense_cycles``)."""


def _shares(n: int, k: int) -> list[tuple[int, int]]:
    """Splits runs 0 .. n-1 into k consecutive shares: (first, count) each."""
    counts = [n // k + (1 if i < n % k else 0) for i in range(k)]
    return [(sum(counts[:i]), c) for i, c in enumerate(counts)]


async def _all_complete(engine: EngineProcess, n: int, seen: float) -> float:
    """When all ``n`` runs were complete: ``seen``, unless some run had moved to another
    engine and was still executing; then the moment the count reached ``n``."""
    deadline = time.monotonic() + 120
    while True:
        await engine.order("count")
        if (await engine.answer("count"))[0]["count"] >= n:
            return seen
        if time.monotonic() > deadline:
            raise EngineProcessError(f"fewer than {n} runs complete after two minutes")
        await asyncio.sleep(0.05)
        seen = time.perf_counter()


async def cycles_on(store: str, n: int, k: int) -> tuple[float, float]:
    """Runs ``n`` expense cycles over ``k`` engine processes; returns cycles/s and the
    engine processes' CPU µs per cycle."""
    async with engine_processes(store, k) as engines:
        started = time.perf_counter()
        for engine, (first, count) in zip(engines, _shares(n, k), strict=True):
            await engine.order("start", first=first, count=count)
        await asyncio.gather(*(e.answer("waiting") for e in engines))
        for engine in engines:
            await engine.order("approve")
        answers = await asyncio.gather(*(e.answer("complete") for e in engines))
        done = await _all_complete(engines[0], n, time.perf_counter())
    cpu = sum(answer[0]["cpu"] for answer in answers)
    return n / (done - started), cpu / n * 1e6


async def fleet_cycles(
    fresh_store: FreshStore, n: int, engines: list[int], *, in_process: InProcess | None = None
) -> dict[str, float]:
    """Expense cycles/s in one process (if ``in_process``), then with each number of
    engine processes in ``engines``, and the CPU per cycle of each."""
    rates: dict[str, float] = {}
    cpu: dict[str, float] = {}
    if in_process is not None:
        with fresh_store() as store:
            figures = await in_process(store, n)
        rates["in-process/s"] = figures["cycles/s"]
        cpu["CPU µs/cycle in-process"] = figures["engine CPU µs/cycle"]
    for k in engines:
        label = f"{k} proc{'s' if k > 1 else ''}"
        with fresh_store() as store:
            rates[f"{label}/s"], cpu[f"CPU {label}"] = await cycles_on(store, n, k)
    return {**rates, **cpu}


def _lease_ends(store: str) -> list[float]:
    """When the held runs' leases end, in the database's clock (which is this host's: the
    run index's ``lease_until`` column, read directly, as no API shows it)."""
    schema = parse_store_url(store).schema or "public"
    query = sql.SQL("SELECT lease_until FROM {}.signoff_runs WHERE lease_until IS NOT NULL")
    with psycopg.connect(store.split("?", 1)[0]) as conn:
        rows = conn.execute(query.format(sql.Identifier(schema))).fetchall()
    return [float(row[0]) for row in rows]


async def takeover(
    fresh_store: FreshStore, runs: int, *, lease: float = 2.0, poll: float = 0.1
) -> dict[str, float]:
    """Seconds from SIGKILLing an engine executing ``runs`` runs until another engine
    starts executing each of them (p50, max), beside the lease and what was left of it."""
    with fresh_store() as store:
        async with engine_processes(store, 2, lease=lease, poll=poll) as (a, b):
            # A starts the runs and executes them; B polls for ready runs nobody holds
            await a.order("hold", count=runs)
            await a.answer("step", count=runs)
            await asyncio.sleep(lease)  # A has renewed its leases since it claimed them
            killed = time.time()
            a.kill()
            await a.process.wait()
            left = max(_lease_ends(store)) - killed
            taken = await b.answer("step", count=runs, timeout=3 * lease + 60)
    waits = sorted(message["at"] - killed for message in taken)
    figures = {
        "lease s": lease,
        "poll s": poll,
        "left at kill s": left,
        "p50 s": statistics.median(waits),
        "max s": waits[-1],
        "p50 past left ms": (statistics.median(waits) - left) * 1000,
    }
    early = sum(1 for wait in waits if wait < 0)
    if early:  # A missed a renewal (a starved machine): B took runs before the kill
        figures["taken before kill"] = early
    return figures


async def run(
    stores: list[str],
    *,
    n: int,
    engines: list[int],
    runs: int,
    lease: float,
    in_process: InProcess,
) -> None:
    """The fleet benchmarks, on PostgreSQL only (one line each)."""
    if "postgres" not in stores:
        return
    if engines:
        counts = "/".join(str(k) for k in engines)
        plural = "es" if engines != [1] else ""
        report(
            f"expense cycle x{n}, {counts} engine process{plural} [postgres]",
            await fleet_cycles(postgres_store, n, engines, in_process=in_process),
        )
    if runs:
        report(
            f"takeover of {runs} runs, SIGKILL [postgres]",
            await takeover(postgres_store, runs, lease=lease),
        )
