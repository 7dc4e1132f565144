"""The store id in SQL: a one-row table written when the store's tables are created.

Every process opening a store offers an id of its own with ``ON CONFLICT DO NOTHING``
when it finds none: the first insert wins and every process reads that one. PostgreSQL
inserts it in the transaction that creates the tables (under the setup lock); SQLite
runs its create statements on every open, so it reads first and inserts, when needed,
in a write transaction of its own (an insert after reads in one SQLite transaction
fails at once, without waiting, when another process committed meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from signoff.store_identity import new_store_id

Cursor = Any


def store_table_ddl(table: str) -> str:
    """DDL of the one-row table ``table`` (qualified name), idempotent."""
    return (
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(id INTEGER PRIMARY KEY CHECK (id = 1), store_id TEXT NOT NULL)"
    )


def offer_store_id(table: str) -> str:
    """The insert of a fresh id unless the store has one (hex digits, safe inline: the
    create lists take no parameters)."""
    values = f"VALUES (1, '{new_store_id()}') ON CONFLICT (id) DO NOTHING"
    return f"INSERT INTO {table} (id, store_id) {values}"


class SqlStoreIdentity:
    """Reads the store id (once: it never changes)."""

    def __init__(
        self,
        table: str,
        read: Callable[[], AbstractContextManager[Cursor]],
        write: Callable[[], AbstractContextManager[Cursor]],
    ) -> None:
        self._store_table = table
        self._store_read = read
        self._store_write = write
        self._store_id: str | None = None

    def store_id(self) -> str:
        """The store's id; written now if the tables were created without it."""
        if self._store_id is None:
            with self._store_read() as cursor:
                found = self._select_store_id(cursor)
            if found is None:
                with self._store_write() as cursor:
                    cursor.execute(offer_store_id(self._store_table))
                    found = self._select_store_id(cursor)
            if found is None:  # pragma: no cover (the insert above leaves a row)
                raise LookupError(f"no store id in {self._store_table}")
            self._store_id = found
        return self._store_id

    def _select_store_id(self, cursor: Cursor) -> str | None:
        cursor.execute(f"SELECT store_id FROM {self._store_table} WHERE id = 1")  # noqa: S608
        row = cursor.fetchone()
        return None if row is None else str(row["store_id"])
