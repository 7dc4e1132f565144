"""The workflow runtime: activations, timers, and resuming runs after a restart.

- An activation runs a run's code until it completes, errors or waits. One
  run has at most one activation in this process; a wake-up that arrives
  while it executes makes it go round once more.
- Timers (wait deadlines, step retries) come from the index table ordered
  by due time; the timer loop reads only what is due, so a million waiting
  runs cost rows, not Python objects.
- On start, every queued or running run of a registered workflow is resumed;
  runs that other processes made ready (a decision taken elsewhere) are
  picked up by polling the index.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from signoff import approval_units, run_units, schedule_units
from signoff.activation import Activation
from signoff.application import SignoffApplication
from signoff.clock import Clock
from signoff.domain.base import Cause
from signoff.domain.errors import NotFoundError
from signoff.domain.workflow_run import QUEUED, RUNNING
from signoff.index import RunIndex, TimerRow, epoch
from signoff.workflow import Workflow
from signoff.writer import GroupCommitWriter

T = TypeVar("T")
log = logging.getLogger("signoff.runtime")


class Runtime:
    """Executes the runs of registered workflows."""

    def __init__(
        self,
        app: SignoffApplication,
        writer: GroupCommitWriter,
        workflows: dict[str, type[Workflow]],
        *,
        clock: Clock,
        poll_interval: float = 0.1,
        max_concurrent: int = 20_000,
        step_observer: Callable[[str, int, str, int], None] | None = None,
        read: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
        callbacks: dict[str, Callable[[Any, Any], Any]] | None = None,
        owner: str = "signoff",
        engine: Any = None,
        lease: timedelta = timedelta(seconds=60),
    ) -> None:
        self.app = app
        self.writer = writer
        self.workflows = workflows
        self.clock = clock
        self.poll_interval = poll_interval
        self.step_observer = step_observer
        self._reader = read
        self.callbacks = callbacks if callbacks is not None else {}
        self.owner = owner
        self.engine = engine
        self.lease = lease
        self._limit = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._fired: set[tuple[str, str, float]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._timer_pass = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def index(self) -> RunIndex:
        """The run and timer index of the store."""
        index: Any = self.app.recorder
        return index  # type: ignore[no-any-return]

    def cause(self, actor: str, *, reason: str | None = None) -> Cause:
        """A cause for something recorded now."""
        return self.app.cause(actor, reason=reason)

    # Lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Resumes the runs this process owns and starts the timer and poll loops."""
        await self._pick_up((QUEUED, RUNNING))
        self._loops = [
            asyncio.create_task(self._loop(self._fire_due_timers), name="signoff-timers"),
            asyncio.create_task(self._loop(lambda: self._pick_up((QUEUED,))), name="signoff-poll"),
        ]

    async def stop(self) -> None:
        """Stops the loops and cancels the activations in flight (their runs resume
        on the next start: nothing is lost)."""
        for task in [*self._loops, *self._tasks.values()]:
            task.cancel()
        for task in [*self._loops, *self._tasks.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()

    async def _loop(self, tick: Callable[[], Any]) -> None:
        while True:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("signoff runtime loop failed; retrying")
            await asyncio.sleep(self.poll_interval)

    async def _read(self, query: Callable[[], T]) -> T:
        if self._reader is not None:
            result: T = await self._reader(query)
            return result
        return await asyncio.get_running_loop().run_in_executor(None, query)

    # Activations -------------------------------------------------------------

    def activate(
        self,
        run_id: str,
        *,
        changed_elsewhere: bool = False,
        snapshot: run_units.RunSnapshot | None = None,
    ) -> None:
        """Makes sure the run executes (again) soon.

        ``changed_elsewhere``: another process may have changed the run, so the
        activation reads it from the store rather than the writer's cache.
        ``snapshot``: the run as the write that readied it left it (saves a read).
        """
        if run_id in self._tasks:
            self._again.add(run_id)
            return
        self._idle.clear()
        task = self._activate(run_id, fresh=changed_elsewhere, snapshot=snapshot)
        self._tasks[run_id] = asyncio.get_running_loop().create_task(task)

    async def _activate(
        self, run_id: str, *, fresh: bool, snapshot: run_units.RunSnapshot | None
    ) -> None:
        try:
            async with self._limit:
                while True:
                    self._again.discard(run_id)
                    if snapshot is not None:
                        snap, snapshot = snapshot, None
                    else:
                        snap = await self.writer.submit(
                            lambda s: run_units.snapshot(s, run_id, fresh=fresh)
                        )
                    workflow = self.workflows.get(snap.name)
                    if workflow is None or snap.status not in (QUEUED, RUNNING):
                        if run_id not in self._again:
                            return
                        continue
                    await Activation(self, workflow, snap).execute()
                    if run_id not in self._again:
                        return
        except NotFoundError:
            return
        except Exception:
            log.exception("activation of run %s failed; it resumes on the next start", run_id)
        finally:
            self._tasks.pop(run_id, None)
            if not self._tasks:
                self._idle.set()

    async def _pick_up(self, statuses: tuple[str, ...]) -> None:
        names = list(self.workflows)
        if not names:
            return
        ready = await self._read(lambda: self.index.runs_in_status(names, statuses, 10_000))
        for run_id in ready:
            if run_id not in self._tasks:
                self.activate(run_id, changed_elsewhere=True)

    # Timers ------------------------------------------------------------------

    async def _fire_due_timers(self) -> int:
        """Fires every due timer once; returns how many it fired. One pass at a time, so
        that ``settle`` waits for a pass the timer loop has in flight."""
        async with self._timer_pass:
            return await self._fire_due_timers_now()

    async def _fire_due_timers_now(self) -> int:
        now = epoch(self.clock.now())
        due: list[TimerRow] = []
        after: tuple[float, str, str] | None = None
        for _ in range(100):  # pages past timers this process cannot fire (not starved)
            page = await self._read(functools.partial(self.index.due_timers, now, 1000, after))
            due += page
            if len(page) < 1000:
                break
            after = (page[-1].due_at, page[-1].target_id, page[-1].key)
        keys = {(t.target_id, t.key, t.due_at) for t in due}
        self._fired &= keys
        fresh = [t for t in due if (t.target_id, t.key, t.due_at) not in self._fired]
        self._fired |= {(t.target_id, t.key, t.due_at) for t in fresh}
        await asyncio.gather(*(self._fire(t) for t in fresh))
        return len(fresh)

    async def _fire(self, timer: TimerRow) -> None:
        try:
            command_id = self.app.ids()
            if timer.kind == "schedule":
                await self._fire_schedule(timer.target_id)
                return
            if timer.kind == "approval":
                run_id = await self.writer.submit(
                    lambda s: approval_units.on_timer(
                        s, timer.target_id, timer.key, command_id=command_id
                    )
                )
                if run_id is not None:
                    self.activate(run_id)
                return
            if timer.kind == "wait":
                name = timer.key.removeprefix("wait:")
                ready = await self.writer.submit(
                    lambda s: run_units.ready_after(
                        s,
                        timer.target_id,
                        run_units.time_out(s, timer.target_id, name, command_id=command_id),
                    )
                )
            else:
                ready = await self.writer.submit(
                    lambda s: run_units.ready_after(
                        s,
                        timer.target_id,
                        run_units.retry_due(s, timer.target_id, command_id=command_id),
                    )
                )
            if ready is not None:
                self.activate(timer.target_id, snapshot=ready)
        except NotFoundError:
            pass
        except Exception:
            self._fired.discard((timer.target_id, timer.key, timer.due_at))
            log.exception("timer %s of %s failed; it fires again", timer.key, timer.target_id)

    async def _fire_schedule(self, schedule_id: str) -> None:
        """Claims a due schedule, runs its callback, records the outcome (at least once:
        a crash between the callback and the record runs it again after the lease)."""
        names = frozenset(self.callbacks)
        claim = await self.writer.submit(
            lambda s: schedule_units.claim(
                s,
                schedule_id,
                owner=self.owner,
                lease=self.lease,
                callbacks=names,
                command_id=self.app.ids(),
            )
        )
        if claim is None:
            return
        error: str | None = None
        heartbeat = asyncio.create_task(self._renew_claim(schedule_id))
        try:
            outcome = self.callbacks[claim.callback](claim.payload, self.engine)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception as failure:
            error = f"{type(failure).__name__}: {failure}"
            log.warning("schedule %s: callback %s failed: %s", schedule_id, claim.callback, error)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        await self.writer.submit(
            lambda s: schedule_units.record_outcome(
                s, schedule_id, owner=self.owner, error=error, command_id=self.app.ids()
            )
        )

    async def _renew_claim(self, schedule_id: str) -> None:
        """Extends the claim while a callback runs longer than a third of the lease, so that
        no other process starts the same firing (an interval never overlaps itself)."""
        while True:
            await asyncio.sleep(self.lease.total_seconds() / 3)
            await self.writer.submit(
                lambda s: schedule_units.renew(
                    s, schedule_id, owner=self.owner, lease=self.lease, command_id=self.app.ids()
                )
            )

    # Tests and tools -----------------------------------------------------------

    async def settle(self, *, rounds: int = 1000) -> None:
        """Waits until no activation runs and no timer is due (tests: after moving a
        ManualClock, or to let every started run reach its next wait)."""
        for _ in range(rounds):
            await self._idle.wait()
            await asyncio.sleep(0)
            fired = await self._fire_due_timers()
            if not fired and not self._tasks:
                await self._pick_up((QUEUED,))
                if not self._tasks:
                    return
        raise RuntimeError("the runtime did not settle")
