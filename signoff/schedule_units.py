"""Schedule use cases as units of work: create, claim, record a firing, cancel.

Firing is claimed first (a lease recorded as an event, so optimistic
concurrency picks one process); the callback runs outside the writer; its
outcome is recorded only by the claimant.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from signoff.domain.base import SYSTEM_ACTOR
from signoff.domain.errors import NotFoundError
from signoff.domain.schedule import SCHEDULED, Schedule
from signoff.session import Session
from signoff.timing import next_cron, next_interval

MAX_FAILURES = 8
"""Failed attempts before a firing is given up (a one-shot finishes, a recurring one advances)."""


def idempotent_id(callback: str, payload: Any, timing: str) -> str:
    """The id an idempotent schedule always gets for the same callback, payload and timing."""
    key = json.dumps([callback, payload, timing], sort_keys=True, default=str)
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"/signoff/schedules/{key}"))


def create(
    session: Session,
    *,
    schedule_id: str,
    kind: str,
    callback: str,
    payload: Any,
    due_at: datetime,
    spec: str | None,
    idempotent: bool,
    actor: str,
    command_id: str,
) -> str:
    """Creates a schedule; an idempotent one that exists already is returned as it is."""
    if idempotent:
        try:
            session.get(Schedule, schedule_id)
        except NotFoundError:
            pass
        else:
            return schedule_id
    cause = session.app.cause(actor, command_id=command_id)
    schedule = Schedule.create(
        schedule_id=schedule_id,
        kind=kind,  # type: ignore[arg-type]
        callback=callback,
        payload=payload,
        due_at=due_at,
        spec=spec,
        cause=cause,
    )
    session.add(schedule, check_store=idempotent)
    return schedule.id


@dataclass(frozen=True)
class Claim:
    """What a process needs to fire a schedule it claimed."""

    schedule_id: str
    callback: str
    payload: Any


def claim(
    session: Session,
    schedule_id: str,
    *,
    owner: str,
    lease: timedelta,
    callbacks: frozenset[str],
    command_id: str,
) -> Claim | None:
    """Claims a due schedule for ``owner``; None when it is not due, not ours to fire
    (another process holds it, or its callback is not registered here) or gone."""
    schedule = session.get(Schedule, schedule_id, fresh=True)
    now = session.app.clock.now()
    if schedule.status != SCHEDULED or schedule.due_at is None or now < schedule.due_at:
        return None
    if schedule.callback not in callbacks or schedule.is_claimed(now):
        return None
    cause = session.app.cause(SYSTEM_ACTOR, reason="due", command_id=command_id)
    schedule.claim(cause, owner=owner, until=now + lease)
    return Claim(schedule.id, schedule.callback, schedule.payload)


def renew(
    session: Session, schedule_id: str, *, owner: str, lease: timedelta, command_id: str
) -> None:
    """Extends ``owner``'s claim by ``lease`` from now (its callback is still running)."""
    schedule = session.get(Schedule, schedule_id, fresh=True)
    now = session.app.clock.now()
    if schedule.status == SCHEDULED and schedule.claimed_by == owner and schedule.is_claimed(now):
        cause = session.app.cause(SYSTEM_ACTOR, reason="still running", command_id=command_id)
        schedule.claim(cause, owner=owner, until=now + lease)


def record_outcome(
    session: Session, schedule_id: str, *, owner: str, error: str | None, command_id: str
) -> None:
    """Records a firing (or its failure) if ``owner`` still holds the claim."""
    schedule = session.get(Schedule, schedule_id, fresh=True)
    if schedule.status != SCHEDULED or schedule.claimed_by != owner:
        return
    now = session.app.clock.now()
    cause = session.app.cause(SYSTEM_ACTOR, reason=error, command_id=command_id)
    if error is not None and schedule.failures + 1 < MAX_FAILURES:
        backoff = timedelta(seconds=min(3600.0, 2.0**schedule.failures))
        schedule.failed(cause, error=error, retry_at=now + backoff)
        return
    schedule.fired(cause, next_due_at=next_due(schedule, now))


def next_due(schedule: Schedule, now: datetime) -> datetime | None:
    """When a fired schedule is due next (None for a one-shot)."""
    if schedule.kind == "cron" and schedule.spec:
        return next_cron(schedule.spec, now)
    if schedule.kind == "interval" and schedule.spec and schedule.due_at is not None:
        return next_interval(schedule.due_at, float(schedule.spec), now)
    return None


def cancel(session: Session, schedule_id: str, *, actor: str, command_id: str) -> Schedule:
    """Cancels a schedule; it never fires again."""
    schedule = session.get(Schedule, schedule_id)
    schedule.cancel(session.app.cause(actor, command_id=command_id))
    return schedule
