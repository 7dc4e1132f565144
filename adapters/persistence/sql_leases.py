"""Run leases in SQL: three columns of the run index, taken and checked in the store's own
transactions, timed by the database's clock (see ``signoff.leases``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson

from signoff.domain.errors import LeaseLostError
from signoff.domain.workflow_run import EXECUTABLE
from signoff.index import RunRow
from signoff.leases import Lease, LeaseWork

Cursor = Any


LEASE_COLUMNS = (
    ("lease_owner", "TEXT"),
    ("lease_token", "BIGINT NOT NULL DEFAULT 0"),
    ("lease_until", "DOUBLE PRECISION"),
)
"""Added to the run index table (and to an older store's, on open). A free run has no
``lease_until`` (released, never claimed) or one that passed (its engine went silent)."""

FREE_UNTIL = "COALESCE(lease_until, 0)"
"""A run is free when this is in the past: what the index of free ready runs is on."""


def free_runs_index(runs: str) -> str:
    """DDL of the index that finds ready runs no live lease holds without reading the runs
    engines hold (polls run often: they must not read every held run)."""
    name = runs.replace(".", "_").replace('"', "")
    executable = ", ".join(repr(s) for s in EXECUTABLE)
    return (
        f"CREATE INDEX IF NOT EXISTS {name}_free ON {runs} (({FREE_UNTIL})) "
        f"WHERE status IN ({executable})"
    )


@dataclass(frozen=True)
class LeaseDialect:
    """What differs between the SQL databases for leases."""

    param: str  # "?" or "%s"
    runs: str  # the run index table
    now: str  # the database's current time, in seconds since the epoch
    lock_rows: str  # suffix of a SELECT that locks its rows ("" where writes are serialised)
    skip_locked: str  # suffix of a subquery that skips rows another transaction holds
    notify: str | None  # statement waking the other engines (None: they poll)

    @property
    def arrays(self) -> bool:
        """Tells whether id lists go as one array parameter (PostgreSQL)."""
        return self.param == "%s"

    def in_list(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` in ``values``, as SQL and parameters."""
        if self.arrays:
            return f"{column} = ANY({self.param})", [list(values)]
        return f"{column} IN ({', '.join(self.param for _ in values)})", list(values)


class SqlLeases:
    """Claims, renews, releases and fences run leases with one dialect."""

    def __init__(
        self, dialect: LeaseDialect, write: Callable[[], AbstractContextManager[Cursor]]
    ) -> None:
        self.lease_dialect = dialect
        self._lease_transaction = write
        d, p = dialect, dialect.param
        free = f"{FREE_UNTIL} < {d.now}"
        executable = f"status IN ({', '.join(repr(s) for s in EXECUTABLE)})"
        self._lease_take = (
            f"UPDATE {d.runs} SET lease_owner = {p}, lease_token = lease_token + 1, "
            f"lease_until = {d.now} + {p} WHERE {{ids}} AND {executable} AND {free} "
            "RETURNING id, lease_token"
        )
        self._lease_ready = (
            f"SELECT id FROM {d.runs} WHERE {executable} AND {{names}} AND {free} "
            f"ORDER BY created_at, id LIMIT {p}{d.skip_locked}"
        )
        self._lease_renew = (
            f"UPDATE {d.runs} SET lease_until = {d.now} + {p} WHERE id IN "
            f"(SELECT id FROM {d.runs} WHERE {{ids}} AND lease_owner = {p}{d.skip_locked}) "
            "RETURNING id, lease_token"
        )
        if d.arrays:  # one statement over two column arrays
            self._lease_release = (
                f"UPDATE {d.runs} AS r SET lease_owner = NULL, lease_until = NULL "
                "FROM unnest(%b::text[], %b::int8[]) AS x(id, token) "
                "WHERE r.id = x.id AND r.lease_token = x.token AND r.lease_owner = %s"
            )
        else:
            self._lease_release = (
                f"UPDATE {d.runs} SET lease_owner = NULL, lease_until = NULL "
                f"WHERE id = {p} AND lease_token = {p} AND lease_owner = {p}"
            )
        self._lease_holders = f"SELECT id, lease_owner, lease_token FROM {d.runs} WHERE {{ids}}"

    # Inside a transaction of the writer ----------------------------------------

    def lock_runs(self, cursor: Cursor, work: LeaseWork, *, lock_all: bool = False) -> None:
        """Refuses the transaction when a fenced run was lost. On PostgreSQL it first locks
        every run row the transaction touches, in one sorted statement (when it fences
        runs, or ``lock_all``), so that the transactions of several engines, which touch
        run rows in several statements, never deadlock."""
        d = self.lease_dialect
        if not (work.fences or (lock_all and d.lock_rows)):
            return
        ids = work.locked_ids() if d.lock_rows else sorted(work.fences)
        if not ids:
            return
        where, params = d.in_list("id", ids)
        cursor.execute(f"{self._lease_holders.format(ids=where)} ORDER BY id{d.lock_rows}", params)
        held = {r["id"]: (r["lease_owner"], int(r["lease_token"])) for r in cursor.fetchall()}
        lost = work.lost(held)
        if lost:
            raise LeaseLostError(lost)

    def settle_leases(self, cursor: Cursor, work: LeaseWork) -> None:
        """Releases what the work gives up and claims the runs it readied (after the run
        rows are written)."""
        d = self.lease_dialect
        if work.releases:
            ids, tokens = sorted(work.releases), [work.releases[i] for i in sorted(work.releases)]
            if d.arrays:
                cursor.execute(self._lease_release, (ids, tokens, work.owner))
            else:
                rows = [(i, t, work.owner) for i, t in zip(ids, tokens, strict=True)]
                cursor.executemany(self._lease_release, rows)
        if work.claims:
            where, params = d.in_list("id", sorted(set(work.claims)))
            cursor.execute(self._lease_take.format(ids=where), [work.owner, work.seconds, *params])
            work.granted.update({r["id"]: int(r["lease_token"]) for r in cursor.fetchall()})
            if any(run_id not in work.granted for run_id in work.claims):
                work.announce = True

    def announce(self, cursor: Cursor, work: LeaseWork) -> None:
        """Wakes the other engines when the transaction left a ready run unclaimed."""
        if work.announce and self.lease_dialect.notify:
            cursor.execute(self.lease_dialect.notify)

    # Transactions of their own ---------------------------------------------------

    def write_leases(self, work: LeaseWork) -> None:
        """Applies lease work that came without events, in a transaction of its own."""
        work.granted.clear()
        with self._lease_transaction() as cursor:
            self.lock_runs(cursor, work, lock_all=True)
            self.settle_leases(cursor, work)
            self.announce(cursor, work)

    def claim_ready(
        self, owner: str, names: Sequence[str], limit: int, seconds: float
    ) -> list[Lease]:
        """Claims up to ``limit`` ready runs of the named workflows that no live lease holds
        (rows another engine is claiming right now are skipped, not waited for)."""
        if not names or limit <= 0:
            return []
        d = self.lease_dialect
        name_sql, name_params = d.in_list("name", names)
        ready = self._lease_ready.format(names=name_sql)
        sql = self._lease_take.format(ids=f"id IN ({ready})")
        with self._lease_transaction() as cursor:
            cursor.execute(sql, [owner, seconds, *name_params, limit])
            return [Lease(r["id"], int(r["lease_token"])) for r in cursor.fetchall()]

    def renew_leases(self, owner: str, run_ids: Sequence[str], seconds: float) -> dict[str, int]:
        """Extends ``owner``'s leases of ``run_ids`` (its activations are alive); returns
        the runs renewed, with their tokens (a row another transaction is writing right
        now is skipped, and renewed next time)."""
        if not run_ids:
            return {}
        where, params = self.lease_dialect.in_list("id", sorted(run_ids))
        with self._lease_transaction() as cursor:
            cursor.execute(self._lease_renew.format(ids=where), [seconds, *params, owner])
            return {r["id"]: int(r["lease_token"]) for r in cursor.fetchall()}

    def confirm_lease(self, owner: str, lease: Lease, seconds: float) -> bool:
        """Extends ``lease`` if ``owner`` still holds it; tells whether it does."""
        d, p = self.lease_dialect, self.lease_dialect.param
        with self._lease_transaction() as cursor:
            cursor.execute(
                f"UPDATE {d.runs} SET lease_until = {d.now} + {p} "
                f"WHERE id = {p} AND lease_owner = {p} AND lease_token = {p} RETURNING id",
                [seconds, lease.run_id, owner, lease.token],
            )
            return cursor.fetchone() is not None

    def release_all(self, owner: str) -> None:
        """Gives up every lease ``owner`` holds (its engine is stopping)."""
        d, p = self.lease_dialect, self.lease_dialect.param
        with self._lease_transaction() as cursor:
            cursor.execute(
                f"UPDATE {d.runs} SET lease_owner = NULL, lease_until = NULL WHERE id IN "
                f"(SELECT id FROM {d.runs} WHERE lease_owner = {p}{d.skip_locked})",
                [owner],
            )

    def store_time(self) -> float:
        """The database's clock, in seconds since the epoch."""
        with self._lease_transaction() as cursor:
            cursor.execute(f"SELECT {self.lease_dialect.now} AS now")
            row = cursor.fetchone()
            return float(row["now"])

    def lease_holders(self, run_ids: Sequence[str]) -> dict[str, tuple[str | None, int]]:
        """Who holds each run's lease, and its token (for tests and tools)."""
        if not run_ids:
            return {}
        where, params = self.lease_dialect.in_list("id", list(run_ids))
        with self._lease_transaction() as cursor:
            cursor.execute(self._lease_holders.format(ids=where), params)
            return {r["id"]: (r["lease_owner"], int(r["lease_token"])) for r in cursor.fetchall()}


def add_lease_columns(cursor: Cursor, runs: str, existing: set[str]) -> None:
    """Adds the lease columns (and their index) an older run index lacks (``existing``: its
    column names)."""
    missing = [(column, ddl) for column, ddl in LEASE_COLUMNS if column not in existing]
    for column, ddl in missing:
        cursor.execute(f"ALTER TABLE {runs} ADD COLUMN {column} {ddl}")
    if missing:
        cursor.execute(free_runs_index(runs))


CLAIM, RELEASE, FENCE = 1, 2, 4
"""What a transaction does to a run's lease, as bits of the op the leased upsert carries."""


class LeasedRunUpsert:
    """PostgreSQL: the run index rows and their leases in one statement.

    Writing the run rows, checking the fences, releasing and claiming separately
    would write each row three or four times (PostgreSQL keeps a version per
    update); here each row is written once. ``ON CONFLICT DO UPDATE`` sees only
    the table's columns of the proposed row (``excluded``), so for a run that
    exists the proposed lease columns carry the operation instead: the owner,
    the activation's token, and the op bits in ``lease_until``. A new run (only
    ever claimed) is inserted with its real lease. A fenced row whose lease moved
    on is left alone and missing from what the statement returns.
    """

    def __init__(self, dialect: LeaseDialect) -> None:
        d, now = dialect, dialect.now
        op = "(excluded.lease_until::int)"
        ours = "(r.lease_owner = excluded.lease_owner AND r.lease_token = excluded.lease_token)"
        released = f"({op} & {RELEASE} = {RELEASE} AND {ours})"
        executable = f"excluded.status IN ({', '.join(repr(s) for s in EXECUTABLE)})"
        free = f"COALESCE(r.lease_until, 0) < {now}"
        granted = f"({op} & {CLAIM} = {CLAIM} AND {executable} AND ({released} OR {free}))"
        self.sql = (
            f"INSERT INTO {d.runs} AS r (id, name, status, created_at, updated_at, "
            "completed_at, metadata, lease_owner, lease_token, lease_until) "
            "SELECT id, name, status, created_at, updated_at, completed_at, metadata, "
            f"CASE WHEN NOT is_new OR op & {CLAIM} = {CLAIM} THEN %s END, "
            f"CASE WHEN NOT is_new THEN token WHEN op & {CLAIM} = {CLAIM} THEN 1 ELSE 0 END, "
            f"CASE WHEN NOT is_new THEN op WHEN op & {CLAIM} = {CLAIM} THEN {now} + %s END "
            "FROM unnest(%b::text[], %b::text[], %b::text[], %b::float8[], %b::float8[], "
            "%b::float8[], %b::jsonb[], %b::bool[], %b::int8[], %b::int4[]) "
            "AS x(id, name, status, created_at, updated_at, completed_at, metadata, is_new, "
            "token, op) "
            "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
            "updated_at = excluded.updated_at, completed_at = excluded.completed_at, "
            f"lease_owner = CASE WHEN {granted} THEN excluded.lease_owner "
            f"WHEN {released} THEN NULL ELSE r.lease_owner END, "
            f"lease_token = CASE WHEN {granted} THEN r.lease_token + 1 ELSE r.lease_token END, "
            f"lease_until = CASE WHEN {granted} THEN {now} + %s WHEN {released} THEN NULL "
            "ELSE r.lease_until END "
            f"WHERE {op} & {FENCE} = 0 OR {ours} "
            "RETURNING r.id, r.lease_owner, r.lease_token"
        )

    def __call__(self, cursor: Cursor, rows: Sequence[RunRow], work: LeaseWork) -> None:
        """Upserts ``rows`` (sorted: one lock order for every engine) with the work's lease
        operations on them; fills ``work.granted``; raises LeaseLostError for a lost fence."""
        rows = sorted(rows, key=lambda r: r.id)
        claims = set(work.claims)
        ops, tokens = [], []
        for r in rows:
            ops.append(
                (r.id in claims) * CLAIM
                | (r.id in work.releases) * RELEASE
                | (r.id in work.fences) * FENCE
            )
            tokens.append(work.fences.get(r.id) or work.releases.get(r.id) or 0)
        columns = (
            [r.id for r in rows],
            [r.name for r in rows],
            [r.status for r in rows],
            [float(r.created_at) for r in rows],
            [float(r.updated_at) for r in rows],
            [None if r.completed_at is None else float(r.completed_at) for r in rows],
            [orjson.dumps(r.metadata).decode() for r in rows],
            [r.is_new for r in rows],
            tokens,
            ops,
        )
        cursor.execute(self.sql, (work.owner, work.seconds, *columns, work.seconds), prepare=True)
        returned = cursor.fetchall()
        held = {row["id"]: (row["lease_owner"], int(row["lease_token"])) for row in returned}
        lost = sorted(run_id for run_id in work.fences if run_id not in held)
        if lost:
            raise LeaseLostError(lost)
        for run_id in claims:
            owner, token = held.get(run_id, (None, 0))
            if owner == work.owner:
                work.granted[run_id] = token
            else:
                work.announce = True
