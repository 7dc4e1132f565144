"""The projection contract: a named, versioned view built from events a batch at a time."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from signoff.projections.records import EventRecord
from signoff.projections.sql import (
    Cursor,
    Row,
    RowBatch,
    RowCache,
    Update,
    ViewDatabase,
    decode_json,
    fetch_all,
    loads,
    placeholders,
)


class Projection(ABC):
    """A read model: tables, how a batch of events changes them, how to read a row back.

    The runner calls ``apply`` inside the transaction that also moves the
    projection's tracking position, so every event is applied exactly once.
    Bump ``version`` when the tables or their meaning change: the runner then
    rebuilds the view from the start of the log.
    """

    name: str
    version: int = 1
    tables: Sequence[str] = ()
    """Table names (unqualified), dropped on rebuild."""

    @abstractmethod
    def create_statements(self, db: ViewDatabase) -> list[str]:
        """DDL creating the view's tables and indexes (idempotent)."""

    @abstractmethod
    def apply(
        self, cursor: Cursor, db: ViewDatabase, records: Sequence[EventRecord], report: bool
    ) -> list[Update]:
        """Applies events (in log order) to the view; returns the rows that changed when
        ``report`` (someone watches the view), else nothing."""

    def prepare(self, position: int) -> None:
        """Called in the runner's transaction before ``apply``, with the view's stored
        position (what its tables reflect): a projection that keeps rows in memory between
        batches checks here that they are still what is stored."""
        del position  # nothing kept: nothing to check

    def committed(self, position: int) -> None:
        """Called once the transaction that moved the view to ``position`` committed."""
        del position

    @abstractmethod
    def keys(self, record: EventRecord) -> list[str]:
        """The keys of the rows an event may change (for a feed resuming after a gap)."""

    @abstractmethod
    def read_rows(self, cursor: Cursor, db: ViewDatabase, keys: Sequence[str]) -> dict[str, Row]:
        """The current rows of ``keys`` (missing keys: no such row)."""


class AggregateRowProjection(Projection):
    """A view with one row per aggregate of one type: its first event creates the row,
    later ones fold into it (the approvals view and the workflow board).

    The rows it last wrote stay in memory (a ``RowCache``), so that the next batch, which
    under load often touches the same aggregates, need not read and decode them again.
    """

    aggregate: str
    """The aggregate type whose events this view reads (``Approval``, ``WorkflowRun``)."""
    creating_event: str
    """The event that creates an aggregate (and its row)."""
    table: str
    columns: Sequence[str]
    json_columns: Sequence[str] = ()
    folded_reads: Sequence[str] | None = None
    """The JSON columns ``folded`` and ``after_flush`` read (None: all); the others are
    not decoded when a stored row is folded into."""

    def __init__(self) -> None:
        self.cache = RowCache()

    def prepare(self, position: int) -> None:
        """Keeps the cached rows only if they are those stored at ``position``."""
        self.cache.prepare(position)

    def committed(self, position: int) -> None:
        """The cached rows are now those stored at ``position``."""
        self.cache.committed(position)

    @abstractmethod
    def created(self, record: EventRecord) -> Row:
        """The row an aggregate's first event creates."""

    @abstractmethod
    def folded(self, row: Row, record: EventRecord) -> Row:
        """The row after a later event (``row`` is a shallow copy the method may change:
        replace its JSON values, never change them in place)."""

    def public(self, row: Row) -> Row:
        """A row as callers see it (JSON columns decoded); override to add derived values."""
        return dict(row)

    def after_flush(self, cursor: Cursor, db: ViewDatabase, batch: RowBatch) -> None:
        """Writes what else the changed rows imply (another table), in the same transaction."""

    def keys(self, record: EventRecord) -> list[str]:
        """An event of the aggregate changes its row."""
        return [record.aggregate_id] if record.aggregate == self.aggregate else []

    def apply(
        self, cursor: Cursor, db: ViewDatabase, records: Sequence[EventRecord], report: bool
    ) -> list[Update]:
        """Creates and folds the rows of the batch's aggregates, then writes them."""
        mine = [r for r in records if r.aggregate == self.aggregate]
        if not mine:
            return []
        batch = RowBatch(
            db, self.table, "id", self.columns, self.json_columns, self.cache, self.folded_reads
        )
        batch.prefetch(cursor, (r.aggregate_id for r in mine if r.event != self.creating_event))
        for record in mine:
            if record.event == self.creating_event:
                batch.put(self.created(record))
                continue
            row = batch.get(record.aggregate_id)
            if row is not None:  # None only if its first event came before the view began
                batch.put(self.folded(dict(row), record))
        batch.flush(cursor)
        self.after_flush(cursor, db, batch)
        if not report:
            return []
        # Watchers get their own copies of the JSON values (the cache keeps the originals).
        return [
            (k, None if r is None else self.public({**r, **_decoded(batch.stored_text(k))}))
            for k, r in batch.changed()
        ]

    def read_rows(self, cursor: Cursor, db: ViewDatabase, keys: Sequence[str]) -> dict[str, Row]:
        """Rows of ``keys`` as callers see them."""
        if not keys:
            return {}
        rows = fetch_all(
            cursor,
            f"SELECT * FROM {db.table(self.table)} WHERE id IN ({placeholders(db, len(keys))})",
            keys,
        )
        return {row["id"]: self.public(decode_json(row, self.json_columns)) for row in rows}


def _decoded(texts: dict[str, str]) -> Row:
    return {column: loads(text) for column, text in texts.items()}
