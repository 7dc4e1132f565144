"""Request/reply commands: ``<prefix>.<noun>.<verb>``, served in a queue group so that
several engines share them. Each request runs in its own task; :meth:`drain` stops taking
new ones and waits for those in flight."""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from signoff.adapters.nats.processing import Processor
from signoff.adapters.nats.routes import ROUTES
from signoff.adapters.nats.settings import NatsSettings

log = logging.getLogger("signoff.nats")

NOUNS = tuple(sorted({name.split(".")[0] for name in ROUTES}))
"""Every subject's first token after the prefix (``workflow``, ``approval``, ...)."""


class CommandService:
    """Answers command requests with the processor's replies."""

    def __init__(self, nc: Client, processor: Processor, settings: NatsSettings) -> None:
        self.nc = nc
        self.processor = processor
        self.settings = settings
        self._subscriptions: list[Subscription] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self.answered = 0
        """Requests answered so far (several engines in a queue group share them)."""

    async def start(self) -> None:
        """Subscribes to every command subject in the queue group, and returns once the
        server has the subscriptions (a request sent after ``start`` finds a responder)."""
        for noun in NOUNS:
            subject = self.settings.subject(noun, "*")
            sub = await self.nc.subscribe(
                subject, queue=self.settings.queue_group, cb=self._received
            )
            self._subscriptions.append(sub)
        await self.nc.flush()

    async def _received(self, msg: Msg) -> None:
        await self._slots.acquire()  # at the limit, requests wait in the subscription
        task = asyncio.create_task(self._answer(msg))
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._slots.release()

    async def _answer(self, msg: Msg) -> None:
        name = msg.subject[len(self.settings.prefix) + 1 :]
        outcome = await self.processor.process(name, msg.data, msg.headers)
        self.answered += 1
        if not msg.reply:
            return
        try:
            await msg.respond(outcome.body)
        except Exception:  # the requester or the connection is gone; the outcome is stored
            log.warning("could not reply to %s", msg.subject, exc_info=True)

    async def drain(self) -> None:
        """Stops taking requests and waits until every request in flight is answered."""
        for sub in self._subscriptions:
            try:
                await sub.drain()  # type: ignore[no-untyped-call]
            except Exception:
                log.warning("could not drain %s", sub.subject, exc_info=True)
        self._subscriptions.clear()
        while self._in_flight:
            await asyncio.gather(*list(self._in_flight), return_exceptions=True)
