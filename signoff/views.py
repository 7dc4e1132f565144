"""Plain data the engine returns: snapshots of approvals and entries of the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from signoff.domain.approval import Approval
from signoff.domain.base import CAUSE_FIELDS, SignoffEvent
from signoff.domain.schedule import Schedule
from signoff.domain.workflow_run import WorkflowRun

_EVENT_BASE_FIELDS = {"originator_id", "originator_version", "originator_topic", *CAUSE_FIELDS}


class View(BaseModel):
    """Base of returned data: immutable and JSON-ready."""

    model_config = ConfigDict(frozen=True)


class VoteInfo(View):
    """One person's vote on an approval."""

    voter: str
    decision: str
    reason: str | None
    at: datetime
    groups: list[str]
    metadata: dict[str, Any]


class ApprovalInfo(View):
    """An approval as a person deciding it needs to see it."""

    id: str
    status: str
    title: str
    description: str
    context: dict[str, Any]
    requested_by: str
    requested_at: datetime
    deadline: datetime | None
    workflow_id: str | None
    required_approvals: int
    rejection_threshold: int
    approvers: list[str]
    groups: list[str]
    votes: list[VoteInfo]
    approvals_needed: int
    decided_at: datetime | None
    decided_by: str | None
    decision_reason: str | None
    metadata: dict[str, Any]
    version: int
    next_commands: list[str]

    @classmethod
    def of(cls, approval: Approval) -> ApprovalInfo:
        """Reads the view off an Approval aggregate."""
        return cls.model_construct(
            id=approval.id,
            status=approval.status,
            title=approval.title,
            description=approval.description,
            context=approval.context,
            requested_by=approval.requested_by,
            requested_at=approval.created_on,
            deadline=approval.deadline,
            workflow_id=approval.workflow_id,
            required_approvals=approval.policy.required_approvals,
            rejection_threshold=approval.policy.rejection_threshold,
            approvers=list(approval.policy.approvers),
            groups=list(approval.policy.groups),
            votes=[
                VoteInfo.model_construct(
                    voter=v.voter,
                    decision=v.decision,
                    reason=v.reason,
                    at=v.at,
                    groups=list(v.groups),
                    metadata=v.metadata,
                )
                for v in approval.votes
            ],
            approvals_needed=approval.approvals_needed,
            decided_at=approval.decided_at,
            decided_by=approval.decided_by,
            decision_reason=approval.decision_reason,
            metadata=approval.metadata,
            version=approval.version,
            next_commands=list(approval.lifecycle.triggers(approval.status)),
        )


class HistoryEntry(View):
    """One event of an aggregate's stream: the audit trail, entry by entry."""

    aggregate_id: str
    aggregate_type: str
    version: int
    event: str
    at: datetime
    actor: str
    reason: str | None
    command_id: str
    data: dict[str, Any]

    @classmethod
    def of(cls, stored: SignoffEvent) -> HistoryEntry:
        """Reads the entry off a stored domain event."""
        aggregate_type, _, event_name = type(stored).__qualname__.rpartition(".")
        fields = vars(stored)
        data = {k: _plain(v) for k, v in fields.items() if k not in _EVENT_BASE_FIELDS}
        return cls.model_construct(
            aggregate_id=stored.originator_id,
            aggregate_type=aggregate_type,
            version=stored.originator_version,
            event=event_name,
            at=stored.timestamp,
            actor=fields["actor"],
            reason=fields["reason"],
            command_id=fields["command_id"],
            data=data,
        )


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


class WaitInfo(View):
    """What a run waits for."""

    name: str
    kind: str
    deadline: datetime | None
    approval_id: str | None = None
    event_type: str | None = None


class WorkflowInfo(View):
    """A workflow run as its owner sees it."""

    id: str
    name: str
    status: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    result: Any
    error: dict[str, str] | None
    progress: list[dict[str, Any]]
    waiting_for: WaitInfo | None
    generation: int
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    version: int
    next_commands: list[str]

    @classmethod
    def of(cls, run: WorkflowRun) -> WorkflowInfo:
        """Reads the view off a WorkflowRun aggregate."""
        pending = run.pending_wait()
        waiting = None
        if pending is not None:
            name, wait = pending
            waiting = WaitInfo.model_construct(
                name=name,
                kind=wait["kind"],
                deadline=wait["deadline"],
                approval_id=wait.get("approval_id"),
                event_type=wait.get("type"),
            )
        return cls.model_construct(
            id=run.id,
            name=run.name,
            status=run.status,
            params=run.params,
            metadata=run.metadata,
            result=run.result,
            error=run.error,
            progress=run.reports,
            waiting_for=waiting,
            generation=run.generation,
            created_at=run.created_on,
            updated_at=run.modified_on,
            completed_at=run.completed_at,
            version=run.version,
            next_commands=sorted(
                {_RUN_COMMANDS[t] for t in run.lifecycle.triggers(run.status) if t in _RUN_COMMANDS}
            ),
        )


_RUN_COMMANDS = {
    "pause": "pause",
    "resume": "resume",
    "resume_waiting": "resume",
    "terminate": "terminate",
    "restart": "restart",
}
"""Lifecycle triggers a caller can ask for, by the name of their Engine method."""


class WorkflowSummary(View):
    """A run on the workflow board (read from the view, not replayed)."""

    id: str
    name: str
    status: str
    metadata: dict[str, Any]
    progress: dict[str, Any] | None = None
    """The latest ``report_progress`` (kind, value, at)."""
    error: dict[str, str] | None = None
    waiting_for: dict[str, str] | None = None
    """The wait the run is in (name, kind), if any."""
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class WorkflowPage(View):
    """One page of ``get_workflows``: keyset pagination, newest first."""

    items: list[WorkflowSummary]
    total: int
    next_cursor: str | None


class ScheduleInfo(View):
    """A durable timer: what it calls, when, and how it went."""

    id: str
    type: str
    callback: str
    payload: Any
    status: str
    next_run: datetime | None
    spec: str | None
    fired_count: int
    failures: int
    last_error: str | None
    created_at: datetime

    @classmethod
    def of(cls, schedule: Schedule) -> ScheduleInfo:
        """Reads the view off a Schedule aggregate."""
        return cls.model_construct(
            id=schedule.id,
            type=schedule.kind,
            callback=schedule.callback,
            payload=schedule.payload,
            status=schedule.status,
            next_run=schedule.due_at,
            spec=schedule.spec,
            fired_count=schedule.fired_count,
            failures=schedule.failures,
            last_error=schedule.last_error,
            created_at=schedule.created_on,
        )


TIMER_KINDS = ("approval", "wait", "retry", "schedule")
"""What a timer belongs to: an approval (deadline, remind, escalate), a run's wait or step
retry, or a schedule."""


class TimerInfo(View):
    """Something due at a time, as the runtime will fire it."""

    target_id: str
    """The approval, run or schedule."""
    kind: str
    key: str
    """Which of the target's timers: ``deadline``, ``remind``, ``escalate``,
    ``wait:<name>``, ``retry:<step>``, ``schedule:<type>``."""
    due_at: datetime

    @classmethod
    def of(cls, row: Any) -> TimerInfo:
        """Reads the view off a row of the timer index."""
        return cls(
            target_id=row.target_id,
            kind=row.kind,
            key=row.key,
            due_at=datetime.fromtimestamp(row.due_at, UTC),
        )
