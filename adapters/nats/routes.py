"""Which engine call answers which subject: body fields are the method's keyword arguments."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from signoff.adapters.nats import messages as m
from signoff.engine import Engine
from signoff.read_views import AuditEntry, InboxPage, Metrics
from signoff.views import ApprovalInfo, TimerInfo, WorkflowInfo, WorkflowPage

Handler = Callable[[Engine, Any, str | None], Awaitable[Any]]
"""Called with the engine, the validated body and the idempotency key; returns what the
engine returned (``Route.shape`` makes the reply's result of it)."""


@dataclass(frozen=True)
class Route:
    """One subject (``noun.verb``) of the protocol."""

    name: str
    request: type[m.Message]
    result: Any
    handle: Handler
    actor: str | None = "by"
    """The body field naming the acting person (taken from the credential under auth)."""
    mutates: bool = True
    actor_groups: str | None = None
    """The body field naming the acting person's groups (checked against the credential)."""
    shape: Callable[[Any], Any] = lambda value: _dump(value)
    """The reply's result, from what the engine returned (also worked out inside the
    command's transaction, where a keyed command's reply is stored)."""


def run_id_for(key: str) -> str:
    """The id of a run started under an idempotency key (so a re-run cannot start twice)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"signoff/nats/workflow/{key}"))


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def created(new_id: Any) -> Any:
    """The result of a command that creates something: ``{"id": ...}``."""
    return {"id": new_id}


def call(
    method: str, *, by_default: bool = False, command_id: bool = False, creates: bool = False
) -> Handler:
    """A handler that calls ``engine.<method>(id, **other fields)``.

    Args:
        by_default: the method has a default actor, used when the body names none.
        command_id: the idempotency key is recorded as the events' ``command_id``.
        creates: the body's ``id`` is not an argument (the method makes a new one).
    """

    async def handle(engine: Engine, msg: m.Message, key: str | None) -> Any:
        fields = msg.model_dump(exclude={"idempotency_key"})
        args = [fields.pop("id")] if "id" in fields and not creates else []
        if by_default and fields.get("by") is None:
            fields.pop("by", None)
        if command_id:
            fields["command_id"] = key
        return await getattr(engine, method)(*args, **fields)

    return handle


async def _start(engine: Engine, msg: m.StartWorkflow, key: str | None) -> Any:
    run_id = msg.id or (run_id_for(key) if key else None)
    by = {} if msg.by is None else {"by": msg.by}
    return await engine.run_workflow(msg.name, msg.params, id=run_id, metadata=msg.metadata, **by)


def _query(name: str, request: type[m.Message], result: Any, method: str) -> Route:
    return Route(name, request, result, call(method), actor=None, mutates=False)


_ROUTES = [
    Route("workflow.start", m.StartWorkflow, m.Created, _start, shape=created),
    Route(
        "workflow.approve",
        m.ApproveWorkflow,
        ApprovalInfo | None,
        call("approve_workflow"),
        actor_groups="groups",
    ),
    Route(
        "workflow.reject",
        m.RejectWorkflow,
        ApprovalInfo | None,
        call("reject_workflow"),
        actor_groups="groups",
    ),
    Route("workflow.event", m.SendEvent, None, call("send_event", by_default=True)),
    _query("workflow.get", m.GetOne, WorkflowInfo, "get_workflow"),
    _query("workflow.list", m.ListWorkflows, WorkflowPage, "get_workflows"),
    *(
        Route(
            f"workflow.{action}",
            m.ControlWorkflow,
            WorkflowInfo,
            call(f"{action}_workflow", by_default=True),
        )
        for action in ("terminate", "pause", "resume", "restart")
    ),
    Route(
        "approval.request",
        m.RequestApproval,
        m.Created,
        call("request_approval", command_id=True, creates=True),
        actor="requested_by",
        shape=created,
    ),
    Route(
        "approval.approve",
        m.Approve,
        ApprovalInfo,
        call("approve", command_id=True),
        actor_groups="groups",
    ),
    Route(
        "approval.reject",
        m.Reject,
        ApprovalInfo,
        call("reject", command_id=True),
        actor_groups="groups",
    ),
    Route("approval.cancel", m.Cancel, ApprovalInfo, call("cancel", command_id=True)),
    Route(
        "approval.reassign",
        m.Reassign,
        ApprovalInfo,
        call("reassign", command_id=True),
        actor_groups="by_groups",
    ),
    _query("approval.get", m.GetOne, ApprovalInfo, "get_approval"),
    _query("approvals.pending", m.Pending, InboxPage, "approval_inbox"),
    _query("audit.trail", m.AuditTrail, list[AuditEntry], "audit_trail"),
    _query("metrics.get", m.Nothing, Metrics, "metrics"),
    _query("timers.upcoming", m.UpcomingTimers, list[TimerInfo], "upcoming_timers"),
]

ROUTES: dict[str, Route] = {route.name: route for route in _ROUTES}
"""Every subject of the protocol, by ``noun.verb``."""
