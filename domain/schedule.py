"""The Schedule aggregate: a durable timer naming a registered callback."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from eventsourcing.domain import event

from signoff.domain.base import Cause, SignoffAggregate
from signoff.domain.errors import ConflictError, InvalidInputError
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
        ("claim", SCHEDULED, SCHEDULED),
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
        self.claimed_by: str | None = None
        self.claimed_until: datetime | None = None

    def is_claimed(self, now: datetime) -> bool:
        """Tells whether a process holds an unexpired claim to fire it."""
        return self.claimed_until is not None and now < self.claimed_until

    def claim(self, cause: Cause, *, owner: str, until: datetime) -> None:
        """Takes the right to fire the due timer until ``until`` (a lease: if the owner
        dies, another process may claim it once the lease has expired)."""
        self.lifecycle.next_status(self.id, self.status, "claim")
        if self.due_at is None or cause.timestamp < self.due_at:
            raise ConflictError(f"schedule {self.id!r} is not due")
        if self.is_claimed(cause.timestamp) and self.claimed_by != owner:
            raise ConflictError(f"schedule {self.id!r} is being fired by {self.claimed_by}")
        self._emit("Claimed", cause, owner=owner, until=until)

    def fired(self, cause: Cause, *, next_due_at: datetime | None) -> None:
        """Records a successful firing; a recurring timer advances to ``next_due_at``."""
        if self.kind == "once" or next_due_at is None:
            self.lifecycle.next_status(self.id, self.status, "finish")
            self._emit("Finished", cause)
        else:
            self.lifecycle.next_status(self.id, self.status, "advance")
            self._emit("Advanced", cause, next_due_at=next_due_at)

    def failed(self, cause: Cause, *, error: str, retry_at: datetime) -> None:
        """Records a failed firing and when it will be tried again."""
        self.lifecycle.next_status(self.id, self.status, "fail")
        self._emit("FireFailed", cause, error=error, retry_at=retry_at)

    def cancel(self, cause: Cause) -> None:
        """Stops the timer; it never fires again."""
        self.lifecycle.next_status(self.id, self.status, "cancel")
        self._emit("Cancelled", cause)

    @event("Claimed")
    def _claimed(
        self,
        *,
        owner: str,
        until: datetime,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.claimed_by = owner
        self.claimed_until = until

    @event("Finished")
    def _finished(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = FINISHED
        self.fired_count += 1
        self.failures = 0
        self.due_at = None
        self.claimed_by = None
        self.claimed_until = None

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
        self.claimed_by = None
        self.claimed_until = None

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
        self.claimed_by = None
        self.claimed_until = None

    @event("Cancelled")
    def _cancelled(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self.status = CANCELLED
        self.due_at = None
        self.claimed_by = None
        self.claimed_until = None
