"""One activation of a run: replay the workflow's code from the top against the run's history.

The activation holds the run's lease, reads a snapshot of the run, calls
``run(event, step)``, and writes each new outcome through the group-commit
writer before the code goes on; every write carries the lease's fencing
token. Progress reports are buffered and committed with the next write (they
need no durability of their own before the code continues).

The activation stops quietly, without the workflow's code ever seeing it, when
the run moved on under it: paused, terminated or restarted (the write is
refused), taken over by another engine (the lease was lost), or changed so
that a write conflicts (another engine recorded the step or wait first). The
runtime then releases the run, or reloads and replays it.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from signoff.domain.durations import parse_duration
from signoff.domain.errors import LeaseLostError, SignoffError
from signoff.domain.workflow_run import WorkflowRun
from signoff.leases import Lease
from signoff.run_units import RunSnapshot, RunWrite, start_wait
from signoff.session import Session
from signoff.step import Step, Suspended, check_name
from signoff.workflow import StepFailed, Workflow, WorkflowEvent

if TYPE_CHECKING:
    from signoff.runtime import Runtime

T = TypeVar("T")


class Stopped(BaseException):
    """Ends an activation whose run moved on under it (BaseException, so that ``except
    Exception`` in the workflow's code does not swallow it)."""


class End(enum.Enum):
    """How an activation left the run's lease."""

    RELEASED = "released"
    """Its last write gave the lease up: the run waits or ended."""
    LOST = "lost"
    """Another engine holds the run now."""
    HELD = "held"
    """This engine still holds the run: the runtime looks at it again."""


class Activation:
    """Executes a workflow's code once, from the top, against ``snapshot``, holding the
    run's lease with fencing token ``token``."""

    def __init__(
        self, runtime: Runtime, workflow: type[Workflow], snapshot: RunSnapshot, token: int
    ) -> None:
        self.runtime = runtime
        self.workflow = workflow
        self.snapshot = snapshot
        self.token = token
        self.end = End.HELD
        self._names: set[str] = set()
        self._reports_seen = 0
        self._unsaved_reports: list[tuple[str, Any]] = []

    def now(self) -> datetime:
        """The engine clock's time."""
        return self.runtime.clock.now()

    def observe_step(self, name: str, attempt: int) -> None:
        """Tells the runtime's observer (tests) that a step function is about to run."""
        observer = self.runtime.step_observer
        if observer is not None:
            observer(self.snapshot.id, self.snapshot.generation, name, attempt)

    async def ensure_lease(self) -> None:
        """Stops the activation (before a step starts) if its engine lost the run."""
        try:
            await self.runtime.keeper.ensure(Lease(self.snapshot.id, self.token))
        except LeaseLostError as error:
            self.end = End.LOST
            raise Stopped from error

    def claim_name(self, name: str) -> None:
        """Refuses a name used twice in one run."""
        check_name(self._names, name)

    # Writing -----------------------------------------------------------------

    async def write(self, change: Callable[[WorkflowRun, Session, RunWrite[Any]], T]) -> T:
        """Commits ``change`` to the run (with the buffered reports); refreshes the snapshot.

        Raises:
            Stopped: the run moved on, was taken over, or changed under this activation.
        """
        reports, self._unsaved_reports = self._unsaved_reports, []
        unit: RunWrite[T] = RunWrite(self.snapshot, self.token, reports, change, self.runtime.cause)
        written_at = time.monotonic()
        try:
            value, snapshot = await self.runtime.writer.submit(unit)
        except LeaseLostError as error:
            self.end = End.LOST
            raise Stopped from error
        except SignoffError as error:
            if unit.run_moved_on or unit.stale:
                raise Stopped from error
            raise
        self.snapshot = snapshot
        if unit.released:
            self.end = End.RELEASED
        else:
            self.runtime.keeper.confirmed(Lease(snapshot.id, self.token), written_at)
        return value

    def report(self, kind: str, value: Any) -> None:
        """Buffers a report unless this replay already passed a recorded one.

        Raises:
            InvalidInputError: the value cannot be stored as JSON.
        """
        self._reports_seen += 1
        if self._reports_seen > self.snapshot.reports:
            value = self.runtime.app.normalize(value, f"a {kind} report")
            self._unsaved_reports.append((kind, value))

    async def record_step(
        self,
        name: str,
        *,
        result: Any = None,
        error: dict[str, str] | None = None,
        attempt: int,
        retry_at: datetime | None = None,
    ) -> None:
        """Commits one attempt of a step."""

        def record(run: WorkflowRun, session: Session, w: RunWrite[Any]) -> None:
            run.record_step(
                w.cause(),
                name=name,
                result=result,
                error=error,
                attempt=attempt,
                retry_at=retry_at,
            )

        await self.write(record)

    async def wait(
        self,
        name: str,
        kind: str,
        until: str | float | timedelta | datetime | None,
        detail: dict[str, Any],
    ) -> dict[str, Any]:
        """Returns the resolution of wait ``name``, starting the wait if it is new;
        suspends the activation while it is pending. Callables in ``detail`` are
        called only when the wait starts."""
        self.claim_name(name)
        resolution = self.snapshot.resolutions.get(name)
        if resolution is not None:
            return resolution
        if name in self.snapshot.waits:
            raise Suspended
        detail = {k: v() if callable(v) else v for k, v in detail.items()}
        if until is None:
            deadline = None
        elif isinstance(until, datetime):
            deadline = until
        else:
            deadline = self.now() + parse_duration(until)

        def begin(run: WorkflowRun, session: Session, w: RunWrite[Any]) -> dict[str, Any] | None:
            return start_wait(
                session, run, w, name=name, kind=kind, deadline=deadline, detail=detail
            )

        started = await self.write(begin)
        if started is None:
            raise Suspended
        return started

    # Running -----------------------------------------------------------------

    async def execute(self) -> End:
        """Runs the workflow's code and records how it ended (or that it waits); tells how
        it left the lease."""
        await self._execute()
        return self.end

    async def _execute(self) -> None:
        workflow = self.workflow()
        workflow._context = self
        snap = self.snapshot
        try:
            payload: Any = snap.params
            if self.workflow.params_model is not None:  # stored params may predate the model
                payload = self.workflow.params_model.model_validate(snap.params)
            event = WorkflowEvent(payload, snap.id, snap.name, dict(snap.metadata), snap.started_at)
            result = await workflow.run(event, Step(self))
        except (Suspended, Stopped):
            if self._unsaved_reports:
                await self._flush_quietly()
            return
        except StepFailed as failure:
            await self._fail(failure.error_type, failure.message)
        except Exception as error:
            await self._fail(type(error).__name__, str(error))
        else:
            try:
                result = self.runtime.app.normalize(result, "the workflow's result")
            except SignoffError as error:
                await self._fail(type(error).__name__, str(error))
                return
            await self._end(lambda run, w: run.complete(w.cause(), result=result))

    async def _fail(self, error_type: str, message: str) -> None:
        await self._end(lambda run, w: run.fail(w.cause(), error_type=error_type, message=message))

    async def _end(self, finish: Callable[[WorkflowRun, RunWrite[None]], None]) -> None:
        with contextlib.suppress(Stopped):
            await self.write(lambda run, session, w: finish(run, w))

    async def _flush_quietly(self) -> None:
        with contextlib.suppress(Stopped, SignoffError):
            await self.write(lambda run, session, w: None)
