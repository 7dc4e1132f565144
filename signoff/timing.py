"""When schedules are due: one-shot times and delays, cron expressions (UTC), intervals."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from croniter import croniter

from signoff.clock import ensure_utc
from signoff.domain.durations import parse_duration
from signoff.domain.errors import InvalidInputError

When = datetime | timedelta | int | float | str


def is_cron(text: str) -> bool:
    """Tells whether ``text`` is a cron expression (5 fields, or 6 with seconds)."""
    return len(text.split()) in (5, 6) and croniter.is_valid(text)


def first_due(when: When, now: datetime) -> tuple[str, datetime, str | None]:
    """The kind ("once" or "cron"), first due time and spec of a ``schedule(when, ...)``.

    Raises:
        InvalidInputError: ``when`` is none of a datetime, a delay or a cron expression.
    """
    if isinstance(when, datetime):
        try:
            return "once", ensure_utc(when), None
        except ValueError as error:
            raise InvalidInputError(str(error)) from None
    if isinstance(when, str) and is_cron(when):
        return "cron", next_cron(when, now), when
    try:
        return "once", now + parse_duration(when), None
    except ValueError as error:
        raise InvalidInputError(
            f"{when!r} is not a datetime, a delay or a cron expression ({error})"
        ) from None


def interval_seconds(interval: timedelta | int | float | str) -> float:
    """An interval in seconds (refused when not a positive duration)."""
    try:
        return parse_duration(interval).total_seconds()
    except ValueError as error:
        raise InvalidInputError(str(error)) from None


def next_cron(spec: str, after: datetime) -> datetime:
    """The first time after ``after`` that the cron expression names (UTC)."""
    following: datetime = croniter(spec, ensure_utc(after)).get_next(datetime)
    return ensure_utc(following)


def next_interval(due_at: datetime, seconds: float, now: datetime) -> datetime:
    """The next multiple of the interval after ``now`` (missed firings are skipped,
    so an overdue interval fires once, then keeps its rhythm)."""
    if now < due_at:
        return due_at + timedelta(seconds=seconds)
    periods = math.floor((now - due_at).total_seconds() / seconds) + 1
    return due_at + timedelta(seconds=periods * seconds)
