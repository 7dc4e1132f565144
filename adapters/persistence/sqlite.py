"""The SQLite event store, with the run and timer index in the same file and transactions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.sqlite import SQLiteApplicationRecorder, SQLiteCursor, SQLiteDatastore

from signoff.adapters.persistence.sql_chain import ChainTables, SqlChain
from signoff.adapters.persistence.sql_index import Dialect, SqlIndex
from signoff.adapters.persistence.sql_keys import SqlKeys, key_statements
from signoff.adapters.persistence.sql_leases import LeaseDialect, SqlLeases, add_lease_columns
from signoff.adapters.persistence.store_identity import SqlStoreIdentity, store_table_ddl
from signoff.index import IndexUpdate
from signoff.leases import LeaseWork

DIALECT = Dialect(
    param="?",
    runs="signoff_runs",
    timers="signoff_timers",
    approvals="signoff_approvals",
    seq="rowid",
    seq_column="",
    json_type="TEXT",
)

LEASES = LeaseDialect(
    param="?",
    runs="signoff_runs",
    now="((julianday('now') - 2440587.5) * 86400.0)",  # this host's clock, as every engine's
    lock_rows="",  # a write transaction holds the whole database
    skip_locked="",
    notify=None,  # engines on one SQLite file poll
)

KEYS = "signoff_idempotency"

CHAIN = ChainTables(
    param="?",
    chain="signoff_chain",
    head="signoff_chain_head",
    events="stored_events",
    position="rowid",
    blob="BLOB",
    exists="SELECT name AS t FROM sqlite_master WHERE type = 'table' AND name = ?",
    names=("signoff_chain", "signoff_chain_head"),
    lock="DELETE FROM signoff_chain_head WHERE id <> 1",  # takes the write lock first
    for_update="",
    snapshot="",
)

STORE_TABLE = "signoff_store"


class SQLiteSignoffRecorder(
    SqlIndex, SqlLeases, SqlKeys, SqlChain, SqlStoreIdentity, SQLiteApplicationRecorder
):
    """eventsourcing's SQLite application recorder that also writes signoff's index, run
    leases and idempotency keys, extends the audit chain and knows the store's id."""

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
        SqlLeases.__init__(self, LEASES, lambda: datastore.transaction(commit=True))
        SqlKeys.__init__(
            self,
            KEYS,
            param="?",
            now=LEASES.now,
            write=lambda: datastore.transaction(commit=True),
            lock_first=True,
        )
        SqlChain.__init__(self, CHAIN, lambda: datastore.transaction(commit=False))
        SqlStoreIdentity.__init__(
            self,
            STORE_TABLE,
            lambda: datastore.transaction(commit=False),
            lambda: datastore.transaction(commit=True),
        )

    def construct_create_table_statements(self) -> list[str]:
        """Creates the events table, the index tables and the chain tables."""
        return [
            *super().construct_create_table_statements(),
            *DIALECT.create_statements(),
            *CHAIN.create_statements(),
            *key_statements(KEYS),
            store_table_ddl(STORE_TABLE),
        ]

    def create_table(self) -> None:
        """Creates the tables, then writes the store id unless it is there."""
        super().create_table()
        self.store_id()

    def _create_table(self, c: SQLiteCursor) -> None:
        """Creates the tables, adds the lease columns to a run index that predates them, then
        chains the events of a store that predates the chain."""
        super()._create_table(c)
        c.execute(f"PRAGMA table_info({DIALECT.runs})")
        add_lease_columns(c, DIALECT.runs, {row["name"] for row in c.fetchall()})
        self.backfill_chain(c)

    def _insert_all(self, c: SQLiteCursor, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Inserts the events with one ``executemany`` (eventsourcing runs one statement per
        event to read each ``lastrowid``). The write transaction holds SQLite's only write
        lock, so the new rowids are consecutive and end at ``last_insert_rowid()``."""
        if not stored_events:
            return []
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id, s.originator_version, s.topic, s.state) for s in stored_events],
        )
        c.execute("SELECT last_insert_rowid()")
        last = int(c.fetchone()[0])
        return list(range(last - len(stored_events) + 1, last + 1))

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        *,
        index: IndexUpdate | None = None,
        leases: LeaseWork | None = None,
        replies: Sequence[tuple[str, str, bytes]] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        notification_ids = self._insert_all(c, stored_events)  # takes the write lock first
        if notification_ids:
            self.write_chain(c, notification_ids, stored_events)
        if leases is not None:
            leases.granted.clear()
            self.lock_runs(c, leases)
        if index:
            self.write(c, index)
        if leases is not None:
            self.settle_leases(c, leases)
            self.announce(c, leases)
        if replies:
            self.record_replies(c, replies)
        return notification_ids
