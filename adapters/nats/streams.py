"""The JetStream streams the adapter uses, created when missing (file storage)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from signoff.adapters.nats.settings import NatsSettings


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    duplicate_window: float,
    work_queue: bool = False,
) -> None:
    """Creates the stream ``name`` unless it exists (an existing one is left as it is)."""
    try:
        await js.stream_info(name)
        return
    except NotFoundError:
        pass
    await js.add_stream(
        StreamConfig(
            name=name,
            subjects=subjects,
            storage=StorageType.FILE,
            retention=RetentionPolicy.WORK_QUEUE if work_queue else RetentionPolicy.LIMITS,
            duplicate_window=duplicate_window,
        )
    )


async def ensure_streams(js: JetStreamContext, settings: NatsSettings) -> None:
    """The events, commands and dead-letter streams."""
    window = settings.duplicate_window
    await ensure_stream(
        js, settings.events_stream, [settings.events_subjects], duplicate_window=window
    )
    await ensure_stream(
        js,
        settings.commands_stream,
        [settings.commands_subjects],
        duplicate_window=window,
        work_queue=True,
    )
    await ensure_stream(js, settings.dead_stream, [settings.dead_subjects], duplicate_window=window)
