"""Benchmarks of the views (part of ``make bench``): rebuild rate and live lag.

- rebuild: with E events stored (approvals requested, voted on and decided, and
  expense workflow runs to completion), how many events a second rebuilding each
  view reads and applies, and all three at once (the better of two runs each).
- live lag: approvals requested at a steady rate; the time from the request's
  commit (its call returned) to the inbox row reaching a ``watch`` subscriber,
  for a subscriber on the same engine (woken by the commit) and one on another
  engine (woken by PostgreSQL's NOTIFY, or by polling on SQLite).
"""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from typing import Any

from signoff.bench_workflows import ExpenseWorkflow
from signoff.engine import Engine


async def _fill(engine: Engine, events: int) -> int:
    """Stores at least ``events`` events, about half from standalone approvals (requested,
    voted on, decided) and half from the seed's expense workflow run to completion."""
    engine.register(ExpenseWorkflow)
    batch = 250
    while (engine.application.recorder.max_notification_id() or 0) < events:
        ids = await asyncio.gather(
            *(
                engine.request_approval(
                    title=f"r{i}", requested_by="carol", context={"amount": i}, required_approvals=2
                )
                for i in range(batch)
            )
        )
        await asyncio.gather(*(engine.approve(a, by="alice") for a in ids))
        await asyncio.gather(*(engine.approve(a, by="bob") for a in ids[: batch // 2]))
        await asyncio.gather(*(engine.reject(a, by="dave") for a in ids[batch // 2 :]))
        runs = await asyncio.gather(
            *(engine.run_workflow("bench-expense", {"amount": i + 1}) for i in range(batch // 2))
        )
        await engine.settle()
        await asyncio.gather(*(engine.approve_workflow(r, by="alice") for r in runs))
        await engine.settle()
    return int(engine.application.recorder.max_notification_id() or 0)


async def rebuild_rate(store: str, events: int) -> dict[str, float]:
    """Events per second rebuilding each view from scratch."""
    async with Engine(store) as writer:
        stored = await _fill(writer, events)
    engine = Engine(store)  # not started: nothing else runs while the rebuilds are timed
    try:
        runner = engine.read_models.runner
        figures: dict[str, float] = {"events": float(stored)}
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, runner.catch_up)  # warm: the views exist, as in use

        def all_views() -> None:
            for view in runner.projections:
                runner.reset(view)
            runner.catch_up()

        jobs: dict[str, Any] = {
            **{name: functools.partial(runner.rebuild, name) for name in runner.projections},
            "all": all_views,
        }
        for name, job in jobs.items():
            best = 0.0
            for _ in range(2):  # the better of two runs: the machine is shared
                started = time.perf_counter()
                await loop.run_in_executor(None, job)
                best = max(best, stored / (time.perf_counter() - started))
            figures[f"{name} ev/s"] = best
        return figures
    finally:
        await engine.close()


async def live_lag(store: str, count: int = 300, rate: float = 100.0) -> dict[str, float]:
    """Milliseconds from an approval's commit to its inbox row reaching watchers."""
    async with Engine(store) as writer, Engine(store) as other:
        committed: dict[str, float] = {}
        lags: dict[str, list[float]] = {"same": [], "other": []}
        done = {"same": asyncio.Event(), "other": asyncio.Event()}

        async def watch(engine: Engine, label: str) -> None:
            seen: set[str] = set()
            async for change in engine.watch("approvals"):
                now = time.perf_counter()
                title = (change.row or {}).get("title", "")
                if change.key in seen or not title.startswith("lag-"):
                    continue
                seen.add(change.key)
                while title not in committed:  # its request call has not returned yet
                    await asyncio.sleep(0)
                lags[label].append(max(0.0, now - committed[title]) * 1000)
                if len(lags[label]) >= count:
                    done[label].set()
                    return

        watchers = [
            asyncio.create_task(watch(writer, "same")),
            asyncio.create_task(watch(other, "other")),
        ]
        await asyncio.sleep(0.2)
        for i in range(count):
            await writer.request_approval(title=f"lag-{i}", requested_by="carol")
            committed[f"lag-{i}"] = time.perf_counter()
            await asyncio.sleep(1 / rate)
        try:
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in done.values())), 30)
        finally:
            for task in watchers:
                task.cancel()
        figures: dict[str, Any] = {}
        for label, values in lags.items():
            values.sort()
            figures[f"{label} p50 ms"] = statistics.median(values)
            figures[f"{label} p99 ms"] = values[int(0.99 * (len(values) - 1))]
        return figures


async def run(stores: list[str], events: int, on_stores: Any) -> None:
    """The views' benchmarks on each store (``on_stores`` reports one line per store)."""
    if events:
        await on_stores(
            stores, f"views rebuild, {events} events", lambda s: rebuild_rate(s, events)
        )
    await on_stores(stores, "views live lag (100 approvals/s)", live_lag)
