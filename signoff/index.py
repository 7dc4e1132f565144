"""The run and timer index: rows derived from aggregates, written in the same transaction.

Finding due timers and runs to resume must not mean holding every waiting
run in memory or replaying every aggregate: the writer derives index rows
from the aggregates each batch changed and the persistence adapter writes
them in the very transaction that stores the events, so the index is never
behind the event log (and can be rebuilt from it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class RunRow:
    """A workflow run as the index knows it."""

    id: str
    name: str
    status: str
    created_at: float
    updated_at: float
    completed_at: float | None
    metadata: dict[str, Any]
    is_new: bool = False
    """The run was started in the transaction that writes this row."""


@dataclass(frozen=True)
class TimerRow:
    """Something due at a time: a wait's deadline, a step's retry."""

    target_id: str
    key: str
    kind: str
    due_at: float


@dataclass(frozen=True)
class ApprovalRow:
    """An approval as the index knows it: enough to build an approver's inbox
    without loading every pending approval."""

    id: str
    status: str
    requested_by: str
    requested_at: float
    deadline: float | None
    workflow_id: str | None
    approvers: list[str]
    groups: list[str]
    voters: list[str]
    seq: int = 0
    """Insertion order (ties of ``requested_at`` keep the order of the requests)."""


@dataclass
class IndexUpdate:
    """Rows to upsert, and the complete timer set of each target to replace."""

    runs: list[RunRow] = field(default_factory=list)
    approvals: list[ApprovalRow] = field(default_factory=list)
    timers: dict[str, list[TimerRow]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.runs or self.approvals or self.timers)


class RunIndex(Protocol):
    """Queries over the index; implemented by each persistence adapter."""

    def due_timers(
        self, now: float, limit: int, after: tuple[float, str, str] | None = None
    ) -> list[TimerRow]:
        """Timers due at or before ``now``, earliest first, after the keyset position
        ``after`` (due_at, target_id, key)."""
        ...

    def next_due(self) -> float | None:
        """When the earliest timer is due, if any."""
        ...

    def runs_in_status(
        self, names: Sequence[str], statuses: Sequence[str], limit: int
    ) -> list[str]:
        """Ids of runs of the named workflows in one of ``statuses``, oldest first."""
        ...

    def timers_of_kind(
        self, kind: str, *, key: str | None, start: float | None, end: float | None, limit: int
    ) -> list[TimerRow]:
        """Timers of ``kind`` (and ``key``), due between ``start`` and ``end``, earliest first."""
        ...

    def write_index(self, update: IndexUpdate) -> None:
        """Writes index rows in a transaction of their own (rebuilding the index)."""
        ...

    def index_is_empty(self) -> bool:
        """Tells whether no run or approval row was ever written."""
        ...


def epoch(when: datetime) -> float:
    """A datetime as seconds since the epoch (the index's sortable time)."""
    return when.timestamp()
