"""``make bench``: throughput and memory figures on the real stores (printed, never asserted).

Usage: python -m signoff.bench [--n N] [--waiting W] [--schedules S] [--audit A]
                               [--stores sqlite,postgres] [--engines 1,2,3]
                               [--takeover-runs M] [--lease SECONDS] [--skip-fleet]

- approvals: request N standalone approvals, then approve them all.
- expense cycle (the seed's ExpenseWorkflow): start N runs -> validate step ->
  wait for approval; then approve all -> process step -> complete. All N runs
  are started first, then all approved, as the issue asks. Measured twice: with
  the views kept live on a thread of the engine, and by a worker process
  (``Engine(views="process")``).
- memory: RSS of the process with W runs waiting for approval (SQLite).
- timer lateness: with S one-shot schedules pending an hour ahead (SQLite, real
  clock, poll interval 0.05 s), how late 200 schedules due over ~5 s fire
  (callback time minus due time), and the RSS before and after creating the S.
- audit chain: the hashing each stored event costs on the write path (µs), and
  how fast ``signoff audit verify`` checks a store of about A events (events/s).
- several engine processes on one PostgreSQL schema (signoff.bench_fleet): expense
  cycles/s with 1, 2 and 3 engine processes (--engines), beside the in-process figure;
  and how long the runs of an engine killed with SIGKILL wait for another engine
  (M runs, --lease seconds).
- NATS (signoff.nats_bench; --nats URL, default a bundled nats-server): approvals
  decided over request/reply by C concurrent clients (decisions/s), and the approve
  reply latency p50/p99 at a fixed offered load (--nats-rate per second, open loop).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from signoff import bench_fleet, bench_views
from signoff.bench_support import postgres_store, report
from signoff.bench_workflows import ExpenseWorkflow
from signoff.engine import Engine
from signoff.nats_bench import nats_figures


async def approval_cycles(store: str, n: int) -> dict[str, float]:
    """Requests ``n`` approvals, then approves them all; returns the rates."""
    async with Engine(store) as engine:
        started = time.perf_counter()
        ids = await asyncio.gather(
            *(engine.request_approval(title=f"bench {i}", requested_by="carol") for i in range(n))
        )
        requested = time.perf_counter()
        await asyncio.gather(*(engine.approve(i, by="alice") for i in ids))
        approved = time.perf_counter()
    return {
        "requests/s": n / (requested - started),
        "approvals/s": n / (approved - requested),
        "cycles/s": n / (approved - started),
    }


async def expense_cycles(store: str, n: int, views: str = "thread") -> dict[str, float]:
    """Runs ``n`` expense cycles: all started and waiting, then all approved and complete
    (``views``: where the engine keeps its views live, see ``Engine``)."""
    async with Engine(store, views=views) as engine:
        engine.register(ExpenseWorkflow)
        started, cpu = time.perf_counter(), time.process_time()
        ids = await asyncio.gather(
            *(engine.run_workflow("bench-expense", {"amount": i + 1}) for i in range(n))
        )
        await engine.settle()
        waiting = time.perf_counter()
        await asyncio.gather(*(engine.approve_workflow(i, by="alice") for i in ids))
        await engine.settle()
        done, cpu = time.perf_counter(), time.process_time() - cpu
        last = await engine.get_workflow(ids[-1])
        assert last.status == "complete", last.status
    return {
        "start->waiting/s": n / (waiting - started),
        "approve->complete/s": n / (done - waiting),
        "cycles/s": n / (done - started),
        "engine CPU µs/cycle": cpu / n * 1e6,
    }


def rss_mib() -> float:
    """Resident memory of this process, in MiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def waiting_memory(store: str, n: int) -> dict[str, float]:
    """Starts ``n`` runs that wait for approval; reports memory before and after."""
    async with Engine(store) as engine:
        engine.register(ExpenseWorkflow)
        gc.collect()
        before = rss_mib()
        for first in range(0, n, 5000):
            await asyncio.gather(
                *(
                    engine.run_workflow("bench-expense", {"amount": i + 1})
                    for i in range(first, min(n, first + 5000))
                )
            )
            await engine.settle()
        gc.collect()
        after = rss_mib()
        page = await engine.get_workflows(status="waiting", limit=1)
    return {
        "waiting runs": page.total,
        "RSS before MiB": before,
        "RSS after MiB": after,
        "KiB per waiting run": (after - before) * 1024 / max(1, page.total),
    }


async def timer_lateness(store: str, pending: int, timed: int = 200) -> dict[str, float]:
    """Creates ``pending`` one-shot schedules due in an hour, then ``timed`` due over the
    next ~5 s; reports how late the ``timed`` ones fire and the memory the pending cost."""
    late: list[float] = []

    def stamp(payload: Any, _engine: Engine) -> None:
        late.append(time.time() - payload["due"])

    async with Engine(store, poll_interval=0.05) as engine:
        engine.register_callback("bench-stamp", stamp)
        gc.collect()
        before = rss_mib()
        created = time.perf_counter()
        in_an_hour = engine.clock.now() + timedelta(hours=1)
        for first in range(0, pending, 5000):
            await asyncio.gather(
                *(
                    engine.schedule(in_an_hour, "bench-stamp", {"due": 0, "n": i})
                    for i in range(first, min(pending, first + 5000))
                )
            )
        created = time.perf_counter() - created
        gc.collect()
        after = rss_mib()

        start = engine.clock.now() + timedelta(seconds=1)
        dues = [start + timedelta(seconds=5 * i / timed) for i in range(timed)]
        await asyncio.gather(
            *(engine.schedule(d, "bench-stamp", {"due": d.timestamp()}) for d in dues)
        )
        deadline = time.time() + 30
        while len(late) < timed and time.time() < deadline:
            await asyncio.sleep(0.05)
    assert len(late) == timed, f"{len(late)} of {timed} schedules fired"
    ms = sorted(1000 * x for x in late)
    return {
        "pending": pending,
        "created/s": pending / max(created, 1e-9),
        "RSS before MiB": before,
        "RSS after MiB": after,
        "lateness p50 ms": statistics.median(ms),
        "p99 ms": ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))],
        "max ms": ms[-1],
    }


async def audit_chain(store: str, events: int) -> dict[str, float]:
    """Hashing cost per event, then the verify rate over ~``events`` stored events."""
    from signoff.chain import chainer_from_env
    from signoff.cli_audit import check

    state = os.urandom(600)  # about the size of a stored Requested event
    topic = "signoff.domain.approval:Approval.Requested"
    batch = [(i, f"approval-{i}", 1, topic, state) for i in range(1, 10_001)]
    started = time.perf_counter()
    chainer_from_env().extend((0, bytes(32)), batch)
    hashing = (time.perf_counter() - started) / len(batch)
    await approval_cycles(store, max(events // 3, 1))  # three events per cycle
    started = time.perf_counter()
    report = check(store, None)
    elapsed = time.perf_counter() - started
    if not report.ok:
        raise RuntimeError(f"the benchmark's own store does not verify: {report.first}")
    return {"hash µs/event": hashing * 1e6, "verify events/s": report.events / elapsed}


async def _on_stores(
    stores: list[str], label: str, bench: Callable[[str], Awaitable[dict[str, float]]]
) -> None:
    for kind in stores:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                report(f"{label} [sqlite]", await bench(f"sqlite:///{tmp}/bench.db"))
        elif kind == "postgres":
            with postgres_store() as store:
                report(f"{label} [postgres]", await bench(store))
        else:
            report(f"{label} [memory]", await bench("memory://"))


def main() -> None:
    """Runs every benchmark and prints one line of figures each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--waiting", type=int, default=100_000)
    parser.add_argument("--schedules", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=30_000, help="events to verify (0: skip)")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--events", type=int, default=60_000, help="events for the rebuild rate")
    parser.add_argument("--nats", default="", help="NATS URL (default: a bundled nats-server)")
    parser.add_argument("--nats-clients", type=int, default=32)
    parser.add_argument("--nats-rate", type=float, default=500.0)
    parser.add_argument("--skip-nats", action="store_true")
    parser.add_argument("--engines", default="1,2,3", help="engine processes to compare")
    parser.add_argument("--takeover-runs", type=int, default=100, help="runs taken over (0: skip)")
    parser.add_argument("--lease", type=float, default=2.0, help="run lease of the takeover, s")
    parser.add_argument("--skip-fleet", action="store_true", help="no engine processes")
    args = parser.parse_args()
    stores = args.stores.split(",")

    async def everything() -> None:
        await _on_stores(
            stores, f"approvals request+approve x{args.n}", lambda s: approval_cycles(s, args.n)
        )
        await _on_stores(stores, f"expense cycle x{args.n}", lambda s: expense_cycles(s, args.n))
        await _on_stores(
            [kind for kind in stores if kind != "memory"],
            f"expense cycle x{args.n}, views in a worker",
            lambda s: expense_cycles(s, args.n, views="process"),
        )
        if not args.skip_fleet:
            await bench_fleet.run(
                stores,
                n=args.n,
                engines=[int(k) for k in args.engines.split(",") if k],
                runs=args.takeover_runs,
                lease=args.lease,
                in_process=expense_cycles,
            )
        if args.waiting:
            await _on_stores(
                ["sqlite"],
                f"memory, {args.waiting} runs waiting",
                lambda s: waiting_memory(s, args.waiting),
            )
        if args.schedules:
            await _on_stores(
                ["sqlite"],
                f"timer lateness, {args.schedules} pending",
                lambda s: timer_lateness(s, args.schedules),
            )
        if args.audit:
            await _on_stores(
                [kind for kind in stores if kind != "memory"],
                f"audit chain, ~{args.audit} events",
                lambda s: audit_chain(s, args.audit),
            )

        await bench_views.run(stores, args.events, _on_stores)
        if not args.skip_nats:
            await nats_figures(
                stores,
                args.nats or None,
                n=args.n,
                clients=args.nats_clients,
                rate=args.nats_rate,
                on_stores=_on_stores,
            )

    asyncio.run(everything())


if __name__ == "__main__":
    main()
