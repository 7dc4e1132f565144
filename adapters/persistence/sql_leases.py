"""Run leases in SQL: three columns of the run index, taken and checked in the store's own
transactions, timed by the database's clock (see ``signoff.leases``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from signoff.domain.errors import LeaseLostError
from signoff.leases import Lease, LeaseWork

Cursor = Any

EXECUTABLE = ("queued", "running")
"""Run statuses that need an engine."""

LEASE_COLUMNS = (
    ("lease_owner", "TEXT"),
    ("lease_token", "BIGINT NOT NULL DEFAULT 0"),
    ("lease_until", "DOUBLE PRECISION"),
)
"""Added to the run index table (and to an older store's, on open)."""


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
        free = f"(lease_owner IS NULL OR lease_until < {d.now})"
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
            f"(SELECT id FROM {d.runs} WHERE {{ids}} AND lease_owner = {p}{d.skip_locked})"
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

    def lock_runs(
        self, cursor: Cursor, work: LeaseWork, changed_runs: list[str], *, lock_all: bool = False
    ) -> None:
        """Refuses the transaction when a fenced run was lost. On PostgreSQL it first locks
        every run row the transaction touches, in one sorted statement (when it fences
        runs, or ``lock_all``), so that the transactions of several engines, which touch
        run rows in several statements, never deadlock."""
        d = self.lease_dialect
        if not (work.fences or (lock_all and d.lock_rows)):
            return
        ids = work.locked_ids(changed_runs) if d.lock_rows else sorted(work.fences)
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
        rows are written); wakes the other engines for ready runs not claimed here."""
        d = self.lease_dialect
        work.granted.clear()  # a transaction retried after a deadlock claims afresh
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
            if len(work.granted) < len(set(work.claims)):
                work.announce = True
        if work.announce and d.notify:
            cursor.execute(d.notify)

    # Transactions of their own ---------------------------------------------------

    def write_leases(self, work: LeaseWork) -> None:
        """Applies lease work that came without events, in a transaction of its own."""
        with self._lease_transaction() as cursor:
            self.lock_runs(cursor, work, [], lock_all=True)
            self.settle_leases(cursor, work)

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

    def renew_leases(self, owner: str, run_ids: Sequence[str], seconds: float) -> None:
        """Extends ``owner``'s leases of ``run_ids`` (its activations are alive)."""
        if not run_ids:
            return
        where, params = self.lease_dialect.in_list("id", sorted(run_ids))
        with self._lease_transaction() as cursor:
            cursor.execute(self._lease_renew.format(ids=where), [seconds, *params, owner])

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
    """Adds the lease columns an older run index lacks (``existing``: its column names)."""
    for column, ddl in LEASE_COLUMNS:
        if column not in existing:
            cursor.execute(f"ALTER TABLE {runs} ADD COLUMN {column} {ddl}")
