"""What users write: ``Workflow`` subclasses, and the errors their code meets."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from signoff.domain.durations import parse_duration

if TYPE_CHECKING:
    from signoff.step import Step


class ApprovalRejected(Exception):  # noqa: N818 (the seed's name for it)
    """Raised by ``wait_for_approval`` when the approval was rejected."""

    def __init__(
        self, reason: str | None, *, by: str | None, approval_id: str | None = None
    ) -> None:
        super().__init__(f"rejected by {by}: {reason}" if reason else f"rejected by {by}")
        self.reason = reason
        self.by = by
        self.approval_id = approval_id


class StepFailed(Exception):  # noqa: N818 (reads as what happened)
    """Raised by ``step.do`` when a step failed for good (retries exhausted or not retryable).

    Carries the original exception's type name and message; it is raised the
    same way on a live run and on replay, so workflow code behaves the same.
    """

    def __init__(self, step: str, error_type: str, message: str, attempts: int) -> None:
        super().__init__(
            f"step {step!r} failed after {attempts} attempt(s): {error_type}: {message}"
        )
        self.step = step
        self.error_type = error_type
        self.message = message
        self.attempts = attempts


class NonRetryableError(Exception):
    """Raise it (or a subclass) inside a step to fail the step at once, without retries."""


class RetryPolicy(BaseModel):
    """How a failing step is retried: up to ``limit`` more attempts, waiting ``delay``,
    then growing constantly, linearly or exponentially (the seed's defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    limit: int = Field(default=5, ge=0, le=100)
    delay: timedelta = timedelta(seconds=10)
    backoff: Literal["constant", "linear", "exponential"] = "exponential"
    non_retryable: tuple[type[BaseException], ...] = ()

    @field_validator("delay", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> timedelta:
        delay: timedelta = value if isinstance(value, timedelta) else parse_duration(value)
        return delay

    def delay_before(self, attempt: int) -> timedelta:
        """The wait before attempt number ``attempt`` (2 is the first retry)."""
        n = attempt - 1
        if self.backoff == "constant":
            return self.delay
        if self.backoff == "linear":
            return self.delay * n
        factor: int = 2 ** (n - 1)
        return self.delay * factor


@dataclass(frozen=True)
class WorkflowEvent:
    """What ``run`` receives: the params (``payload``) and facts about the run."""

    payload: Any
    id: str
    name: str
    metadata: dict[str, Any] = field(default_factory=dict)
    timestamp: datetime | None = None


class Workflow:
    """Base of user workflows: set ``name`` and implement ``async def run(self, event, step)``.

    ``run`` is replayed from the top on every activation: code outside
    ``step.do`` must be deterministic (no clock reads, random numbers or I/O).
    Set ``params_model`` to a pydantic model to have ``run_workflow`` validate
    the params before anything is stored; ``event.payload`` is then an
    instance of it.
    """

    name: ClassVar[str]
    params_model: ClassVar[type[BaseModel] | None] = None

    _context: Any = None

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        """The workflow's code."""
        raise NotImplementedError

    async def wait_for_approval(
        self,
        step: Step,
        *,
        timeout: str | float | timedelta | None = "7 days",
        title: str | None = None,
        description: str = "",
        context: dict[str, Any] | None = None,
        approvers: list[str] | tuple[str, ...] = (),
        groups: list[str] | tuple[str, ...] = (),
        required_approvals: int = 1,
        rejection_threshold: int = 1,
        requested_by: str | None = None,
        name: str = "approval",
        on_timeout: str = "expire",
        remind_every: str | float | timedelta | None = None,
        escalate_after: str | float | timedelta | None = None,
        escalation: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    ) -> dict[str, Any] | None:
        """Pauses the run until a person decides (nothing is held in memory meanwhile).

        The policy fields are those of ``Engine.request_approval``: ``on_timeout``
        (expire -> returns None, reject -> raises ApprovalRejected, approve -> returns
        {}, escalate -> the next level of ``escalation`` decides), ``remind_every``,
        ``escalate_after`` and ``escalation`` ([{"approvers": [...], "groups": [...],
        "timeout": "1 day"}, ...]). Reminders and escalations are recorded on the
        approval and on the run.

        Returns:
            The approval's metadata when approved, ``None`` when it timed out.

        Raises:
            ApprovalRejected: the approval was rejected.
        """
        return await step.wait_for_approval(
            timeout=timeout,
            title=title,
            description=description,
            context=context,
            approvers=approvers,
            groups=groups,
            required_approvals=required_approvals,
            rejection_threshold=rejection_threshold,
            requested_by=requested_by,
            name=name,
            on_timeout=on_timeout,
            remind_every=remind_every,
            escalate_after=escalate_after,
            escalation=escalation,
        )

    async def report_progress(self, progress: Any) -> None:
        """Records a progress report (once, even when the run is replayed)."""
        if self._context is None:
            raise RuntimeError("report_progress is only available while the workflow runs")
        self._context.report("progress", progress)
