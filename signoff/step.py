"""``step``: the durable operations a workflow's code calls, replayed against its history.

Every operation first looks at what the run already recorded: a completed
step returns its recorded result, a resolved wait returns its resolution.
Only new work runs, and its outcome is committed before the call returns.
An unresolved wait suspends the activation (``Suspended``); nothing is held
in memory until a decision, an event or a timer resumes the run.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from signoff.commands import RequestApproval, validate
from signoff.domain.durations import parse_duration
from signoff.domain.errors import DuplicateStepError, InvalidInputError
from signoff.workflow import (
    ApprovalRejected,
    NonRetryableError,
    RetryPolicy,
    StepFailed,
)

if TYPE_CHECKING:
    from signoff.activation import Activation


class Suspended(BaseException):
    """Unwinds a workflow's code when it must wait; BaseException so ``except Exception``
    in user code does not swallow it."""


@dataclass(frozen=True)
class ApprovalRequest:
    """What ``wait_for_approval`` asks for."""

    title: str
    description: str
    context: dict[str, Any]
    requested_by: str
    command: RequestApproval


def _retry_policy(retries: RetryPolicy | dict[str, Any] | int | None) -> RetryPolicy:
    if retries is None:
        return RetryPolicy()
    if isinstance(retries, RetryPolicy):
        return retries
    if isinstance(retries, int):
        return RetryPolicy(limit=retries)
    return RetryPolicy.model_validate(retries)


class Step:
    """The durable operations of one activation of a run."""

    def __init__(self, activation: Activation) -> None:
        self._a = activation

    async def do(
        self,
        name: str,
        fn: Callable[[], Any],
        *,
        retries: RetryPolicy | dict[str, Any] | int | None = None,
        timeout: str | float | timedelta | None = None,
    ) -> Any:
        """Runs ``fn`` (sync or async) once for the run and returns its result.

        A completed step returns its recorded result without running ``fn``.
        A failing attempt is recorded and retried after a durable backoff
        (default: 5 retries from 10 s, exponential); ``NonRetryableError`` and
        the policy's ``non_retryable`` types fail at once. A step that fails
        for good raises ``StepFailed``, on every replay alike.
        """
        a = self._a
        a.claim_name(name)
        record = a.snapshot.steps.get(name)
        if record is not None:
            if record["done"]:
                return record["result"]
            if record["retry_at"] is None:
                error = record["error"]
                raise StepFailed(name, error["type"], error["message"], record["attempts"])
            if a.now() < record["retry_at"]:
                raise Suspended
        policy = _retry_policy(retries)
        limit = parse_duration(timeout).total_seconds() if timeout is not None else None
        attempt = (record["attempts"] if record else 0) + 1
        await a.ensure_lease()
        a.observe_step(name, attempt)
        try:
            result = fn()
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(result, limit) if limit else await result
            result = a.runtime.app.normalize(result, f"the result of step {name!r}")
        except (Suspended, asyncio.CancelledError):
            raise
        except Exception as error:
            if isinstance(error, TimeoutError):
                error = TimeoutError(f"step {name!r} timed out after {limit} s")
            final = isinstance(
                error, (NonRetryableError, InvalidInputError, *policy.non_retryable)
            ) or (attempt > policy.limit)
            retry_at = None if final else a.now() + policy.delay_before(attempt + 1)
            detail = {"type": type(error).__name__, "message": str(error)}
            await a.record_step(name, error=detail, attempt=attempt, retry_at=retry_at)
            if final:
                raise StepFailed(name, detail["type"], detail["message"], attempt) from error
            raise Suspended from error
        await a.record_step(name, result=result, attempt=attempt)
        return result

    async def wait_for_event(
        self,
        name: str,
        *,
        type: str,
        timeout: str | float | timedelta | None = None,
    ) -> Any:
        """Waits until ``engine.send_event(run_id, type, payload)`` delivers; returns the
        payload, or ``None`` on timeout. Events sent before the wait are kept for it."""
        resolution = await self._a.wait(name, "event", timeout, {"type": type})
        return resolution["value"] if resolution["outcome"] == "event" else None

    async def sleep(self, name: str, duration: str | float | timedelta) -> None:
        """Sleeps durably for ``duration`` (survives restarts; holds no memory)."""
        await self._a.wait(name, "sleep", duration, {})

    async def sleep_until(self, name: str, when: datetime) -> None:
        """Sleeps durably until ``when`` (timezone-aware)."""
        if when.tzinfo is None:
            raise ValueError("sleep_until needs a timezone-aware datetime")
        await self._a.wait(name, "sleep", when, {})

    async def report_complete(self, result: Any) -> None:
        """Records that the work is complete, with its result (the seed's reportComplete)."""
        self._a.report("complete", result)

    async def report_error(self, error: Any) -> None:
        """Records an error report (the seed's reportError); the run goes on."""
        self._a.report("error", error if not isinstance(error, BaseException) else str(error))

    async def wait_for_approval(
        self,
        *,
        timeout: str | float | timedelta | None,
        title: str | None,
        description: str,
        context: dict[str, Any] | None,
        approvers: list[str] | tuple[str, ...],
        groups: list[str] | tuple[str, ...],
        required_approvals: int,
        rejection_threshold: int,
        requested_by: str | None,
        name: str,
        on_timeout: str = "expire",
        remind_every: str | float | timedelta | None = None,
        escalate_after: str | float | timedelta | None = None,
        escalation: list[dict[str, Any]] | tuple[dict[str, Any], ...] = (),
    ) -> dict[str, Any] | None:
        """See ``Workflow.wait_for_approval``."""
        a = self._a

        def request() -> ApprovalRequest:
            # Validated only when the wait starts, not on every replay past it.
            checked = validate(
                RequestApproval,
                {
                    "title": title or f"Approve {a.snapshot.name} {a.snapshot.id}",
                    "requested_by": requested_by or f"workflow:{a.snapshot.name}",
                    "description": description,
                    "context": {} if context is None else context,
                    "approvers": list(approvers),
                    "groups": list(groups),
                    "required_approvals": required_approvals,
                    "rejection_threshold": rejection_threshold,
                    "timeout": timeout,
                    "on_timeout": on_timeout,
                    "remind_every": remind_every,
                    "escalate_after": escalate_after,
                    "escalation": list(escalation),
                },
            )
            return ApprovalRequest(
                title=checked.title,
                description=checked.description,
                context=dict(checked.context),
                requested_by=checked.requested_by,
                command=checked,
            )

        resolution = await a.wait(name, "approval", timeout, {"request": request})
        outcome = resolution["outcome"]
        if outcome == "approved":
            metadata: dict[str, Any] = dict(resolution["value"].get("metadata") or {})
            return metadata
        if outcome == "rejected":
            raise ApprovalRejected(
                resolution.get("reason"),
                by=resolution.get("by"),
                approval_id=resolution["value"].get("approval_id"),
            )
        return None


def check_name(used: set[str], name: str) -> None:
    """Refuses a step or wait name used before in this run."""
    if not isinstance(name, str) or not name:
        raise DuplicateStepError(f"step and wait names must be non-empty strings, not {name!r}")
    if name in used:
        raise DuplicateStepError(f"step or wait name {name!r} is used twice in one run")
    used.add(name)
