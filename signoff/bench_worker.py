"""An engine process of the fleet benchmarks (``signoff.bench_fleet`` starts several on one
store): ``python -m signoff.bench_worker STORE [--lease S] [--poll S]``.

It takes orders as JSON lines on stdin and answers with JSON lines on stdout, so that
each engine starts and approves its own share of the runs in its own interpreter:

- ``{"do": "start", "first": i, "count": n}``: starts n expense runs (amounts i+1 ...),
  waits until each waits for approval; answers ``{"waiting": n}``;
- ``{"do": "approve"}``: approves the runs it started, waits until they complete;
  answers ``{"complete": n, "cpu": s}``, this process's CPU seconds since ``start``;
- ``{"do": "count"}``: answers ``{"count": c}``, the complete runs in the store;
- ``{"do": "hold", "count": m}``: starts m holding runs; answers ``{"holding": m}``;
- ``{"do": "stop"}``: closes the engine (its leases are released) and exits.

Each time a holding step starts here it says ``{"step": run_id, "at": unix time}``. The
end of stdin stops it too, so a driver that dies, even by SIGKILL, leaves no engine
behind.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
import time
from typing import Any

from signoff.bench_workflows import HOLD_STEP, ExpenseWorkflow, HoldingWorkflow
from signoff.engine import Engine


def say(**message: Any) -> None:
    """Answers the driver (one JSON line on stdout)."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def tell_holds(run_id: str, _generation: int, step: str, _attempt: int) -> None:
    """The step observer: reports when a holding step starts executing in this process."""
    if step == HOLD_STEP:
        say(step=run_id, at=time.time())


class Orders:
    """Carries out the driver's orders on one started engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.runs: list[str] = []
        self.cpu = 0.0

    async def start(self, first: int, count: int) -> None:
        self.cpu = time.process_time()
        self.runs = await asyncio.gather(
            *(
                self.engine.run_workflow(ExpenseWorkflow.name, {"amount": i + 1})
                for i in range(first, first + count)
            )
        )
        await self.engine.settle()
        say(waiting=len(self.runs))

    async def approve(self) -> None:
        await asyncio.gather(*(self.engine.approve_workflow(i, by="alice") for i in self.runs))
        await self.engine.settle()
        say(complete=len(self.runs), cpu=time.process_time() - self.cpu)

    async def count(self) -> None:
        page = await self.engine.get_workflows(status="complete", limit=1)
        say(count=page.total)

    async def hold(self, count: int) -> None:
        await asyncio.gather(
            *(self.engine.run_workflow(HoldingWorkflow.name, {}) for _ in range(count))
        )
        say(holding=count)

    async def __call__(self, order: dict[str, Any]) -> None:
        """Carries out one order."""
        match order["do"]:
            case "start":
                await self.start(order["first"], order["count"])
            case "approve":
                await self.approve()
            case "count":
                await self.count()
            case "hold":
                await self.hold(order["count"])
            case other:
                raise ValueError(f"unknown order {other!r}")


def read_orders(
    loop: asyncio.AbstractEventLoop,
    orders: asyncio.Queue[dict[str, Any]],
    serving: asyncio.Task[Any],
) -> None:
    """Puts each order read from stdin on ``orders``; at the end of stdin (the driver is
    gone) cancels ``serving``, whatever it is doing. A daemon thread: a blocked read never
    holds the process up."""
    for line in sys.stdin:
        loop.call_soon_threadsafe(orders.put_nowait, json.loads(line))
    with contextlib.suppress(RuntimeError):  # the loop closed: the process is ending
        loop.call_soon_threadsafe(serving.cancel)


async def serve(store: str, *, lease: float, poll: float) -> None:
    """Runs the engine and carries out orders until ``stop`` or the end of stdin."""
    engine = Engine(store, lease=lease, poll_interval=poll)
    engine.register(ExpenseWorkflow)
    engine.register(HoldingWorkflow)
    engine.step_observer = tell_holds
    orders: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    serving = asyncio.current_task()
    assert serving is not None
    loop = asyncio.get_running_loop()
    threading.Thread(target=read_orders, args=(loop, orders, serving), daemon=True).start()
    async with engine:
        carry_out = Orders(engine)
        say(ready=os.getpid())
        while (order := await orders.get())["do"] != "stop":
            await carry_out(order)


def main() -> None:
    """Parses the command line and serves."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("store")
    parser.add_argument("--lease", type=float, default=30.0, help="run lease, seconds")
    parser.add_argument("--poll", type=float, default=0.1, help="poll interval, seconds")
    args = parser.parse_args()
    with contextlib.suppress(asyncio.CancelledError):  # stdin ended: the driver is gone
        asyncio.run(serve(args.store, lease=args.lease, poll=args.poll))


if __name__ == "__main__":
    main()
