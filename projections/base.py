"""The projection contract: a named, versioned view built from events a batch at a time."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from signoff.projections.records import EventRecord
from signoff.projections.sql import Cursor, Row, Update, ViewDatabase


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

    @abstractmethod
    def keys(self, record: EventRecord) -> list[str]:
        """The keys of the rows an event may change (for a feed resuming after a gap)."""

    @abstractmethod
    def read_rows(self, cursor: Cursor, db: ViewDatabase, keys: Sequence[str]) -> dict[str, Row]:
        """The current rows of ``keys`` (missing keys: no such row)."""
