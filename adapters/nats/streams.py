"""The JetStream streams the adapter uses, created when missing (file storage).

The events stream is labelled with the id of the store it mirrors (see
:mod:`.stream_identity`): in its metadata (nats-server 2.10 and later) and, for older
servers, which drop metadata, in its description.
"""

from __future__ import annotations

import dataclasses
import re

from nats.js import JetStreamContext
from nats.js.api import RetentionPolicy, StorageType, StreamConfig, StreamInfo
from nats.js.errors import BadRequestError, NotFoundError

from signoff.adapters.nats.settings import NatsSettings

STREAM_NAME_IN_USE = 10058
"""JetStream's "stream name already in use with a different configuration"."""
STORE_ID_KEY = "signoff_store_id"
"""The metadata key of the store id."""
_DESCRIPTION = "signoff events of store {}"
_DESCRIBED = re.compile(r"signoff events of store ([0-9a-f]+)")


def stream_store_id(config: StreamConfig) -> str | None:
    """The id of the store the stream mirrors, as labelled (None: not labelled)."""
    found = (config.metadata or {}).get(STORE_ID_KEY)
    if found:
        return found
    described = _DESCRIBED.fullmatch(config.description or "")
    return described.group(1) if described else None


def labelled(config: StreamConfig, store_id: str) -> StreamConfig:
    """``config`` labelled with ``store_id`` (other metadata kept)."""
    return dataclasses.replace(
        config,
        metadata={**(config.metadata or {}), STORE_ID_KEY: store_id},
        description=_DESCRIPTION.format(store_id),
    )


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    subjects: list[str],
    *,
    duplicate_window: float,
    work_queue: bool = False,
    store_id: str | None = None,
) -> StreamInfo:
    """Creates the stream ``name`` unless it exists (an existing one is left as it is);
    a new one is labelled with ``store_id`` when given. Returns the stream as it is."""
    try:
        return await js.stream_info(name)
    except NotFoundError:
        pass
    config = StreamConfig(
        name=name,
        subjects=subjects,
        storage=StorageType.FILE,
        retention=RetentionPolicy.WORK_QUEUE if work_queue else RetentionPolicy.LIMITS,
        duplicate_window=duplicate_window,
    )
    try:
        return await js.add_stream(labelled(config, store_id) if store_id else config)
    except BadRequestError as error:
        if error.err_code != STREAM_NAME_IN_USE:
            raise
        return await js.stream_info(name)  # another engine created it meanwhile


async def ensure_streams(
    js: JetStreamContext, settings: NatsSettings, *, store_id: str | None = None
) -> None:
    """The events (labelled with ``store_id`` when new), commands and dead-letter streams."""
    window = settings.duplicate_window
    await ensure_stream(
        js,
        settings.events_stream,
        [settings.events_subjects],
        duplicate_window=window,
        store_id=store_id,
    )
    await ensure_stream(
        js,
        settings.commands_stream,
        [settings.commands_subjects],
        duplicate_window=window,
        work_queue=True,
    )
    await ensure_stream(js, settings.dead_stream, [settings.dead_subjects], duplicate_window=window)
