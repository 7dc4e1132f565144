"""The Engine's schedules: durable one-shot, cron and interval timers calling named callbacks."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar, overload

from signoff import schedule_units
from signoff.application import SignoffApplication
from signoff.clock import Clock
from signoff.domain.errors import InvalidInputError, UnknownCallbackError
from signoff.domain.schedule import Schedule
from signoff.index import RunIndex, epoch
from signoff.json_values import inspect_json
from signoff.session import Session
from signoff.timing import When, first_due, interval_seconds
from signoff.views import TIMER_KINDS, ScheduleInfo, TimerInfo

T = TypeVar("T")
Callback = Callable[[Any, Any], Awaitable[Any] | Any]
"""A schedule's callback: called with (payload, engine); may be async."""
C = TypeVar("C", bound=Callback)

SCHEDULE_ACTOR = "api"


class ScheduleCommands:
    """Scheduling, cancelling and listing durable timers."""

    callbacks: dict[str, Callback]
    clock: Clock
    _ids: Callable[[], str]

    async def _write(self, unit: Callable[[Session], T]) -> T:
        raise NotImplementedError

    async def _read(self, use_case: Callable[[SignoffApplication], T]) -> T:
        raise NotImplementedError

    @overload
    def register_callback(self, name: str) -> Callable[[C], C]: ...

    @overload
    def register_callback(self, name: str, fn: C) -> C: ...

    def register_callback(self, name: str, fn: C | None = None) -> C | Callable[[C], C]:
        """Registers ``fn`` under ``name`` for schedules to call; without ``fn``, returns a
        decorator: ``@engine.register_callback("send_reminder")``."""
        if not isinstance(name, str) or not name.strip():
            raise InvalidInputError("a callback needs a non-empty name")

        def add(function: C) -> C:
            known = self.callbacks.get(name)
            if known is not None and known is not function:
                raise InvalidInputError(f"another callback is registered as {name!r}")
            self.callbacks[name] = function
            return function

        return add(fn) if fn is not None else add

    def _check(self, callback: str, payload: Any) -> None:
        if callback not in self.callbacks:
            raise UnknownCallbackError(callback)
        problem, _ = inspect_json(payload)
        if problem:
            raise InvalidInputError(f"the payload cannot be stored: {problem}")
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"the payload is not JSON: {error}") from None

    async def schedule(
        self, when: When, callback: str, payload: Any = None, *, idempotent: bool = False
    ) -> str:
        """Calls ``callback(payload, engine)`` at ``when``: a datetime, a delay (seconds,
        "4 hours", a timedelta) or a cron expression (UTC, repeating).

        Args:
            idempotent: the same callback, payload and timing give the same schedule
                (scheduling it again, after a restart say, adds nothing).

        Returns:
            The schedule's id.
        """
        self._check(callback, payload)
        kind, due_at, spec = first_due(when, self.clock.now())
        timing = due_at.isoformat() if isinstance(when, datetime) else repr(when)
        return await self._create(kind, callback, payload, due_at, spec, idempotent, timing)

    async def schedule_every(
        self,
        interval: timedelta | int | float | str,
        callback: str,
        payload: Any = None,
        *,
        idempotent: bool = False,
    ) -> str:
        """Calls ``callback(payload, engine)`` every ``interval``, first one interval from now.
        A firing never overlaps the previous one; missed firings are not replayed."""
        self._check(callback, payload)
        seconds = interval_seconds(interval)
        due_at = self.clock.now() + timedelta(seconds=seconds)
        timing = f"every {seconds}"
        return await self._create(
            "interval", callback, payload, due_at, str(seconds), idempotent, timing
        )

    async def _create(
        self,
        kind: str,
        callback: str,
        payload: Any,
        due_at: datetime,
        spec: str | None,
        idempotent: bool,
        timing: str,
    ) -> str:
        schedule_id = (
            schedule_units.idempotent_id(callback, payload, timing) if idempotent else self._ids()
        )
        command_id = self._ids()
        return await self._write(
            lambda s: schedule_units.create(
                s,
                schedule_id=schedule_id,
                kind=kind,
                callback=callback,
                payload=payload,
                due_at=due_at,
                spec=spec,
                idempotent=idempotent,
                actor=SCHEDULE_ACTOR,
                command_id=command_id,
            )
        )

    async def cancel_schedule(self, schedule_id: str) -> ScheduleInfo:
        """Cancels a schedule; it never fires again."""
        command_id = self._ids()
        return await self._write(
            lambda s: ScheduleInfo.of(
                schedule_units.cancel(s, schedule_id, actor=SCHEDULE_ACTOR, command_id=command_id)
            )
        )

    async def get_schedule(self, schedule_id: str) -> ScheduleInfo:
        """The schedule's type, callback, payload, status and next run."""
        return await self._read(lambda app: ScheduleInfo.of(app.load(Schedule, schedule_id)))

    async def list_schedules(
        self,
        *,
        type: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100,
    ) -> list[ScheduleInfo]:
        """Pending schedules (of ``type`` once/cron/interval) due between ``start`` and ``end``,
        earliest first."""
        if type is not None and type not in ("once", "cron", "interval"):
            raise InvalidInputError("type must be once, cron or interval")

        def query(app: SignoffApplication) -> list[ScheduleInfo]:
            index: RunIndex = app.recorder  # type: ignore[assignment]
            rows = index.timers_of_kind(
                "schedule",
                key=f"schedule:{type}" if type else None,
                start=epoch(start) if start else None,
                end=epoch(end) if end else None,
                limit=limit,
            )
            return [ScheduleInfo.of(app.load(Schedule, row.target_id)) for row in rows]

        return await self._read(query)

    async def upcoming_timers(
        self, *, before: datetime | None = None, kind: str | None = None, limit: int = 100
    ) -> list[TimerInfo]:
        """Everything due in time, earliest first: approval deadlines, reminders and
        escalations, waits' timeouts, step retries and schedules (``kind`` approval, wait,
        retry or schedule), due before ``before`` (default: whenever).

        Read from the runtime's timer index, which is written in the events' own
        transaction, so a UI sees exactly what the runtime will fire.
        """
        if kind is not None and kind not in TIMER_KINDS:
            raise InvalidInputError(f"kind must be one of {', '.join(TIMER_KINDS)}")
        if not 1 <= limit <= 1000:
            raise InvalidInputError("limit must be between 1 and 1000")
        end = epoch(before) if before else None

        def query(app: SignoffApplication) -> list[TimerInfo]:
            index: RunIndex = app.recorder  # type: ignore[assignment]
            if kind is None:
                rows = index.due_timers(end if end is not None else float("inf"), limit)
            else:
                rows = index.timers_of_kind(kind, key=None, start=None, end=end, limit=limit)
            return [TimerInfo.of(row) for row in rows]

        return await self._read(query)
