"""The in-memory event store (tests, demos), with the run and timer index in dicts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from signoff.index import ApprovalRow, IndexUpdate, RunRow, TimerRow
from signoff.store_identity import new_store_id


class MemorySignoffRecorder(POPOApplicationRecorder):
    """eventsourcing's in-memory recorder that also keeps signoff's index."""

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, RunRow] = {}
        self._timers: dict[str, list[TimerRow]] = {}
        self._approvals: dict[str, ApprovalRow] = {}
        self._store_id = new_store_id()

    def store_id(self) -> str:
        """This store's id: a fresh one per in-memory store, which dies with its process."""
        return self._store_id

    def _insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        index: IndexUpdate | None = None,
        **kwargs: Any,
    ) -> Sequence[int] | None:
        with self._database_lock:
            notification_ids = super()._insert_events(stored_events, **kwargs)
            if index:
                self._apply(index)
            return notification_ids

    def write_index(self, update: IndexUpdate) -> None:
        """Writes index rows on their own (rebuilding the index)."""
        with self._database_lock:
            self._apply(update)

    def index_is_empty(self) -> bool:
        """Tells whether no run or approval row was ever written."""
        with self._database_lock:
            return not self._runs and not self._approvals

    def _apply(self, index: IndexUpdate) -> None:
        for run in index.runs:
            known = self._runs.get(run.id)
            if known is not None:
                run = RunRow(
                    run.id,
                    known.name,
                    run.status,
                    known.created_at,
                    run.updated_at,
                    run.completed_at,
                    known.metadata,
                )
            self._runs[run.id] = run
        for approval in index.approvals:
            earlier = self._approvals.get(approval.id)
            seq = earlier.seq if earlier else len(self._approvals) + 1
            self._approvals[approval.id] = replace(approval, seq=seq)
        for target_id, timers in index.timers.items():
            if timers:
                self._timers[target_id] = list(timers)
            else:
                self._timers.pop(target_id, None)

    def due_timers(
        self, now: float, limit: int, after: tuple[float, str, str] | None = None
    ) -> list[TimerRow]:
        with self._database_lock:
            due = [t for ts in self._timers.values() for t in ts if t.due_at <= now]
        ordered = sorted(due, key=lambda t: (t.due_at, t.target_id, t.key))
        if after is not None:
            ordered = [t for t in ordered if (t.due_at, t.target_id, t.key) > after]
        return ordered[:limit]

    def timers_of_kind(
        self, kind: str, *, key: str | None, start: float | None, end: float | None, limit: int
    ) -> list[TimerRow]:
        with self._database_lock:
            rows = [
                t
                for ts in self._timers.values()
                for t in ts
                if t.kind == kind
                and (key is None or t.key == key)
                and (start is None or t.due_at >= start)
                and (end is None or t.due_at <= end)
            ]
        return sorted(rows, key=lambda t: t.due_at)[:limit]

    def next_due(self) -> float | None:
        with self._database_lock:
            dues = [t.due_at for ts in self._timers.values() for t in ts]
        return min(dues) if dues else None

    def runs_in_status(
        self, names: Sequence[str], statuses: Sequence[str], limit: int
    ) -> list[str]:
        with self._database_lock:
            rows = [r for r in self._runs.values() if r.status in statuses and r.name in names]
        return [r.id for r in sorted(rows, key=lambda r: (r.created_at, r.id))][:limit]
