"""The Engine's read side: inbox, board, audit trail, metrics and live changes.

Every query is served from the projections' tables (caught up first, so a
caller reads its own writes), never by replaying aggregates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any, TypeVar

from signoff.commands import Decide, as_list, validate
from signoff.cursors import decode_cursor, encode_cursor
from signoff.domain.errors import InvalidInputError
from signoff.projections import queries
from signoff.projections.feed import CLOSED, OVERFLOW
from signoff.projections.sql import Change, Cursor, ViewDatabase
from signoff.read_models import ReadModels
from signoff.read_views import (
    AuditEntry,
    InboxItem,
    InboxPage,
    Metrics,
    ViewChange,
    workflow_summary,
)
from signoff.views import WorkflowPage

T = TypeVar("T")

ORDERS = ("age", "deadline")


class ReadCommands:
    """Queries over the views, and their change feed."""

    clock: Any

    def _read_models(self) -> ReadModels:
        raise NotImplementedError

    async def _in_reader(self, work: Callable[[], T]) -> T:
        raise NotImplementedError

    async def _query(self, read: Callable[[Cursor, ViewDatabase], T]) -> T:
        models = self._read_models()
        return await self._in_reader(lambda: models.query(read))

    # The inbox ---------------------------------------------------------------

    async def approval_inbox(
        self,
        approver: str | None = None,
        *,
        groups: Iterable[str] = (),
        order: str = "age",
        limit: int = 50,
        cursor: str | None = None,
    ) -> InboxPage:
        """Pending approvals a page at a time, oldest first (``order="deadline"``: the most
        urgent first, those without a deadline last).

        With ``approver``, only those that person may still vote on (allowed by name, by
        one of ``groups`` or open to anyone; not their own; not voted yet; not past the
        deadline); with only ``groups``, those the groups may decide.
        """
        if not 1 <= limit <= 1000:
            raise InvalidInputError("limit must be between 1 and 1000")
        if order not in ORDERS:
            raise InvalidInputError(f"order must be one of {', '.join(ORDERS)}")
        member_of = tuple(
            validate(Decide, {"by": approver or "anyone", "groups": as_list(groups)}).groups
        )
        after = decode_cursor(cursor, (float, int), "the inbox") if cursor else None
        now = self.clock.now().timestamp()

        def read(c: Cursor, db: ViewDatabase) -> InboxPage:
            rows = queries.inbox(
                c,
                db,
                approver=approver,
                groups=member_of,
                now=now,
                order=order,
                limit=limit + 1,
                after=after,
            )
            more = len(rows) > limit
            rows = rows[:limit]
            next_cursor = encode_cursor(rows[-1]["sort_key"], rows[-1]["seq"]) if more else None
            return InboxPage(items=[InboxItem.of(r) for r in rows], next_cursor=next_cursor)

        return await self._query(read)

    async def pending_approvals(
        self,
        approver: str | None = None,
        *,
        groups: Iterable[str] = (),
        order: str = "age",
        limit: int = 100,
    ) -> list[InboxItem]:
        """The first page of ``approval_inbox``: pending approvals, at most ``limit``."""
        page = await self.approval_inbox(approver, groups=groups, order=order, limit=limit)
        return page.items

    # The board ---------------------------------------------------------------

    async def get_workflows(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str | int | float | bool] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> WorkflowPage:
        """Runs matching the filters, newest first, a page at a time (keyset pagination).

        Args:
            metadata: runs whose metadata has these keys with these (scalar) values.
            cursor: ``next_cursor`` of the previous page.
        """
        if not 1 <= limit <= 500:
            raise InvalidInputError("limit must be between 1 and 500")
        for value in (metadata or {}).values():
            if not isinstance(value, str | int | float | bool):
                raise InvalidInputError("metadata filters compare scalar values only")
        after = decode_cursor(cursor, (float, str), "get_workflows") if cursor else None

        def read(c: Cursor, db: ViewDatabase) -> WorkflowPage:
            rows, total = queries.runs(
                c,
                db,
                status=status,
                name=name,
                metadata=metadata,
                limit=limit + 1,
                after=after,
            )
            more = len(rows) > limit
            rows = rows[:limit]
            items = [workflow_summary(r) for r in rows]
            next_cursor = encode_cursor(rows[-1]["created_at"], rows[-1]["id"]) if more else None
            return WorkflowPage(items=items, total=total, next_cursor=next_cursor)

        return await self._query(read)

    # Audit and metrics -------------------------------------------------------

    async def audit_trail(
        self,
        *,
        workflow_id: str | None = None,
        aggregate_id: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Decisions and lifecycle events in log order, after position ``after``."""
        if not 1 <= limit <= 10_000:
            raise InvalidInputError("limit must be between 1 and 10000")
        rows = await self._query(
            lambda c, db: queries.audit_rows(
                c, db, workflow_id=workflow_id, aggregate_id=aggregate_id, after=after, limit=limit
            )
        )
        return [AuditEntry.of(r) for r in rows]

    async def metrics(self) -> Metrics:
        """Counts by status, decision latency percentiles, approvals past their deadline."""
        now = self.clock.now().timestamp()
        found = await self._query(lambda c, db: queries.metrics(c, db, now=now))
        return Metrics(**found)

    # Live changes ------------------------------------------------------------

    async def watch(self, view: str, *, after: int | None = None) -> AsyncIterator[ViewChange]:
        """The changes of a view's rows as they happen (``approvals``, ``runs``, ``audit``).

        With ``after`` (the ``position`` of the last change a client saw), first the rows
        changed since then, as they are now, so a client that reconnects misses nothing.
        A change may be delivered twice across a resume; applying it again is harmless.
        The iteration ends when the engine closes.
        """
        models = self._read_models()
        if view not in models.runner.projections:
            known = ", ".join(sorted(models.runner.projections))
            raise InvalidInputError(f"no view {view!r} (known: {known})")
        subscriber = models.feed.subscribe(view)
        try:
            seen = after
            if after is not None:
                for change in await self._resume(models, view, after):
                    seen = change.position
                    yield ViewChange.of(change)
            while True:
                batch = await subscriber.get()
                if batch is CLOSED:
                    return
                if batch is OVERFLOW:
                    for change in await self._resume(models, view, seen or 0):
                        seen = change.position
                        yield ViewChange.of(change)
                    continue
                for change in batch:
                    if seen is None or change.position > seen:
                        yield ViewChange.of(change)
                seen = batch[-1].position
        finally:
            models.feed.unsubscribe(subscriber)

    async def _resume(self, models: ReadModels, view: str, after: int) -> list[Change]:
        return await self._in_reader(lambda: _changed_since(models, view, after))


def _changed_since(models: ReadModels, view: str, after: int) -> list[Change]:
    """The current rows of ``view`` that events after ``after`` touched, once the view has
    caught up with everything stored before the call."""
    runner = models.runner
    runner.catch_up()
    return runner.changes_between(view, after, runner.positions()[view])
