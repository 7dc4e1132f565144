"""Which engine call answers which subject: one small handler per command."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from signoff.adapters.nats import messages as m
from signoff.engine import Engine
from signoff.views import ApprovalInfo, WorkflowInfo, WorkflowPage

Handler = Callable[[Engine, Any, str | None], Awaitable[Any]]
"""Called with the engine, the validated body and the idempotency key."""


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


def run_id_for(key: str) -> str:
    """The id of a run started under an idempotency key (so a re-run cannot start twice)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"signoff/nats/workflow/{key}"))


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value


def _actor(msg: Any) -> dict[str, str]:
    return {} if msg.by is None else {"by": msg.by}


async def _start(engine: Engine, msg: m.StartWorkflow, key: str | None) -> Any:
    run_id = msg.id or (run_id_for(key) if key else None)
    started = await engine.run_workflow(
        msg.name, msg.params, id=run_id, metadata=msg.metadata, **_actor(msg)
    )
    return {"id": started}


async def _approve_run(engine: Engine, msg: m.ApproveWorkflow, key: str | None) -> Any:
    return _dump(
        await engine.approve_workflow(
            msg.id,
            by=msg.by,  # type: ignore[arg-type]  # None is refused by the engine's validation
            reason=msg.reason,
            metadata=msg.metadata,
            groups=msg.groups,
            wait=msg.wait,
        )
    )


async def _reject_run(engine: Engine, msg: m.RejectWorkflow, key: str | None) -> Any:
    return _dump(
        await engine.reject_workflow(
            msg.id,
            by=msg.by,  # type: ignore[arg-type]
            reason=msg.reason,
            groups=msg.groups,
            wait=msg.wait,
        )
    )


async def _event(engine: Engine, msg: m.SendEvent, key: str | None) -> Any:
    await engine.send_event(msg.id, msg.type, msg.payload, **_actor(msg))
    return None


def _control(action: str) -> Handler:
    async def control(engine: Engine, msg: m.ControlWorkflow, key: str | None) -> Any:
        method = getattr(engine, f"{action}_workflow")
        return _dump(await method(msg.id, reason=msg.reason, **_actor(msg)))

    return control


async def _get_run(engine: Engine, msg: m.GetOne, key: str | None) -> Any:
    return _dump(await engine.get_workflow(msg.id))


async def _list_runs(engine: Engine, msg: m.ListWorkflows, key: str | None) -> Any:
    return _dump(
        await engine.get_workflows(
            status=msg.status,
            name=msg.name,
            metadata=msg.metadata,
            limit=msg.limit,
            cursor=msg.cursor,
        )
    )


async def _request(engine: Engine, msg: m.RequestApproval, key: str | None) -> Any:
    fields = msg.model_dump(exclude={"idempotency_key", "escalation"})
    fields["escalation"] = [level.model_dump() for level in msg.escalation]
    approval_id = await engine.request_approval(**fields, command_id=key)
    return {"id": approval_id}


async def _approve(engine: Engine, msg: m.Approve, key: str | None) -> Any:
    return _dump(
        await engine.approve(
            msg.id,
            by=msg.by,  # type: ignore[arg-type]
            reason=msg.reason,
            metadata=msg.metadata,
            groups=msg.groups,
            command_id=key,
        )
    )


async def _reject(engine: Engine, msg: m.Reject, key: str | None) -> Any:
    return _dump(
        await engine.reject(
            msg.id,
            by=msg.by,  # type: ignore[arg-type]
            reason=msg.reason,
            groups=msg.groups,
            command_id=key,
        )
    )


async def _cancel(engine: Engine, msg: m.Cancel, key: str | None) -> Any:
    return _dump(
        await engine.cancel(
            msg.id,
            by=msg.by,  # type: ignore[arg-type]
            reason=msg.reason,
            command_id=key,
        )
    )


async def _reassign(engine: Engine, msg: m.Reassign, key: str | None) -> Any:
    return _dump(
        await engine.reassign(
            msg.id,
            by=msg.by,  # type: ignore[arg-type]
            approvers=msg.approvers,
            groups=msg.groups,
            by_groups=msg.by_groups,
            reason=msg.reason,
            command_id=key,
        )
    )


async def _get_approval(engine: Engine, msg: m.GetOne, key: str | None) -> Any:
    return _dump(await engine.get_approval(msg.id))


async def _pending(engine: Engine, msg: m.Pending, key: str | None) -> Any:
    return _dump(await engine.pending_approvals(msg.approver, groups=msg.groups, limit=msg.limit))


_ROUTES = [
    Route("workflow.start", m.StartWorkflow, m.Created, _start),
    Route(
        "workflow.approve",
        m.ApproveWorkflow,
        ApprovalInfo | None,
        _approve_run,
        actor_groups="groups",
    ),
    Route(
        "workflow.reject", m.RejectWorkflow, ApprovalInfo | None, _reject_run, actor_groups="groups"
    ),
    Route("workflow.event", m.SendEvent, None, _event),
    Route("workflow.get", m.GetOne, WorkflowInfo, _get_run, actor=None, mutates=False),
    Route("workflow.list", m.ListWorkflows, WorkflowPage, _list_runs, actor=None, mutates=False),
    *(
        Route(f"workflow.{action}", m.ControlWorkflow, WorkflowInfo, _control(action))
        for action in ("terminate", "pause", "resume", "restart")
    ),
    Route("approval.request", m.RequestApproval, m.Created, _request, actor="requested_by"),
    Route("approval.approve", m.Approve, ApprovalInfo, _approve, actor_groups="groups"),
    Route("approval.reject", m.Reject, ApprovalInfo, _reject, actor_groups="groups"),
    Route("approval.cancel", m.Cancel, ApprovalInfo, _cancel),
    Route("approval.reassign", m.Reassign, ApprovalInfo, _reassign, actor_groups="by_groups"),
    Route("approval.get", m.GetOne, ApprovalInfo, _get_approval, actor=None, mutates=False),
    Route("approvals.pending", m.Pending, list[ApprovalInfo], _pending, actor=None, mutates=False),
]

ROUTES: dict[str, Route] = {route.name: route for route in _ROUTES}
"""Every subject of the protocol, by ``noun.verb``."""
