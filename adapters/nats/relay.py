"""The event relay: every stored domain event, in notification order, to the
``SIGNOFF_EVENTS`` stream on ``<prefix>.events.<aggregate>.<event>.<id>``.

The relay keeps no position of its own: the stream's last message carries the
notification id it came from, so a restarted engine (or broker) resumes right after it.
Each publish names its predecessor (``Nats-Expected-Last-Msg-Id``) and carries
``Nats-Msg-Id`` = the notification id, so JetStream refuses a gap, a double or a race
between the relays of several engines; the loser re-reads the stream's end and goes on.
Each read of the stream's end checks that the stream mirrors this very store
(:mod:`.stream_identity`): a mismatch stops the relay rather than skip events.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence
from typing import Any

import orjson
from eventsourcing.persistence import Notification
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import APIError

from signoff.adapters.nats.settings import NatsSettings
from signoff.adapters.nats.stream_identity import (
    NOTIFICATION_HEADER,
    StreamMismatchError,
    bind_events_stream,
    stream_position,
)
from signoff.domain.base import SignoffEvent
from signoff.engine import Engine
from signoff.views import HistoryEntry

log = logging.getLogger("signoff.nats")

AGGREGATES = {"WorkflowRun": "workflow"}
"""Subject tokens of aggregate types whose lower-cased name would be unclear."""
RACE_CODES = {10070, 10071}
"""JetStream's "wrong last sequence" and "wrong last msg ID": another relay was first."""
_UNSAFE = re.compile(r"[.*>\s]")


def token(text: str) -> str:
    """``text`` as one subject token (dots, wildcards and spaces become ``_``)."""
    return _UNSAFE.sub("_", text) or "_"


def snake(name: str) -> str:
    """``VoteCast`` -> ``vote_cast``."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def event_message(
    settings: NatsSettings, notification: Notification, entry: HistoryEntry
) -> tuple[str, bytes]:
    """The subject and JSON body of one stored event."""
    aggregate = AGGREGATES.get(entry.aggregate_type, entry.aggregate_type.lower())
    subject = settings.subject(
        "events", aggregate, snake(entry.event), token(str(notification.originator_id))
    )
    body = {
        "type": f"{entry.aggregate_type}.{entry.event}",
        "aggregate": aggregate,
        "aggregate_id": entry.aggregate_id,
        "version": entry.version,
        "notification_id": notification.id,
        "time": entry.at.isoformat(),
        "actor": entry.actor,
        "reason": entry.reason,
        "command_id": entry.command_id,
        "data": entry.data,
    }
    return subject, orjson.dumps(body, default=str)


def _plain(event: Any) -> HistoryEntry:
    """An entry for an event that records no cause (not one of signoff's own)."""
    aggregate_type, _, name = type(event).__qualname__.rpartition(".")
    return HistoryEntry.model_construct(
        aggregate_id=str(event.originator_id),
        aggregate_type=aggregate_type or "aggregate",
        version=event.originator_version,
        event=name,
        at=event.timestamp,
        actor="",
        reason=None,
        command_id="",
        data={},
    )


class EventRelay:
    """Tails the notification log and publishes it, exactly once, in order."""

    def __init__(self, engine: Engine, js: JetStreamContext, settings: NatsSettings) -> None:
        self.engine = engine
        self.js = js
        self.settings = settings
        self.position: int | None = None
        """The last notification id known to be in the stream (None: read it from there)."""
        self.failure: StreamMismatchError | None = None
        """Why the relay stopped on its own: the stream turned out to be another store's."""
        self._store_id = ""
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._nudged = asyncio.Event()

    def wake(self) -> None:
        """Looks at the log now rather than at the next poll (after a local commit)."""
        self._nudged.set()

    async def bind(self) -> None:
        """Makes the events stream this store's (created, reset when the settings say so,
        or adopted); raises StreamMismatchError when it holds another store's events."""
        app = self.engine.application
        self._store_id = await asyncio.to_thread(app.store_id)
        await bind_events_stream(self.js, self.settings, app, self._store_id)

    async def start(self) -> None:
        """Starts relaying in the background (after :meth:`bind`)."""
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Publishes what is already stored, then stops."""
        self._stopping.set()
        self._nudged.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            try:
                published = await self.relay_once()
            except StreamMismatchError as error:  # relaying on would skip this store's events
                log.error("relay stopped: %s", error)
                self.failure = error
                return
            except Exception as error:  # broker away or a race lost: re-read the stream's end
                lost_race = isinstance(error, APIError) and error.err_code in RACE_CODES
                log.log(logging.DEBUG if lost_race else logging.INFO, "relay: %s", error)
                self.position = None
                if stopping:
                    return
                await asyncio.sleep(0.2)
                continue
            if stopping and not published:
                return
            if not published:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._nudged.wait(), self.settings.relay_interval)
                self._nudged.clear()

    async def relay_once(self) -> int:
        """Publishes the next batch of stored events; returns how many."""
        if self.position is None:
            self.position = await self._stream_position()
        start = self.position
        batch = await asyncio.to_thread(self._read, start)
        if not batch:
            return 0
        acks = await asyncio.gather(
            *(
                self.js.publish(
                    subject,
                    body,
                    stream=self.settings.events_stream,
                    headers=self._headers(notification_id, previous),
                )
                for (notification_id, subject, body), previous in zip(
                    batch, [start, *[n for n, _, _ in batch[:-1]]], strict=True
                )
            ),
            return_exceptions=True,
        )
        for (notification_id, _, _), ack in zip(batch, acks, strict=True):
            if not isinstance(ack, PubAck):
                raise ack if isinstance(ack, Exception) else RuntimeError(str(ack))
            self.position = notification_id
        return len(batch)

    def _headers(self, notification_id: int, previous: int) -> dict[str, str]:
        headers = {"Nats-Msg-Id": str(notification_id), NOTIFICATION_HEADER: str(notification_id)}
        if previous:
            headers["Nats-Expected-Last-Msg-Id"] = str(previous)
        else:
            headers["Nats-Expected-Last-Sequence"] = "0"
        return headers

    def _read(self, start: int) -> list[tuple[int, str, bytes]]:
        app = self.engine.application
        found: Sequence[Notification] = app.recorder.select_notifications(
            start, self.settings.relay_batch, inclusive_of_start=False
        )
        out = []
        for notification in found:
            event = app.mapper.to_domain_event(notification)
            entry = HistoryEntry.of(event) if isinstance(event, SignoffEvent) else _plain(event)
            subject, body = event_message(self.settings, notification, entry)
            out.append((notification.id, subject, body))
        return out

    async def _stream_position(self) -> int:
        if not self._store_id:
            self._store_id = await asyncio.to_thread(self.engine.application.store_id)
        return await stream_position(
            self.js, self.settings.events_stream, self.engine.application, self._store_id
        )
