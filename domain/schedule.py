"""The Schedule aggregate: a durable timer naming a registered callback."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from eventsourcing.domain import event

from signoff.domain.base import Cause, SignoffAggregate
from signoff.domain.errors import InvalidInputError
from signoff.domain.lifecycle import Lifecycle

SCHEDULED, FINISHED, CANCELLED = "scheduled", "finished", "cancelled"

ScheduleKind = Literal["once", "cron", "interval"]

SCHEDULE_LIFECYCLE = Lifecycle(
    "schedule",
    states=[SCHEDULED, FINISHED, CANCELLED],
    initial=SCHEDULED,
    terminal=[FINISHED, CANCELLED],
    moves=[
        ("advance", SCHEDULED, SCHEDULED),
        ("finish", SCHEDULED, FINISHED),
        ("fail", SCHEDULED, SCHEDULED),
        ("cancel", SCHEDULED, CANCELLED),
    ],
)


class Schedule(SignoffAggregate):
    """A one-shot, cron or interval timer that calls ``callback`` with ``payload``."""

    lifecycle = SCHEDULE_LIFECYCLE

    @classmethod
    def create(
        cls,
        *,
        schedule_id: str,
        kind: ScheduleKind,
        callback: str,
        payload: Any,
        due_at: datetime,
        spec: str | None,
        cause: Cause,
    ) -> Schedule:
        """Creates a timer first due at ``due_at`` (``spec``: cron text or interval seconds)."""
        if kind != "once" and not spec:
            raise InvalidInputError(f"a {kind} schedule needs its cron expression or interval")
        return cls(
            id=schedule_id,
            kind=kind,
            callback=callback,
            payload=payload,
            due_at=due_at,
            spec=spec,
            **cause.fields(),
        )

    @event("Created")
    def __init__(
        self,
        *,
        id: str,
        kind: ScheduleKind,
        callback: str,
        payload: Any,
        due_at: datetime,
        spec: str | None,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.kind = kind
        self.callback = callback
        self.payload = payload
        self.due_at: datetime | None = due_at
        self.spec = spec
        self.status = SCHEDULED
        self.fired_count = 0
        self.failures = 0
        self.last_error: str | None = None

    def fired(self, cause: Cause, *, next_due_at: datetime | None) -> None:
        """Records a successful firing; a recurring timer advances to ``next_due_at``."""
        if self.kind == "once" or next_due_at is None:
            self.lifecycle.next_status(self.id, self.status, "finish")
            self._finished(**cause.fields())
        else:
            self.lifecycle.next_status(self.id, self.status, "advance")
            self._advanced(next_due_at=next_due_at, **cause.fields())

    def failed(self, cause: Cause, *, error: str, retry_at: datetime) -> None:
        """Records a failed firing and when it will be tried again."""
        self.lifecycle.next_status(self.id, self.status, "fail")
        self._fire_failed(error=error, retry_at=retry_at, **cause.fields())

    def cancel(self, cause: Cause) -> None:
        """Stops the timer; it never fires again."""
        self.lifecycle.next_status(self.id, self.status, "cancel")
        self._cancelled(**cause.fields())

    @event("Finished")
    def _finished(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = FINISHED
        self.fired_count += 1
        self.failures = 0
        self.due_at = None

    @event("Advanced")
    def _advanced(
        self,
        *,
        next_due_at: datetime,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.fired_count += 1
        self.failures = 0
        self.due_at = next_due_at

    @event("FireFailed")
    def _fire_failed(
        self,
        *,
        error: str,
        retry_at: datetime,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.failures += 1
        self.last_error = error
        self.due_at = retry_at

    @event("Cancelled")
    def _cancelled(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = CANCELLED
        self.due_at = None
