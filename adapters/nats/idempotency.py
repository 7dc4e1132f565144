"""Idempotency keys, kept in the event store's own database so that they outlive restarts
of the engine and of the broker, and are shared by every engine on that database.

A command with a key is *claimed* before it runs and *finished* with its outcome after
the engine committed it; a repeat of a finished key gets the stored outcome and appends
nothing. A claim whose engine went silent for ``lease`` seconds may be taken over (the
one window where a command can run twice: an engine that died between its commit and
``finish``). Claims and finishes from concurrent commands share transactions.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from signoff.adapters.persistence import StoreConfig

TABLE = "signoff_nats_idempotency"


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


class LedgerBackend(Protocol):
    """Applies a batch of operations in one transaction."""

    def apply(self, ops: list[Op], *, owner: str, now: float, lease: float) -> list[Claim]: ...

    def close(self) -> None: ...


class MemoryBackend:
    """For ``memory://`` stores, which forget everything on exit anyway."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[str, str, float, str, str | None, bytes]] = {}

    def apply(self, ops: list[Op], *, owner: str, now: float, lease: float) -> list[Claim]:
        """Applies ``ops`` in order."""
        answers = []
        for op in ops:
            row = self.rows.get(op.key)
            if op.kind == "claim":
                answer = _judge(row, op, owner, now, lease)
                if answer.state == "new":
                    self.rows[op.key] = (op.fingerprint, owner, now, "running", None, b"")
                answers.append(answer)
            elif op.kind == "finish" and row is not None:
                self.rows[op.key] = (row[0], row[1], row[2], "done", op.code, op.outcome)
            elif op.kind == "release" and row is not None and row[3] == "running":
                del self.rows[op.key]
        return answers

    def close(self) -> None:
        """Nothing to close."""


def _judge(
    row: tuple[str, str, float, str, str | None, bytes] | None,
    op: Op,
    owner: str,
    now: float,
    lease: float,
) -> Claim:
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


class SqlBackend:
    """The ledger table in the SQLite file or PostgreSQL schema of the event store."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        if config.kind == "sqlite":
            self.table, self.param = TABLE, "?"
        else:
            self.table, self.param = f'"{config.schema or "public"}".{TABLE}', "%s"
        self.conn: Any = None
        self._connect()

    def _connect(self) -> None:
        env = self.config.env
        if self.config.kind == "sqlite":
            self.conn = sqlite3.connect(
                env["SQLITE_DBNAME"], timeout=30, isolation_level=None, check_same_thread=False
            )
            self.conn.execute("PRAGMA journal_mode=WAL")
        else:
            import psycopg

            self.conn = psycopg.connect(
                dbname=env["POSTGRES_DBNAME"],
                host=env["POSTGRES_HOST"],
                port=int(env["POSTGRES_PORT"]),
                user=env["POSTGRES_USER"],
                password=env["POSTGRES_PASSWORD"] or None,
                connect_timeout=10,
                autocommit=True,
            )
        self.conn.execute(
            f"CREATE TABLE IF NOT EXISTS {self.table} (key TEXT PRIMARY KEY, "
            "fingerprint TEXT NOT NULL, owner TEXT NOT NULL, "
            "claimed_at DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, code TEXT, "
            "outcome TEXT NOT NULL)"
        )

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Any]:
        if self.conn is None:
            self._connect()  # the last one broke
        try:
            with self._begin() as db:
                yield db
        except Exception:
            if getattr(self.conn, "closed", False):  # a lost PostgreSQL connection
                self.conn = None
            raise

    @contextlib.contextmanager
    def _begin(self) -> Iterator[Any]:
        if self.config.kind == "sqlite":
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
        else:
            with self.conn.transaction():
                yield self.conn

    def apply(self, ops: list[Op], *, owner: str, now: float, lease: float) -> list[Claim]:
        """Applies ``ops`` in order, in one transaction."""
        t, p = self.table, self.param
        answers = []
        with self._transaction() as db:
            for op in ops:
                if op.kind == "claim":
                    row = db.execute(
                        f"SELECT fingerprint, owner, claimed_at, status, code, outcome "  # noqa: S608
                        f"FROM {t} WHERE key = {p}",
                        (op.key,),
                    ).fetchone()
                    answer = _judge(_row(row), op, owner, now, lease)
                    if answer.state == "new" and not self._take(db, op, row, owner, now):
                        answer = Claim("busy")  # another engine claimed it a moment ago
                    answers.append(answer)
                elif op.kind == "finish":
                    db.execute(
                        f"UPDATE {t} SET status = 'done', code = {p}, outcome = {p} "  # noqa: S608
                        f"WHERE key = {p}",
                        (op.code, op.outcome.decode(), op.key),
                    )
                else:
                    db.execute(
                        f"DELETE FROM {t} WHERE key = {p} AND status = 'running'",  # noqa: S608
                        (op.key,),
                    )
        return answers

    def _take(self, db: Any, op: Op, row: Any, owner: str, now: float) -> bool:
        t, p = self.table, self.param
        if row is None:
            inserted = db.execute(
                f"INSERT INTO {t} VALUES ({p}, {p}, {p}, {p}, 'running', NULL, '') "  # noqa: S608
                "ON CONFLICT (key) DO NOTHING",
                (op.key, op.fingerprint, owner, now),
            )
            return bool(inserted.rowcount == 1)
        taken = db.execute(
            f"UPDATE {t} SET owner = {p}, claimed_at = {p} "  # noqa: S608
            f"WHERE key = {p} AND owner = {p} AND claimed_at = {p} AND status = 'running'",
            (owner, now, op.key, row[1], row[2]),
        )
        return bool(taken.rowcount == 1)

    def close(self) -> None:
        """Closes the connection."""
        self.conn.close()


def _row(row: Any) -> tuple[str, str, float, str, str | None, bytes] | None:
    if row is None:
        return None
    fingerprint, owner, claimed_at, status, code, outcome = row
    return fingerprint, owner, float(claimed_at), status, code, str(outcome).encode()


def backend_for(config: StoreConfig) -> LedgerBackend:
    """The ledger that lives where the events of ``config`` live."""
    return MemoryBackend() if config.kind == "memory" else SqlBackend(config)


class Ledger:
    """The async face of a backend: operations queued while a batch is being written
    go together into the next transaction (on one thread of its own)."""

    def __init__(self, backend: LedgerBackend, *, owner: str, lease: float) -> None:
        self.backend = backend
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

    async def finish(self, key: str, code: str | None, outcome: bytes) -> None:
        """Records the outcome of a claimed key."""
        await self._submit(Op("finish", key, code=code, outcome=outcome))

    async def release(self, key: str) -> None:
        """Gives up a claim whose command failed for a reason worth retrying."""
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
            claims = iter(answers)
            for op, future in batch:
                if not future.done():
                    future.set_result(next(claims) if op.kind == "claim" else None)

    def _apply(self, ops: list[Op]) -> list[Claim]:
        return self.backend.apply(ops, owner=self.owner, now=time.time(), lease=self.lease)

    async def close(self) -> None:
        """Waits for queued operations, then closes the backend."""
        if self._flushing is not None:
            await self._flushing
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._thread, self.backend.close)
        self._thread.shutdown()
