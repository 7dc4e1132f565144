"""Durable commands: the same commands, published to ``<prefix>.cmd.<noun>.<verb>`` and
kept in the ``SIGNOFF_COMMANDS`` work-queue stream for publishers that cannot wait.

Every engine pulls from one durable consumer. A command is acked only after the engine
committed it (or refused it); a failure is redelivered with a growing delay, and after
``max_deliver`` deliveries the command moves to ``<prefix>.dead.<noun>.<verb>`` with the
reason. A refused command (bad body, unknown id, conflict, forbidden) cannot succeed
later: it moves to the dead-letter subject at once. Redeliveries of a command that was
already applied find its outcome in the idempotency ledger and append nothing.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig
from nats.js.errors import FetchTimeoutError

from signoff.adapters.nats.processing import MSG_ID_HEADER, Outcome, Processor
from signoff.adapters.nats.settings import NatsSettings

log = logging.getLogger("signoff.nats")

REASON_HEADER = "Signoff-Reason"
CODE_HEADER = "Signoff-Error-Code"
DELIVERIES_HEADER = "Signoff-Deliveries"


class DurableCommands:
    """Pulls durable commands and applies them until stopped."""

    def __init__(self, js: JetStreamContext, processor: Processor, settings: NatsSettings) -> None:
        self.js = js
        self.processor = processor
        self.settings = settings
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._deliveries: dict[int, int] = {}

    async def start(self) -> None:
        """Binds to the shared durable consumer and starts pulling."""
        s = self.settings
        self._sub = await self.js.pull_subscribe(
            s.commands_subjects,
            durable=s.commands_consumer,
            stream=s.commands_stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=s.ack_wait,
                max_deliver=-1,  # counted here, so a failed dead-letter publish is retried
                max_ack_pending=10 * s.fetch_batch,
            ),
        )
        self._task = asyncio.create_task(self._pull())

    async def drain(self) -> None:
        """Stops pulling; commands already pulled are applied and acked first."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def _pull(self) -> None:
        while not self._stopping.is_set():
            try:
                batch = await self._sub.fetch(self.settings.fetch_batch, timeout=0.5)
            except (TimeoutError, FetchTimeoutError):
                continue
            except Exception as error:  # broker restarting, connection lost: try again
                log.info("fetching durable commands failed (%s); retrying", error)
                await asyncio.sleep(0.2)
                continue
            await asyncio.gather(*(self._apply(msg) for msg in batch))

    async def _apply(self, msg: Msg) -> None:
        name = msg.subject[len(self.settings.subject("cmd")) + 1 :]
        seq = msg.metadata.sequence.stream
        # a command published without a key is still applied once however often it is
        # redelivered: its key is then its place in the stream (and when it was stored)
        stored_at = msg.metadata.timestamp.timestamp() if msg.metadata.timestamp else 0
        own_key = f"{self.settings.commands_stream}:{seq}:{stored_at}"
        outcome = await self.processor.process(name, msg.data, msg.headers, default_key=own_key)
        # the delivery count JetStream reports can restart after a delayed nak: count here too
        deliveries = max(msg.metadata.num_delivered, self._deliveries.get(seq, 0) + 1)
        self._deliveries[seq] = deliveries
        try:
            if outcome.code is None or outcome.repeat:
                await msg.ack()
            elif outcome.retryable and deliveries < self.settings.max_deliver:
                await msg.nak(delay=min(0.25 * 2**deliveries, 30.0))
            else:
                await self._dead_letter(msg, name, outcome, deliveries)
                await msg.term()
            if not (outcome.retryable and deliveries < self.settings.max_deliver):
                self._deliveries.pop(seq, None)
        except Exception as error:  # the ack is lost: the redelivery will find the outcome
            log.warning("could not settle durable command %s (%s)", msg.subject, error)

    async def _dead_letter(self, msg: Msg, name: str, outcome: Outcome, deliveries: int) -> None:
        error = orjson.loads(outcome.body).get("error", {})
        seq = msg.metadata.sequence.stream
        original_id = (msg.headers or {}).get(MSG_ID_HEADER) or f"seq-{seq}"
        await self.js.publish(
            self.settings.subject("dead", name),
            msg.data,
            stream=self.settings.dead_stream,
            headers={
                MSG_ID_HEADER: f"dead:{original_id}",
                REASON_HEADER: str(error.get("message", "failed"))[:1000],
                CODE_HEADER: str(error.get("code", "internal")),
                DELIVERIES_HEADER: str(deliveries),
                "Signoff-Original-Id": original_id,
            },
        )
