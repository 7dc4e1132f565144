"""The in-memory event store (tests, demos), with the run and timer index in dicts."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.popo import POPOApplicationRecorder

from signoff.domain.errors import IdempotencyKeyLostError, LeaseLostError
from signoff.domain.workflow_run import EXECUTABLE
from signoff.idempotency import Claim, Op, held, judge
from signoff.index import ApprovalRow, IndexUpdate, RunRow, TimerRow
from signoff.leases import Lease, LeaseWork
from signoff.store_identity import new_store_id


class MemorySignoffRecorder(POPOApplicationRecorder):
    """eventsourcing's in-memory recorder that also keeps signoff's index."""

    def __init__(self) -> None:
        super().__init__()
        self._runs: dict[str, RunRow] = {}
        self._timers: dict[str, list[TimerRow]] = {}
        self._approvals: dict[str, ApprovalRow] = {}
        self._leases: dict[str, tuple[str | None, int, float]] = {}
        """Per run: owner, token, until (the process's clock: one process, one clock)."""
        self._keys: dict[str, tuple[str, str, float, str, str | None, bytes]] = {}
        """Idempotency keys: fingerprint, owner, claimed at, status, code, outcome."""
        self._store_id = new_store_id()

    def store_id(self) -> str:
        """This store's id: a fresh one per in-memory store, which dies with its process."""
        return self._store_id

    def _insert_events(
        self,
        stored_events: Sequence[StoredEvent],
        *,
        index: IndexUpdate | None = None,
        leases: LeaseWork | None = None,
        replies: Sequence[tuple[str, str, bytes]] = (),
        **kwargs: Any,
    ) -> Sequence[int] | None:
        with self._database_lock:
            if leases is not None:
                self._check_fences(leases)
            for key, owner, _ in replies:
                row = self._keys.get(key)
                if row is None or row[1] != owner or row[3] != "running":
                    raise IdempotencyKeyLostError(key)
            for key, _, reply in replies:
                row = self._keys[key]
                self._keys[key] = (*row[:3], "done", None, reply)
            notification_ids = super()._insert_events(stored_events, **kwargs)
            if index:
                self._apply(index)
            if leases is not None:
                self._settle(leases)
            return notification_ids

    # Idempotency keys ----------------------------------------------------------

    def apply_key_ops(self, ops: list[Op], *, owner: str, lease: float) -> list[Claim | None]:
        """Applies ``ops`` in order; answers each (see ``KeyStore``)."""
        answers: list[Claim | None] = []
        with self._database_lock:
            now = time.time()
            for op in ops:
                row = self._keys.get(op.key)
                held_here = row is not None and row[1] == owner and row[3] == "running"
                answer: Claim | None = None
                if op.kind == "claim":
                    answer = judge(row, op, owner, now, lease)
                    if answer.state == "new":
                        self._keys[op.key] = (op.fingerprint, owner, now, "running", None, b"")
                elif op.kind == "finish" and row is not None and held_here:
                    self._keys[op.key] = (*row[:3], "done", op.code, op.outcome)
                elif op.kind == "finish":
                    answer = held(row)
                elif op.kind == "release" and held_here:
                    del self._keys[op.key]
                answers.append(answer)
        return answers

    # Leases --------------------------------------------------------------------

    def _holder(self, run_id: str) -> tuple[str | None, int]:
        owner, token, _ = self._leases.get(run_id, (None, 0, 0.0))
        return owner, token

    def _is_free(self, run_id: str, now: float) -> bool:
        owner, _, until = self._leases.get(run_id, (None, 0, 0.0))
        run = self._runs.get(run_id)
        return run is not None and run.status in EXECUTABLE and (owner is None or until < now)

    def _take(self, run_id: str, owner: str, seconds: float, now: float) -> Lease:
        token = self._holder(run_id)[1] + 1
        self._leases[run_id] = (owner, token, now + seconds)
        return Lease(run_id, token)

    def _check_fences(self, work: LeaseWork) -> None:
        lost = work.lost({run_id: self._holder(run_id) for run_id in work.fences})
        if lost:
            raise LeaseLostError(lost)

    def _settle(self, work: LeaseWork) -> None:
        now = time.time()
        work.granted.clear()
        for run_id, token in work.releases.items():
            if self._holder(run_id) == (work.owner, token):
                self._leases[run_id] = (None, token, 0.0)
        for run_id in sorted(set(work.claims)):
            if self._is_free(run_id, now):
                work.granted[run_id] = self._take(run_id, work.owner, work.seconds, now).token
            else:
                work.announce = True

    def write_leases(self, work: LeaseWork) -> None:
        """Applies lease work that came without events."""
        with self._database_lock:
            self._settle(work)

    def claim_ready(
        self, owner: str, names: Sequence[str], limit: int, seconds: float
    ) -> list[Lease]:
        """Claims up to ``limit`` ready runs of the named workflows no live lease holds."""
        with self._database_lock:
            now = time.time()
            ready = sorted(
                (r for r in self._runs.values() if r.name in names and self._is_free(r.id, now)),
                key=lambda r: (r.created_at, r.id),
            )
            return [self._take(r.id, owner, seconds, now) for r in ready[: max(0, limit)]]

    def renew_leases(self, owner: str, run_ids: Sequence[str], seconds: float) -> dict[str, int]:
        """Extends ``owner``'s leases of ``run_ids``; returns those renewed, with tokens."""
        renewed = {}
        with self._database_lock:
            now = time.time()
            for run_id in run_ids:
                held_by, token = self._holder(run_id)
                if held_by == owner:
                    self._leases[run_id] = (owner, token, now + seconds)
                    renewed[run_id] = token
        return renewed

    def confirm_lease(self, owner: str, lease: Lease, seconds: float) -> bool:
        """Extends ``lease`` if ``owner`` still holds it; tells whether it does."""
        with self._database_lock:
            if self._holder(lease.run_id) != (owner, lease.token):
                return False
            self._leases[lease.run_id] = (owner, lease.token, time.time() + seconds)
            return True

    def release_all(self, owner: str) -> None:
        """Gives up every lease ``owner`` holds."""
        with self._database_lock:
            for run_id, (held_by, token, _) in list(self._leases.items()):
                if held_by == owner:
                    self._leases[run_id] = (None, token, 0.0)

    def store_time(self) -> float:
        """The store's clock: this process's."""
        return time.time()

    def lease_holders(self, run_ids: Sequence[str]) -> dict[str, tuple[str | None, int]]:
        """Who holds each run's lease, and its token."""
        with self._database_lock:
            return {run_id: self._holder(run_id) for run_id in run_ids if run_id in self._runs}

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
