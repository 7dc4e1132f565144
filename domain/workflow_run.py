"""The WorkflowRun aggregate: one execution of a workflow, as the runtime recorded it.

The workflow runtime replays user code against this history: completed steps
return their recorded results, waits return their recorded resolutions.
This module holds the lifecycle, the events and their guards.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from eventsourcing.domain import event

from signoff.domain.base import Cause, SignoffAggregate
from signoff.domain.errors import ConflictError
from signoff.domain.lifecycle import Lifecycle

QUEUED, RUNNING, WAITING, PAUSED = "queued", "running", "waiting", "paused"
COMPLETE, ERRORED, TERMINATED = "complete", "errored", "terminated"
ACTIVE = (QUEUED, RUNNING, WAITING, PAUSED)

RUN_LIFECYCLE = Lifecycle(
    "workflow_run",
    states=[QUEUED, RUNNING, WAITING, PAUSED, COMPLETE, ERRORED, TERMINATED],
    initial=QUEUED,
    terminal=[COMPLETE, ERRORED, TERMINATED],
    moves=[
        ("activate", [QUEUED, WAITING], RUNNING),
        ("record", RUNNING, RUNNING),
        ("wait", RUNNING, WAITING),
        ("resolve", [QUEUED, RUNNING, WAITING, PAUSED], "="),
        ("complete", RUNNING, COMPLETE),
        ("error", RUNNING, ERRORED),
        ("pause", [QUEUED, RUNNING, WAITING], PAUSED),
        ("resume", PAUSED, QUEUED),
        ("terminate", list(ACTIVE), TERMINATED),
        ("restart", [QUEUED, RUNNING, WAITING, PAUSED, COMPLETE, ERRORED, TERMINATED], QUEUED),
    ],
)


class WorkflowRun(SignoffAggregate):
    """One run of a named workflow with its params, steps, waits and outcome."""

    lifecycle = RUN_LIFECYCLE

    @classmethod
    def start(
        cls,
        *,
        run_id: str,
        name: str,
        params: dict[str, Any],
        metadata: dict[str, Any],
        cause: Cause,
    ) -> WorkflowRun:
        """Queues a new run of workflow ``name``."""
        return cls(id=run_id, name=name, params=params, metadata=metadata, **cause.fields())

    @event("Started")
    def __init__(
        self,
        *,
        id: str,
        name: str,
        params: dict[str, Any],
        metadata: dict[str, Any],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.name = name
        self.params = params
        self.metadata = metadata
        self.status = QUEUED
        self.generation = 1
        self.steps: dict[str, dict[str, Any]] = {}
        self.waits: dict[str, dict[str, Any]] = {}
        self.resolutions: dict[str, dict[str, Any]] = {}
        self.progress: list[Any] = []
        self.result: Any = None
        self.error: dict[str, str] | None = None
        self.completed_at: datetime | None = None

    # Commands --------------------------------------------------------------

    def _move(self, trigger: str) -> None:
        self.lifecycle.next_status(self.id, self.status, trigger)

    def activate(self, cause: Cause) -> None:
        """Marks the run as executing (an activation took it)."""
        self._move("activate")
        self._activated(**cause.fields())

    def record_step(
        self,
        cause: Cause,
        *,
        name: str,
        result: Any = None,
        error: dict[str, str] | None = None,
        attempt: int = 1,
    ) -> None:
        """Records one attempt of step ``name``: its result, or its error."""
        self._move("record")
        if name in self.steps and self.steps[name].get("done"):
            raise ConflictError(f"step {name!r} of run {self.id!r} already completed")
        self._step_recorded(
            name=name, result=result, error=error, attempt=attempt, **cause.fields()
        )

    def start_wait(
        self, cause: Cause, *, name: str, kind: str, key: str, deadline: datetime | None
    ) -> None:
        """Suspends the run on a wait (approval, event or sleep)."""
        self._move("wait")
        if name in self.waits:
            raise ConflictError(f"wait {name!r} of run {self.id!r} already started")
        self._wait_started(name=name, kind=kind, key=key, deadline=deadline, **cause.fields())

    def resolve_wait(self, cause: Cause, *, key: str, outcome: str, value: Any = None) -> None:
        """Records what ends a wait; kept if the run has not reached the wait yet."""
        self._move("resolve")
        if key in self.resolutions:
            raise ConflictError(f"{key!r} of run {self.id!r} is already resolved")
        self._wait_resolved(key=key, outcome=outcome, value=value, **cause.fields())

    def report_progress(self, cause: Cause, *, progress: Any) -> None:
        """Records a progress report of the running code."""
        self._move("record")
        self._progress_reported(progress=progress, **cause.fields())

    def complete(self, cause: Cause, *, result: Any) -> None:
        """Ends the run with ``result``."""
        self._move("complete")
        self._completed(result=result, **cause.fields())

    def fail(self, cause: Cause, *, error_type: str, message: str) -> None:
        """Ends the run with an unhandled error."""
        self._move("error")
        self._errored(error_type=error_type, message=message, **cause.fields())

    def pause(self, cause: Cause) -> None:
        """Holds the run: nothing executes until it is resumed."""
        self._move("pause")
        self._paused(**cause.fields())

    def resume(self, cause: Cause) -> None:
        """Queues a paused run again."""
        self._move("resume")
        self._resumed(**cause.fields())

    def terminate(self, cause: Cause) -> None:
        """Stops the run for good."""
        self._move("terminate")
        self._terminated(**cause.fields())

    def restart(self, cause: Cause) -> None:
        """Starts the run over with the same params; earlier history stays recorded."""
        self._move("restart")
        self._restarted(generation=self.generation + 1, **cause.fields())

    # Events (assignment only) ----------------------------------------------

    @event("Activated")
    def _activated(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = RUNNING

    @event("StepRecorded")
    def _step_recorded(
        self,
        *,
        name: str,
        result: Any,
        error: dict[str, str] | None,
        attempt: int,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.steps = {
            **self.steps,
            name: {"done": error is None, "result": result, "error": error, "attempts": attempt},
        }

    @event("WaitStarted")
    def _wait_started(
        self,
        *,
        name: str,
        kind: str,
        key: str,
        deadline: datetime | None,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = WAITING
        self.waits = {**self.waits, name: {"kind": kind, "key": key, "deadline": deadline}}

    @event("WaitResolved")
    def _wait_resolved(
        self,
        *,
        key: str,
        outcome: str,
        value: Any,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.resolutions = {
            **self.resolutions,
            key: {"outcome": outcome, "value": value, "by": actor, "reason": reason},
        }

    @event("ProgressReported")
    def _progress_reported(
        self,
        *,
        progress: Any,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.progress = [*self.progress, progress]

    @event("Completed")
    def _completed(
        self,
        *,
        result: Any,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = COMPLETE
        self.result = result
        self.completed_at = timestamp

    @event("Errored")
    def _errored(
        self,
        *,
        error_type: str,
        message: str,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = ERRORED
        self.error = {"type": error_type, "message": message}
        self.completed_at = timestamp

    @event("Paused")
    def _paused(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = PAUSED

    @event("Resumed")
    def _resumed(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = QUEUED

    @event("Terminated")
    def _terminated(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = TERMINATED
        self.completed_at = timestamp

    @event("Restarted")
    def _restarted(
        self,
        *,
        generation: int,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = QUEUED
        self.generation = generation
        self.steps = {}
        self.waits = {}
        self.resolutions = {}
        self.progress = []
        self.result = None
        self.error = None
        self.completed_at = None
