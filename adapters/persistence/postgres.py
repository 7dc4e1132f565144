"""The PostgreSQL event store, with the run and timer index in the same schema and transactions."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Identifier

from signoff.adapters.persistence.sql_chain import ChainTables, SqlChain
from signoff.adapters.persistence.sql_index import Dialect, SqlIndex
from signoff.adapters.persistence.sql_keys import SqlKeys, key_statements
from signoff.adapters.persistence.sql_leases import (
    LEASE_COLUMNS,
    LeaseDialect,
    LeasedRunUpsert,
    SqlLeases,
    add_lease_columns,
)
from signoff.adapters.persistence.store_identity import (
    SqlStoreIdentity,
    offer_store_id,
    store_table_ddl,
)
from signoff.index import IndexUpdate
from signoff.leases import LeaseWork

_SIGNOFF_TABLES = (
    "signoff_runs",
    "signoff_timers",
    "signoff_approvals",
    "signoff_chain",
    "signoff_chain_head",
    "signoff_idempotency",
    "signoff_store",
)
"""Tables signoff adds to eventsourcing's (their DDL is below)."""


def _dialect(schema: str) -> Dialect:
    return Dialect(
        param="%s",
        runs=f'"{schema}".signoff_runs',
        timers=f'"{schema}".signoff_timers',
        approvals=f'"{schema}".signoff_approvals',
        seq="seq",
        seq_column=", seq BIGSERIAL",
        json_type="JSONB",
    )


def ready_channel(schema: str) -> str:
    """The NOTIFY channel on which engines of one schema hear of runs ready for them."""
    return f"signoff_ready_{schema}"[:63]


def _lease_dialect(schema: str) -> LeaseDialect:
    return LeaseDialect(
        param="%s",
        runs=f'"{schema}".signoff_runs',
        now="extract(epoch from statement_timestamp())::float8",  # the database's clock
        lock_rows=" FOR UPDATE",
        skip_locked=" FOR UPDATE SKIP LOCKED",
        notify=SQL("NOTIFY {}").format(Identifier(ready_channel(schema))).as_string(None),
    )


def _chain_tables(schema: str, events: str) -> ChainTables:
    return ChainTables(
        param="%s",
        chain=f'"{schema}".signoff_chain',
        head=f'"{schema}".signoff_chain_head',
        events=f'"{schema}"."{events}"',
        position="notification_id",
        blob="BYTEA",
        exists="SELECT to_regclass(%s)::text AS t",
        names=(f'"{schema}".signoff_chain', f'"{schema}".signoff_chain_head'),
        lock=f'LOCK TABLE "{schema}"."{events}" IN EXCLUSIVE MODE',
        for_update=" FOR UPDATE",
        snapshot="SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY",
    )


@contextmanager
def setup_lock(datastore: PostgresDatastore) -> Iterator[None]:
    """Holds a session advisory lock named after the schema while tables and functions are
    created: processes starting at once would otherwise fail ("tuple concurrently
    updated") or deadlock with each other's DDL."""
    with datastore.get_connection() as conn:
        key = f"signoff-setup:{datastore.schema}"
        conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (key,))
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))


class PostgresSignoffRecorder(
    SqlIndex, SqlLeases, SqlKeys, SqlChain, SqlStoreIdentity, PostgresApplicationRecorder
):
    """eventsourcing's PostgreSQL application recorder that also writes signoff's index, run
    leases and idempotency keys, extends the audit chain and knows the store's id."""

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
        SqlLeases.__init__(
            self,
            _lease_dialect(datastore.schema),
            lambda: datastore.transaction(commit=True),
        )
        self.ready_channel = ready_channel(datastore.schema)
        self._upsert_leased = LeasedRunUpsert(self.lease_dialect)
        keys = f'"{datastore.schema}".signoff_idempotency'
        SqlKeys.__init__(
            self,
            keys,
            param="%s",
            now=self.lease_dialect.now,
            write=lambda: datastore.transaction(commit=True),
        )
        self.sql_create_statements.extend(SQL(s).format() for s in key_statements(keys))
        chain = _chain_tables(datastore.schema, events_table_name)
        SqlChain.__init__(self, chain, lambda: datastore.transaction(commit=False))
        self._insert_columns = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::text[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=Identifier(datastore.schema), table=Identifier(events_table_name))
        self.sql_create_statements.extend(SQL(s).format() for s in chain.create_statements())
        store = f'"{datastore.schema}".signoff_store'
        self.sql_create_statements += [
            SQL(store_table_ddl(store)).format(),
            SQL(offer_store_id(store)).format(),
        ]
        SqlStoreIdentity.__init__(
            self,
            store,
            lambda: datastore.transaction(commit=False),
            lambda: datastore.transaction(commit=True),
        )

    def create_table(self) -> None:
        """Creates the tables, then chains the events of a store that predates the chain.

        The backfill runs in a transaction of its own: taking the events table's lock in
        the transaction that (re)creates eventsourcing's insert function would deadlock
        with another process inserting through that function.
        """
        with setup_lock(self.datastore):
            if self._tables_exist():
                self.datastore.register_type_adapters()  # what create_table ends with
                self._add_lease_columns()
                return  # no other DDL while other processes may be inserting
            super().create_table()
            with self.datastore.transaction(commit=True) as curs:
                self.backfill_chain(curs)

    def _add_lease_columns(self) -> None:
        """Adds the lease columns to a run index that predates them (only then: an ALTER
        takes a lock that would stall other engines' writes)."""
        with self.datastore.transaction(commit=True) as curs:
            curs.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = %s AND table_name = 'signoff_runs'",
                (self.datastore.schema,),
            )
            existing = {row["column_name"] for row in curs.fetchall()}
            if not {column for column, _ in LEASE_COLUMNS} <= existing:
                add_lease_columns(curs, f'"{self.datastore.schema}".signoff_runs', existing)

    def _tables_exist(self) -> bool:
        """Tells whether the store is complete: every table, and the chain's head."""
        schema = self.datastore.schema
        tables = [self.events_table_name, *_SIGNOFF_TABLES]
        with self.datastore.transaction(commit=False) as curs:
            curs.execute(
                "SELECT COUNT(*) AS n FROM information_schema.tables "
                "WHERE table_schema = %s AND table_name = ANY(%s)",
                (schema, tables),
            )
            found = curs.fetchone()
            if found is None or found["n"] != len(tables):
                return False
            curs.execute(f'SELECT 1 AS one FROM "{schema}".signoff_chain_head')  # noqa: S608
            return curs.fetchone() is not None

    def _insert_stored_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> None:
        """eventsourcing's insert (lock the table, notify, ``INSERT ... SELECT FROM unnest
        ... RETURNING notification_id``) over four column arrays rather than one array of
        a composite type, which psycopg dumps as text with two regex passes per event."""
        self._lock_table(curs)
        self._notify_channel(curs)
        curs.execute(
            self._insert_columns,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            prepare=True,
        )

    def _fetch_ids_after_insert_events(
        self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Chains the inserted events: the table lock taken for the insert is still held."""
        notification_ids = super()._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
        if notification_ids:
            self.write_chain(curs, notification_ids, stored_events)
        return notification_ids

    def _insert_events(
        self,
        curs: Cursor[DictRow],
        stored_events: Sequence[StoredEvent],
        *,
        index: IndexUpdate | None = None,
        leases: LeaseWork | None = None,
        replies: Sequence[tuple[str, str, bytes]] = (),
        **kwargs: Any,
    ) -> None:
        """Writes the index and the leases first (before eventsourcing locks the events
        table); the run rows and their leases go in one statement."""
        super()._insert_events(curs, stored_events, **kwargs)
        if leases is None:
            if index:
                self.write(curs, index)
        else:
            leases.granted.clear()  # a transaction retried after a deadlock claims afresh
            rest = leases
            if index and index.runs:
                self._upsert_leased(curs, index.runs, leases)
                rest = leases.split({r.id for r in index.runs})
                index = replace(index, runs=[])
            self.lock_runs(curs, rest)  # leases of runs the transaction does not write
            if index:
                self.write(curs, index)
            self.settle_leases(curs, rest)
            rest.announce |= leases.announce
            self.announce(curs, rest)
        if replies:
            self.record_replies(curs, replies)
