"""Idempotency keys: a command sent twice under one key runs once and answers alike.

The keys live in the event store's own database, shared by every engine on it
and outliving restarts. A keyed command is *claimed* first (one row,
``running``, this engine's name and the store's time); a repeat of a key that
is ``done`` gets the stored outcome and changes nothing; one that is
``running`` waits; a claim whose engine went silent for the lease may be taken
over. Time is the store's, never an engine's clock.

The outcome of a command that stored something is recorded **in the same
transaction as its events** (``recording``): a crash can leave a key either
unrun (nothing stored, the claim expires and a retry runs it) or done (the
events and the reply together), never applied without its reply. That
transaction also commits only while this engine still holds the key's claim,
so a command never runs twice because a slow engine lost its claim. A refusal
(which stores nothing) is recorded after the fact, also only while the claim is
this engine's: one that lost it answers with what the key holds instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol


@dataclass(frozen=True)
class Claim:
    """The answer to a claim: ``new`` (run it), ``done`` (here is the first outcome),
    ``busy`` (another delivery runs it now) or ``mismatch`` (the key was used for a
    different command)."""

    state: Literal["new", "done", "busy", "mismatch"]
    code: str | None = None
    outcome: bytes = b""


@dataclass(frozen=True)
class Op:
    """One ledger operation: claim, finish or release."""

    kind: Literal["claim", "finish", "release"]
    key: str
    fingerprint: str = ""
    code: str | None = None
    outcome: bytes = b""


class KeyStore(Protocol):
    """Where keys live: the event store."""

    def apply_key_ops(self, ops: list[Op], *, owner: str, lease: float) -> list[Claim | None]:
        """Applies ``ops`` in order, in one transaction; answers each (a claim: see
        :class:`Claim`; a finish: None when it recorded its outcome, else
        :func:`held`; a release: None)."""
        ...


@dataclass
class KeyedCommand:
    """A command running under an idempotency key, whose reply is recorded with its
    events (see ``recording``)."""

    key: str
    owner: str
    """The engine holding the key's claim."""
    reply: Callable[[Any], bytes]
    """The reply a result of the command's write gives."""
    recorded: bool = False
    """Set once the reply was committed with the command's events."""
    _wrapped: bool = False

    def wrap(self, unit: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """``unit``, recording its reply in its session (once per command: its first write)."""
        if self._wrapped:
            return unit
        self._wrapped = True

        def with_reply(session: Any) -> Any:
            value = unit(session)
            session.record_reply(self, self.reply(value))
            return value

        return with_reply


_current: contextvars.ContextVar[KeyedCommand | None] = contextvars.ContextVar(
    "signoff_keyed_command", default=None
)


@contextlib.contextmanager
def recording(command: KeyedCommand) -> Iterator[KeyedCommand]:
    """Records the reply of the write ``command`` makes inside this block with that write."""
    token = _current.set(command)
    try:
        yield command
    finally:
        _current.reset(token)


def current() -> KeyedCommand | None:
    """The keyed command whose write is being made, if any."""
    return _current.get()


class Ledger:
    """The async face of a key store: operations queued while a batch is being written
    go together into the next transaction (on one thread of its own)."""

    def __init__(self, store: KeyStore, *, owner: str, lease: float) -> None:
        self.store = store
        self.owner = owner
        self.lease = lease
        self._queue: list[tuple[Op, asyncio.Future[Claim | None]]] = []
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="signoff-ledger")
        self._flushing: asyncio.Task[None] | None = None

    async def claim(self, key: str, fingerprint: str) -> Claim:
        """Claims ``key`` for this engine (see :class:`Claim`)."""
        answer = await self._submit(Op("claim", key, fingerprint))
        assert answer is not None
        return answer

    async def finish(self, key: str, code: str | None, outcome: bytes) -> Claim | None:
        """Records the outcome of a claimed key that stored nothing (a refusal); None when
        it did, else what the key holds (another engine took the claim over: see
        :func:`held`)."""
        return await self._submit(Op("finish", key, code=code, outcome=outcome))

    async def release(self, key: str) -> None:
        """Gives up a claim whose command failed for a reason worth retrying (unless
        another engine took it over)."""
        await self._submit(Op("release", key))

    async def _submit(self, op: Op) -> Claim | None:
        future: asyncio.Future[Claim | None] = asyncio.get_running_loop().create_future()
        self._queue.append((op, future))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._queue:
            batch, self._queue = self._queue, []
            ops = [op for op, _ in batch]
            try:
                answers = await loop.run_in_executor(self._thread, self._apply, ops)
            except Exception as error:  # the database failed: every caller hears of it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    def _apply(self, ops: list[Op]) -> list[Claim | None]:
        return self.store.apply_key_ops(ops, owner=self.owner, lease=self.lease)

    async def close(self) -> None:
        """Waits for queued operations, then stops the ledger's thread."""
        if self._flushing is not None:
            await self._flushing
        self._thread.shutdown()


def judge(
    row: tuple[str, str, float, str, str | None, bytes] | None,
    op: Op,
    owner: str,
    now: float,
    lease: float,
) -> Claim:
    """What a claim of ``op.key`` finds, given its stored row (fingerprint, owner,
    claimed at, status, code, outcome) and the store's time."""
    if row is None:
        return Claim("new")
    fingerprint, holder, claimed_at, status, code, outcome = row
    if fingerprint != op.fingerprint:
        return Claim("mismatch")
    if status == "done":
        return Claim("done", code, bytes(outcome))
    if holder != owner and now - claimed_at > lease:
        return Claim("new")
    return Claim("busy")


def held(row: tuple[str, str, float, str, str | None, bytes] | None) -> Claim:
    """What a key holds for an engine whose claim was taken over: the outcome of the
    engine that ran it (``done``), or ``busy`` while none is recorded."""
    if row is None or row[3] != "done":
        return Claim("busy")
    return Claim("done", row[4], bytes(row[5]))
