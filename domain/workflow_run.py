"""The WorkflowRun aggregate: one execution of a workflow, as the runtime recorded it.

The workflow runtime replays user code against this history: completed steps
return their recorded results, resolved waits return their resolutions,
progress reports already recorded are not recorded again. Commands check the
lifecycle guard and work out derived values; ``@event`` methods only assign
(and replace, never mutate, the dicts they hold, so that snapshots handed to
the runtime stay consistent).
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
EXECUTABLE = (QUEUED, RUNNING)
"""Statuses in which a run needs an engine to execute it (and may hold a lease)."""
ALL = (*ACTIVE, COMPLETE, ERRORED, TERMINATED)

RUN_LIFECYCLE = Lifecycle(
    "workflow_run",
    states=ALL,
    initial=QUEUED,
    terminal=[COMPLETE, ERRORED, TERMINATED],
    moves=[
        ("record", [QUEUED, RUNNING], RUNNING),
        ("backoff", [QUEUED, RUNNING], WAITING),
        ("wait", [QUEUED, RUNNING], WAITING),
        ("resolve", list(ACTIVE), "="),
        ("wake", WAITING, QUEUED),
        ("receive", list(ACTIVE), "="),
        ("complete", [QUEUED, RUNNING], COMPLETE),
        ("error", [QUEUED, RUNNING], ERRORED),
        ("pause", [QUEUED, RUNNING, WAITING], PAUSED),
        ("resume", PAUSED, QUEUED),
        ("resume_waiting", PAUSED, WAITING),
        ("terminate", list(ACTIVE), TERMINATED),
        ("restart", list(ALL), QUEUED),
    ],
)


class WorkflowRun(SignoffAggregate):
    """One run of a named workflow: params, steps, waits, reports and outcome."""

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
        self._reset()

    def _reset(self) -> None:
        self.steps: dict[str, dict[str, Any]] = {}
        self.waits: dict[str, dict[str, Any]] = {}
        self.resolutions: dict[str, dict[str, Any]] = {}
        self.current_wait: str | None = None
        self.reports: list[dict[str, Any]] = []
        self.inbox: dict[str, list[Any]] = {}
        self.consumed: dict[str, int] = {}
        self.decisions: list[dict[str, Any]] = []
        self.result: Any = None
        self.error: dict[str, str] | None = None
        self.completed_at: datetime | None = None

    # Queries ---------------------------------------------------------------

    @property
    def is_active(self) -> bool:
        """Tells whether the run may still change (not complete, errored or terminated)."""
        return self.status in ACTIVE

    def pending_wait(self) -> tuple[str, dict[str, Any]] | None:
        """The wait the run is blocked on, if any."""
        if self.current_wait is None:
            return None
        return self.current_wait, self.waits[self.current_wait]

    def unconsumed_event(self, event_type: str) -> Any | None:
        """The oldest delivered event of ``event_type`` no wait has taken, wrapped in a
        one-item tuple (payloads may be None)."""
        received = self.inbox.get(event_type, [])
        taken = self.consumed.get(event_type, 0)
        return (received[taken],) if taken < len(received) else None

    # Commands --------------------------------------------------------------

    def _move(self, trigger: str) -> str:
        return self.lifecycle.next_status(self.id, self.status, trigger)

    def pending_retry(self) -> datetime | None:
        """When the earliest failed step is due to be tried again, if one is."""
        due = [s["retry_at"] for s in self.steps.values() if not s["done"] and s["retry_at"]]
        return min(due) if due else None

    def record_step(
        self,
        cause: Cause,
        *,
        name: str,
        result: Any = None,
        error: dict[str, str] | None = None,
        attempt: int = 1,
        retry_at: datetime | None = None,
    ) -> None:
        """Records one attempt of step ``name``: its result, or its error (and when it
        will be retried, if it will: the run then waits for that time)."""
        self._move("backoff" if error is not None and retry_at is not None else "record")
        known = self.steps.get(name)
        if known is not None and (known["done"] or known["retry_at"] is None):
            raise ConflictError(f"step {name!r} of run {self.id!r} already finished")
        self._emit(
            "StepRecorded",
            cause,
            name=name,
            result=result,
            error=error,
            attempt=attempt,
            retry_at=retry_at,
        )

    def wake(self, cause: Cause) -> None:
        """Readies a run that waited for a step retry once that retry is due."""
        retry_at = self.pending_retry()
        if self.current_wait is not None or retry_at is None or cause.timestamp < retry_at:
            raise ConflictError(f"run {self.id!r} has no step retry due")
        self._move("wake")
        self._emit("Woken", cause)

    def report(self, cause: Cause, *, kind: str, value: Any) -> None:
        """Records a progress, completion or error report of the running code."""
        self._move("record")
        self._emit("ProgressReported", cause, kind=kind, value=value)

    def start_wait(
        self,
        cause: Cause,
        *,
        name: str,
        kind: str,
        deadline: datetime | None,
        detail: dict[str, Any],
    ) -> None:
        """Blocks the run on a wait (approval, event or sleep) until it is resolved."""
        self._move("wait")
        if name in self.waits:
            raise ConflictError(f"wait {name!r} of run {self.id!r} already started")
        self._emit("WaitStarted", cause, name=name, kind=kind, deadline=deadline, detail=detail)

    def resolve_wait(self, cause: Cause, *, name: str, outcome: str, value: Any = None) -> None:
        """Ends wait ``name`` with ``outcome`` (approved, rejected, event, timeout, elapsed)."""
        self._move("resolve")
        if name not in self.waits or name in self.resolutions:
            raise ConflictError(f"wait {name!r} of run {self.id!r} is not pending")
        if outcome == "event" and self.waits[name]["kind"] != "event":
            raise ConflictError(f"wait {name!r} of run {self.id!r} does not wait for an event")
        wakes = self.status == WAITING and self.current_wait == name
        if wakes:
            self._move("wake")
        self._emit("WaitResolved", cause, name=name, outcome=outcome, value=value, wakes=wakes)

    def receive_event(self, cause: Cause, *, event_type: str, payload: Any) -> None:
        """Keeps a delivered event for the wait that takes it (now or later)."""
        self._move("receive")
        self._emit("EventReceived", cause, event_type=event_type, payload=payload)

    def approval_waits_started(self) -> list[str]:
        """Names of the approval waits this generation has reached."""
        return [name for name, wait in self.waits.items() if wait["kind"] == "approval"]

    def receive_decision(
        self,
        cause: Cause,
        *,
        decision: str,
        groups: list[str],
        metadata: dict[str, Any],
        wait: str | None = None,
    ) -> None:
        """Keeps a decision for an approval wait the run has not reached yet: the named
        one, or (unnamed) the first one, while the run has reached none."""
        self._move("receive")
        if wait is not None and wait in self.waits:
            raise ConflictError(f"run {self.id!r} already reached approval {wait!r}")
        if wait is None and self.approval_waits_started():
            raise ConflictError(
                f"run {self.id!r} has no pending approval; name the wait to decide ahead"
            )
        self._emit(
            "DecisionReceived",
            cause,
            decision=decision,
            groups=groups,
            metadata=metadata,
            wait=wait,
        )

    def decisions_for(self, wait: str) -> list[dict[str, Any]]:
        """The kept decisions that apply to approval wait ``wait``."""
        return [d for d in self.decisions if d.get("wait") in (None, wait)]

    def note_wait(self, cause: Cause, *, name: str, detail: dict[str, Any]) -> None:
        """Records news about a pending wait (an approval reminded or escalated)."""
        self._move("receive")
        if name not in self.waits or name in self.resolutions:
            raise ConflictError(f"wait {name!r} of run {self.id!r} is not pending")
        self._emit("WaitNoted", cause, name=name, detail=detail)

    def complete(self, cause: Cause, *, result: Any) -> None:
        """Ends the run with ``result``."""
        self._move("complete")
        self._emit("Completed", cause, result=result)

    def fail(self, cause: Cause, *, error_type: str, message: str) -> None:
        """Ends the run with an unhandled error."""
        self._move("error")
        self._emit("Errored", cause, error_type=error_type, message=message)

    def pause(self, cause: Cause) -> None:
        """Holds the run: nothing executes until it is resumed."""
        self._move("pause")
        self._emit("Paused", cause)

    def resume(self, cause: Cause) -> None:
        """Lets a paused run go on (waiting again if its wait, or a step retry, is not due)."""
        retry_at = self.pending_retry()
        still_waiting = self.current_wait is not None or (
            retry_at is not None and cause.timestamp < retry_at
        )
        status = self._move("resume_waiting" if still_waiting else "resume")
        self._emit("Resumed", cause, status=status)

    def terminate(self, cause: Cause) -> None:
        """Stops the run for good."""
        self._move("terminate")
        self._emit("Terminated", cause)

    def restart(self, cause: Cause) -> None:
        """Starts the run over with the same params; the earlier history stays recorded."""
        self._move("restart")
        self._emit("Restarted", cause, generation=self.generation + 1)

    # Events (assignment only) ----------------------------------------------

    @event("StepRecorded")
    def _step_recorded(
        self,
        *,
        name: str,
        result: Any,
        error: dict[str, str] | None,
        attempt: int,
        retry_at: datetime | None,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = WAITING if error is not None and retry_at is not None else RUNNING
        record = {
            "done": error is None,
            "result": result,
            "error": error,
            "attempts": attempt,
            "retry_at": retry_at,
        }
        self.steps = {**self.steps, name: record}

    @event("Woken")
    def _woken(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = QUEUED

    @event("ProgressReported")
    def _progress_reported(
        self,
        *,
        kind: str,
        value: Any,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = RUNNING
        self.reports = [*self.reports, {"kind": kind, "value": value, "at": timestamp}]

    @event("WaitStarted")
    def _wait_started(
        self,
        *,
        name: str,
        kind: str,
        deadline: datetime | None,
        detail: dict[str, Any],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = WAITING
        self.current_wait = name
        self.waits = {**self.waits, name: {"kind": kind, "deadline": deadline, **detail}}
        # An approval takes the decisions kept for it (named or unnamed); another kind of
        # wait can use none: those named for it are dropped, unnamed ones stay kept.
        taken = (None, name) if kind == "approval" else (name,)
        self.decisions = [d for d in self.decisions if d.get("wait") not in taken]

    @event("WaitResolved")
    def _wait_resolved(
        self,
        *,
        name: str,
        outcome: str,
        value: Any,
        wakes: bool,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        resolution = {
            "outcome": outcome,
            "value": value,
            "by": actor,
            "reason": reason,
            "at": timestamp,
        }
        self.resolutions = {**self.resolutions, name: resolution}
        if self.current_wait == name:
            self.current_wait = None
        if wakes:
            self.status = QUEUED
        if outcome == "event":
            event_type = self.waits[name]["type"]
            self.consumed = {**self.consumed, event_type: self.consumed.get(event_type, 0) + 1}

    @event("WaitNoted")
    def _wait_noted(
        self,
        *,
        name: str,
        detail: dict[str, Any],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.waits = {**self.waits, name: {**self.waits[name], **detail}}

    @event("EventReceived")
    def _event_received(
        self,
        *,
        event_type: str,
        payload: Any,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.inbox = {**self.inbox, event_type: [*self.inbox.get(event_type, []), payload]}

    @event("DecisionReceived")
    def _decision_received(
        self,
        *,
        decision: str,
        groups: list[str],
        metadata: dict[str, Any],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
        wait: str | None = None,
    ) -> None:
        kept = {
            "decision": decision,
            "by": actor,
            "reason": reason,
            "groups": groups,
            "metadata": metadata,
            "wait": wait,
        }
        self.decisions = [*self.decisions, kept]

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
        self,
        *,
        status: str,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.status = status

    @event("Terminated")
    def _terminated(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = TERMINATED
        self.current_wait = None
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
        self._reset()
