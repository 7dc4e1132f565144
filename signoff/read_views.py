"""Plain data read from the projections: inbox items, audit entries, metrics, changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from signoff.projections.sql import Change, Row
from signoff.views import View, WorkflowSummary


def _time(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


class InboxVote(View):
    """A vote as the inbox shows it."""

    voter: str
    decision: str
    reason: str | None
    at: datetime
    groups: list[str]


class InboxItem(View):
    """A pending approval as an approver's inbox shows it."""

    id: str
    workflow_id: str | None
    title: str
    description: str
    context: dict[str, Any]
    requested_by: str
    requested_at: datetime
    approvers: list[str]
    groups: list[str]
    votes: list[InboxVote]
    required_approvals: int
    approvals_needed: int
    deadline: datetime | None
    escalation_level: int
    reminders: int
    status: str

    @classmethod
    def of(cls, row: Row) -> InboxItem:
        """Reads an item off a row of the approvals view."""
        votes = [
            InboxVote(
                voter=v["voter"],
                decision=v["decision"],
                reason=v.get("reason"),
                at=_time(v["at"]),
                groups=list(v.get("groups", [])),
            )
            for v in row["votes"]
        ]
        return cls(
            id=row["id"],
            workflow_id=row["workflow_id"],
            title=row["title"],
            description=row["description"],
            context=row["context"],
            requested_by=row["requested_by"],
            requested_at=_time(row["requested_at"]),
            approvers=row["approvers"],
            groups=row["groups"],
            votes=votes,
            required_approvals=row["required_approvals"],
            approvals_needed=row["approvals_needed"],
            deadline=_time(row["deadline"]),
            escalation_level=row["escalation_level"],
            reminders=row["reminders"],
            status=row["status"],
        )


class InboxPage(View):
    """One page of the inbox; pass ``next_cursor`` back for the next one."""

    items: list[InboxItem]
    next_cursor: str | None


class AuditEntry(View):
    """A row of the audit trail (the seed's ``approval_audit``, and more)."""

    position: int
    aggregate_type: str
    aggregate_id: str
    workflow_id: str | None
    event: str
    decision: str
    decided_by: str
    decided_at: datetime
    reason: str | None
    command_id: str
    details: dict[str, Any]

    @classmethod
    def of(cls, row: Row) -> AuditEntry:
        """Reads an entry off a row of the audit view."""
        return cls(**{**row, "decided_at": _time(row["decided_at"])})


class Metrics(View):
    """How approvals and runs are doing."""

    approvals: dict[str, int]
    """Approvals by status."""
    runs: dict[str, int]
    """Runs by status."""
    overdue_approvals: int
    """Pending approvals past their deadline (not yet timed out)."""
    decisions: int
    decision_latency_seconds: dict[str, float | None]
    """p50, p90, p99 of the time from request to decision (cancellations left out)."""


class ViewChange(View):
    """A row of a view that changed (``row`` None: deleted).

    ``position`` is a resume point: ``engine.watch(view, after=position)``
    continues after this change.
    """

    view: str
    key: str
    position: int
    row: dict[str, Any] | None

    @classmethod
    def of(cls, change: Change) -> ViewChange:
        """The public form of a runner's change."""
        return cls(view=change.view, key=change.key, position=change.position, row=change.row)


def workflow_summary(row: Row) -> WorkflowSummary:
    """A board row as ``get_workflows`` lists it."""
    return WorkflowSummary(
        id=row["id"],
        name=row["name"],
        status=row["status"],
        metadata=row["metadata"],
        progress=row["progress"],
        error=row["error"],
        waiting_for=row["waiting_for"],
        created_at=_time(row["created_at"]),
        updated_at=_time(row["updated_at"]),
        completed_at=_time(row["completed_at"]),
    )
