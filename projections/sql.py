"""What projections need of a SQL database, and a unit of work for one view table.

Views are written a batch of events at a time: a ``RowBatch`` loads the rows
a batch touches in one query, lets the projection change them in memory, and
writes them back in one statement (``RowWriter``), so a rebuild costs a few
statements per thousand events rather than several per event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

import orjson

Cursor = Any
Row = dict[str, Any]


StoredEvent = tuple[int, str, Any, int, bytes]
"""A stored event as projections read it: position, topic, originator id, version, state."""


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

    def events(
        self, cursor: Cursor, after: int, limit: int, stop: int | None = None
    ) -> Sequence[StoredEvent] | None:
        """Up to ``limit`` stored events after position ``after`` (up to ``stop``), in log
        order, when the event log lives in this database (else None: the recorder reads it)."""
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


class RowWriter:
    """``INSERT INTO table (columns) ... [suffix]`` of many rows at once.

    SQLite: ``executemany``, a loop in C. PostgreSQL: one statement whose rows arrive
    as one JSON array (``jsonb_populate_recordset`` converts each value to its
    column's type), where psycopg's ``executemany`` would send a statement per row,
    about 10 µs of Python each.
    """

    def __init__(
        self, db: ViewDatabase, table: str, columns: Sequence[str], suffix: str = ""
    ) -> None:
        self.columns = tuple(columns)
        names = ", ".join(self.columns)
        self.as_json = db.kind == "postgres"
        if self.as_json:
            self.sql = (
                f"INSERT INTO {table} ({names}) SELECT {names} "
                f"FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb) {suffix}"
            )
        else:
            values = placeholders(db, len(self.columns))
            self.sql = f"INSERT INTO {table} ({names}) VALUES ({values}) {suffix}"

    def __call__(self, cursor: Cursor, rows: Iterable[Sequence[Any]]) -> None:
        """Writes ``rows`` (values in column order); nothing for no rows."""
        if self.as_json:
            columns = self.columns
            objects = [dict(zip(columns, row, strict=True)) for row in rows]
            if objects:
                cursor.execute(self.sql, (orjson.dumps(objects).decode(),))
            return
        cursor.executemany(self.sql, rows)  # an iterator is consumed as it is written


def delete_keys(cursor: Cursor, db: ViewDatabase, table: str, column: str, keys: list[str]) -> None:
    """Deletes the rows whose ``column`` is one of ``keys`` (one statement on PostgreSQL)."""
    if not keys:
        return
    if db.kind == "postgres":
        cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", (keys,))
    else:
        cursor.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(k,) for k in keys])


def decode_json(row: Row, json_columns: Sequence[str]) -> Row:
    """A stored row with its JSON columns decoded."""
    out = dict(row)
    for column in json_columns:
        out[column] = loads(row[column])
    return out


class RowCache:
    """The rows of one view table as this process last wrote them, kept between batches so
    that a busy engine's next batch need not read back and decode the rows it just wrote.

    It is only trusted while the view's stored position is the one this process
    committed it at (``position``): the runner moves a view's tracking row conditionally,
    so a view another process moved, a reset, or a batch that rolled back all make the
    positions differ and the cache is emptied. Holds at most ``capacity`` rows (the ones
    written longest ago are dropped first), each as the values it was written with (JSON
    as text): tuples of strings and numbers, which the garbage collector stops tracking,
    where decoded rows would be thousands of long-lived dicts and lists for it to walk.
    """

    def __init__(self, capacity: int = 8192) -> None:
        self.capacity = capacity
        self.position: int | None = None
        """The view position the rows reflect (None: unknown, empty before use)."""
        self.rows: dict[str, tuple[Any, ...]] = {}
        """Each row's values as written, in the view's column order."""

    def prepare(self, position: int) -> None:
        """Called before a batch is applied to a view stored at ``position``: empties the
        cache unless it reflects that position; it is then unknown until ``committed``."""
        if self.position != position:
            self.rows.clear()
        self.position = None

    def committed(self, position: int) -> None:
        """The batch's transaction committed, moving the view to ``position``."""
        self.position = position

    def clear(self) -> None:
        """Forgets every row."""
        self.rows.clear()
        self.position = None

    def store(self, key: str, values: tuple[Any, ...] | None) -> None:
        """Remembers a row as written (None: deleted)."""
        rows = self.rows
        rows.pop(key, None)  # re-inserted last: the most recently written are kept
        if values is not None:
            rows[key] = values
            if len(rows) > self.capacity:
                for old in list(rows)[: max(1, self.capacity // 8)]:
                    del rows[old]


class Stored:
    """A JSON column's stored text, standing for its value in a row the projection does
    not read that column of (it is written back as it was)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


class RowBatch:
    """The rows of one view table that a batch of events reads and writes.

    Rows are held with their JSON columns decoded, and encoded at ``flush``; a JSON
    value the batch did not replace keeps the text it was read with, so the projection
    must replace a row's JSON values rather than change them in place. With ``read``,
    only those JSON columns of a stored row are decoded: the others hold a ``Stored``
    (their text) until replaced, as the projection never reads them.
    """

    def __init__(
        self,
        db: ViewDatabase,
        table: str,
        key: str,
        columns: Sequence[str],
        json_columns: Sequence[str] = (),
        cache: RowCache | None = None,
        read: Sequence[str] | None = None,
    ) -> None:
        self.db = db
        self.table = db.table(table)
        self.key = key
        self.columns = tuple(columns)
        self.json_columns = tuple(c for c in self.columns if c in frozenset(json_columns))
        self.cache = cache
        self._decoded = self.json_columns if read is None else tuple(read)
        self._rows: dict[str, Row | None] = {}
        self._stored: dict[str, tuple[Row, dict[str, str]]] = {}
        """Rows as read (from the cache or the table) with their JSON columns' text."""
        self._written: dict[str, tuple[Any, ...]] = {}
        """The values ``flush`` wrote, by key."""
        self._dirty: set[str] = set()
        self._values: Callable[[Row], tuple[Any, ...]] = (
            itemgetter(*self.columns)
            if len(self.columns) > 1
            else lambda row: tuple(row[c] for c in self.columns)
        )
        self._json_at = [(self.columns.index(c), c) for c in self.json_columns]
        updates = ", ".join(f"{c} = excluded.{c}" for c in self.columns if c != key)
        self._upsert = RowWriter(
            db, self.table, self.columns, f"ON CONFLICT ({key}) DO UPDATE SET {updates}"
        )

    def prefetch(self, cursor: Cursor, keys: Iterable[str]) -> None:
        """Loads the stored rows of ``keys`` (from the cache, else in chunks, one query each)."""
        wanted = [k for k in dict.fromkeys(keys) if k not in self._rows]
        if self.cache is not None and self.cache.rows:
            cached, columns = self.cache.rows, self.columns
            missing = []
            for k in wanted:
                values = cached.get(k)
                if values is None:
                    missing.append(k)
                else:
                    self._load(k, dict(zip(columns, values, strict=True)))
            wanted = missing
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            found = fetch_all(
                cursor,
                f"SELECT * FROM {self.table} WHERE {self.key} IN "
                f"({placeholders(self.db, len(chunk))})",
                chunk,
            )
            for row in found:
                self._load(str(row[self.key]), row)
            for k in chunk:
                self._rows.setdefault(k, None)

    def _load(self, key: str, row: Row) -> None:
        """Takes a stored row (JSON columns as text), decoding its JSON columns."""
        texts = {c: row[c] for c in self.json_columns}
        for column, text in texts.items():
            row[column] = loads(text) if column in self._decoded else Stored(text)
        self._stored[key] = (row, texts)
        self._rows[key] = row

    def get(self, key: str) -> Row | None:
        """The row as the batch has it so far (prefetch first); do not change it in place."""
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

    def changed(self) -> list[tuple[str, Row | None]]:
        """The rows the batch changed, with their new values (in key order)."""
        rows = self._rows
        return [(key, rows[key]) for key in sorted(self._dirty)]

    def stored_text(self, key: str) -> dict[str, str]:
        """The JSON columns' text of a row ``flush`` wrote."""
        values = self._written[key]
        return {column: values[i] for i, column in self._json_at}

    def flush(self, cursor: Cursor) -> None:
        """Writes the changed rows (and hands them to the cache)."""
        upserts: list[tuple[Any, ...]] = []
        deletes: list[str] = []
        values_of, json_at, stored, cache = self._values, self._json_at, self._stored, self.cache
        for key, row in self.changed():
            if row is None:
                deletes.append(key)
                if cache is not None:
                    cache.store(key, None)
                continue
            values = list(values_of(row))
            before = stored.get(key)
            for i, column in json_at:
                value = values[i]
                if before is not None and before[0][column] is value:
                    values[i] = before[1][column]  # unchanged: the text it was stored as
                else:
                    values[i] = value.text if isinstance(value, Stored) else dumps(value)
            written = self._written[key] = tuple(values)
            upserts.append(written)
            if cache is not None:
                cache.store(key, written)
        self._upsert(cursor, upserts)
        delete_keys(cursor, self.db, self.table, self.key, deletes)
