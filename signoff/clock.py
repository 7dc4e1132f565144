"""Time as an injected dependency, so that tests can skip days in milliseconds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Protocol

from signoff.domain.durations import parse_duration


class Clock(Protocol):
    """Tells the current time (timezone-aware, UTC)."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        """Returns the current UTC time."""
        return datetime.now(UTC)


class ManualClock:
    """A clock that stands still until told to move: days pass in a method call."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start time")
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """Returns the clock's current time."""
        with self._lock:
            return self._now

    def advance(self, by: str | float | timedelta) -> datetime:
        """Moves time forward by a duration ("7 days", seconds or a timedelta)."""
        step = parse_duration(by)
        with self._lock:
            self._now += step
            return self._now

    def set(self, when: datetime) -> None:
        """Moves time to ``when`` (never backwards)."""
        with self._lock:
            if when < self._now:
                raise ValueError("a ManualClock never goes backwards")
            self._now = when


def ensure_utc(when: datetime) -> datetime:
    """Rejects naive datetimes and normalises aware ones to UTC."""
    if when.tzinfo is None:
        raise ValueError("datetimes must be timezone-aware")
    return when.astimezone(UTC)


__all__ = ["Clock", "ManualClock", "SystemClock", "ensure_utc"]
