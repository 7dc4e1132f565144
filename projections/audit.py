"""The audit trail: one row per decision and lifecycle event, in log order.

Its columns include the seed's ``approval_audit`` table (workflow_id,
decision, decided_by, decided_at, reason), and every row keeps its place in
the event log (``position``), the command that caused it and the event's
own fields, so an export is evidence rather than a summary.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signoff.projections.base import Projection
from signoff.projections.records import EventRecord, details
from signoff.projections.sql import (
    Cursor,
    Row,
    RowWriter,
    Update,
    ViewDatabase,
    fetch_all,
    loads,
    placeholders,
)

AUDIT = "view_audit"
LINKS = "view_audit_links"
COLUMNS = (
    "position",
    "aggregate_type",
    "aggregate_id",
    "workflow_id",
    "event",
    "decision",
    "decided_by",
    "decided_at",
    "reason",
    "command_id",
    "details",
)

AUDITED: dict[str, dict[str, str]] = {
    "Approval": {
        "Requested": "requested",
        "VoteCast": "",  # the vote's own decision: approve / reject
        "Approved": "approved",
        "Rejected": "rejected",
        "Cancelled": "cancelled",
        "Expired": "expired",
        "Reassigned": "reassigned",
        "Reminded": "reminded",
        "Escalated": "escalated",
    },
    "WorkflowRun": {
        "Started": "started",
        "WaitStarted": "waiting",
        "WaitResolved": "resolved",
        "DecisionReceived": "",
        "EventReceived": "event",
        "Completed": "completed",
        "Errored": "errored",
        "Paused": "paused",
        "Resumed": "resumed",
        "Terminated": "terminated",
        "Restarted": "restarted",
    },
    "Schedule": {"Created": "scheduled", "Cancelled": "cancelled"},
}
"""The events the trail records, with the decision column each gets (steps, progress,
reminder bookkeeping and schedule firings are in the event log but not the trail)."""
_OWN = "<own>"
"""Stands for the event's own ``decision`` field (``""`` in ``AUDITED``)."""
_AUDITED = {(a, e): d or _OWN for a, events in AUDITED.items() for e, d in events.items()}


class AuditProjection(Projection):
    """Decisions and lifecycle events as rows of an append-only table."""

    name = "audit"
    version = 1
    tables = (AUDIT, LINKS)

    def create_statements(self, db: ViewDatabase) -> list[str]:
        """The trail, and which workflow each approval belongs to."""
        t, links = db.table(AUDIT), db.table(LINKS)
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (position BIGINT PRIMARY KEY, "
            "aggregate_type TEXT NOT NULL, aggregate_id TEXT NOT NULL, workflow_id TEXT, "
            "event TEXT NOT NULL, decision TEXT NOT NULL, decided_by TEXT NOT NULL, "
            "decided_at DOUBLE PRECISION NOT NULL, reason TEXT, command_id TEXT NOT NULL, "
            "details TEXT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {AUDIT}_aggregate ON {t} (aggregate_id, position)",
            f"CREATE INDEX IF NOT EXISTS {AUDIT}_workflow ON {t} (workflow_id, position)",
            f"CREATE TABLE IF NOT EXISTS {links} (approval_id TEXT PRIMARY KEY, "
            "workflow_id TEXT NOT NULL)",
        ]

    def keys(self, record: EventRecord) -> list[str]:
        """An audited event adds the row at its position."""
        return [str(record.position)] if (record.aggregate, record.event) in _AUDITED else []

    def apply(
        self, cursor: Cursor, db: ViewDatabase, records: Sequence[EventRecord], report: bool
    ) -> list[Update]:
        """Appends a row per audited event."""
        audited = [(r, d) for r in records if (d := _AUDITED.get((r.aggregate, r.event)))]
        if not audited:
            return []
        links = _workflow_links(cursor, db, [r for r, _ in audited])
        made = (_row(record, decision, links) for record, decision in audited)
        rows = list(made) if report else made  # else made as they are written
        RowWriter(db, db.table(AUDIT), COLUMNS)(cursor, rows)
        RowWriter(
            db,
            db.table(LINKS),
            ("approval_id", "workflow_id"),
            "ON CONFLICT (approval_id) DO NOTHING",
        )(cursor, links.new)
        if not isinstance(rows, list):
            return []
        return [(str(row[0]), public_row(dict(zip(COLUMNS, row, strict=True)))) for row in rows]

    def read_rows(self, cursor: Cursor, db: ViewDatabase, keys: Sequence[str]) -> dict[str, Row]:
        """Rows at the positions ``keys``."""
        if not keys:
            return {}
        rows = fetch_all(
            cursor,
            f"SELECT * FROM {db.table(AUDIT)} WHERE position IN ({placeholders(db, len(keys))})",
            [int(k) for k in keys],
        )
        return {str(row["position"]): public_row(row) for row in rows}


class _Links(dict[str, str]):
    """Which workflow each approval belongs to, and the links the batch adds."""

    def __init__(self) -> None:
        super().__init__()
        self.new: list[tuple[str, str]] = []


def _workflow_links(cursor: Cursor, db: ViewDatabase, records: Sequence[EventRecord]) -> _Links:
    """The stored links of the batch's approvals whose request is not in the batch (those
    requested in it are linked as their rows are made)."""
    links = _Links()
    requested = {
        r.aggregate_id for r in records if r.aggregate == "Approval" and r.event == "Requested"
    }
    unknown = sorted({r.aggregate_id for r in records if r.aggregate == "Approval"} - requested)
    for start in range(0, len(unknown), 500):
        chunk = unknown[start : start + 500]
        for row in fetch_all(
            cursor,
            f"SELECT approval_id, workflow_id FROM {db.table(LINKS)} "
            f"WHERE approval_id IN ({placeholders(db, len(chunk))})",
            chunk,
        ):
            links[row["approval_id"]] = row["workflow_id"]
    return links


def _row(record: EventRecord, decision: str, links: _Links) -> tuple[Any, ...]:
    """The event's row, as values in ``COLUMNS`` order (its data decoded only when the row
    needs more than the event's cause)."""
    aggregate = record.aggregate
    if decision == _OWN:
        decision = str(record.data.get("decision", ""))
    if aggregate == "WorkflowRun":
        workflow_id: str | None = record.aggregate_id
    else:
        if aggregate == "Approval" and record.event == "Requested":
            found = record.data.get("workflow_id")
            if found:
                links[record.aggregate_id] = found
                links.new.append((record.aggregate_id, found))
        workflow_id = links.get(record.aggregate_id)
    return (
        record.position,
        aggregate,
        record.aggregate_id,
        workflow_id,
        record.event,
        decision,
        record.actor,
        record.at,
        record.reason,
        record.command_id,
        record.state.decode(),  # stored as is; made plain when read
    )


def public_row(row: Row) -> Row:
    """A stored row with its details decoded (the event's own fields, plain JSON)."""
    return {**row, "details": details(loads(row["details"]))}
