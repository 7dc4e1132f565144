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
    WorkflowNotFoundError,
)
from signoff.views import ApprovalInfo, HistoryEntry, VoteInfo

__all__ = [
    "AlreadyDecidedError",
    "AlreadyExistsError",
    "AlreadyVotedError",
    "ApprovalInfo",
    "ApprovalNotFoundError",
    "ApprovalPolicy",
    "Clock",
    "ConcurrencyError",
    "ConflictError",
    "DeadlinePassedError",
    "Engine",
    "ForbiddenError",
    "HistoryEntry",
    "IllegalTransitionError",
    "InvalidInputError",
    "ManualClock",
    "NotAnApproverError",
    "NotFoundError",
    "NotRequesterError",
    "NotYetDueError",
    "ScheduleNotFoundError",
    "SelfApprovalError",
    "SignoffError",
    "SystemClock",
    "VoteInfo",
    "WorkflowNotFoundError",
]
