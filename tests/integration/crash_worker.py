"""A workflow engine process for the crash test: killed with SIGKILL at random points.

Usage: python crash_worker.py STORE_URL LOG_FILE
Every step execution appends "<run> <step> <unix time>" to LOG_FILE (fsynced)
before doing anything else, so the test can count executions.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import sys
import time
from typing import Any

from signoff import Engine, Step, Workflow, WorkflowEvent


def log_execution(path: str, run_id: str, step: str) -> None:
    with open(path, "a") as log:
        log.write(f"{run_id} {step} {time.time():.6f}\n")
        log.flush()
        os.fsync(log.fileno())


class Crashy(Workflow):
    name = "crashy"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        log = event.payload["log"]
        total = 0

        async def work(name: str) -> int:
            log_execution(log, event.id, name)
            await asyncio.sleep(random.uniform(0.01, 0.2))
            return 1

        for name in ("a", "b"):
            total += await step.do(name, functools.partial(work, name))
        await self.report_progress({"before": "approval", "total": total})
        decision = await self.wait_for_approval(step, timeout="1 day", title="crash test")
        for name in ("c", "d"):
            total += await step.do(name, functools.partial(work, name))
        return {"total": total, "approved_by": (decision or {}).get("by")}


async def main(store: str) -> None:
    # A short lease: the runs a killed worker held resume two seconds later.
    engine = Engine(store, poll_interval=0.02, lease="2 seconds")
    engine.register(Crashy)
    async with engine:
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
