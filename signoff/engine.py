"""The Engine: signoff's public async facade and composition root.

It picks the event store from a URL, builds the application service, and
runs every store call off the event loop: writes on one dedicated writer
thread (commands are serialised in-process; concurrent processes are kept
honest by optimistic concurrency), reads on a small thread pool.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, TypeVar

from signoff.adapters.persistence import StoreConfig, parse_store_url, prepare_store
from signoff.application import SignoffApplication, new_id
from signoff.clock import Clock, SystemClock
from signoff.commands import Cancel, Decide, Reassign, RequestApproval, validate
from signoff.views import ApprovalInfo, HistoryEntry

T = TypeVar("T")

DEFAULT_STORE = "sqlite:///signoff.db"


class Engine:
    """Durable approvals (and, as the runtime grows, workflows) over one event store.

    Args:
        store: ``memory://``, ``sqlite:///path`` (the embedded default) or
            ``postgresql://user@host:port/db[?schema=name]``.
        clock: where time comes from (``signoff.testing.ManualClock`` in tests).
        ids: where new ids come from.
    """

    def __init__(
        self,
        store: str = DEFAULT_STORE,
        *,
        clock: Clock | None = None,
        ids: Callable[[], str] = new_id,
        read_threads: int = 4,
    ) -> None:
        self.store: StoreConfig = parse_store_url(store)
        self.clock: Clock = clock or SystemClock()
        self._ids = ids
        self._read_threads = read_threads
        self._app: SignoffApplication | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None

    # Lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Opens the store (creating its tables) off the event loop."""
        await self._write(lambda app: None)

    async def close(self) -> None:
        """Finishes queued commands and closes the store."""
        writer, readers, app = self._writer, self._readers, self._app
        self._writer = self._readers = None
        self._app = None
        for pool in (writer, readers):
            if pool is not None:
                await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)
        if app is not None:
            app.close()

    @property
    def application(self) -> SignoffApplication:
        """The synchronous application service (built on first use)."""
        if self._app is None:
            prepare_store(self.store)
            self._app = SignoffApplication(self.store.env, clock=self.clock, ids=self._ids)
        return self._app

    async def _write(self, use_case: Callable[[SignoffApplication], T]) -> T:
        if self._writer is None:
            self._writer = ThreadPoolExecutor(1, thread_name_prefix="signoff-writer")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, lambda: use_case(self.application))

    async def _read(self, use_case: Callable[[SignoffApplication], T]) -> T:
        if self._app is None:
            return await self._write(use_case)
        if self._readers is None:
            self._readers = ThreadPoolExecutor(
                self._read_threads, thread_name_prefix="signoff-reader"
            )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(use_case, self._app))

    # Approvals ---------------------------------------------------------------

    async def request_approval(
        self,
        *,
        title: str,
        requested_by: str,
        context: Mapping[str, Any] | None = None,
        description: str = "",
        required_approvals: int = 1,
        approvers: Iterable[str] = (),
        groups: Iterable[str] = (),
        rejection_threshold: int = 1,
        timeout: str | float | timedelta | None = None,
        command_id: str | None = None,
    ) -> str:
        """Asks for a decision and returns the approval's id.

        Args:
            title: what is to be decided, in a line.
            requested_by: who asks (never counts as an approver).
            context: the data a person needs to decide (amount, recipient ...).
            description: the longer story.
            required_approvals: distinct approvals needed (quorum).
            approvers: the people allowed to decide (default: anyone).
            groups: groups whose members may decide.
            rejection_threshold: rejections that reject it (default: the first).
            timeout: how long it may stay pending ("7 days", seconds, timedelta).
            command_id: the id recorded as the cause (default: a new one).

        Returns:
            The new approval's id.
        """
        cmd = validate(
            RequestApproval,
            {
                "title": title,
                "requested_by": requested_by,
                "context": {} if context is None else context,
                "description": description,
                "required_approvals": required_approvals,
                "approvers": _listed(approvers),
                "groups": _listed(groups),
                "rejection_threshold": rejection_threshold,
                "timeout": timeout,
            },
        )
        return await self._write(lambda app: app.request_approval(cmd, command_id=command_id))

    async def approve(
        self,
        approval_id: str,
        *,
        by: str,
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        groups: Iterable[str] = (),
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Records ``by``'s approval; the approval is approved once its quorum is met.

        Returns:
            The approval as it now stands (``status``, ``votes``, ``approvals_needed``).
        """
        cmd = validate(
            Decide,
            {
                "by": by,
                "reason": reason,
                "metadata": {} if metadata is None else metadata,
                "groups": _listed(groups),
            },
        )
        return await self._write(lambda app: app.approve(approval_id, cmd, command_id=command_id))

    async def reject(
        self,
        approval_id: str,
        *,
        by: str,
        reason: str | None = None,
        groups: Iterable[str] = (),
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Records ``by``'s rejection; by default the first rejection vetoes."""
        cmd = validate(Decide, {"by": by, "reason": reason, "groups": _listed(groups)})
        return await self._write(lambda app: app.reject(approval_id, cmd, command_id=command_id))

    async def cancel(
        self,
        approval_id: str,
        *,
        by: str,
        reason: str | None = None,
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Withdraws a pending approval (its requester only)."""
        cmd = validate(Cancel, {"by": by, "reason": reason})
        return await self._write(lambda app: app.cancel(approval_id, cmd, command_id=command_id))

    async def reassign(
        self,
        approval_id: str,
        *,
        by: str,
        approvers: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        by_groups: Iterable[str] = (),
        reason: str | None = None,
        command_id: str | None = None,
    ) -> ApprovalInfo:
        """Hands a pending approval to other approvers or groups, recording who and why."""
        cmd = validate(
            Reassign,
            {
                "by": by,
                "approvers": None if approvers is None else _listed(approvers),
                "groups": None if groups is None else _listed(groups),
                "by_groups": _listed(by_groups),
                "reason": reason,
            },
        )
        return await self._write(lambda app: app.reassign(approval_id, cmd, command_id=command_id))

    async def get_approval(self, approval_id: str) -> ApprovalInfo:
        """The approval's status, policy and votes."""
        return await self._read(lambda app: app.get_approval(approval_id))

    async def pending_approvals(
        self, approver: str | None = None, *, groups: Iterable[str] = ()
    ) -> list[ApprovalInfo]:
        """Pending approvals, oldest first; for ``approver``, only those they may vote on."""
        member_of = tuple(
            validate(Decide, {"by": approver or "anyone", "groups": _listed(groups)}).groups
        )
        return await self._read(lambda app: app.pending_approvals(approver, member_of))

    async def history(self, aggregate_id: str) -> list[HistoryEntry]:
        """The audit trail of one approval or run: its events with actor, reason and time."""
        return await self._read(lambda app: app.history(aggregate_id))


def _listed(values: Any) -> Any:
    """Turns tuples and other iterables into lists, leaving strings and odd types for
    validation to refuse (``list("bob")`` would silently become three approvers)."""
    if isinstance(values, str | bytes | dict) or not isinstance(values, Iterable):
        return values
    return list(values)
