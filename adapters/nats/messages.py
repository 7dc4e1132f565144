"""The JSON bodies of the wire protocol, as pydantic models (docs/nats.md is generated
from them). They check shape and types strictly; the Engine then checks the rules."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue

Id = Annotated[str, Field(min_length=1, max_length=200)]
Text = Annotated[str, Field(max_length=5000)]
Key = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")]
Names = Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]], Field(max_length=1000)]
Duration = Annotated[
    str | float | None,
    Field(description='seconds, or text such as "7 days", "4 hours", "30 minutes"'),
]
ErrorCode = Literal["invalid_request", "not_found", "conflict", "forbidden", "internal"]


class Message(BaseModel):
    """Base of request bodies: strict JSON types, unknown fields refused."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Command(Message):
    """A request that changes something; a repeated ``idempotency_key`` (or ``Nats-Msg-Id``
    header) returns the first outcome and changes nothing."""

    idempotency_key: Key | None = None


class StartWorkflow(Command):
    """``workflow.start``: starts a run of a registered workflow."""

    name: Id
    params: dict[str, JsonValue] = Field(default_factory=dict)
    id: Id | None = None
    metadata: dict[str, JsonValue] = Field(default_factory=dict)
    by: Id | None = None


class Acting(Command):
    """A command by one person on one approval or run."""

    id: Id
    by: Id | None = None
    reason: Text | None = None


class Vote(Acting):
    """A vote, with the groups the voter acts for."""

    groups: Names = Field(default_factory=list)


class Approve(Vote):
    """``approval.approve``: one vote towards the quorum."""

    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class Reject(Vote):
    """``approval.reject``."""


class ApproveWorkflow(Approve):
    """``workflow.approve``: one vote on the run's (next) approval."""

    wait: Id | None = None


class RejectWorkflow(Reject):
    """``workflow.reject``: rejects the run's (next) approval."""

    wait: Id | None = None


class SendEvent(Command):
    """``workflow.event``: delivers an event to the run's ``wait_for_event``."""

    id: Id
    type: Id
    payload: JsonValue = None
    by: Id | None = None


class ControlWorkflow(Acting):
    """``workflow.terminate|pause|resume|restart``."""


class GetOne(Message):
    """``workflow.get``, ``approval.get``."""

    id: Id


class ListWorkflows(Message):
    """``workflow.list``: newest first, a page at a time."""

    status: Id | None = None
    name: Id | None = None
    metadata: dict[str, str | int | float | bool] = Field(default_factory=dict)
    limit: Annotated[int, Field(ge=1, le=500)] = 50
    cursor: Annotated[str, Field(max_length=1000)] | None = None


class AuditTrail(Message):
    """``audit.trail``: decisions and lifecycle events in log order, after position
    ``after`` (pass the last entry's ``position`` for the next page)."""

    workflow_id: Id | None = None
    aggregate_id: Id | None = None
    after: Annotated[int, Field(ge=0)] = 0
    limit: Annotated[int, Field(ge=1, le=10_000)] = 1000


class Nothing(Message):
    """``metrics.get``: no fields."""


class UpcomingTimers(Message):
    """``timers.upcoming``: what the runtime will fire, earliest first (``before``: an
    ISO 8601 time with its offset)."""

    before: AwareDatetime | None = None
    kind: Literal["approval", "wait", "retry", "schedule"] | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100


class EscalationLevel(Message):
    """One level of an escalation chain."""

    approvers: Names = Field(default_factory=list)
    groups: Names = Field(default_factory=list)
    timeout: Duration = None


class RequestApproval(Command):
    """``approval.request``: asks for a decision (see ``Engine.request_approval``)."""

    title: Annotated[str, Field(min_length=1, max_length=500)]
    requested_by: Id | None = None
    description: Annotated[str, Field(max_length=20_000)] = ""
    context: dict[str, JsonValue] = Field(default_factory=dict)
    required_approvals: Annotated[int, Field(ge=1, le=1000)] = 1
    approvers: Names = Field(default_factory=list)
    groups: Names = Field(default_factory=list)
    rejection_threshold: Annotated[int, Field(ge=1, le=1000)] = 1
    timeout: Duration = None
    on_timeout: Literal["expire", "reject", "approve", "escalate"] = "expire"
    remind_every: Duration = None
    escalate_after: Duration = None
    escalation: Annotated[list[EscalationLevel], Field(max_length=20)] = Field(default_factory=list)


class Cancel(Acting):
    """``approval.cancel``: the requester withdraws the request."""


class Reassign(Acting):
    """``approval.reassign``: hands a pending approval to other approvers or groups."""

    approvers: Names | None = None
    groups: Names | None = None
    by_groups: Names = Field(default_factory=list)


class Pending(Message):
    """``approvals.pending``: a page of the inbox: what ``approver`` (or ``groups``) may
    decide, oldest first or most urgent first (``order``)."""

    approver: Id | None = None
    groups: Names = Field(default_factory=list)
    order: Literal["age", "deadline"] = "age"
    limit: Annotated[int, Field(ge=1, le=1000)] = 100
    cursor: Annotated[str, Field(max_length=1000)] | None = None


class Created(BaseModel):
    """The result of ``workflow.start`` and ``approval.request``."""

    id: str


class ErrorBody(BaseModel):
    """What went wrong: a stable ``code`` and a message for people."""

    code: ErrorCode
    message: str
    errors: list[dict[str, Any]] | None = None


class OkReply(BaseModel):
    """A successful reply."""

    ok: Literal[True] = True
    result: Any


class ErrorReply(BaseModel):
    """A refused or failed command; nothing was stored."""

    ok: Literal[False] = False
    error: ErrorBody
