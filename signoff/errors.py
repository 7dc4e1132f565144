"""signoff's typed errors (defined beside the domain that raises them); see the tree in
:mod:`signoff.domain.errors`."""

from signoff.domain.errors import (
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

__all__ = [
    "AlreadyDecidedError",
    "AlreadyExistsError",
    "AlreadyVotedError",
    "ApprovalNotFoundError",
    "ConcurrencyError",
    "ConflictError",
    "DeadlinePassedError",
    "ForbiddenError",
    "IllegalTransitionError",
    "InvalidInputError",
    "NotAnApproverError",
    "NotFoundError",
    "NotRequesterError",
    "NotYetDueError",
    "ScheduleNotFoundError",
    "SelfApprovalError",
    "SignoffError",
    "WorkflowNotFoundError",
]
