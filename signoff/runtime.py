"""The workflow runtime: activations, run leases, timers, and resuming runs.

- An engine executes a run only while it holds the run's lease (see
  ``signoff.leases``). Runs that a command of this engine makes ready are
  claimed in that command's own transaction and start at once; runs made
  ready elsewhere, or left by an engine that died (its leases expired), are
  claimed by polling the index (woken at once by PostgreSQL's NOTIFY), a
  bounded number at a time so that several engines share them.
- One run has at most one activation in this process; a wake-up that
  arrives while it executes makes it go round once more. A lease is renewed
  while its activation lives (a slow step) and given up when it ends.
- Timers (wait deadlines, step retries) come from the index table ordered
  by due time; the timer loop reads only what is due, so a million waiting
  runs cost rows, not Python objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from signoff import approval_units, run_units, schedule_units
from signoff.activation import Activation, End
from signoff.application import SignoffApplication
from signoff.clock import Clock
from signoff.domain.base import Cause
from signoff.domain.errors import NotFoundError
from signoff.domain.workflow_run import EXECUTABLE, WorkflowRun
from signoff.index import RunIndex, TimerRow, epoch
from signoff.lease_keeper import LeaseKeeper
from signoff.leases import Lease, LeaseStore
from signoff.run_units import RunSnapshot
from signoff.workflow import Workflow
from signoff.writer import GroupCommitWriter

T = TypeVar("T")
log = logging.getLogger("signoff.runtime")

PICKUP_BATCH = 64
"""Most ready runs one poll claims from the shared backlog (runs an engine's own commands
make ready are claimed in their transactions, whatever their number)."""

Listen = Callable[[Callable[[], None], threading.Event], None]
"""Blocks, calling its first argument whenever the store announces ready runs, until its
second is set (PostgreSQL's LISTEN)."""


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
        lease: timedelta = timedelta(seconds=30),
        listen: Listen | None = None,
    ) -> None:
        self.app = app
        self.writer = writer
        self.workflows = workflows
        self.clock = clock
        self.poll_interval = poll_interval
        self.max_concurrent = max_concurrent
        self.step_observer = step_observer
        self._reader = read
        self.callbacks = callbacks if callbacks is not None else {}
        self.owner = owner
        self.engine = engine
        self.lease = lease
        self._listen = listen
        self._limit = asyncio.Semaphore(max_concurrent)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.keeper = LeaseKeeper(self.leases, owner, lease.total_seconds(), self._read)
        """The leases of this engine's activations."""
        self._handoff: dict[str, tuple[Lease, RunSnapshot | None]] = {}
        """Runs claimed while their previous activation was still ending."""
        self._again: set[str] = set()
        self._fired: set[tuple[str, str, float]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self._timer_pass = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._poked = asyncio.Event()
        self._jitter = random.Random()  # its own: the global one is the application's
        self._stopping = threading.Event()
        self._listener: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def index(self) -> RunIndex:
        """The run and timer index of the store."""
        index: Any = self.app.recorder
        return index  # type: ignore[no-any-return]

    @property
    def leases(self) -> LeaseStore:
        """The store's run leases."""
        store: Any = self.app.recorder
        return store  # type: ignore[no-any-return]

    def cause(self, actor: str, *, reason: str | None = None) -> Cause:
        """A cause for something recorded now."""
        return self.app.cause(actor, reason=reason)

    # Lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Claims the runs ready to execute and starts the timer, poll and lease loops."""
        self._loop = asyncio.get_running_loop()
        self._stopping.clear()
        self.writer.executes = self.workflows.__contains__
        self.writer.on_ready = self._claimed_by_writer
        await self._pick_up()
        self._loops = [
            asyncio.create_task(self._every(self._fire_due_timers), name="signoff-timers"),
            asyncio.create_task(self._every(self._pick_up, poke=True), name="signoff-poll"),
            asyncio.create_task(self.keeper.renew_forever(), name="signoff-leases"),
        ]
        if self._listen is not None:
            self._listener = threading.Thread(
                target=self._listen,
                args=(self.poke, self._stopping),
                name="signoff-ready-listener",
                daemon=True,
            )
            self._listener.start()

    async def stop(self) -> None:
        """Stops the loops and cancels the activations in flight (their runs resume once
        the engine gives up their leases, on close: nothing is lost)."""
        self._stopping.set()
        self.writer.on_ready = None
        self.writer.executes = None
        for task in [*self._loops, *self._tasks.values()]:
            task.cancel()
        for task in [*self._loops, *self._tasks.values()]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()
        if self._listener is not None:
            await asyncio.to_thread(self._listener.join)
            self._listener = None

    def poke(self) -> None:
        """Looks for ready runs now rather than at the next poll (from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._poked.set)

    async def _every(self, tick: Callable[[], Any], *, poke: bool = False) -> None:
        while not self._stopping.is_set():
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the loop alive; the next tick retries
                log.exception("signoff runtime loop failed; retrying")
            if poke:
                # Jittered, so that engines polling one store do not poll in step;
                # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a
                # cancellation that arrives as its timeout expires, and the loop never ends
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval * self._jitter.uniform(0.5, 1.5)):
                        await self._poked.wait()
                self._poked.clear()
            else:
                await asyncio.sleep(self.poll_interval)

    async def _read(self, query: Callable[[], T]) -> T:
        if self._reader is not None:
            result: T = await self._reader(query)
            return result
        return await asyncio.get_running_loop().run_in_executor(None, query)

    # Leases ------------------------------------------------------------------

    def _claimed_by_writer(self, claimed: list[tuple[Lease, WorkflowRun]]) -> None:
        """Runs a committed transaction claimed (on the writer thread): their snapshots are
        taken here, while the aggregates are as committed, and activated on the loop."""
        loop = self._loop
        if loop is None or self._stopping.is_set():
            return
        ready = [(lease, RunSnapshot.of(run)) for lease, run in claimed]
        with contextlib.suppress(RuntimeError):  # the loop closed: the leases expire
            loop.call_soon_threadsafe(self._begin_all, ready, time.monotonic())

    def _begin_all(self, ready: list[tuple[Lease, RunSnapshot]], claimed_at: float) -> None:
        for lease, snapshot in ready:
            self.begin(lease, snapshot, claimed_at=claimed_at)

    def begin(
        self, lease: Lease, snapshot: RunSnapshot | None = None, *, claimed_at: float
    ) -> None:
        """Executes a run this engine claimed at ``claimed_at`` (monotonic; ``snapshot``:
        the run as the claiming transaction left it, else it is read once the lease is
        held)."""
        if self._stopping.is_set():
            return
        run_id = lease.run_id
        self.keeper.hold(lease, claimed_at)
        if run_id in self._tasks:
            self._handoff[run_id] = (lease, snapshot)
            self._again.add(run_id)
            return
        self._idle.clear()
        task = self._activate(lease, snapshot)
        self._tasks[run_id] = asyncio.get_running_loop().create_task(task)

    async def _pick_up(self) -> None:
        """Claims ready runs no live lease holds (made ready elsewhere, or left by an
        engine that died), a bounded number per poll, and fewer while busy: engines
        polling one store (at jittered intervals) share a backlog rather than the first
        or the luckiest taking it all, and a lone engine still gets through it."""
        names = list(self.workflows)
        busy = len(self._tasks) >= PICKUP_BATCH  # leaves most of a backlog to idler engines
        room = min(
            PICKUP_BATCH // 8 if busy else PICKUP_BATCH, self.max_concurrent - len(self._tasks)
        )
        if not names or room <= 0:
            return
        seconds = self.lease.total_seconds()
        claimed_at = time.monotonic()
        claimed = await self._read(
            lambda: self.leases.claim_ready(self.owner, names, room, seconds)
        )
        for lease in claimed:
            self.begin(lease, claimed_at=claimed_at)

    async def _release(self, lease: Lease) -> None:
        await self.writer.submit(functools.partial(run_units.release, lease=lease))
        self.keeper.let_go(lease)

    # Activations -------------------------------------------------------------

    async def _activate(self, lease: Lease, snapshot: RunSnapshot | None) -> None:
        run_id = lease.run_id
        current: Lease | None = lease
        try:
            async with self._limit:
                while current is not None:
                    current, snapshot = await self._activate_once(current, snapshot)
        except NotFoundError:
            return
        except Exception:  # the lease runs out and the run is taken up again then
            log.exception("activation of run %s failed; retried when its lease expires", run_id)
        finally:
            self._tasks.pop(run_id, None)
            self.keeper.forget(run_id)
            self._handoff.pop(run_id, None)
            if not self._tasks:
                self._idle.set()

    async def _activate_once(
        self, lease: Lease, snapshot: RunSnapshot | None
    ) -> tuple[Lease | None, RunSnapshot | None]:
        """Executes the run once; returns the lease and snapshot to go round with, if the
        run needs executing again."""
        run_id = lease.run_id
        self._again.discard(run_id)
        if snapshot is None:
            snapshot = await self.writer.submit(lambda s: run_units.snapshot(s, run_id))
        workflow = self.workflows.get(snapshot.name)
        if workflow is None or snapshot.status not in EXECUTABLE:
            await self._release(lease)
        else:
            activation = Activation(self, workflow, snapshot, lease.token)
            end = await activation.execute()
            if end is End.HELD:
                after = activation.snapshot.version
                fresh = await self.writer.submit(lambda s: run_units.snapshot(s, run_id))
                if fresh.status in EXECUTABLE and (fresh.version != after or run_id in self._again):
                    return lease, fresh  # it changed meanwhile: replay it as it is now
                await self._release(lease)
            else:
                self.keeper.let_go(lease)
        handoff = self._handoff.pop(run_id, None)
        if handoff is None and run_id in self._again:
            await self.writer.submit(lambda s: run_units.claim(s, run_id))
            handoff = self._handoff.pop(run_id, None)
        return handoff if handoff is not None else (None, None)

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
                await self.writer.submit(
                    lambda s: approval_units.on_timer(
                        s, timer.target_id, timer.key, command_id=command_id
                    )
                )
            elif timer.kind == "wait":
                name = timer.key.removeprefix("wait:")
                await self.writer.submit(
                    lambda s: run_units.time_out(s, timer.target_id, name, command_id=command_id)
                )
            else:
                await self.writer.submit(
                    lambda s: run_units.retry_due(s, timer.target_id, command_id=command_id)
                )
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
                await self._pick_up()
                if not self._tasks:
                    return
        raise RuntimeError("the runtime did not settle")
