"""The audit hash chain in SQL: written in the events' transaction, read in one snapshot.

The chain rows live in their own table and the head (the last link) in a
one-row table, both outside the event table. Writers extend the chain under
the lock that already serialises event inserts (PostgreSQL's table lock,
SQLite's write lock), so the previous head is always the committed one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

from eventsourcing.persistence import StoredEvent

from signoff.adapters.persistence.bulk import BulkInsert
from signoff.chain import (
    GENESIS,
    AuditChainError,
    Chainer,
    ChainHead,
    ChainRow,
    StoredRow,
    chainer_from_env,
)

Cursor = Any
_PAGE = 1000


@dataclass(frozen=True)
class ChainTables:
    """What differs between the SQL databases for the chain."""

    param: str  # "?" or "%s"
    chain: str  # qualified table names
    head: str
    events: str
    position: str  # the events' notification id column
    blob: str  # binary column type
    exists: str  # SQL telling whether a table exists (one param: its name)
    names: tuple[str, str]  # the chain and head tables' names as ``exists`` wants them
    lock: str  # taken before a backfill, so that no insert runs meanwhile
    for_update: str  # row lock suffix of the head read ("" where writes are serialised)
    snapshot: str  # first statement of a consistent read ("" where BEGIN gives one)

    def create_statements(self) -> list[str]:
        """DDL of the chain and head tables (idempotent)."""
        return [
            f"CREATE TABLE IF NOT EXISTS {self.chain} (position BIGINT PRIMARY KEY, "
            f"prev_position BIGINT NOT NULL, digest {self.blob} NOT NULL, "
            f"hash {self.blob} NOT NULL)",
            f"CREATE TABLE IF NOT EXISTS {self.head} (id INTEGER PRIMARY KEY CHECK (id = 1), "
            f"position BIGINT NOT NULL, hash {self.blob} NOT NULL, key_id TEXT NOT NULL, "
            "backfilled_to BIGINT NOT NULL)",
        ]


class SqlChain:
    """Extends, backfills and reads the chain with one dialect."""

    def __init__(
        self, tables: ChainTables, read: Callable[[], AbstractContextManager[Cursor]]
    ) -> None:
        self.chain_tables = tables
        self.chainer: Chainer = chainer_from_env()
        self._chain_read = read
        t, p = tables, tables.param
        self._head_sql = f"SELECT position, hash, key_id, backfilled_to FROM {t.head} WHERE id = 1"
        self._insert_rows = BulkInsert(
            t.chain,
            ("position", "prev_position", "digest", "hash"),
            ("bigint", "bigint", "bytea", "bytea"),
            param=p,
        )
        self._move_head = f"UPDATE {t.head} SET position = {p}, hash = {p} WHERE id = 1"
        self._rows_sql = (
            f"SELECT position, prev_position, digest, hash FROM {t.chain} "
            f"WHERE position > {p} ORDER BY position LIMIT {p}"
        )
        self._events_sql = (
            f"SELECT {t.position} AS position, originator_id, originator_version, topic, state "
            f"FROM {t.events} WHERE {t.position} > {p} ORDER BY {t.position} LIMIT {p}"
        )

    def write_chain(
        self, cursor: Cursor, ids: Sequence[int], stored_events: Sequence[StoredEvent]
    ) -> None:
        """Chains freshly inserted events after the head, in the insert's transaction."""
        cursor.execute(self._head_sql + self.chain_tables.for_update)
        head = cursor.fetchone()
        if head is None:
            raise AuditChainError("the audit chain has no head: open the store to create it")
        if head["key_id"] != self.chainer.key_id:
            raise AuditChainError(
                "this process's SIGNOFF_AUDIT_KEY differs from the one the chain is written with"
            )
        events = sorted(
            (i, str(e.originator_id), e.originator_version, e.topic, e.state)
            for i, e in zip(ids, stored_events, strict=True)
        )
        rows = self.chainer.extend((head["position"], bytes(head["hash"])), events)
        self._insert_rows(cursor, [_params(r) for r in rows])
        cursor.execute(self._move_head, (rows[-1].position, rows[-1].hash))

    def backfill_chain(self, cursor: Cursor) -> None:
        """Chains the events stored before the chain existed, once: while there is no head."""
        cursor.execute(self._head_sql)
        if cursor.fetchone() is not None:
            return  # the usual case, found without locking the events table
        cursor.execute(self.chain_tables.lock)
        cursor.execute(self._head_sql)
        if cursor.fetchone() is not None:
            return
        cursor.execute(
            f"SELECT position, hash FROM {self.chain_tables.chain} ORDER BY position DESC LIMIT 1"
        )
        last = cursor.fetchone()
        head = (last["position"], bytes(last["hash"])) if last else (0, GENESIS)
        while True:
            cursor.execute(self._events_sql, (head[0], _PAGE))
            events = [_stored_row(r) for r in cursor.fetchall()]
            if not events:
                break
            rows = self.chainer.extend(head, events)
            self._insert_rows(cursor, [_params(r) for r in rows])
            head = (rows[-1].position, rows[-1].hash)
        p = self.chain_tables.param
        cursor.execute(
            f"INSERT INTO {self.chain_tables.head} (id, position, hash, key_id, backfilled_to) "
            f"VALUES (1, {p}, {p}, {p}, {p})",
            (head[0], head[1], self.chainer.key_id, head[0]),
        )

    @contextmanager
    def chain_snapshot(self) -> Iterator[_Snapshot]:
        """A read transaction in which the events, chain and head agree."""
        with self._chain_read() as cursor:
            if self.chain_tables.snapshot:
                cursor.execute(self.chain_tables.snapshot)
            yield _Snapshot(self, cursor)


class _Snapshot:
    """Reads of one transaction (see :class:`signoff.chain.ChainSnapshot`)."""

    def __init__(self, chain: SqlChain, cursor: Cursor) -> None:
        self._chain = chain
        self._cursor = cursor

    def head(self) -> ChainHead | None:
        tables = self._chain.chain_tables
        for name in tables.names:
            self._cursor.execute(tables.exists, (name,))
            found = self._cursor.fetchone()
            if found is None or found["t"] is None:
                return None
        self._cursor.execute(self._chain._head_sql)
        r = self._cursor.fetchone()
        if r is None:
            return None
        return ChainHead(r["position"], bytes(r["hash"]), r["key_id"], r["backfilled_to"])

    def events(self, after: int, limit: int) -> list[StoredRow]:
        self._cursor.execute(self._chain._events_sql, (after, limit))
        return [_stored_row(r) for r in self._cursor.fetchall()]

    def rows(self, after: int, limit: int) -> list[ChainRow]:
        self._cursor.execute(self._chain._rows_sql, (after, limit))
        return [
            ChainRow(r["position"], r["prev_position"], bytes(r["digest"]), bytes(r["hash"]))
            for r in self._cursor.fetchall()
        ]


def _params(row: ChainRow) -> tuple[int, int, bytes, bytes]:
    return (row.position, row.prev_position, row.digest, row.hash)


def _stored_row(r: Any) -> StoredRow:
    return (
        r["position"],
        str(r["originator_id"]),
        r["originator_version"],
        r["topic"],
        bytes(r["state"]),
    )
