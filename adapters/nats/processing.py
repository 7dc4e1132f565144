"""One command, from bytes to reply: size check, parse, identity, idempotency, engine call.

Shared by the request/reply service and the durable JetStream consumer, so both speak
exactly the same protocol. Nothing here raises: every failure becomes an error reply.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from signoff.adapters.nats.identity import Authenticator, Identity, act_as
from signoff.adapters.nats.messages import Command, ErrorBody, ErrorReply, Message, OkReply
from signoff.adapters.nats.routes import ROUTES, Route
from signoff.adapters.nats.settings import NatsSettings
from signoff.domain.errors import (
    ConflictError,
    IdempotencyKeyLostError,
    InvalidInputError,
    SignoffError,
)
from signoff.engine import Engine
from signoff.idempotency import KeyedCommand, Ledger, recording

log = logging.getLogger("signoff.nats")

MSG_ID_HEADER = "Nats-Msg-Id"
RECORD_ATTEMPTS = 5
"""Tries to record an outcome (the command is committed: giving up risks a second run)."""
BUSY_WAIT = 10.0
"""Seconds a repeated request waits for the first delivery of its key to finish."""


@dataclass(frozen=True)
class Outcome:
    """A reply body and what it says: ``code`` is None for success."""

    body: bytes
    code: str | None = None
    repeat: bool = False
    """The key was seen before: this is the first outcome again."""

    @property
    def retryable(self) -> bool:
        """Tells whether another delivery might succeed (internal failures, busy keys)."""
        return self.code == "internal" or self.code == "busy"


def ok(result: object) -> Outcome:
    """A success reply."""
    return Outcome(orjson.dumps(OkReply(result=result).model_dump(mode="json")))


def refused(error: SignoffError, *, code: str | None = None) -> Outcome:
    """An error reply for a typed error."""
    errors = getattr(error, "errors", None) or None
    body = ErrorReply(error=ErrorBody(code=error.code, message=error.message, errors=errors))
    return Outcome(orjson.dumps(body.model_dump(mode="json")), code or error.code)


def parse(route: Route, data: bytes, max_body: int) -> Message:
    """The validated body; InvalidInputError for oversized, malformed or ill-typed input."""
    if len(data) > max_body:
        raise InvalidInputError(f"body of {len(data)} bytes exceeds the limit of {max_body}")
    try:
        return route.request.model_validate_json(data or b"{}")
    except ValidationError as error:
        details = error.errors(include_url=False, include_context=False, include_input=False)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in d['loc']) or 'body'}: {d['msg']}" for d in details[:10]
        )
        raise InvalidInputError(
            f"invalid {route.name} body: {summary}", errors=[dict(d) for d in details]
        ) from None


def idempotency_key(msg: Message, headers: Mapping[str, str] | None) -> str | None:
    """The key from the ``Nats-Msg-Id`` header or the body (which must then agree)."""
    header = (headers or {}).get(MSG_ID_HEADER) or None
    body = msg.idempotency_key if isinstance(msg, Command) else None
    if header and body and header != body:
        raise InvalidInputError(f"{MSG_ID_HEADER} and idempotency_key differ")
    return header or body


def fingerprint(route: Route, msg: Message) -> str:
    """What a key stands for: a repeat with other content is refused."""
    content = msg.model_dump(mode="json", exclude={"idempotency_key"})
    return hashlib.sha256(
        orjson.dumps([route.name, content], option=orjson.OPT_SORT_KEYS)
    ).hexdigest()


class Processor:
    """Turns one command message into one outcome."""

    def __init__(
        self,
        engine: Engine,
        settings: NatsSettings,
        *,
        ledger: Ledger,
        auth: Authenticator | None = None,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.ledger = ledger
        self.auth = auth
        self.on_commit = on_commit
        """Called after a command succeeded (the relay then publishes at once)."""

    async def process(
        self,
        name: str,
        data: bytes,
        headers: Mapping[str, str] | None,
        *,
        default_key: str | None = None,
    ) -> Outcome:
        """Validates and runs the command ``name`` (``noun.verb``); ``default_key`` is the
        idempotency key of a command that carries none."""
        route = ROUTES.get(name)
        if route is None:
            return refused(InvalidInputError(f"unknown command {name!r}"))
        try:
            msg = parse(route, data, self.settings.max_body)
            identity: Identity | None = self.auth.verify(headers) if self.auth else None
            msg = act_as(route, msg, identity)
            key = (idempotency_key(msg, headers) or default_key) if route.mutates else None
        except SignoffError as error:
            return refused(error)
        if key is None:
            return await self._run(route, msg, None)
        return await self._once(route, msg, key)

    async def _once(self, route: Route, msg: Message, key: str) -> Outcome:
        try:
            claim = await self.ledger.claim(key, fingerprint(route, msg))
            deadline = asyncio.get_running_loop().time() + BUSY_WAIT
            while claim.state == "busy" and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
                claim = await self.ledger.claim(key, fingerprint(route, msg))
        except Exception:
            log.exception("idempotency ledger failed for %s", key)
            return refused(SignoffError("the idempotency ledger is unavailable"))
        if claim.state == "done":
            return Outcome(claim.outcome, claim.code, repeat=True)
        if claim.state == "mismatch":
            return refused(ConflictError(f"idempotency key {key!r} was used for another command"))
        if claim.state == "busy":
            return refused(ConflictError(f"command {key!r} is still in progress"), code="busy")
        keyed = KeyedCommand(key, self.ledger.owner, lambda value: ok(route.shape(value)).body)
        with recording(keyed):  # a reply of a command that stored something is stored with it
            outcome = await self._run(route, msg, key)
        if keyed.recorded or outcome.code == "busy":
            return outcome
        for attempt in range(RECORD_ATTEMPTS):
            try:
                if outcome.retryable:
                    await self.ledger.release(key)
                    return outcome
                held = await self.ledger.finish(key, outcome.code, outcome.body)
                if held is None:
                    return outcome
                if held.state == "done":  # another engine took the claim over and ran it
                    return Outcome(held.outcome, held.code, repeat=True)
                return refused(ConflictError(f"command {key!r} is still in progress"), code="busy")
            except Exception:
                log.exception("could not record the outcome of %s (attempt %d)", key, attempt + 1)
                await asyncio.sleep(0.2 * 2**attempt)
        return refused(SignoffError("the outcome could not be recorded; retry"))

    async def _run(self, route: Route, msg: Message, key: str | None) -> Outcome:
        try:
            outcome = ok(route.shape(await route.handle(self.engine, msg, key)))
            if route.mutates and self.on_commit is not None:
                self.on_commit()
            return outcome
        except IdempotencyKeyLostError as error:  # another engine holds the key now
            return refused(error, code="busy")
        except SignoffError as error:
            return refused(error)
        except Exception:
            log.exception("%s failed", route.name)
            return refused(SignoffError(f"{route.name} failed inside the engine"))
