"""The NATS adapter: request/reply commands, durable commands and the event relay over
one connection, started together and drained together (commands first, then events)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from nats.aio.client import Client

from signoff.adapters.nats.connection import connect
from signoff.adapters.nats.durable import DurableCommands
from signoff.adapters.nats.identity import Authenticator
from signoff.adapters.nats.processing import Processor
from signoff.adapters.nats.relay import EventRelay
from signoff.adapters.nats.service import CommandService
from signoff.adapters.nats.settings import NatsSettings
from signoff.adapters.nats.streams import ensure_streams
from signoff.engine import Engine
from signoff.idempotency import KeyStore, Ledger

log = logging.getLogger("signoff.nats")


class NatsAdapter:
    """Serves ``engine`` over NATS.

    Args:
        engine: a started Engine.
        url: the NATS server(s), e.g. ``nats://127.0.0.1:4222``.
        settings: subjects, stream names and limits.
        auth: verifies the acting person's JWT; without it the body's ``by`` is trusted.
        relay: publish domain events (one relay per engine is fine: they never double);
            refused with StreamMismatchError when the events stream mirrors another store
            (``settings.reset_events`` deletes and refills it).
        durable: apply durable commands from the commands stream.
    """

    def __init__(
        self,
        engine: Engine,
        url: str = "nats://127.0.0.1:4222",
        *,
        settings: NatsSettings | None = None,
        auth: Authenticator | None = None,
        relay: bool = True,
        durable: bool = True,
    ) -> None:
        self.engine = engine
        self.url = url
        self.settings = settings or NatsSettings()
        self.auth = auth
        self._with_relay = relay
        self._with_durable = durable
        self.nc: Client | None = None
        self.relay: EventRelay | None = None
        self.service: CommandService | None = None
        self._durable: DurableCommands | None = None
        self._ledger: Ledger | None = None

    async def __aenter__(self) -> NatsAdapter:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Connects (giving up after ``settings.connect_timeout`` with
        NatsUnavailableError), creates the streams when missing and starts serving; raises
        StreamMismatchError when the events stream is another store's."""
        if self.auth is None:
            log.warning("NATS commands are unauthenticated: the body's 'by' is trusted")
        self.nc = await connect(
            self.url, name="signoff-engine", timeout=self.settings.connect_timeout
        )
        js = self.nc.jetstream(timeout=5)
        store_id = await asyncio.to_thread(self.engine.application.store_id)
        await ensure_streams(js, self.settings, store_id=store_id)
        if self._with_relay:
            self.relay = EventRelay(self.engine, js, self.settings)
            try:
                await self.relay.bind()
            except BaseException:  # the events stream is another store's: close, then say so
                await self.stop()
                raise
        keys: KeyStore = self.engine.application.recorder  # type: ignore[assignment]
        self._ledger = Ledger(
            keys, owner=self.engine.instance_id, lease=self.settings.idempotency_lease
        )
        wake = self.relay.wake if self.relay is not None else None
        processor = Processor(
            self.engine, self.settings, ledger=self._ledger, auth=self.auth, on_commit=wake
        )
        self.service = CommandService(self.nc, processor, self.settings)
        await self.service.start()
        if self._with_durable:
            self._durable = DurableCommands(js, processor, self.settings)
            await self._durable.start()
        if self.relay is not None:
            await self.relay.start()

    async def stop(self) -> None:
        """Drains: no new commands, those in flight answered and acked, events published."""
        if self.service is not None:
            await self.service.drain()
        if self._durable is not None:
            await self._durable.drain()
        if self.relay is not None:
            await self.relay.stop()
        if self._ledger is not None:
            await self._ledger.close()
        if self.nc is not None and not self.nc.is_closed:
            with contextlib.suppress(Exception):  # acks and replies are out; the rest is idle
                await self.nc.flush(timeout=2)
            await self.nc.close()
        self.service = self._durable = self.relay = self._ledger = None
