"""Where the views live: the event store's own database, or a private SQLite for memory://.

Views share the store's connections (eventsourcing's datastore), so on
SQLite their writes take turns with the event writer instead of failing on
a busy database, and on PostgreSQL they live in the store's schema.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from psycopg.sql import SQL, Identifier

from signoff.adapters.persistence.postgres import setup_lock
from signoff.projections.sql import StoredEvent, ViewDatabase

log = logging.getLogger(__name__)


class SQLiteViews:
    """Views in the SQLite file of the event store."""

    kind = "sqlite"
    param = "?"

    def __init__(self, recorder: SQLiteApplicationRecorder) -> None:
        self._datastore = recorder.datastore
        columns = "rowid, topic, originator_id, originator_version, state"
        table = recorder.events_table_name
        self._events = f"SELECT {columns} FROM {table} WHERE rowid > ?"  # noqa: S608

    def table(self, name: str) -> str:
        """SQLite has no schemas: the bare name."""
        return name

    def transaction(self, *, commit: bool) -> AbstractContextManager[Any]:
        """A cursor of the store's connection pool."""
        return self._datastore.transaction(commit=commit)

    def setup_lock(self) -> AbstractContextManager[None]:
        """SQLite serialises DDL itself."""
        return nullcontext()

    def events(
        self, cursor: Any, after: int, limit: int, stop: int | None = None
    ) -> list[StoredEvent]:
        """The store's events after ``after``, read as plain tuples (the recorder's
        notifications cost a dataclass per event, a good part of applying one)."""
        raw = cursor.sqlite_cursor  # eventsourcing's wrapper; this transaction's own cursor
        raw.row_factory = None  # tuples rather than sqlite3.Row
        if stop is None:
            raw.execute(f"{self._events} ORDER BY rowid LIMIT ?", (after, limit))
        else:
            raw.execute(
                f"{self._events} AND rowid <= ? ORDER BY rowid LIMIT ?", (after, stop, limit)
            )
        rows: list[StoredEvent] = raw.fetchall()
        return rows


class PostgresViews:
    """Views in the PostgreSQL schema of the event store."""

    kind = "postgres"
    param = "%s"

    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self._datastore = recorder.datastore
        self.schema = recorder.datastore.schema or "public"
        columns = "notification_id, topic, originator_id, originator_version, state"
        table = f'"{self.schema}"."{recorder.events_table_name}"'
        self._events = f"SELECT {columns} FROM {table} WHERE notification_id > %s"  # noqa: S608

    def table(self, name: str) -> str:
        """The name qualified by the store's schema."""
        return f'"{self.schema}".{name}'

    def transaction(self, *, commit: bool) -> AbstractContextManager[Any]:
        """A cursor of the store's connection pool."""
        return self._datastore.transaction(commit=commit)

    def setup_lock(self) -> AbstractContextManager[None]:
        """Serialises creating tables with other processes starting on the store."""
        return setup_lock(self._datastore)

    def events(
        self, cursor: Any, after: int, limit: int, stop: int | None = None
    ) -> list[StoredEvent]:
        """The store's events after ``after``, read as plain tuples."""
        params: tuple[int, ...]
        if stop is None:
            sql, params = f"{self._events} ORDER BY notification_id LIMIT %s", (after, limit)
        else:
            sql = f"{self._events} AND notification_id <= %s ORDER BY notification_id LIMIT %s"
            params = (after, stop, limit)
        cursor.execute(sql, params)
        return [
            (
                row["notification_id"],
                row["topic"],
                row["originator_id"],
                row["originator_version"],
                bytes(row["state"]),
            )
            for row in cursor.fetchall()
        ]


class MemoryViews:
    """Views of an in-memory event store: a private in-memory SQLite database."""

    kind = "sqlite"
    param = "?"

    def __init__(self) -> None:
        self._connection = sqlite3.connect(
            ":memory:", check_same_thread=False, isolation_level=None
        )
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.Lock()

    def table(self, name: str) -> str:
        """The bare name."""
        return name

    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[sqlite3.Cursor]:
        """One connection, one transaction at a time."""
        with self._lock:
            cursor = self._connection.cursor()
            cursor.execute("BEGIN")
            try:
                yield cursor
            except BaseException:
                self._connection.rollback()
                raise
            if commit:
                self._connection.commit()
            else:
                self._connection.rollback()

    def setup_lock(self) -> AbstractContextManager[None]:
        """One process, one connection: nothing to serialise."""
        return nullcontext()

    def events(
        self, cursor: Any, after: int, limit: int, stop: int | None = None
    ) -> list[StoredEvent] | None:
        """The events are in the recorder's memory, not here."""
        return None


def views_for(recorder: Any) -> ViewDatabase:
    """The view database that goes with an event store's recorder."""
    if isinstance(recorder, SQLiteApplicationRecorder):
        return SQLiteViews(recorder)
    if isinstance(recorder, PostgresApplicationRecorder):
        return PostgresViews(recorder)
    return MemoryViews()


class Listener:
    """Calls ``wake`` whenever PostgreSQL announces news on ``channel`` (by default new
    events: eventsourcing's NOTIFY on insert), until ``stopping`` is set; a lost
    connection is re-opened, and polling covers what was announced meanwhile."""

    def __init__(self, recorder: PostgresApplicationRecorder, channel: str | None = None) -> None:
        self.recorder = recorder
        self.channel = channel or recorder.channel_name
        self.backend_pid: int | None = None
        """The listening connection's server process (tests kill it)."""

    def __call__(self, wake: Callable[[], None], stopping: threading.Event) -> None:
        """Listens until ``stopping`` is set."""
        failures = 0
        while not stopping.is_set():
            try:
                with self.recorder.datastore.get_connection() as conn:
                    channel = Identifier(self.channel)
                    conn.execute(SQL("LISTEN {0}").format(channel))
                    self.backend_pid = conn.info.backend_pid
                    failures = 0
                    wake()  # anything stored while not listening
                    while not stopping.is_set():
                        for _ in conn.notifies(timeout=0.2, stop_after=1):
                            wake()
            except Exception:
                failures += 1
                log.warning("LISTEN connection lost (attempt %d); reconnecting", failures)
                stopping.wait(min(5.0, 0.1 * 2**failures))


def notifier_for(recorder: Any) -> Listener | None:
    """The store's announcer of new events, if it has one (PostgreSQL)."""
    if isinstance(recorder, PostgresApplicationRecorder):
        return Listener(recorder)
    return None


def ready_listener_for(recorder: Any) -> Listener | None:
    """The store's announcer of runs ready for an engine, if it has one (PostgreSQL)."""
    channel = getattr(recorder, "ready_channel", None)
    if isinstance(recorder, PostgresApplicationRecorder) and channel:
        return Listener(recorder, channel)
    return None
