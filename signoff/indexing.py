"""Index rows derived from aggregates, for the writer to save with their events."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from signoff.domain.approval import Approval
from signoff.domain.base import SignoffAggregate
from signoff.domain.schedule import SCHEDULED, Schedule
from signoff.domain.workflow_run import ACTIVE, WorkflowRun
from signoff.index import ApprovalRow, IndexUpdate, RunRow, TimerRow, epoch


def run_row(run: WorkflowRun) -> RunRow:
    """The index row of a run."""
    completed = run.completed_at
    return RunRow(
        id=run.id,
        name=run.name,
        status=run.status,
        created_at=epoch(run.created_on),
        updated_at=epoch(run.modified_on),
        completed_at=epoch(completed) if completed else None,
        metadata=run.metadata,
        is_new=run.version == len(run.pending_events),
    )


def run_timers(run: WorkflowRun) -> list[TimerRow]:
    """What the run waits for in time: its pending wait's deadline, its step retries."""
    if run.status not in ACTIVE:
        return []
    timers = []
    pending = run.pending_wait()
    # An approval's deadline (with its reminders and escalations) is the approval's own timer.
    if (
        pending is not None
        and pending[1]["deadline"] is not None
        and pending[1]["kind"] != "approval"
    ):
        name, wait = pending
        timers.append(TimerRow(run.id, f"wait:{name}", "wait", epoch(wait["deadline"])))
    for name, step in run.steps.items():
        if not step["done"] and step["retry_at"] is not None:
            timers.append(TimerRow(run.id, f"retry:{name}", "retry", epoch(step["retry_at"])))
    return timers


def approval_row(approval: Approval) -> ApprovalRow:
    """The index row of an approval."""
    return ApprovalRow(
        id=approval.id,
        status=approval.status,
        requested_by=approval.requested_by,
        requested_at=epoch(approval.created_on),
        deadline=epoch(approval.deadline) if approval.deadline else None,
        workflow_id=approval.workflow_id,
        approvers=list(approval.policy.approvers),
        groups=list(approval.policy.groups),
        voters=[v.voter for v in approval.votes],
    )


def approval_timers(approval: Approval) -> list[TimerRow]:
    """A pending approval's deadline, next reminder and next escalation."""
    if approval.is_decided:
        return []
    due = (
        ("deadline", approval.deadline),
        ("remind", approval.next_reminder_at),
        ("escalate", approval.escalate_at),
    )
    return [TimerRow(approval.id, key, "approval", epoch(at)) for key, at in due if at is not None]


def schedule_timers(schedule: Schedule) -> list[TimerRow]:
    """When a schedule is due: its due time, or the end of the claim a process holds
    (so that a claimant that died is replaced once its lease runs out)."""
    if schedule.status != SCHEDULED or schedule.due_at is None:
        return []
    due = schedule.due_at
    if schedule.claimed_until is not None and schedule.claimed_until > due:
        due = schedule.claimed_until
    return [TimerRow(schedule.id, f"schedule:{schedule.kind}", "schedule", epoch(due))]


def index_for(aggregates: Sequence[SignoffAggregate]) -> dict[str, Any]:
    """Keyword arguments for ``save``: the index rows of the changed aggregates."""
    update = IndexUpdate()
    for aggregate in aggregates:
        if isinstance(aggregate, WorkflowRun):
            update.runs.append(run_row(aggregate))
            update.timers[aggregate.id] = run_timers(aggregate)
        elif isinstance(aggregate, Approval):
            update.approvals.append(approval_row(aggregate))
            update.timers[aggregate.id] = approval_timers(aggregate)
        elif isinstance(aggregate, Schedule):
            update.timers[aggregate.id] = schedule_timers(aggregate)
    return {"index": update} if update else {}
