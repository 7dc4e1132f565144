"""The run and timer index in SQL, shared by the SQLite and PostgreSQL recorders."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson

from signoff.adapters.persistence.bulk import BulkDelete, BulkInsert
from signoff.adapters.persistence.sql_leases import LEASE_COLUMNS, free_runs_index
from signoff.index import IndexUpdate, TimerRow

Cursor = Any


@dataclass(frozen=True)
class Dialect:
    """What differs between the SQL databases signoff runs on."""

    param: str  # "?" or "%s"
    runs: str  # qualified table names
    timers: str
    approvals: str
    seq: str  # the approvals table's insertion-order column
    seq_column: str  # its DDL ("" where the database has one built in)
    json_type: str  # column type of metadata

    def create_statements(self) -> list[str]:
        """DDL of the index tables (idempotent)."""
        runs_index = self.runs.replace(".", "_").replace('"', "")
        timers_index = self.timers.replace(".", "_").replace('"', "")
        approvals_index = self.approvals.replace(".", "_").replace('"', "")
        return [
            f"CREATE TABLE IF NOT EXISTS {self.runs} ("
            "id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, "
            "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
            f"completed_at DOUBLE PRECISION, metadata {self.json_type} NOT NULL, "
            + ", ".join(f"{column} {ddl}" for column, ddl in LEASE_COLUMNS)
            + ")",
            f"CREATE INDEX IF NOT EXISTS {runs_index}_status "
            f"ON {self.runs} (status, name, created_at)",
            f"CREATE INDEX IF NOT EXISTS {runs_index}_created ON {self.runs} (created_at, id)",
            free_runs_index(self.runs),
            f"CREATE TABLE IF NOT EXISTS {self.timers} ("
            "target_id TEXT NOT NULL, key TEXT NOT NULL, kind TEXT NOT NULL, "
            "due_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (target_id, key))",
            f"CREATE INDEX IF NOT EXISTS {timers_index}_due ON {self.timers} (due_at)",
            f"CREATE TABLE IF NOT EXISTS {self.approvals} ("
            "id TEXT PRIMARY KEY, status TEXT NOT NULL, requested_by TEXT NOT NULL, "
            "requested_at DOUBLE PRECISION NOT NULL, deadline DOUBLE PRECISION, "
            f"workflow_id TEXT, approvers {self.json_type} NOT NULL, "
            f"groups {self.json_type} NOT NULL, voters {self.json_type} NOT NULL"
            f"{self.seq_column})",
            f"CREATE INDEX IF NOT EXISTS {approvals_index}_status "
            f"ON {self.approvals} (status, requested_at)",
        ]


class SqlIndex:
    """Writes and queries the index tables with one dialect."""

    def __init__(
        self,
        dialect: Dialect,
        read: Callable[[], AbstractContextManager[Cursor]],
        write: Callable[[], AbstractContextManager[Cursor]],
    ) -> None:
        self.d = dialect
        self._read = read
        self._write_transaction = write
        p = dialect.param
        json = dialect.json_type.lower()
        self._upsert_run = BulkInsert(
            dialect.runs,
            ("id", "name", "status", "created_at", "updated_at", "completed_at", "metadata"),
            ("text", "text", "text", "float8", "float8", "float8", json),
            param=p,
            suffix="ON CONFLICT (id) DO UPDATE SET "
            "status = excluded.status, updated_at = excluded.updated_at, "
            "completed_at = excluded.completed_at",
        )
        self._upsert_approval = BulkInsert(
            dialect.approvals,
            (
                "id",
                "status",
                "requested_by",
                "requested_at",
                "deadline",
                "workflow_id",
                "approvers",
                "groups",
                "voters",
            ),
            ("text", "text", "text", "float8", "float8", "text", json, json, json),
            param=p,
            suffix="ON CONFLICT (id) DO UPDATE SET "
            "status = excluded.status, approvers = excluded.approvers, "
            "groups = excluded.groups, voters = excluded.voters",
        )
        self._clear_timers = BulkDelete(dialect.timers, "target_id", param=p)
        self._insert_timer = BulkInsert(
            dialect.timers,
            ("target_id", "key", "kind", "due_at"),
            ("text", "text", "text", "float8"),
            param=p,
        )

    # Writing (inside the events' transaction) --------------------------------

    def write(self, cursor: Cursor, update: IndexUpdate) -> None:
        """Applies ``update`` with the transaction's cursor, in key order (no deadlocks)."""
        runs = sorted(update.runs, key=lambda r: r.id)
        if runs:
            self._upsert_run(
                cursor,
                [
                    (
                        r.id,
                        r.name,
                        r.status,
                        r.created_at,
                        r.updated_at,
                        r.completed_at,
                        _dumps(r.metadata),
                    )
                    for r in runs
                ],
            )
        approvals = sorted(update.approvals, key=lambda a: a.id)
        if approvals:
            self._upsert_approval(
                cursor,
                [
                    (
                        a.id,
                        a.status,
                        a.requested_by,
                        a.requested_at,
                        a.deadline,
                        a.workflow_id,
                        _dumps(a.approvers),
                        _dumps(a.groups),
                        _dumps(a.voters),
                    )
                    for a in approvals
                ],
            )
        targets = sorted(update.timers)
        self._clear_timers(cursor, targets)
        timers = [
            (t.target_id, t.key, t.kind, t.due_at)
            for target in targets
            for t in update.timers[target]
        ]
        self._insert_timer(cursor, timers)

    def write_index(self, update: IndexUpdate) -> None:
        """Writes index rows in a transaction of their own (rebuilding the index)."""
        with self._write_transaction() as cursor:
            self.write(cursor, update)

    def index_is_empty(self) -> bool:
        """Tells whether no run or approval row was ever written."""
        runs = self._rows(f"SELECT 1 AS x FROM {self.d.runs} LIMIT 1", ())
        approvals = self._rows(f"SELECT 1 AS x FROM {self.d.approvals} LIMIT 1", ())
        return not runs and not approvals

    # Queries -----------------------------------------------------------------

    def _rows(self, sql: str, params: Sequence[Any]) -> list[Any]:
        with self._read() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())

    def due_timers(
        self, now: float, limit: int, after: tuple[float, str, str] | None = None
    ) -> list[TimerRow]:
        p = self.d.param
        sql = f"SELECT target_id, key, kind, due_at FROM {self.d.timers} WHERE due_at <= {p}"
        params: list[Any] = [now]
        if after is not None:
            sql += (
                f" AND (due_at > {p} OR (due_at = {p} AND (target_id > {p} "
                f"OR (target_id = {p} AND key > {p}))))"
            )
            params += [after[0], after[0], after[1], after[1], after[2]]
        rows = self._rows(f"{sql} ORDER BY due_at, target_id, key LIMIT {p}", (*params, limit))
        return [TimerRow(r["target_id"], r["key"], r["kind"], r["due_at"]) for r in rows]

    def timers_of_kind(
        self, kind: str, *, key: str | None, start: float | None, end: float | None, limit: int
    ) -> list[TimerRow]:
        p = self.d.param
        sql = f"SELECT target_id, key, kind, due_at FROM {self.d.timers} WHERE kind = {p}"
        params: list[Any] = [kind]
        for clause, value in (
            (f"key = {p}", key),
            (f"due_at >= {p}", start),
            (f"due_at <= {p}", end),
        ):
            if value is not None:
                sql += f" AND {clause}"
                params.append(value)
        rows = self._rows(f"{sql} ORDER BY due_at LIMIT {p}", (*params, limit))
        return [TimerRow(r["target_id"], r["key"], r["kind"], r["due_at"]) for r in rows]

    def next_due(self) -> float | None:
        rows = self._rows(f"SELECT MIN(due_at) AS due FROM {self.d.timers}", ())
        return rows[0]["due"] if rows and rows[0]["due"] is not None else None

    def runs_in_status(
        self, names: Sequence[str], statuses: Sequence[str], limit: int
    ) -> list[str]:
        if not names or not statuses:
            return []
        p = self.d.param
        rows = self._rows(
            f"SELECT id FROM {self.d.runs} WHERE status IN ({', '.join(p for _ in statuses)}) "
            f"AND name IN ({', '.join(p for _ in names)}) ORDER BY created_at, id LIMIT {p}",
            (*statuses, *names, limit),
        )
        return [r["id"] for r in rows]


def _dumps(value: Any) -> str:
    """JSON text for a JSON column (orjson: this runs for every row of every batch)."""
    return orjson.dumps(value).decode()
