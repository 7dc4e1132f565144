"""The Engine: signoff's public async facade and composition root.

It picks the event store from a URL, builds the application service, and
runs every store call off the event loop: writes through the group-commit
writer thread (concurrent commands share transactions; concurrent processes
are kept honest by optimistic concurrency and run leases), reads on a small
thread pool. The workflow runtime runs while the engine is started (``async
with``); several engines may share one store.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from signoff import approval_units, gc_tuning, idempotency
from signoff.adapters.persistence import StoreConfig, parse_store_url, prepare_store
from signoff.adapters.persistence.views import ready_listener_for
from signoff.application import SignoffApplication
from signoff.clock import Clock, ManualClock, SystemClock
from signoff.commands import Cancel, Decide, Reassign, RequestApproval, as_list, validate
from signoff.domain.durations import parse_duration
from signoff.domain.errors import ClockSkewError, InvalidInputError
from signoff.ids import new_id
from signoff.index import RunIndex
from signoff.indexing import index_for
from signoff.leases import LeaseStore
from signoff.read_api import ReadCommands
from signoff.read_models import ReadModels
from signoff.runtime import Runtime
from signoff.schedule_api import Callback, ScheduleCommands
from signoff.session import Session
from signoff.view_worker import ViewWorker
from signoff.views import ApprovalInfo, HistoryEntry
from signoff.workflow import Workflow
from signoff.workflow_api import WorkflowCommands
from signoff.writer import GroupCommitWriter

T = TypeVar("T")
W = TypeVar("W", bound=Workflow)

DEFAULT_STORE = "sqlite:///signoff.db"


class Engine(WorkflowCommands, ScheduleCommands, ReadCommands):
    """Durable workflows and approvals over one event store.

    Args:
        store: ``memory://``, ``sqlite:///path`` (the embedded default) or
            ``postgresql://user@host:port/db[?schema=name]``.
        clock: where time comes from (``signoff.testing.ManualClock`` in tests).
        ids: where new ids come from.
        poll_interval: seconds between looks for due timers and for runs made
            ready by other processes.
        max_batch: most commands the writer commits in one transaction.
        cache_size: most aggregates the writer keeps in memory.
        lease: how long an engine's claim on a run (or on firing a schedule) holds
            without being renewed: an engine renews the leases of its activations
            three times per lease, and when it dies, the other engines take its
            runs over once their leases ran out.
        max_clock_skew: how far this engine's clock may be from the store's before
            ``start`` refuses (``ClockSkewError``); ``None`` skips the check, as a
            ``ManualClock`` does (deadlines, reminders and schedules follow the
            engine's clock; leases follow the store's).
        views: where the views (inbox, board, audit trail) are kept current between
            queries: ``"thread"`` (a thread of this process) or ``"process"`` (a worker
            process this engine starts and stops, so that projecting does not compete
            with workflows for the interpreter; SQLite files and PostgreSQL only).
        tune_gc: while started, raise the cyclic garbage collector's thresholds
            and freeze the objects that exist at start (see ``signoff.gc_tuning``;
            skipped when the process set its own thresholds).
    """

    def __init__(
        self,
        store: str = DEFAULT_STORE,
        *,
        clock: Clock | None = None,
        ids: Callable[[], str] = new_id,
        read_threads: int = 4,
        poll_interval: float = 0.1,
        max_batch: int = 512,
        cache_size: int = 10_000,
        lease: str | float | timedelta = "30 seconds",
        max_clock_skew: str | float | timedelta | None = "5 seconds",
        views: str = "thread",
        tune_gc: bool = True,
    ) -> None:
        self.store: StoreConfig = parse_store_url(store)
        if views not in ("thread", "process"):
            raise InvalidInputError(f"views must be 'thread' or 'process', not {views!r}")
        if views == "process" and self.store.kind == "memory":
            raise InvalidInputError("views='process' needs a SQLite file or PostgreSQL store")
        self.views_mode = views
        self._tune_gc = tune_gc
        self._gc_tuned = False
        self.clock: Clock = clock or SystemClock()
        self._ids = ids
        self._read_threads = read_threads
        self._poll_interval = poll_interval
        self._max_batch = max_batch
        self._cache_size = cache_size
        try:
            self._lease = parse_duration(lease)
            self._max_skew = None if max_clock_skew is None else parse_duration(max_clock_skew)
        except ValueError as error:
            raise InvalidInputError(str(error)) from None
        self.workflows: dict[str, type[Workflow]] = {}
        """Every workflow this engine knows (and may start runs of)."""
        self.executed: dict[str, type[Workflow]] = {}
        """The workflows whose runs this engine executes."""
        self.callbacks: dict[str, Callback] = {}
        """The callbacks schedules may name (``register_callback``)."""
        self.instance_id = uuid.uuid4().hex
        """This engine's name in run leases and schedule claims (unique per process and
        engine)."""
        self._app: SignoffApplication | None = None
        self._views: ReadModels | None = None
        self._view_worker: ViewWorker | None = None
        self._writer: GroupCommitWriter | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._runtime: Runtime | None = None
        self._opening = threading.Lock()
        self.step_observer: Callable[[str, int, str, int], None] | None = None
        """Called with (run id, generation, step name, attempt) before a step's function runs
        (``signoff.testing.WorkflowEnvironment`` counts executions with it)."""

    def register(self, workflow: type[W], *, execute: bool = True) -> type[W]:
        """Registers a Workflow subclass under its ``name``; this engine executes its runs.

        With ``execute=False`` the engine only knows the workflow: it can start runs
        (validating their params) for engines that execute them, as an API service
        in front of workers does. Usable as a class decorator. Returns the class.
        """
        name = getattr(workflow, "name", None)
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{workflow.__qualname__} needs a class attribute `name`")
        if not (isinstance(workflow, type) and issubclass(workflow, Workflow)):
            raise InvalidInputError(f"{workflow!r} is not a Workflow subclass")
        known = self.workflows.get(name)
        if known is not None and known is not workflow:
            raise InvalidInputError(f"another workflow is registered as {name!r}")
        self.workflows[name] = workflow
        if execute:
            self.executed[name] = workflow
        else:
            self.executed.pop(name, None)
        return workflow

    # Lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Opens the store and starts the runtime: claims ready runs, fires timers.

        Raises:
            ClockSkewError: this engine's clock is too far from the store's.
        """
        await asyncio.get_running_loop().run_in_executor(None, self._open)
        if self._runtime is None:
            await self._in_reader(self._check_clock)
        if self._tune_gc and not self._gc_tuned:
            gc_tuning.tune()
            self._gc_tuned = True
        if self._runtime is None:
            assert self._app is not None
            assert self._writer is not None
            self._runtime = Runtime(
                self._app,
                self._writer,
                self.executed,
                clock=self.clock,
                poll_interval=self._poll_interval,
                step_observer=self.step_observer,
                callbacks=self.callbacks,
                owner=self.instance_id,
                lease=self._lease,
                engine=self,
                read=lambda query: self._read(lambda app: query()),
                listen=ready_listener_for(self._app.recorder),
            )
            await self._runtime.start()
            if self._view_worker is not None:
                self._view_worker.start()
            else:
                self._read_models().start(self._poll_interval)

    async def close(self) -> None:
        """Stops the runtime, commits queued commands and closes the store."""
        runtime, writer, readers, app = self._runtime, self._writer, self._readers, self._app
        self._runtime, self._writer, self._readers, self._app = None, None, None, None
        views, self._views = self._views, None
        view_worker, self._view_worker = self._view_worker, None
        if runtime is not None:
            await runtime.stop()
        loop = asyncio.get_running_loop()
        if views is not None:
            await loop.run_in_executor(None, views.stop)
        if writer is not None:
            await loop.run_in_executor(None, writer.stop)
        if app is not None and runtime is not None:  # the runs it held resume elsewhere now
            store: LeaseStore = app.recorder  # type: ignore[assignment]
            with contextlib.suppress(Exception):  # unreachable store: the leases run out
                await loop.run_in_executor(None, store.release_all, self.instance_id)
        if view_worker is not None:
            await loop.run_in_executor(None, view_worker.stop)
        if readers is not None:
            await loop.run_in_executor(None, readers.shutdown)
        if app is not None:
            app.close()
        if self._gc_tuned:
            gc_tuning.untune()
            self._gc_tuned = False

    async def settle(self) -> None:
        """Waits until every ready run has run to its next wait and no timer is due.

        Tests call it after starting runs or moving a ManualClock.
        """
        if self._runtime is None:
            raise RuntimeError("the engine is not started (use `async with engine:`)")
        await self._runtime.settle()

    def _check_clock(self) -> None:
        """Refuses to start with a clock too far from the store's (measured from the middle
        of the round trip)."""
        if self._max_skew is None or isinstance(self.clock, ManualClock):
            return
        store: LeaseStore = self.application.recorder  # type: ignore[assignment]
        before = self.clock.now().timestamp()
        store_now = store.store_time()
        after = self.clock.now().timestamp()
        skew = (before + after) / 2 - store_now
        if abs(skew) > self._max_skew.total_seconds() + (after - before) / 2:
            raise ClockSkewError(skew, self._max_skew.total_seconds())

    def _open(self) -> None:
        with self._opening:
            if self._app is None:
                prepare_store(self.store)
                app = SignoffApplication(self.store.env, clock=self.clock, ids=self._ids)
                index: RunIndex = app.recorder  # type: ignore[assignment]
                if index.index_is_empty() and app.recorder.max_notification_id():
                    app.rebuild_index()  # a store written before the index existed
                self._app = app
            if self._views is None:
                self._views = ReadModels(self._app.recorder)
                if self.views_mode == "process":
                    self._view_worker = ViewWorker(
                        self.store.url,
                        poll_interval=self._poll_interval,
                        on_applied=self._views.runner.publish_pending,
                    )
            if self._writer is None:
                worker = self._view_worker
                self._writer = GroupCommitWriter(
                    self._app,
                    index_for=index_for,
                    max_batch=self._max_batch,
                    cache_size=self._cache_size,
                    on_commit=worker.nudge if worker is not None else self._views.runner.nudge,
                    owner=self.instance_id,
                    lease_seconds=self._lease.total_seconds(),
                )

    @property
    def application(self) -> SignoffApplication:
        """The synchronous application service (opened on first use)."""
        if self._app is None:
            self._open()
        assert self._app is not None
        return self._app

    async def _write(self, unit: Callable[[Session], T]) -> T:
        if self._writer is None:
            await asyncio.get_running_loop().run_in_executor(None, self._open)
        assert self._writer is not None
        keyed = idempotency.current()
        if keyed is not None:  # its reply is committed with its events
            unit = keyed.wrap(unit)
        return await self._writer.submit(unit)

    async def _read(self, use_case: Callable[[SignoffApplication], T]) -> T:
        if self._app is None:
            await asyncio.get_running_loop().run_in_executor(None, self._open)
        app = self.application
        return await self._in_reader(functools.partial(use_case, app))

    async def _in_reader(self, work: Callable[[], T]) -> T:
        if self._readers is None:
            self._readers = ThreadPoolExecutor(
                self._read_threads, thread_name_prefix="signoff-read"
            )
        return await asyncio.get_running_loop().run_in_executor(self._readers, work)

    def _read_models(self) -> ReadModels:
        if self._views is None:
            self._open()
        assert self._views is not None
        return self._views

    @property
    def read_models(self) -> ReadModels:
        """The projections of this store (opened on first use): for rebuilds and exports."""
        return self._read_models()

    def _command_id(self, given: str | None) -> str:
        return given or self._ids()

    # Approvals ---------------------------------------------------------------

    async def request_approval(
        self,
        *,
        title: str,
        requested_by: str,
        context: Mapping[str, Any] | None = None,
        description: str = "",
        required_approvals: int = 1,
        approvers: Iterable[str] = (),
        groups: Iterable[str] = (),
        rejection_threshold: int = 1,
        timeout: str | float | timedelta | None = None,
        on_timeout: str = "expire",
        remind_every: str | float | timedelta | None = None,
        escalate_after: str | float | timedelta | None = None,
        escalation: Iterable[Mapping[str, Any]] = (),
        command_id: str | None = None,
    ) -> str:
        """Asks for a decision and returns the approval's id.

        Args:
            title: what is to be decided, in a line.
            requested_by: who asks (never counts as an approver).
            context: the data a person needs to decide (amount, recipient ...).
            description: the longer story.
            required_approvals: distinct approvals needed (quorum).
            approvers: the people allowed to decide (default: anyone).
            groups: groups whose members may decide.
            rejection_threshold: rejections that reject it (default: the first).
            timeout: how long it may stay pending ("7 days", seconds, timedelta).
            on_timeout: what the deadline does: "expire" (default), "reject",
                "approve" (explicit opt-in; recorded with actor ``system``) or
                "escalate" (to the next level of ``escalation``, with its new deadline).
            remind_every: how often to remind the approvers while it is pending.
            escalate_after: when to escalate to the next level, from the request
                (and again from each escalation).
            escalation: the chain, level by level:
                ``[{"approvers": [...], "groups": [...], "timeout": "1 day"}, ...]``.
            command_id: the id recorded as the cause (default: a new one).

        Returns:
            The new approval's id.
        """
        cmd = validate(
            RequestApproval,
            {
                "title": title,
                "requested_by": requested_by,
                "context": {} if context is None else context,
                "description": description,
                "required_approvals": required_approvals,
                "approvers": as_list(approvers),
                "groups": as_list(groups),
                "rejection_threshold": rejection_threshold,
                "timeout": timeout,
                "on_timeout": on_timeout,
                "remind_every": remind_every,
                "escalate_after": escalate_after,
                "escalation": as_list(escalation),
            },
        )
        approval_id, cid = self._ids(), self._command_id(command_id)
        return await self._write(
            lambda s: approval_units.request(s, cmd, approval_id=approval_id, command_id=cid)
        )

    async def approve(
        self,
        approval_id: str,
        *,
        by: str,
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        groups: Iterable[str] = (),
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Records ``by``'s approval; the approval is approved once its quorum is met.

        Returns:
            The approval as it now stands (``status``, ``votes``, ``approvals_needed``).
        """
        cmd = validate(
            Decide,
            {
                "by": by,
                "reason": reason,
                "metadata": {} if metadata is None else metadata,
                "groups": as_list(groups),
            },
        )
        return await self._decide(approval_id, "approve", cmd, command_id)

    async def reject(
        self,
        approval_id: str,
        *,
        by: str,
        reason: str | None = None,
        groups: Iterable[str] = (),
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Records ``by``'s rejection; by default the first rejection vetoes."""
        cmd = validate(Decide, {"by": by, "reason": reason, "groups": as_list(groups)})
        return await self._decide(approval_id, "reject", cmd, command_id)

    async def cancel(
        self,
        approval_id: str,
        *,
        by: str,
        reason: str | None = None,
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Withdraws a pending approval (its requester only)."""
        cmd = validate(Cancel, {"by": by, "reason": reason})
        cid = self._command_id(command_id)
        return await self._write(
            lambda s: approval_units.cancel(s, approval_id, cmd, command_id=cid)
        )

    async def reassign(
        self,
        approval_id: str,
        *,
        by: str,
        approvers: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        by_groups: Iterable[str] = (),
        reason: str | None = None,
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Hands a pending approval to other approvers or groups, recording who and why."""
        cmd = validate(
            Reassign,
            {
                "by": by,
                "approvers": None if approvers is None else as_list(approvers),
                "groups": None if groups is None else as_list(groups),
                "by_groups": as_list(by_groups),
                "reason": reason,
            },
        )
        cid = self._command_id(command_id)
        return await self._write(
            lambda s: approval_units.reassign(s, approval_id, cmd, command_id=cid)
        )

    async def _decide(
        self, approval_id: str, decision: str, cmd: Decide, command_id: str | None
    ) -> ApprovalInfo:
        cid = self._command_id(command_id)
        return await self._write(
            lambda s: approval_units.decide(s, approval_id, decision, cmd, command_id=cid)
        )

    async def get_approval(self, approval_id: str) -> ApprovalInfo:
        """The approval's status, policy and votes."""
        return await self._read(lambda app: app.get_approval(approval_id))

    async def history(self, aggregate_id: str) -> list[HistoryEntry]:
        """The audit trail of one approval or run: its events with actor, reason and time."""
        return await self._read(lambda app: app.history(aggregate_id))
