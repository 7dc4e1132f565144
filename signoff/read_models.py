"""The read side of an Engine: projections, their live thread and their change feed.

Queries first catch the views up to the head of the log (so a caller reads
its own writes), then read in one transaction. The live thread keeps the
views current between queries and feeds ``watch`` subscribers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from signoff.adapters.persistence.views import notifier_for, views_for
from signoff.projections.approvals import ApprovalsProjection
from signoff.projections.audit import AuditProjection
from signoff.projections.base import Projection
from signoff.projections.board import BoardProjection
from signoff.projections.feed import ChangeFeed
from signoff.projections.runner import ProjectionRunner
from signoff.projections.sql import Cursor, ViewDatabase

T = TypeVar("T")


def default_projections() -> list[Projection]:
    """The views every engine keeps: approvals (inbox), runs (board), audit trail."""
    return [ApprovalsProjection(), BoardProjection(), AuditProjection()]


class ReadModels:
    """Projections of one event store, with a live thread and a change feed."""

    def __init__(self, recorder: Any) -> None:
        self.db: ViewDatabase = views_for(recorder)
        self.feed = ChangeFeed()
        self.runner = ProjectionRunner(
            recorder,
            self.db,
            default_projections(),
            publish=self.feed.publish,
            watched=self.feed.watched,
        )
        self.runner.setup()
        self.listener = notifier_for(recorder)
        """PostgreSQL's LISTEN loop (None on other stores)."""
        self._listen_thread: threading.Thread | None = None

    def start(self, poll_interval: float) -> None:
        """Keeps the views live (woken by NOTIFY where the store sends it, else by polling)."""
        self.runner.start(poll_interval)
        if self.listener is not None and self._listen_thread is None:
            self._listen_thread = threading.Thread(
                target=self.listener,
                args=(self.runner.nudge, self.runner.stopping),
                name="signoff-listen",
                daemon=True,
            )
            self._listen_thread.start()

    def stop(self) -> None:
        """Stops the live thread and the listener, and ends every ``watch``."""
        self.runner.stop()
        self.feed.close()
        if self._listen_thread is not None:
            self._listen_thread.join()
            self._listen_thread = None

    def query(self, read: Callable[[Cursor, ViewDatabase], T], *, current: bool = True) -> T:
        """Runs ``read`` on caught-up views (``current=False``: as they are)."""
        if current:
            self.runner.catch_up()
        with self.db.transaction(commit=False) as cursor:
            return read(cursor, self.db)
