"""Typed errors of signoff, in one small hierarchy.

    SignoffError
    ├── NotFoundError
    │   ├── ApprovalNotFoundError
    │   ├── WorkflowNotFoundError
    │   └── ScheduleNotFoundError
    ├── ConflictError
    │   ├── IllegalTransitionError
    │   │   └── AlreadyDecidedError
    │   ├── AlreadyVotedError
    │   ├── DeadlinePassedError
    │   ├── NotYetDueError
    │   ├── AlreadyExistsError
    │   ├── ConcurrencyError
    │   ├── LeaseLostError
    │   └── IdempotencyKeyLostError
    ├── ForbiddenError
    │   ├── SelfApprovalError
    │   ├── NotAnApproverError
    │   └── NotRequesterError
    ├── InvalidInputError
    │   ├── UnknownWorkflowError
    │   ├── UnknownCallbackError
    │   └── DuplicateStepError
    └── ClockSkewError

Each class carries a stable ``code`` (used on the wire) and keeps the ids
it is about as attributes, so callers never parse messages.
"""

from __future__ import annotations


class SignoffError(Exception):
    """Base of every error signoff raises on purpose."""

    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(SignoffError):
    """Raised when an approval, workflow run or schedule does not exist."""

    code = "not_found"


class ApprovalNotFoundError(NotFoundError):
    """Raised when no approval has the given id."""

    def __init__(self, approval_id: str) -> None:
        super().__init__(f"approval {approval_id!r} not found")
        self.approval_id = approval_id


class WorkflowNotFoundError(NotFoundError):
    """Raised when no workflow run has the given id."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} not found")
        self.workflow_id = workflow_id


class ScheduleNotFoundError(NotFoundError):
    """Raised when no schedule has the given id."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id!r} not found")
        self.schedule_id = schedule_id


class ConflictError(SignoffError):
    """Raised when a command does not fit the current state of what it targets."""

    code = "conflict"


class IllegalTransitionError(ConflictError):
    """Raised when a command is not a legal move from the aggregate's status."""

    def __init__(self, aggregate_id: str, status: str, command: str) -> None:
        super().__init__(f"cannot {command} {aggregate_id!r}: it is {status}")
        self.aggregate_id = aggregate_id
        self.status = status
        self.command = command


class AlreadyDecidedError(IllegalTransitionError):
    """Raised when an approval that is approved, rejected, expired or cancelled
    receives another decision."""


class AlreadyVotedError(ConflictError):
    """Raised when a person votes a second time on one approval."""

    def __init__(self, approval_id: str, voter: str, vote: str) -> None:
        super().__init__(f"already {vote}d by this user: {voter!r} on approval {approval_id!r}")
        self.approval_id = approval_id
        self.voter = voter
        self.vote = vote


class DeadlinePassedError(ConflictError):
    """Raised when a vote arrives after the approval's deadline, before its expiry
    has been recorded."""

    def __init__(self, approval_id: str) -> None:
        super().__init__(f"approval {approval_id!r} is past its deadline")
        self.approval_id = approval_id


class NotYetDueError(ConflictError):
    """Raised when something due at a time (an approval's expiry) is asked for early."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(f"{aggregate_id!r} is not due yet")
        self.aggregate_id = aggregate_id


class AlreadyExistsError(ConflictError):
    """Raised when creating something under an id that is already taken."""

    def __init__(self, aggregate_id: str) -> None:
        super().__init__(f"{aggregate_id!r} already exists")
        self.aggregate_id = aggregate_id


class ConcurrencyError(ConflictError):
    """Raised when concurrent writers kept conflicting after every retry."""

    def __init__(self, aggregate_id: str, attempts: int) -> None:
        super().__init__(f"{aggregate_id!r} changed under us {attempts} times; gave up")
        self.aggregate_id = aggregate_id
        self.attempts = attempts


class LeaseLostError(ConflictError):
    """Raised when an engine writes for runs whose lease another engine has taken over
    (the write carried a fencing token that is no longer the run's); nothing is written."""

    def __init__(self, run_ids: list[str]) -> None:
        super().__init__(f"the lease of run(s) {', '.join(map(repr, run_ids))} was lost")
        self.run_ids = run_ids


class IdempotencyKeyLostError(ConflictError):
    """Raised when a keyed command would commit after another engine took its idempotency
    key over (that engine runs, or ran, the command); nothing is written."""

    def __init__(self, key: str) -> None:
        super().__init__(f"command {key!r} is being run by another engine")
        self.key = key


class ForbiddenError(SignoffError):
    """Raised when the acting person may not do what they asked."""

    code = "forbidden"


class SelfApprovalError(ForbiddenError):
    """Raised when the requester of an approval tries to vote on it."""

    def __init__(self, approval_id: str, person: str) -> None:
        super().__init__(f"{person!r} requested approval {approval_id!r} and may not vote on it")
        self.approval_id = approval_id
        self.person = person


class NotAnApproverError(ForbiddenError):
    """Raised when a person outside an approval's approvers and groups acts on it."""

    def __init__(self, approval_id: str, person: str) -> None:
        super().__init__(f"{person!r} is not an allowed approver of approval {approval_id!r}")
        self.approval_id = approval_id
        self.person = person


class NotRequesterError(ForbiddenError):
    """Raised when someone other than an approval's requester tries to withdraw it."""

    def __init__(self, approval_id: str, person: str) -> None:
        super().__init__(f"only the requester may cancel approval {approval_id!r}, not {person!r}")
        self.approval_id = approval_id
        self.person = person


class InvalidInputError(SignoffError):
    """Raised when a command's input fails validation; nothing is stored."""

    code = "invalid_request"

    def __init__(self, message: str, *, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class UnknownWorkflowError(InvalidInputError):
    """Raised when a workflow name is not registered with the engine."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no workflow named {name!r} is registered")
        self.name = name


class DuplicateStepError(InvalidInputError):
    """Raised inside a run when its code uses one step or wait name twice."""


class UnknownCallbackError(InvalidInputError):
    """Raised when a schedule names a callback that is not registered."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no callback named {name!r} is registered")
        self.name = name


class ClockSkewError(SignoffError):
    """Raised when an engine starts with a clock too far from its store's: deadlines,
    reminders and schedules would fire early or late, and schedule claims overlap."""

    def __init__(self, skew: float, tolerance: float) -> None:
        ahead = "ahead of" if skew > 0 else "behind"
        super().__init__(
            f"this engine's clock is {abs(skew):.1f} s {ahead} the store's "
            f"(tolerance {tolerance:g} s): fix the host's time (NTP) or raise max_clock_skew"
        )
        self.skew = skew
        self.tolerance = tolerance
