"""Idempotency keys in SQL: one table in the event store's database, claimed and finished
on the store's clock, and a command's reply written in its events' transaction
(see ``signoff.idempotency``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any

from signoff.domain.errors import IdempotencyKeyLostError
from signoff.idempotency import Claim, Op, held, judge

Cursor = Any


def key_statements(table: str) -> list[str]:
    """DDL of the key table (idempotent)."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table} (key TEXT PRIMARY KEY, "
        "fingerprint TEXT NOT NULL, owner TEXT NOT NULL, "
        "claimed_at DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, code TEXT, "
        "outcome TEXT NOT NULL)"
    ]


class SqlKeys:
    """The idempotency key table, with one dialect."""

    def __init__(
        self,
        table: str,
        *,
        param: str,
        now: str,
        write: Callable[[], AbstractContextManager[Cursor]],
        lock_first: bool = False,
    ) -> None:
        """``lock_first``: take the write lock before anything is read (SQLite: a
        transaction that reads, then writes, fails at once, without waiting, when
        another connection wrote in between)."""
        self.keys_table = table
        self._keys_transaction = write
        t, p = table, param
        self._key_lock = f"DELETE FROM {t} WHERE key IS NULL" if lock_first else ""
        self._key_now = f"SELECT {now} AS now"
        self._key_select = (
            f"SELECT fingerprint, owner, claimed_at, status, code, outcome FROM {t} WHERE key = {p}"
        )
        self._key_insert = (
            f"INSERT INTO {t} (key, fingerprint, owner, claimed_at, status, code, outcome) "
            f"VALUES ({p}, {p}, {p}, {now}, 'running', NULL, '') "
            "ON CONFLICT (key) DO NOTHING RETURNING key"
        )
        self._key_take = (
            f"UPDATE {t} SET owner = {p}, claimed_at = {now} WHERE key = {p} AND owner = {p} "
            f"AND claimed_at = {p} AND status = 'running' RETURNING key"
        )
        self._key_finish = (
            f"UPDATE {t} SET status = 'done', code = {p}, outcome = {p} "
            f"WHERE key = {p} AND owner = {p} AND status = 'running' RETURNING key"
        )
        self._key_release = (
            f"DELETE FROM {t} WHERE key = {p} AND owner = {p} AND status = 'running'"
        )
        self._key_record = (
            f"UPDATE {t} SET status = 'done', code = NULL, outcome = {p} "
            f"WHERE key = {p} AND owner = {p} AND status = 'running' RETURNING key"
        )

    def apply_key_ops(self, ops: list[Op], *, owner: str, lease: float) -> list[Claim | None]:
        """Applies ``ops`` in order, in one transaction; answers each (see ``KeyStore``)."""
        answers: list[Claim | None] = []
        with self._keys_transaction() as cursor:
            if self._key_lock:
                cursor.execute(self._key_lock)
            cursor.execute(self._key_now)
            now = float(cursor.fetchone()["now"])
            for op in ops:
                if op.kind == "claim":
                    answers.append(self._claim(cursor, op, owner, now, lease))
                elif op.kind == "finish":
                    answers.append(self._finish(cursor, op, owner))
                else:
                    cursor.execute(self._key_release, (op.key, owner))
                    answers.append(None)
        return answers

    def _row(
        self, cursor: Cursor, key: str
    ) -> tuple[str, str, float, str, str | None, bytes] | None:
        cursor.execute(self._key_select, (key,))
        found = cursor.fetchone()
        if found is None:
            return None
        return (
            found["fingerprint"],
            found["owner"],
            float(found["claimed_at"]),
            found["status"],
            found["code"],
            str(found["outcome"]).encode(),
        )

    def _claim(self, cursor: Cursor, op: Op, owner: str, now: float, lease: float) -> Claim:
        row = self._row(cursor, op.key)
        answer = judge(row, op, owner, now, lease)
        if answer.state != "new":
            return answer
        if row is None:
            cursor.execute(self._key_insert, (op.key, op.fingerprint, owner))
        else:
            cursor.execute(self._key_take, (owner, op.key, row[1], row[2]))
        taken = cursor.fetchone() is not None
        return answer if taken else Claim("busy")  # another engine claimed it a moment ago

    def _finish(self, cursor: Cursor, op: Op, owner: str) -> Claim | None:
        cursor.execute(self._key_finish, (op.code, op.outcome.decode(), op.key, owner))
        if cursor.fetchone() is not None:
            return None
        return held(self._row(cursor, op.key))  # another engine took the claim over

    def record_replies(self, cursor: Cursor, replies: Sequence[tuple[str, str, bytes]]) -> None:
        """Marks keys (key, owner, reply) done with their replies, inside the commands' own
        transaction; refuses it when another engine holds a key's claim now (it runs, or
        ran, the command)."""
        for key, owner, reply in replies:
            cursor.execute(self._key_record, (reply.decode(), key, owner))
            if cursor.fetchone() is None:
                raise IdempotencyKeyLostError(key)
