"""Queries over the views: the inbox, the board, the audit trail, metrics.

Each takes a cursor and the view database, so the caller chooses the
transaction (and has caught the views up first, to read its own writes).
Pagination is keyset: a page ends with the sort key of its last row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from signoff.domain.approval import PENDING
from signoff.projections import approvals, audit, board
from signoff.projections.sql import (
    Cursor,
    Row,
    ViewDatabase,
    decode_json,
    fetch_all,
    placeholders,
)

Scalar = str | int | float | bool


def inbox(
    cursor: Cursor,
    db: ViewDatabase,
    *,
    approver: str | None,
    groups: Sequence[str],
    now: float,
    order: str,
    limit: int,
    after: tuple[float, int] | None,
) -> list[Row]:
    """Pending approvals, by age (``requested_at``) or ``deadline`` (none last).

    With ``approver``: only those they may still vote on (allowed by name, by one
    of ``groups`` or open to anyone; not their own; not voted yet; not past the
    deadline). With only ``groups``: those the groups may decide.
    """
    p = db.param
    table, access = db.table(approvals.APPROVALS), db.table(approvals.ACCESS)
    sort = "requested_at" if order == "age" else "sort_deadline"
    where = [f"a.status = {p}"]
    params: list[Any] = [PENDING]
    principals = [f"g:{g}" for g in groups]
    if approver is not None:
        principals.append(f"u:{approver}")
        where.append(f"a.requested_by <> {p}")
        where.append(f"(a.deadline IS NULL OR a.deadline > {p})")
        where.append(
            f"NOT EXISTS (SELECT 1 FROM {access} v WHERE v.approval_id = a.id "
            f"AND v.principal = {p})"
        )
        params += [approver, now, f"v:{approver}"]
    if principals:
        principals.append("*")
        where.append(
            f"EXISTS (SELECT 1 FROM {access} x WHERE x.approval_id = a.id AND x.principal IN "
            f"({placeholders(db, len(principals))}))"
        )
        params += principals
    if after is not None:
        where.append(f"(a.{sort} > {p} OR (a.{sort} = {p} AND a.seq > {p}))")
        params += [after[0], after[0], after[1]]
    rows = fetch_all(
        cursor,
        f"SELECT a.* FROM {table} a WHERE {' AND '.join(where)} "
        f"ORDER BY a.{sort}, a.seq LIMIT {int(limit)}",
        params,
    )
    return [
        approvals.public_row(decode_json(row, approvals.JSON_COLUMNS)) | {"sort_key": row[sort]}
        for row in rows
    ]


def approval(cursor: Cursor, db: ViewDatabase, approval_id: str) -> Row | None:
    """One approval's row."""
    return approvals.ApprovalsProjection().read_rows(cursor, db, [approval_id]).get(approval_id)


def _run_filter(
    db: ViewDatabase,
    status: str | None,
    name: str | None,
    metadata: Mapping[str, Scalar] | None,
) -> tuple[list[str], list[Any]]:
    p = db.param
    where: list[str] = []
    params: list[Any] = []
    if status is not None:
        where.append(f"status = {p}")
        params.append(status)
    if name is not None:
        where.append(f"name = {p}")
        params.append(name)
    for key, value in (metadata or {}).items():
        sql, values = _metadata_match(db, key, value)
        where.append(sql)
        params += values
    return where, params


def _metadata_match(db: ViewDatabase, key: str, value: Scalar) -> tuple[str, list[Any]]:
    """Compares one metadata key with a scalar, type included (1 is not "1" nor true)."""
    if db.kind == "postgres":
        return "metadata::jsonb @> %s::jsonb", [json.dumps({key: value})]
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


def runs(
    cursor: Cursor,
    db: ViewDatabase,
    *,
    status: str | None,
    name: str | None,
    metadata: Mapping[str, Scalar] | None,
    limit: int,
    after: tuple[float, str] | None,
) -> tuple[list[Row], int]:
    """Runs matching the filters, newest first, and how many match in all."""
    p = db.param
    table = db.table(board.RUNS)
    where, params = _run_filter(db, status, name, metadata)
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    cursor.execute(f"SELECT COUNT(*) AS n FROM {table} {condition}", tuple(params))
    total = int(dict(cursor.fetchone())["n"])
    if after is not None:
        where.append(f"(created_at < {p} OR (created_at = {p} AND id < {p}))")
        params += [after[0], after[0], after[1]]
    condition = f"WHERE {' AND '.join(where)}" if where else ""
    rows = fetch_all(
        cursor,
        f"SELECT * FROM {table} {condition} ORDER BY created_at DESC, id DESC LIMIT {int(limit)}",
        params,
    )
    return [board.public_row(row) for row in rows], total


def audit_rows(
    cursor: Cursor,
    db: ViewDatabase,
    *,
    workflow_id: str | None = None,
    aggregate_id: str | None = None,
    after: int = 0,
    limit: int = 1000,
) -> list[Row]:
    """Audit rows in log order after position ``after``."""
    p = db.param
    where: list[str] = [f"position > {p}"]
    params: list[Any] = [after]
    if workflow_id is not None:
        where.append(f"workflow_id = {p}")
        params.append(workflow_id)
    if aggregate_id is not None:
        where.append(f"aggregate_id = {p}")
        params.append(aggregate_id)
    rows = fetch_all(
        cursor,
        f"SELECT * FROM {db.table(audit.AUDIT)} WHERE {' AND '.join(where)} "
        f"ORDER BY position LIMIT {int(limit)}",
        params,
    )
    return [audit.public_row(row) for row in rows]


def iter_audit(
    open_cursor: Any, db: ViewDatabase, *, workflow_id: str | None = None, page: int = 5000
) -> Iterator[Row]:
    """Every audit row in log order, a page (and a short read transaction) at a time."""
    after = 0
    while True:
        with open_cursor() as cursor:
            rows = audit_rows(cursor, db, workflow_id=workflow_id, after=after, limit=page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1]["position"]


def metrics(cursor: Cursor, db: ViewDatabase, *, now: float) -> dict[str, Any]:
    """Counts by status, decision latency percentiles, approvals past their deadline."""
    p = db.param
    table = db.table(approvals.APPROVALS)
    approval_counts = {
        row["status"]: int(row["n"])
        for row in fetch_all(cursor, f"SELECT status, COUNT(*) AS n FROM {table} GROUP BY status")
    }
    run_counts = {
        row["status"]: int(row["n"])
        for row in fetch_all(
            cursor, f"SELECT status, COUNT(*) AS n FROM {db.table(board.RUNS)} GROUP BY status"
        )
    }
    overdue = fetch_all(
        cursor,
        f"SELECT COUNT(*) AS n FROM {table} WHERE status = {p} AND deadline IS NOT NULL "
        f"AND deadline <= {p}",
        [PENDING, now],
    )[0]["n"]
    latency = "decided_at - requested_at"
    decided = f"FROM {table} WHERE decided_at IS NOT NULL AND status <> {p}"
    count = int(fetch_all(cursor, f"SELECT COUNT(*) AS n {decided}", ["cancelled"])[0]["n"])
    percentiles: dict[str, float | None] = {}
    for label, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        if count == 0:
            percentiles[label] = None
            continue
        offset = min(count - 1, int(q * count))
        row = fetch_all(
            cursor,
            f"SELECT {latency} AS latency {decided} ORDER BY {latency} LIMIT 1 OFFSET {offset}",
            ["cancelled"],
        )[0]
        percentiles[label] = float(row["latency"])
    return {
        "approvals": approval_counts,
        "runs": run_counts,
        "overdue_approvals": int(overdue),
        "decisions": count,
        "decision_latency_seconds": percentiles,
    }
