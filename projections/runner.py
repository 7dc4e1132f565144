"""Runs projections over the notification log: catch up, stay live, rebuild.

Each projection has a tracking row (``signoff_projections``) moved in the
same transaction as its view rows, so an event is applied exactly once even
when several processes project the same store: the tracking update is
conditional on the position read before the batch, and a process that lost
the race rolls back and reads again. Readers call ``catch_up`` before a
query to read their own writes; a background thread keeps views live,
woken by this process's commits, by the database (PostgreSQL's NOTIFY) or,
failing both, by polling.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from signoff.projections.base import Projection
from signoff.projections.records import EventRecord, decode
from signoff.projections.sql import Change, ViewDatabase, fetch_all

log = logging.getLogger(__name__)

TRACKING = "signoff_projections"

Publish = Callable[[list[Change]], None]
Progress = Callable[[int, int], None]


class _MovedError(Exception):
    """Another process applied this batch first."""


class ProjectionRunner:
    """Keeps a set of projections up to date with one event store."""

    def __init__(
        self,
        recorder: Any,
        db: ViewDatabase,
        projections: Sequence[Projection],
        *,
        batch_size: int = 2000,
        publish: Publish | None = None,
        watched: Callable[[str], bool] = lambda view: True,
    ) -> None:
        self.recorder = recorder
        self.db = db
        self.projections = {p.name: p for p in projections}
        self.batch_size = batch_size
        self.publish = publish
        self.watched = watched
        """Tells whether a view has subscribers (changes are worked out only for those)."""
        self.on_applied: Callable[[int], None] | None = None
        """Called on the live thread with how many events each catch-up that applied some
        read (a view worker process tells its engine with it)."""
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._tracking = db.table(TRACKING)
        self._published: dict[str, int] = {}
        """How far each view's changes were handed to ``publish``."""
        self._known: dict[str, int] | None = None
        """The tracking positions as this process last wrote or read them (None: read them
        again). Another process may be further on: the conditional update then fails and
        the positions are read again, so trusting them costs nothing but spares a query."""

    # Set-up -------------------------------------------------------------------

    def setup(self) -> None:
        """Creates the tracking table and the views; rebuilds views whose version changed."""
        p = self.db.param
        with self.db.setup_lock():
            if self._set_up():
                self._published = self.positions()
                return  # no DDL while other processes may be writing to these tables
            with self.db.transaction(commit=True) as cursor:
                cursor.execute(
                    f"CREATE TABLE IF NOT EXISTS {self._tracking} (name TEXT PRIMARY KEY, "
                    "position BIGINT NOT NULL, version INTEGER NOT NULL)"
                )
                for projection in self.projections.values():
                    for statement in projection.create_statements(self.db):
                        cursor.execute(statement)
                    cursor.execute(
                        f"INSERT INTO {self._tracking} (name, position, version) "
                        f"VALUES ({p}, 0, {p}) ON CONFLICT (name) DO NOTHING",
                        (projection.name, projection.version),
                    )
            versions = self._versions()
            for name, projection in self.projections.items():
                if versions.get(name) != projection.version:
                    self.reset(name)
        self._published = self.positions()

    def _set_up(self) -> bool:
        """Tells whether every projection has its tracking row at its current version."""
        try:
            versions = self._versions()
        except Exception:  # no tracking table yet
            return False
        return all(versions.get(n) == p.version for n, p in self.projections.items())

    def reset(self, name: str) -> None:
        """Empties a view and moves its tracking to the start of the log."""
        projection = self.projection(name)
        p = self.db.param
        self._known = None
        with self._lock, self.db.transaction(commit=True) as cursor:
            for table in projection.tables:
                cursor.execute(f"DROP TABLE IF EXISTS {self.db.table(table)}")
            for statement in projection.create_statements(self.db):
                cursor.execute(statement)
            cursor.execute(
                f"INSERT INTO {self._tracking} (name, position, version) VALUES ({p}, 0, {p}) "
                "ON CONFLICT (name) DO UPDATE SET position = 0, version = excluded.version",
                (name, projection.version),
            )
            self._published[name] = 0

    def projection(self, name: str) -> Projection:
        """The projection called ``name`` (KeyError names the known ones)."""
        try:
            return self.projections[name]
        except KeyError:
            known = ", ".join(sorted(self.projections))
            raise KeyError(f"no projection {name!r} (known: {known})") from None

    # Positions ----------------------------------------------------------------

    def positions(self) -> dict[str, int]:
        """How far each projection has applied the log."""
        with self.db.transaction(commit=False) as cursor:
            rows = fetch_all(cursor, f"SELECT name, position FROM {self._tracking}")
        found = {row["name"]: int(row["position"]) for row in rows}
        missing = [name for name in self.projections if name not in found]
        if missing:  # deleted by hand: start those views again rather than loop on them
            for name in missing:
                self.reset(name)
        return {name: found.get(name, 0) for name in self.projections}

    def _versions(self) -> dict[str, int]:
        with self.db.transaction(commit=False) as cursor:
            rows = fetch_all(cursor, f"SELECT name, version FROM {self._tracking}")
        return {row["name"]: int(row["version"]) for row in rows}

    def head(self) -> int:
        """The position of the last stored event (0 for an empty log)."""
        return int(self.recorder.max_notification_id() or 0)

    # Applying -----------------------------------------------------------------

    def catch_up(self, until: int | None = None, progress: Progress | None = None) -> int:
        """Applies events until every projection has reached ``until`` (default: the head).

        Returns how many events were read. Safe to call from any thread.
        """
        # Without ``until`` the head is where reading stops (a short batch), which spares
        # a query per call; reporting progress needs it up front.
        target = self.head() if until is None and progress is not None else until
        read = 0
        with self._lock:
            while True:
                positions = self._known if self._known is not None else self.positions()
                if not positions or (target is not None and min(positions.values()) >= target):
                    self._known = positions
                    return read
                try:
                    count = self._apply_batch(positions)
                except _MovedError:
                    self._known = None
                    continue
                if count == 0:
                    self._known = positions
                    return read  # the log ends here (or before ``until``: nothing more yet)
                read += count
                if progress is not None:
                    progress(min(self.positions().values()), target or 0)
                if target is None and count < self.batch_size:
                    return read  # a short batch: that was the head

    def _read(self, start: int, stop: int | None = None) -> list[EventRecord]:
        """The next batch of stored events after ``start`` (up to ``stop``)."""
        with self.db.transaction(commit=False) as cursor:
            rows = self.db.events(cursor, start, self.batch_size, stop)
        if rows is None:  # not in the view database: the recorder reads them
            notifications = self.recorder.select_notifications(
                start=start, limit=self.batch_size, stop=stop, inclusive_of_start=False
            )
            rows = [
                (n.id, n.topic, n.originator_id, n.originator_version, n.state)
                for n in notifications
            ]
        return [decode(*row) for row in rows]

    def _apply_batch(self, positions: dict[str, int]) -> int:
        records = self._read(min(positions.values()))
        if not records:
            return 0
        first, last = records[0].position, records[-1].position
        changes: list[Change] = []
        applied: dict[str, bool] = {}
        p = self.db.param
        with self.db.transaction(commit=True) as cursor:
            for name, projection in self.projections.items():
                position = positions[name]
                if position >= last:
                    continue
                # Changes are worked out here only for a watched view whose earlier changes
                # were all published; a gap (another process applied them) is filled later.
                report = self._watched(name) and self._published.get(name) == position
                applied[name] = report
                cursor.execute(
                    f"UPDATE {self._tracking} SET position = {p} "
                    f"WHERE name = {p} AND position = {p}",
                    (last, name, position),
                )
                if _rowcount(cursor) != 1:
                    raise _MovedError(name)
                mine = (
                    records if position < first else [r for r in records if r.position > position]
                )
                projection.prepare(position)
                changes.extend(
                    Change(name, key, last, row)
                    for key, row in projection.apply(cursor, self.db, mine, report)
                )
        for name in applied:
            self.projections[name].committed(last)
        self._known = {name: max(position, last) for name, position in positions.items()}
        for name, report in applied.items():
            if report or not self._watched(name):
                self._published[name] = last
        if changes and self.publish is not None:
            self.publish(changes)
        return len(records)

    def _watched(self, name: str) -> bool:
        return self.publish is not None and self.watched(name)

    def publish_pending(self) -> None:
        """Publishes the changes of watched views up to their positions, including those
        another process applied (their current rows, at the view's position)."""
        if self.publish is None:
            return
        with self._lock:
            watched = any(self._watched(name) for name in self.projections)
            # Only a watched view needs the stored positions (others may have moved them).
            known = self._known if not watched else None
            for name, position in (known if known is not None else self.positions()).items():
                published = self._published.get(name, position)
                if position > published and self._watched(name):
                    changes = self.changes_between(name, published, position)
                    if changes:
                        self.publish(changes)
                self._published[name] = position

    def changes_between(self, name: str, after: int, until: int) -> list[Change]:
        """The rows of view ``name`` that events in (``after``, ``until``] touched, as they
        are now, each as a change at position ``until``."""
        projection = self.projection(name)
        keys: dict[str, None] = {}
        start = after
        while start < until:
            records = self._read(start, until)
            if not records:
                break
            for record in records:
                keys.update(dict.fromkeys(projection.keys(record)))
            start = records[-1].position
        wanted = list(keys)
        changes: list[Change] = []
        for offset in range(0, len(wanted), 500):
            chunk = wanted[offset : offset + 500]
            with self.db.transaction(commit=False) as cursor:
                rows = projection.read_rows(cursor, self.db, chunk)
            changes.extend(Change(name, key, until, rows.get(key)) for key in chunk)
        return changes

    def rebuild(self, name: str, progress: Progress | None = None) -> int:
        """Rebuilds one view from the start of the log; returns how many events it read."""
        with self._lock:
            self.reset(name)
            return self.catch_up(progress=progress)

    # Living -------------------------------------------------------------------

    def start(self, poll_interval: float, linger: float = 0.01) -> None:
        """Keeps the views live on a background thread until ``stop``.

        Args:
            poll_interval: seconds between looks at the log when nothing wakes the thread.
            linger: seconds the thread waits after a wake-up for more commits to arrive, so
                that a busy engine's commits share one projection transaction (each costs
                a few queries whatever its size) instead of waking it hundreds of times a
                second.
        """
        if self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._live,
            args=(poll_interval, linger),
            name="signoff-projections",
            daemon=True,
        )
        self._thread.start()

    def nudge(self) -> None:
        """Tells the live thread that new events were stored."""
        self._wake.set()

    def stop(self) -> None:
        """Stops the live thread (after its current batch)."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @property
    def stopping(self) -> threading.Event:
        """Set while the runner is stopping (listener threads watch it)."""
        return self._stopping

    def _live(self, poll_interval: float, linger: float) -> None:
        failures = 0
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                read = self.catch_up()
                self.publish_pending()
                if read and self.on_applied is not None:
                    self.on_applied(read)
                failures = 0
            except Exception:  # the views lag, the engine stays up; retried with backoff
                failures += 1
                log.exception("projection batch failed (attempt %d)", failures)
                self._stopping.wait(min(5.0, poll_interval * 2**failures))
                continue
            if self._wake.wait(poll_interval):
                self._stopping.wait(linger)


def _rowcount(cursor: Any) -> int:
    count = getattr(cursor, "rowcount", None)
    if count is None:  # eventsourcing's SQLite cursor wraps sqlite3's
        count = cursor.sqlite_cursor.rowcount
    return int(count)
