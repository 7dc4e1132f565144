"""The group-commit writer: one thread that turns many concurrent commands into few transactions.

Commands arrive as *units*: functions of a :class:`Session` that load
aggregates, run domain commands on them and return a value. The writer
drains its queue in batches, runs every unit of a batch against one working
set of aggregates, and saves everything the batch changed in a single
transaction (a SQLite save of 100 events costs about what one of 1 does).
Futures are resolved only after that commit, so a caller never sees an
outcome that is not durable.

Failure handling keeps the batching invisible:

- a unit that raises a typed error is judged again on its own, on freshly
  loaded aggregates (a cached copy may be stale when other processes write);
- a unit that raises after emitting events would leave half a change in the
  working set: the whole batch is then run again one unit per transaction;
- a save that loses an optimistic-concurrency race (another process wrote
  first) is retried unit by unit, each reloading what it touches;
- a save refused because a run's lease was lost (another engine took the run
  over) is retried unit by unit too: only the units that wrote for that run
  fail, with ``LeaseLostError``.

Each transaction also carries the batch's run leases (``signoff.leases``):
runs the batch made ready are claimed for this engine in the same
transaction, and handed to ``on_ready`` once it committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from eventsourcing.persistence import IntegrityError

from signoff.application import MAX_ATTEMPTS, SignoffApplication
from signoff.domain.base import SignoffAggregate
from signoff.domain.errors import (
    ConcurrencyError,
    IdempotencyKeyLostError,
    LeaseLostError,
    SignoffError,
)
from signoff.domain.workflow_run import WorkflowRun
from signoff.index import IndexUpdate, TimerRow
from signoff.leases import Lease, LeaseStore, LeaseWork
from signoff.session import Session

T = TypeVar("T")

IndexFor = Callable[[list[SignoffAggregate]], dict[str, Any]]
"""Works out the index rows to write with a save (keyword arguments of ``save``)."""

OnReady = Callable[[list[tuple[Lease, WorkflowRun]]], None]
"""Told, on the writer thread, of the runs a transaction claimed for this engine."""


class AggregateCache:
    """A bounded LRU of saved aggregates, used only by the writer thread.

    It also remembers the timer set last committed for each cached aggregate,
    so that a save whose aggregate kept its timers (most do: a step, a report)
    leaves the timer index alone instead of deleting and rewriting it.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._items: OrderedDict[str, SignoffAggregate] = OrderedDict()
        self._timers: dict[str, tuple[int, list[TimerRow]]] = {}
        """Per aggregate: the version its timers were committed at, and those timers."""
        self._seen: dict[str, list[TimerRow]] = {}
        """The timer sets of the batch being saved (remembered once it commits)."""

    def get(self, aggregate_id: str) -> SignoffAggregate | None:
        """A cached aggregate, or None."""
        aggregate = self._items.get(aggregate_id)
        if aggregate is not None:
            self._items.move_to_end(aggregate_id)
        return aggregate

    def put(self, aggregate: SignoffAggregate) -> None:
        """Remembers a saved aggregate, forgetting the least recently used."""
        if self.maxsize <= 0:
            return
        self._items[aggregate.id] = aggregate
        self._items.move_to_end(aggregate.id)
        while len(self._items) > self.maxsize:
            forgotten, _ = self._items.popitem(last=False)
            self._timers.pop(forgotten, None)

    def evict(self, aggregate_ids: Iterable[str]) -> None:
        """Forgets aggregates whose cached state can no longer be trusted."""
        for aggregate_id in aggregate_ids:
            self._items.pop(aggregate_id, None)
            self._timers.pop(aggregate_id, None)

    def drop_unchanged_timers(self, update: IndexUpdate, changed: list[SignoffAggregate]) -> None:
        """Removes from ``update`` the timer sets that equal the committed ones: none for an
        aggregate new in this batch, the remembered set for one last saved by this writer.

        A remembered set counts only if the aggregate was at the version it was
        remembered at when the batch began: one fast-forwarded with another process's
        events may have had its timers rewritten by that process.
        """
        self._seen = {}
        for aggregate in changed:
            timers = update.timers.get(aggregate.id)
            if timers is None:
                continue
            self._seen[aggregate.id] = timers
            base = aggregate.version - len(aggregate.pending_events)
            if base == 0:
                known: list[TimerRow] | None = []  # created in this batch: no timers yet
            else:
                remembered = self._timers.get(aggregate.id)
                known = remembered[1] if remembered and remembered[0] == base else None
            if known is not None and timers == known:
                del update.timers[aggregate.id]

    def remember_timers(self, saved: list[SignoffAggregate]) -> None:
        """Notes the timer sets of a committed batch, at the versions it committed (the
        aggregates are cached next)."""
        seen, self._seen = self._seen, {}
        if self.maxsize <= 0:
            return
        for aggregate in saved:
            timers = seen.get(aggregate.id)
            if timers is not None:
                self._timers[aggregate.id] = (aggregate.version, timers)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[SignoffAggregate]:
        """The cached aggregates (a copy of the list; for replay checks in tests)."""
        return list(self._items.values())


@dataclass
class _Job(Generic[T]):
    unit: Callable[[Session], T]
    future: asyncio.Future[T]
    loop: asyncio.AbstractEventLoop


_STOP = object()


class GroupCommitWriter:
    """Runs units of work on one thread, committing each batch in one transaction."""

    def __init__(
        self,
        app: SignoffApplication,
        *,
        index_for: IndexFor,
        max_batch: int = 512,
        cache_size: int = 10_000,
        on_commit: Callable[[], None] | None = None,
        owner: str = "signoff",
        lease_seconds: float = 30.0,
    ) -> None:
        self.app = app
        self.on_commit = on_commit
        """Called on the writer thread after each transaction that stored events."""
        self.owner = owner
        """This engine's name in run leases."""
        self.lease_seconds = lease_seconds
        self.executes: Callable[[str], bool] | None = None
        """Tells whether this engine executes a workflow (its ready runs are then claimed);
        set by the runtime while it runs."""
        self.on_ready: OnReady | None = None
        self.index_for = index_for
        self.max_batch = max_batch
        self.cache = AggregateCache(cache_size)
        self.batches = 0
        self.jobs = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="signoff-writer", daemon=True)
        self._thread.start()

    async def submit(self, unit: Callable[[Session], T]) -> T:
        """Runs ``unit`` in the next batch; returns its value once the batch is committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(unit, future, loop))
        return await future

    async def between_batches(self, inspect: Callable[[], T]) -> T:
        """Runs ``inspect`` on the writer thread when no batch is half-applied (the cache
        then holds only committed state): for consistency checks in tests."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Barrier(inspect, future, loop))
        return await future

    def stop(self) -> None:
        """Finishes the queued units, then ends the thread."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    # The writer thread -------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            if isinstance(first, _Barrier):
                self._inspect(first)
                continue
            batch = [first]
            after: Any = None
            while len(batch) < self.max_batch:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is _STOP or isinstance(job, _Barrier):
                    after = job
                    break
                batch.append(job)
            self._process(batch)
            if after is _STOP:
                return
            if after is not None:
                self._inspect(after)

    def _inspect(self, barrier: _Barrier) -> None:
        try:
            outcome: Any = barrier.inspect()
        except Exception as error:
            outcome = error
        self._resolve([(barrier, outcome)])

    def _session(self, cache: AggregateCache | None, *, verify_new: bool = False) -> Session:
        return Session(
            self.app,
            cache,
            verify_new=verify_new,
            leases=LeaseWork(self.owner, self.lease_seconds),
            executes=self.executes,
        )

    def _process(self, batch: list[Any]) -> None:
        self.batches += 1
        self.jobs += len(batch)
        session = self._session(self.cache)
        outcomes: list[tuple[Any, Any]] = []
        judge_alone: list[Any] = []
        for job in batch:
            session.begin_unit()
            try:
                outcomes.append((job, job.unit(session)))
            except SignoffError as error:
                if session.unit_changed():
                    self._fall_back(batch, session)
                    return
                session.undo_unit()
                if session.used_cache:
                    judge_alone.append(job)  # a cached copy may be stale: judge again
                else:
                    outcomes.append((job, error))
            except Exception as error:  # a bug in a unit: contain it to that unit
                if session.unit_changed():
                    self._fall_back(batch, session)
                    return
                session.undo_unit()
                outcomes.append((job, error))
        try:
            self._save(session)
        except (IntegrityError, LeaseLostError, IdempotencyKeyLostError):
            self._fall_back(batch, session)
            return
        except Exception as error:
            self.cache.evict(a.id for a in session.all())
            self._resolve([(job, error) for job in batch])
            return
        for aggregate in session.all():
            self.cache.put(aggregate)
        self._dispatch_ready(session)
        self._resolve(outcomes)
        for job in judge_alone:
            self._alone(job)

    def _fall_back(self, batch: list[Any], session: Session) -> None:
        """Runs each unit of a failed batch on its own, on freshly loaded aggregates."""
        self.cache.evict(a.id for a in session.all())
        for job in batch:
            self._alone(job)

    def _alone(self, job: Any) -> None:
        for attempt in range(MAX_ATTEMPTS):
            session = self._session(None, verify_new=attempt > 0)
            try:
                value = job.unit(session)
            except Exception as error:
                self._resolve([(job, error)])
                return
            try:
                self._save(session)
            except IntegrityError:
                continue
            except Exception as error:
                self._resolve([(job, error)])
                return
            for aggregate in session.all():
                self.cache.put(aggregate)
            self._dispatch_ready(session)
            self._resolve([(job, value)])
            return
        changed = session.changed()
        self._resolve([(job, ConcurrencyError(changed[0].id if changed else "?", MAX_ATTEMPTS))])

    def _save(self, session: Session) -> None:
        changed = session.changed()
        leases = session.leases
        if changed:
            index = self.index_for(changed)
            update: IndexUpdate | None = index.get("index")
            if update is not None:
                self.cache.drop_unchanged_timers(update, changed)
            replies = [(c.key, c.owner, reply) for c, reply in session.replies]
            self.app.store(*changed, leases=leases, replies=replies, **index)
            for command, _ in session.replies:
                command.recorded = True
            if update is not None:
                self.cache.remember_timers(changed)
            if self.on_commit is not None:
                self.on_commit()
        elif leases:
            store: LeaseStore = self.app.recorder  # type: ignore[assignment]
            store.write_leases(leases)

    def _dispatch_ready(self, session: Session) -> None:
        """Hands the runs the committed transaction claimed for this engine to ``on_ready``
        (before the units' callers hear their outcomes, so that an activation exists by
        the time a caller looks)."""
        granted = session.leases.granted if session.leases is not None else {}
        if granted and self.on_ready is not None:
            readied = session.readied
            self.on_ready([(Lease(run_id, t), readied[run_id]) for run_id, t in granted.items()])

    def _resolve(self, outcomes: list[tuple[Any, Any]]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
        for job, value in outcomes:
            by_loop.setdefault(job.loop, []).append((job, value))
        for loop, items in by_loop.items():
            # A closed loop means nobody is waiting for these outcomes any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, items)


@dataclass
class _Barrier:
    inspect: Callable[[], Any]
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop


def _settle(items: list[tuple[Any, Any]]) -> None:
    for job, value in items:
        if job.future.done():
            continue
        if isinstance(value, BaseException):
            job.future.set_exception(value)
        else:
            job.future.set_result(value)
