"""The PostgreSQL event store, with the run and timer index in the same schema and transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL

from signoff.adapters.persistence.sql_index import Dialect, SqlIndex, postgres_metadata_match
from signoff.index import IndexUpdate


def _dialect(schema: str) -> Dialect:
    return Dialect(
        param="%s",
        runs=f'"{schema}".signoff_runs',
        timers=f'"{schema}".signoff_timers',
        approvals=f'"{schema}".signoff_approvals',
        seq="seq",
        seq_column=", seq BIGSERIAL",
        json_type="JSONB",
        metadata_match=postgres_metadata_match,
    )


class PostgresSignoffRecorder(SqlIndex, PostgresApplicationRecorder):
    """eventsourcing's PostgreSQL application recorder that also writes signoff's index."""

    def __init__(
        self, datastore: PostgresDatastore, *, events_table_name: str = "stored_events"
    ) -> None:
        PostgresApplicationRecorder.__init__(self, datastore, events_table_name=events_table_name)
        dialect = _dialect(datastore.schema)
        SqlIndex.__init__(
            self,
            dialect,
            lambda: datastore.transaction(commit=False),
            lambda: datastore.transaction(commit=True),
        )
        self.sql_create_statements.extend(SQL(s).format() for s in dialect.create_statements())

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        index: IndexUpdate | None = None,
        **kwargs: Any,
    ) -> None:
        super()._insert_events(curs, stored_events, **kwargs)
        if index:
            self.write(curs, index)
