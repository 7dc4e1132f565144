"""The run and timer index in SQL, shared by the SQLite and PostgreSQL recorders."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import orjson

from signoff.index import ApprovalRow, IndexUpdate, RunFilter, RunRow, TimerRow

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
    metadata_match: Callable[[str, Any], tuple[str, list[Any]]]  # (key, value) -> (sql, params)

    def create_statements(self) -> list[str]:
        """DDL of the index tables (idempotent)."""
        runs_index = self.runs.replace(".", "_").replace('"', "")
        timers_index = self.timers.replace(".", "_").replace('"', "")
        approvals_index = self.approvals.replace(".", "_").replace('"', "")
        return [
            f"CREATE TABLE IF NOT EXISTS {self.runs} ("
            "id TEXT PRIMARY KEY, name TEXT NOT NULL, status TEXT NOT NULL, "
            "created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL, "
            f"completed_at DOUBLE PRECISION, metadata {self.json_type} NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {runs_index}_status "
            f"ON {self.runs} (status, name, created_at)",
            f"CREATE INDEX IF NOT EXISTS {runs_index}_created ON {self.runs} (created_at, id)",
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


def sqlite_metadata_match(key: str, value: Any) -> tuple[str, list[Any]]:
    """SQLite: compare one metadata key through json_extract."""
    path = "$." + json.dumps(key)
    if isinstance(value, bool):
        return "json_type(metadata, ?) = ?", [path, "true" if value else "false"]
    if isinstance(value, int | float):
        return (
            "(json_type(metadata, ?) IN ('integer', 'real') AND json_extract(metadata, ?) = ?)",
            [path, path, value],
        )
    return "(json_type(metadata, ?) = 'text' AND json_extract(metadata, ?) = ?)", [
        path,
        path,
        value,
    ]


def postgres_metadata_match(key: str, value: Any) -> tuple[str, list[Any]]:
    """PostgreSQL: jsonb containment of ``{key: value}``."""
    return "metadata @> %s::jsonb", [json.dumps({key: value})]


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
        self._upsert_run = (
            f"INSERT INTO {dialect.runs} "
            "(id, name, status, created_at, updated_at, completed_at, metadata) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (id) DO UPDATE SET "
            "status = excluded.status, updated_at = excluded.updated_at, "
            "completed_at = excluded.completed_at"
        )
        self._upsert_approval = (
            f"INSERT INTO {dialect.approvals} (id, status, requested_by, requested_at, "
            f"deadline, workflow_id, approvers, groups, voters) "
            f"VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (id) DO UPDATE SET "
            "status = excluded.status, approvers = excluded.approvers, "
            "groups = excluded.groups, voters = excluded.voters"
        )
        self._clear_timers = f"DELETE FROM {dialect.timers} WHERE target_id = {p}"
        self._insert_timer = (
            f"INSERT INTO {dialect.timers} (target_id, key, kind, due_at) "
            f"VALUES ({p}, {p}, {p}, {p})"
        )

    # Writing (inside the events' transaction) --------------------------------

    def write(self, cursor: Cursor, update: IndexUpdate) -> None:
        """Applies ``update`` with the transaction's cursor, in key order (no deadlocks)."""
        runs = sorted(update.runs, key=lambda r: r.id)
        if runs:
            cursor.executemany(
                self._upsert_run,
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
            cursor.executemany(
                self._upsert_approval,
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
        if targets:
            cursor.executemany(self._clear_timers, [(target,) for target in targets])
        timers = [
            (t.target_id, t.key, t.kind, t.due_at)
            for target in targets
            for t in update.timers[target]
        ]
        if timers:
            cursor.executemany(self._insert_timer, timers)

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

    def _where(self, where: RunFilter) -> tuple[list[str], list[Any]]:
        p = self.d.param
        clauses: list[str] = []
        params: list[Any] = []
        if where.status is not None:
            clauses.append(f"status = {p}")
            params.append(where.status)
        if where.name is not None:
            clauses.append(f"name = {p}")
            params.append(where.name)
        for key, value in (where.metadata or {}).items():
            clause, values = self.d.metadata_match(key, value)
            clauses.append(clause)
            params.extend(values)
        return clauses, params

    def page_runs(
        self, where: RunFilter, *, limit: int, after: tuple[float, str] | None
    ) -> list[RunRow]:
        p = self.d.param
        clauses, params = self._where(where)
        if after is not None:
            clauses.append(f"(created_at < {p} OR (created_at = {p} AND id < {p}))")
            params.extend([after[0], after[0], after[1]])
        sql = f"SELECT * FROM {self.d.runs}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY created_at DESC, id DESC LIMIT {p}"
        rows = self._rows(sql, (*params, limit))
        return [
            RunRow(
                r["id"],
                r["name"],
                r["status"],
                r["created_at"],
                r["updated_at"],
                r["completed_at"],
                r["metadata"] if isinstance(r["metadata"], dict) else json.loads(r["metadata"]),
            )
            for r in rows
        ]

    def pending_approval_rows(
        self, *, after: tuple[float, int] | None, limit: int
    ) -> list[ApprovalRow]:
        p, seq = self.d.param, self.d.seq
        sql = f"SELECT *, {seq} AS seq FROM {self.d.approvals} WHERE status = 'pending'"
        params: list[Any] = []
        if after is not None:
            sql += f" AND (requested_at > {p} OR (requested_at = {p} AND {seq} > {p}))"
            params.extend([after[0], after[0], after[1]])
        sql += f" ORDER BY requested_at, {seq} LIMIT {p}"
        rows = self._rows(sql, (*params, limit))
        return [
            ApprovalRow(
                r["id"],
                r["status"],
                r["requested_by"],
                r["requested_at"],
                r["deadline"],
                r["workflow_id"],
                _json(r["approvers"]),
                _json(r["groups"]),
                _json(r["voters"]),
                r["seq"],
            )
            for r in rows
        ]

    def count_runs(self, where: RunFilter) -> int:
        clauses, params = self._where(where)
        sql = f"SELECT COUNT(*) AS n FROM {self.d.runs}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        return int(self._rows(sql, params)[0]["n"])


def _json(value: Any) -> Any:
    """A JSON column's value (PostgreSQL's jsonb arrives decoded, SQLite's TEXT does not)."""
    return json.loads(value) if isinstance(value, str) else value


def _dumps(value: Any) -> str:
    """JSON text for a JSON column (orjson: this runs for every row of every batch)."""
    return orjson.dumps(value).decode()
