"""The approvals view: every approval with its votes, and who may still decide the pending ones.

It is the pending-approvals inbox (the seed keeps that list by hand in agent
state; here it is derived from the stream) and the source of decision
metrics. ``view_approval_access`` lists, for each pending approval, the
principals that may vote (``*`` for anyone, ``u:<person>``, ``g:<group>``)
and those who already did (``v:<person>``), so that an approver's inbox is
one indexed query.
"""

from __future__ import annotations

from typing import Any

from signoff.domain.approval import APPROVED, CANCELLED, EXPIRED, PENDING, REJECTED
from signoff.projections.base import AggregateRowProjection
from signoff.projections.records import EventRecord, epoch, plain
from signoff.projections.sql import (
    Cursor,
    Row,
    RowBatch,
    RowWriter,
    ViewDatabase,
    delete_keys,
)

APPROVALS = "view_approvals"
ACCESS = "view_approval_access"
NO_DEADLINE = 1e18
"""Sort key of approvals without a deadline (after every real one)."""

COLUMNS = (
    "id",
    "workflow_id",
    "wait_name",
    "title",
    "description",
    "context",
    "requested_by",
    "requested_at",
    "deadline",
    "sort_deadline",
    "status",
    "required_approvals",
    "rejection_threshold",
    "approvers",
    "groups",
    "votes",
    "approvals",
    "rejections",
    "escalation_level",
    "reminders",
    "decided_at",
    "decided_by",
    "decision_reason",
    "seq",
    "position",
)
JSON_COLUMNS = ("context", "approvers", "groups", "votes")

_DECISIONS = {
    "Approved": APPROVED,
    "Rejected": REJECTED,
    "Cancelled": CANCELLED,
    "Expired": EXPIRED,
}


class ApprovalsProjection(AggregateRowProjection):
    """Approvals, their votes and decisions; the inbox is its pending rows."""

    name = "approvals"
    version = 1
    tables = (APPROVALS, ACCESS)
    aggregate = "Approval"
    creating_event = "Requested"
    table = APPROVALS
    columns = COLUMNS
    json_columns = JSON_COLUMNS
    folded_reads = ("approvers", "groups", "votes")

    def create_statements(self, db: ViewDatabase) -> list[str]:
        """Tables and the indexes the inbox orders and filters by."""
        t, a = db.table(APPROVALS), db.table(ACCESS)
        return [
            f"CREATE TABLE IF NOT EXISTS {t} (id TEXT PRIMARY KEY, workflow_id TEXT, "
            "wait_name TEXT, title TEXT NOT NULL, description TEXT NOT NULL, "
            "context TEXT NOT NULL, requested_by TEXT NOT NULL, "
            "requested_at DOUBLE PRECISION NOT NULL, deadline DOUBLE PRECISION, "
            "sort_deadline DOUBLE PRECISION NOT NULL, status TEXT NOT NULL, "
            "required_approvals INTEGER NOT NULL, rejection_threshold INTEGER NOT NULL, "
            "approvers TEXT NOT NULL, groups TEXT NOT NULL, votes TEXT NOT NULL, "
            "approvals INTEGER NOT NULL, rejections INTEGER NOT NULL, "
            "escalation_level INTEGER NOT NULL, reminders INTEGER NOT NULL, "
            "decided_at DOUBLE PRECISION, decided_by TEXT, decision_reason TEXT, "
            "seq BIGINT NOT NULL, position BIGINT NOT NULL)",
            f"CREATE INDEX IF NOT EXISTS {APPROVALS}_age ON {t} (status, requested_at, seq)",
            f"CREATE INDEX IF NOT EXISTS {APPROVALS}_deadline ON {t} (status, sort_deadline, seq)",
            f"CREATE INDEX IF NOT EXISTS {APPROVALS}_workflow ON {t} (workflow_id)",
            f"CREATE TABLE IF NOT EXISTS {a} (approval_id TEXT NOT NULL, "
            "principal TEXT NOT NULL, PRIMARY KEY (approval_id, principal))",
            f"CREATE INDEX IF NOT EXISTS {ACCESS}_principal ON {a} (principal, approval_id)",
        ]

    def created(self, record: EventRecord) -> Row:
        """An approval's row when it is requested."""
        return _requested(record)

    def folded(self, row: Row, record: EventRecord) -> Row:
        """The row after a vote, a decision, a reassignment, an escalation or a reminder."""
        return _folded(row, record)

    def public(self, row: Row) -> Row:
        """With the approvals still needed."""
        return public_row(row)

    def after_flush(self, cursor: Cursor, db: ViewDatabase, batch: RowBatch) -> None:
        """Rewrites who may still vote on the approvals that changed."""
        _write_access(cursor, db, batch)


def _requested(record: EventRecord) -> Row:
    data = record.data
    policy = data["policy"].get("_data_", data["policy"])  # stored as a wrapped value object
    deadline = epoch(data.get("deadline"))
    return {
        "id": record.aggregate_id,
        "workflow_id": data.get("workflow_id"),
        "wait_name": data.get("wait_name"),
        "title": data.get("title", ""),
        "description": data.get("description", ""),
        "context": plain(data.get("context", {})),
        "requested_by": data["requested_by"],
        "requested_at": record.at,
        "deadline": deadline,
        "sort_deadline": NO_DEADLINE if deadline is None else deadline,
        "status": PENDING,
        "required_approvals": int(policy.get("required_approvals", 1)),
        "rejection_threshold": int(policy.get("rejection_threshold", 1)),
        "approvers": list(policy.get("approvers", [])),
        "groups": list(policy.get("groups", [])),
        "votes": [],
        "approvals": 0,
        "rejections": 0,
        "escalation_level": 0,
        "reminders": 0,
        "decided_at": None,
        "decided_by": None,
        "decision_reason": None,
        "seq": record.position,
        "position": record.position,
    }


def _folded(row: Row, record: EventRecord) -> Row:
    data, event = record.data, record.event
    row["position"] = record.position
    if event == "VoteCast":
        vote = {
            "voter": record.actor,
            "decision": data["decision"],
            "reason": data.get("reason"),
            "at": record.at,
            "groups": data.get("groups", []),
        }
        row["votes"] = [*row["votes"], vote]
        counter = "approvals" if data["decision"] == "approve" else "rejections"
        row[counter] += 1
    elif event in _DECISIONS:
        row["status"] = _DECISIONS[event]
        row["decided_at"] = record.at
        row["decided_by"] = record.actor
        row["decision_reason"] = data.get("reason")
    elif event in ("Reassigned", "Escalated"):
        row["approvers"] = list(data["approvers"])
        row["groups"] = list(data["groups"])
        if event == "Escalated":
            row["escalation_level"] = int(data["level"])
            deadline = epoch(data.get("deadline"))
            row["deadline"] = deadline
            row["sort_deadline"] = NO_DEADLINE if deadline is None else deadline
    elif event == "Reminded":
        row["reminders"] = int(data["count"])
    return row


def _principals(row: Row) -> list[str]:
    allowed = [f"u:{p}" for p in row["approvers"]] + [f"g:{g}" for g in row["groups"]]
    voted = [f"v:{v['voter']}" for v in row["votes"]]
    return sorted(set((allowed or ["*"]) + voted))


def _write_access(cursor: Cursor, db: ViewDatabase, batch: RowBatch) -> None:
    table = db.table(ACCESS)
    changed = list(batch.changed())
    delete_keys(cursor, db, table, "approval_id", [k for k, _ in changed])
    rows = [
        (key, principal)
        for key, row in changed
        if row is not None and row["status"] == PENDING
        for principal in _principals(row)
    ]
    RowWriter(db, table, ("approval_id", "principal"))(cursor, rows)


def public_row(row: Row) -> Row:
    """A row (JSON columns decoded) as callers see it: with the approvals still needed."""
    out: dict[str, Any] = dict(row)
    out.pop("sort_deadline", None)
    out["approvals_needed"] = max(0, row["required_approvals"] - row["approvals"])
    return out
