"""The workflow of the several-engines tests (loaded by ``signoff serve --workflows``): its
steps append one line per execution to a log file before doing anything else, so that a
test can count executions across processes that are killed at any moment."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
from typing import Any

from signoff.step import Step
from signoff.workflow import Workflow, WorkflowEvent


def log_execution(path: str, run_id: str, step: str) -> None:
    """Appends ``<run> <step> <pid> <unix time>`` and syncs it (one write: lines from many
    processes never interleave)."""
    line = f"{run_id} {step} {os.getpid()} {time.time():.6f}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


async def work(path: str, run_id: str, step: str) -> int:
    """A step with a side effect (the log line) that takes a while (so that kills land
    inside steps, too)."""
    log_execution(path, run_id, step)
    await asyncio.sleep(random.uniform(0.0, 0.05))
    return 1


class Counted(Workflow):
    """Validate, wait for a person's approval, process."""

    name = "counted"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        log = event.payload["log"]
        validated = await step.do("validate", functools.partial(work, log, event.id, "validate"))
        await self.report_progress({"step": "approval"})
        approval = await self.wait_for_approval(step, timeout="1 day", title="fleet")
        processed = await step.do("process", functools.partial(work, log, event.id, "process"))
        return {"steps": validated + processed, "approved": approval is not None}
