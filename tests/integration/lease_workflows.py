"""Workflows of the run-lease tests (also run by ``lease_worker.py`` in a process of its
own): a step that takes a while, and a step that waits for the test's say-so."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from signoff.step import Step
from signoff.workflow import Workflow, WorkflowEvent

SLOW_SECONDS = "SIGNOFF_TEST_SLOW_SECONDS"
"""How long a slow step takes in this process (a worker that is to die holds it long)."""


async def slow() -> int:
    """Sleeps for the process's slow-step time."""
    await asyncio.sleep(float(os.environ.get(SLOW_SECONDS, "0")))
    return os.getpid()


class Slow(Workflow):
    """One slow step; returns the pid of the process that ran it."""

    name = "slow"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        return await step.do("slow", slow)


class Gated(Workflow):
    """One step that waits until the test opens the gate of its run."""

    name = "gated"
    gates: dict[str, asyncio.Event] = {}

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        async def through_the_gate() -> str:
            await self.gates.setdefault(event.id, asyncio.Event()).wait()
            return "passed"

        return await step.do("gate", through_the_gate)
