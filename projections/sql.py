"""What projections need of a SQL database, and a unit of work for one view table.

Views are written a batch of events at a time: a ``RowBatch`` loads the rows
a batch touches in one query, lets the projection change them in memory, and
writes them back with one ``executemany``, so a rebuild costs a few
statements per thousand events rather than several per event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

Cursor = Any
Row = dict[str, Any]


class ViewDatabase(Protocol):
    """Where views live: the event store's database (or a private SQLite for memory://)."""

    kind: str
    """``sqlite`` or ``postgres``."""
    param: str
    """The driver's placeholder (``?`` or ``%s``)."""

    def table(self, name: str) -> str:
        """The qualified name of a view table."""
        ...

    def transaction(self, *, commit: bool) -> AbstractContextManager[Cursor]:
        """A cursor in a transaction (committed at the end when ``commit``)."""
        ...

    def setup_lock(self) -> AbstractContextManager[None]:
        """Held while creating tables, so that processes starting at once take turns."""
        ...


@dataclass(frozen=True)
class Change:
    """A row of a view that changed: its new value, or None when it was deleted.

    ``position`` is how far the view had applied the log when the row took this
    value: a client that stores it can resume its feed from there.
    """

    view: str
    key: str
    position: int
    row: Row | None


Update = tuple[str, Row | None]
"""A view row's key and its new value (None: deleted), as a projection reports it."""


def dumps(value: Any) -> str:
    """JSON text for a view's JSON column."""
    return orjson.dumps(value).decode()


def loads(text: str | None) -> Any:
    """A JSON column's value."""
    return None if text is None else orjson.loads(text)


def fetch_all(cursor: Cursor, sql: str, params: Sequence[Any] = ()) -> list[Row]:
    """Runs a query and returns its rows as dicts (sqlite3.Row and psycopg rows alike)."""
    cursor.execute(sql, tuple(params))
    return [dict(row) for row in cursor.fetchall()]


def placeholders(db: ViewDatabase, count: int) -> str:
    """``?, ?, ?`` for ``count`` values."""
    return ", ".join([db.param] * count)


def decode_json(row: Row, json_columns: Sequence[str]) -> Row:
    """A stored row with its JSON columns decoded."""
    out = dict(row)
    for column in json_columns:
        out[column] = loads(row[column])
    return out


class RowBatch:
    """The rows of one view table that a batch of events reads and writes.

    Rows are held with their JSON columns decoded, and encoded once at ``flush``.
    """

    def __init__(
        self,
        db: ViewDatabase,
        table: str,
        key: str,
        columns: Sequence[str],
        json_columns: Sequence[str] = (),
    ) -> None:
        self.db = db
        self.table = db.table(table)
        self.key = key
        self.columns = tuple(columns)
        self.json_columns = frozenset(json_columns)
        self._rows: dict[str, Row | None] = {}
        self._dirty: set[str] = set()
        p = db.param
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c != key)
        self._upsert = (
            f"INSERT INTO {self.table} ({', '.join(self.columns)}) "
            f"VALUES ({placeholders(db, len(self.columns))}) "
            f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )
        self._delete = f"DELETE FROM {self.table} WHERE {key} = {p}"

    def prefetch(self, cursor: Cursor, keys: Iterable[str]) -> None:
        """Loads the stored rows of ``keys`` (in chunks, one query each)."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self._rows]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found = fetch_all(
                cursor,
                f"SELECT * FROM {self.table} WHERE {self.key} IN "
                f"({placeholders(self.db, len(chunk))})",
                chunk,
            )
            by_key = {
                str(row[self.key]): decode_json(row, tuple(self.json_columns)) for row in found
            }
            for k in chunk:
                self._rows[k] = by_key.get(k)

    def get(self, key: str) -> Row | None:
        """The row as the batch has it so far (prefetch first)."""
        return self._rows.get(key)

    def put(self, row: Row) -> None:
        """Inserts or replaces a row."""
        key = str(row[self.key])
        self._rows[key] = row
        self._dirty.add(key)

    def delete(self, key: str) -> None:
        """Deletes a row."""
        self._rows[key] = None
        self._dirty.add(key)

    def changed(self) -> Iterator[tuple[str, Row | None]]:
        """The rows the batch changed, with their new values."""
        for key in sorted(self._dirty):
            yield key, self._rows[key]

    def flush(self, cursor: Cursor) -> None:
        """Writes the changed rows."""
        upserts = [row for _, row in self.changed() if row is not None]
        deletes = [(key,) for key, row in self.changed() if row is None]
        if upserts:
            encoded = self.json_columns
            cursor.executemany(
                self._upsert,
                [
                    tuple(dumps(r[c]) if c in encoded else r[c] for c in self.columns)
                    for r in upserts
                ],
            )
        if deletes:
            cursor.executemany(self._delete, deletes)
