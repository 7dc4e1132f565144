"""signoff: a human-in-the-loop engine for agentic systems.

Workflows and approvals are event-sourced aggregates: they pause durably
until a person decides, and their event stream is the audit log.
"""

from signoff.clock import Clock, ManualClock, SystemClock
from signoff.domain.policy import ApprovalPolicy
from signoff.engine import Engine
from signoff.errors import (
    AlreadyDecidedError,
    AlreadyExistsError,
    AlreadyVotedError,
    ApprovalNotFoundError,
    ConcurrencyError,
    ConflictError,
    DeadlinePassedError,
    DuplicateStepError,
    ForbiddenError,
    IllegalTransitionError,
    InvalidInputError,
    NotAnApproverError,
    NotFoundError,
    NotRequesterError,
    NotYetDueError,
    ScheduleNotFoundError,
    SelfApprovalError,
    SignoffError,
    UnknownCallbackError,
    UnknownWorkflowError,
    WorkflowNotFoundError,
)
from signoff.read_views import AuditEntry, InboxItem, InboxPage, Metrics, ViewChange
from signoff.step import Step
from signoff.views import (
    ApprovalInfo,
    HistoryEntry,
    ScheduleInfo,
    TimerInfo,
    VoteInfo,
    WaitInfo,
    WorkflowInfo,
    WorkflowPage,
    WorkflowSummary,
)
from signoff.workflow import (
    ApprovalRejected,
    NonRetryableError,
    RetryPolicy,
    StepFailed,
    Workflow,
    WorkflowEvent,
)

__all__ = [
    "AlreadyDecidedError",
    "AlreadyExistsError",
    "AlreadyVotedError",
    "ApprovalInfo",
    "ApprovalNotFoundError",
    "ApprovalPolicy",
    "ApprovalRejected",
    "AuditEntry",
    "Clock",
    "ConcurrencyError",
    "ConflictError",
    "DeadlinePassedError",
    "DuplicateStepError",
    "Engine",
    "ForbiddenError",
    "HistoryEntry",
    "IllegalTransitionError",
    "InboxItem",
    "InboxPage",
    "InvalidInputError",
    "ManualClock",
    "Metrics",
    "NonRetryableError",
    "NotAnApproverError",
    "NotFoundError",
    "NotRequesterError",
    "NotYetDueError",
    "RetryPolicy",
    "ScheduleInfo",
    "ScheduleNotFoundError",
    "SelfApprovalError",
    "SignoffError",
    "Step",
    "StepFailed",
    "SystemClock",
    "TimerInfo",
    "UnknownCallbackError",
    "UnknownWorkflowError",
    "ViewChange",
    "VoteInfo",
    "WaitInfo",
    "Workflow",
    "WorkflowEvent",
    "WorkflowInfo",
    "WorkflowNotFoundError",
    "WorkflowPage",
    "WorkflowSummary",
]
