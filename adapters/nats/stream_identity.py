"""The events stream belongs to one store: checked when the relay starts and resumes.

The relay resumes after the notification id of the stream's last message. Notification
ids number the events of *one* store: behind a stream that mirrors another store (or
this store before it was reset, or restored from an older backup) the relay would take
the new store's first events for ones already published and silently skip them. So
the stream is labelled with the store id (:mod:`signoff.store_identity`) and:

- a new stream gets this store's id (:func:`~.streams.ensure_stream`);
- an unlabelled stream (made by an older signoff) is adopted when it is empty or its
  last message is this store's event at that notification id;
- a stream labelled with another id, or whose last message is not this store's event,
  is a :class:`StreamMismatchError`: the engine refuses to relay into it.

Engines starting at once on one store offer the same id and agree whoever creates or
labels the stream first. The relay checks the last message again whenever it re-reads
its position, which also catches two *different* stores racing to adopt one stream.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import orjson
from nats.js import JetStreamContext
from nats.js.api import StreamInfo
from nats.js.errors import NotFoundError

from signoff.adapters.nats.settings import NatsSettings
from signoff.adapters.nats.streams import ensure_stream, labelled, stream_store_id
from signoff.application import SignoffApplication
from signoff.domain.errors import SignoffError

NOTIFICATION_HEADER = "Signoff-Notification-Id"
"""The header of a relayed event that names its notification id."""


class StreamMismatchError(SignoffError):
    """Raised when the events stream holds events of another store than the engine's
    (another store's, this store's before a reset, or anything else)."""

    code = "stream_mismatch"

    def __init__(
        self,
        stream: str,
        stream_store_id: str | None,
        store_id: str,
        *,
        notification_id: int | None = None,
    ) -> None:
        if stream_store_id and stream_store_id != store_id:
            what = f"mirrors store {stream_store_id}, not this store ({store_id})"
        else:
            what = f"ends with an event (notification id {notification_id}) that this store "
            what += f"({store_id}) does not have"
        super().__init__(
            f"the events stream {stream} {what}: use another stream name (--streams) or "
            "--reset-events to delete it and republish this store's history from notification 1"
        )
        self.stream = stream
        self.stream_store_id = stream_store_id
        self.store_id = store_id
        self.notification_id = notification_id


@dataclass(frozen=True)
class LastMessage:
    """What the stream's last message says of the event it carries (None: unreadable)."""

    notification_id: int
    aggregate_id: str | None
    version: int | None


async def last_message(js: JetStreamContext, info: StreamInfo) -> LastMessage | None:
    """The stream's last message, or None when the stream holds none."""
    if not info.state.messages or not info.state.last_seq:
        return None
    try:
        msg: Any = await js.get_msg(info.config.name or "", seq=info.state.last_seq)
    except NotFoundError:
        return None
    notification_id = (msg.headers or {}).get(NOTIFICATION_HEADER, "")
    try:
        body = orjson.loads(msg.data or b"")
        return LastMessage(int(notification_id), body["aggregate_id"], body["version"])
    except (ValueError, TypeError, KeyError):
        return LastMessage(int(notification_id) if notification_id.isdigit() else 0, None, None)


def holds(app: SignoffApplication, last: LastMessage) -> bool:
    """Tells whether the store's event at ``last``'s notification id is the one it carries
    (same aggregate and version); runs in a thread (it reads the store)."""
    if last.notification_id <= 0:
        return False
    found = app.recorder.select_notifications(last.notification_id, 1)
    return (
        bool(found)
        and found[0].id == last.notification_id
        and str(found[0].originator_id) == last.aggregate_id
        and found[0].originator_version == last.version
    )


async def stream_position(
    js: JetStreamContext, stream: str, app: SignoffApplication, store_id: str
) -> int:
    """The notification id of the stream's last message (0: none), once the stream is
    known to mirror this store; raises StreamMismatchError otherwise."""
    info = await js.stream_info(stream)
    label = stream_store_id(info.config)
    if label is not None and label != store_id:
        raise StreamMismatchError(stream, label, store_id)
    last = await last_message(js, info)
    if last is None:
        return 0
    if not await asyncio.to_thread(holds, app, last):
        raise StreamMismatchError(stream, label, store_id, notification_id=last.notification_id)
    return last.notification_id


async def bind_events_stream(
    js: JetStreamContext, settings: NatsSettings, app: SignoffApplication, store_id: str
) -> None:
    """Makes the events stream this store's mirror: deletes it first when
    ``settings.reset_events``, creates it labelled, adopts an unlabelled one that fits,
    and refuses any other with StreamMismatchError."""
    name = settings.events_stream
    if settings.reset_events:
        with contextlib.suppress(NotFoundError):
            await js.delete_stream(name)
    info = await ensure_stream(
        js,
        name,
        [settings.events_subjects],
        duplicate_window=settings.duplicate_window,
        store_id=store_id,
    )
    label = stream_store_id(info.config)
    if label is None:
        await stream_position(js, name, app, store_id)  # empty, or its last event is ours
        await js.update_stream(labelled(info.config, store_id))
    await stream_position(js, name, app, store_id)  # labelled ours, last event ours
