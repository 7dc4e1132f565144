"""The store id in SQL: a one-row table written when the store's tables are created.

The row is inserted by the statement list (and transaction) that creates the tables,
with ``ON CONFLICT DO NOTHING``: processes opening a new store at once each offer an
id of their own, the first insert wins and every process reads that one.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from signoff.store_identity import new_store_id

Cursor = Any


def store_table_statements(table: str) -> list[str]:
    """DDL of the table ``table`` (qualified name) and the insert of a fresh id unless the
    store has one (both idempotent)."""
    return [
        f"CREATE TABLE IF NOT EXISTS {table} "
        "(id INTEGER PRIMARY KEY CHECK (id = 1), store_id TEXT NOT NULL)",
        _offer(table),
    ]


def _offer(table: str) -> str:
    """The insert of a fresh id (hex digits, safe inline: the create lists take no
    parameters) unless the store has one."""
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
                    cursor.execute(_offer(self._store_table))
                    found = self._select_store_id(cursor)
            if found is None:  # pragma: no cover (the insert above leaves a row)
                raise LookupError(f"no store id in {self._store_table}")
            self._store_id = found
        return self._store_id

    def _select_store_id(self, cursor: Cursor) -> str | None:
        cursor.execute(f"SELECT store_id FROM {self._store_table} WHERE id = 1")  # noqa: S608
        row = cursor.fetchone()
        return None if row is None else str(row["store_id"])
