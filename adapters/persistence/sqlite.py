"""The SQLite event store, with the run and timer index in the same file and transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from signoff.adapters.persistence.sql_index import Dialect, SqlIndex, sqlite_metadata_match
from signoff.index import IndexUpdate

DIALECT = Dialect(
    param="?",
    runs="signoff_runs",
    timers="signoff_timers",
    approvals="signoff_approvals",
    seq="rowid",
    seq_column="",
    json_type="TEXT",
    metadata_match=sqlite_metadata_match,
)


class SQLiteSignoffRecorder(SqlIndex, SQLiteApplicationRecorder):
    """eventsourcing's SQLite application recorder that also writes signoff's index."""

    def __init__(
        self, datastore: SQLiteDatastore, events_table_name: str = "stored_events"
    ) -> None:
        SQLiteApplicationRecorder.__init__(self, datastore, events_table_name)
        SqlIndex.__init__(
            self,
            DIALECT,
            lambda: datastore.transaction(commit=False),
            lambda: datastore.transaction(commit=True),
        )

    def construct_create_table_statements(self) -> list[str]:
        """Creates the events table and the index tables."""
        return [*super().construct_create_table_statements(), *DIALECT.create_statements()]

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        index: IndexUpdate | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        notification_ids = super()._insert_events(c, stored_events, **kwargs)
        if index:
            self.write(c, index)
        return notification_ids
