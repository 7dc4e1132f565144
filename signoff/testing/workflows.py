"""Testing workflows: skip time, restart the engine, and check replays.

``WorkflowEnvironment`` runs an Engine on a ManualClock, so that a 7-day
timeout is tested in milliseconds (like Temporal's time-skipping
environment). It counts every step execution, can restart the engine on the
same store, and checks that every run and approval the engine holds in
memory equals its replay from the stored events.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from signoff.clock import ManualClock
from signoff.domain.base import SignoffAggregate
from signoff.engine import Engine
from signoff.testing.replay import assert_replays, assert_timers_indexed
from signoff.workflow import Workflow


class WorkflowEnvironment:
    """An Engine on a ManualClock, with helpers for tests.

    Args:
        workflows: the Workflow classes to register.
        store: an event store URL; by default a fresh SQLite file (so that
            ``restart`` keeps the history).
        start: the ManualClock's start time.

    Use it as ``async with WorkflowEnvironment(MyWorkflow) as env: ...``.
    """

    def __init__(
        self, *workflows: type[Workflow], store: str | None = None, start: datetime | None = None
    ) -> None:
        self.workflows = workflows
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if store is None:
            self._tmp = tempfile.TemporaryDirectory()
            store = f"sqlite:///{Path(self._tmp.name) / 'events.db'}"
        self.store = store
        self.clock = ManualClock(start)
        self.executions: Counter[tuple[str, int, str, int]] = Counter()
        """How often each step attempt ran: (run id, generation, step, attempt) -> count."""
        self.engine = self._new_engine()

    def _new_engine(self) -> Engine:
        engine = Engine(self.store, clock=self.clock, poll_interval=0.01)
        for workflow in self.workflows:
            engine.register(workflow)
        engine.step_observer = self._count
        return engine

    def _count(self, run_id: str, generation: int, step: str, attempt: int) -> None:
        self.executions[(run_id, generation, step, attempt)] += 1

    async def __aenter__(self) -> WorkflowEnvironment:
        await self.engine.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.engine.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    async def settle(self) -> None:
        """Lets every ready run go on until it waits, completes or errors."""
        await self.engine.settle()

    async def sleep(self, duration: str | float | timedelta) -> None:
        """Skips ``duration`` of time and lets due timers fire and runs go on."""
        self.clock.advance(duration)
        await self.engine.settle()

    async def restart(self) -> None:
        """Closes the engine and opens a new one on the same store (a process restart)."""
        await self.engine.close()
        self.engine = self._new_engine()
        await self.engine.start()

    def assert_no_step_ran_twice(self) -> None:
        """Checks that no step attempt of any run generation executed more than once
        (a completed step is never run again; retries are separate attempts)."""
        twice = {key: n for key, n in self.executions.items() if n > 1}
        assert not twice, f"steps executed more than once: {twice}"

    async def assert_replays(self) -> None:
        """Checks every aggregate the engine's writer holds in memory (the live state,
        evolved by commands, never reloaded) against its replay from the store, and the
        timer index against the timers their replays give."""
        writer = self.engine._writer
        if writer is None:
            return
        app = self.engine.application

        def check() -> None:
            aggregates = writer.cache.items()
            for aggregate in aggregates:
                assert isinstance(aggregate, SignoffAggregate)
                assert_replays(app, aggregate)
            assert_timers_indexed(app, aggregates)

        await writer.between_batches(check)

    async def run(self, name: str, params: Any = None, **options: Any) -> str:
        """Starts a run and lets it go as far as it can."""
        run_id = await self.engine.run_workflow(name, params, **options)
        await self.settle()
        return run_id
