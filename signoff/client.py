"""A small typed async client for services that talk to signoff over NATS.

    async with await SignoffClient.connect("nats://127.0.0.1:4222") as client:
        approval_id = await client.request_approval(title="Pay", requested_by="carol")
        info = await client.approve(approval_id, by="alice")

Replies that carry an error raise the matching typed error (``NotFoundError``,
``ConflictError``, ``ForbiddenError``, ``InvalidInputError``; ``SignoffError`` for
``internal``), so callers handle them exactly as they would with a local Engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any

import nats
import orjson
from nats.aio.client import Client

from signoff.domain.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    SignoffError,
)
from signoff.read_views import AuditEntry, InboxItem, InboxPage, Metrics
from signoff.views import ApprovalInfo, TimerInfo, WorkflowInfo, WorkflowPage

_ERRORS: dict[str, type[SignoffError]] = {
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "forbidden": ForbiddenError,
    "internal": SignoffError,
}


def raise_for(error: Mapping[str, Any]) -> None:
    """Raises the typed error an error reply describes."""
    code, message = error.get("code", "internal"), str(error.get("message", ""))
    if code == "invalid_request":
        raise InvalidInputError(message, errors=error.get("errors") or [])
    raise _ERRORS.get(code, SignoffError)(message)


class SignoffClient:
    """Methods over the request/reply subjects of docs/nats.md.

    Args:
        nc: a connected NATS client (``connect`` makes one).
        prefix: the engines' subject prefix.
        timeout: seconds to wait for a reply.
        token: a JWT sent as ``Authorization: Bearer`` (engines with auth need one).
    """

    def __init__(
        self, nc: Client, *, prefix: str = "signoff", timeout: float = 5.0, token: str | None = None
    ) -> None:
        self.nc = nc
        self.prefix = prefix
        self.timeout = timeout
        self.token = token
        self._owns_connection = False

    @classmethod
    async def connect(cls, url: str = "nats://127.0.0.1:4222", **options: Any) -> SignoffClient:
        """Connects to ``url`` and returns a client that closes the connection on exit."""
        client = cls(await nats.connect(url), **options)
        client._owns_connection = True
        return client

    async def __aenter__(self) -> SignoffClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._owns_connection:
            await self.nc.drain()

    def _headers(self, idempotency_key: str | None) -> dict[str, str] | None:
        headers = {}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if idempotency_key:
            headers["Nats-Msg-Id"] = idempotency_key
        return headers or None

    async def call(
        self, name: str, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> Any:
        """Sends the command ``name`` (``noun.verb``) and returns the reply's ``result``."""
        fields = {k: v for k, v in body.items() if v is not None}
        reply = await self.nc.request(
            f"{self.prefix}.{name}",
            orjson.dumps(fields),
            timeout=self.timeout,
            headers=self._headers(idempotency_key),
        )
        answer = orjson.loads(reply.data)
        if not answer.get("ok"):
            raise_for(answer.get("error") or {})
        return answer.get("result")

    async def publish_durable(
        self, name: str, body: Mapping[str, Any], *, idempotency_key: str
    ) -> None:
        """Stores the command ``name`` in the commands stream for an engine to apply later
        (``idempotency_key`` makes a retried publish harmless)."""
        fields = {k: v for k, v in body.items() if v is not None}
        await self.nc.jetstream().publish(
            f"{self.prefix}.cmd.{name}",
            orjson.dumps(fields),
            headers=self._headers(idempotency_key),
        )

    async def _approval(self, name: str, body: Mapping[str, Any], key: str | None) -> ApprovalInfo:
        return ApprovalInfo.model_validate(await self.call(name, body, idempotency_key=key))

    async def _vote(
        self, name: str, body: Mapping[str, Any], key: str | None
    ) -> ApprovalInfo | None:
        result = await self.call(name, body, idempotency_key=key)
        return None if result is None else ApprovalInfo.model_validate(result)

    async def _run(self, name: str, body: Mapping[str, Any], key: str | None) -> WorkflowInfo:
        return WorkflowInfo.model_validate(await self.call(name, body, idempotency_key=key))

    # Workflows ---------------------------------------------------------------

    async def start_workflow(
        self,
        name: str,
        params: Mapping[str, Any] | None = None,
        *,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Starts a run; returns its id."""
        body: dict[str, Any] = {
            "name": name,
            "params": params,
            "id": id,
            "metadata": metadata,
            "by": by,
        }
        result = await self.call("workflow.start", body, idempotency_key=idempotency_key)
        return str(result["id"])

    async def approve_workflow(
        self,
        workflow_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        groups: Iterable[str] = (),
        wait: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApprovalInfo | None:
        """Approves the run's approval (None: kept until the run gets there)."""
        body: dict[str, Any] = {"id": workflow_id, "by": by, "reason": reason, "metadata": metadata}
        body |= {"groups": list(groups) or None, "wait": wait}
        return await self._vote("workflow.approve", body, idempotency_key)

    async def reject_workflow(
        self,
        workflow_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        groups: Iterable[str] = (),
        wait: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApprovalInfo | None:
        """Rejects the run's approval."""
        body: dict[str, Any] = {
            "id": workflow_id,
            "by": by,
            "reason": reason,
            "groups": list(groups) or None,
        }
        body["wait"] = wait
        return await self._vote("workflow.reject", body, idempotency_key)

    async def send_event(
        self,
        workflow_id: str,
        type: str,
        payload: Any = None,
        *,
        by: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Delivers an event to the run's ``wait_for_event``."""
        body: dict[str, Any] = {"id": workflow_id, "type": type, "payload": payload, "by": by}
        await self.call("workflow.event", body, idempotency_key=idempotency_key)

    async def control_workflow(
        self,
        action: str,
        workflow_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> WorkflowInfo:
        """``terminate``, ``pause``, ``resume`` or ``restart`` a run."""
        body: dict[str, Any] = {"id": workflow_id, "by": by, "reason": reason}
        return await self._run(f"workflow.{action}", body, idempotency_key)

    async def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        """The run as it stands."""
        return await self._run("workflow.get", {"id": workflow_id}, None)

    async def list_workflows(
        self,
        *,
        status: str | None = None,
        name: str | None = None,
        metadata: Mapping[str, str | int | float | bool] | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> WorkflowPage:
        """One page of runs, newest first."""
        body: dict[str, Any] = {
            "status": status,
            "name": name,
            "metadata": metadata,
            "limit": limit,
        }
        body["cursor"] = cursor
        return WorkflowPage.model_validate(await self.call("workflow.list", body))

    # Approvals ---------------------------------------------------------------

    async def request_approval(self, *, idempotency_key: str | None = None, **fields: Any) -> str:
        """Asks for a decision (fields as ``Engine.request_approval``); returns its id."""
        result = await self.call("approval.request", fields, idempotency_key=idempotency_key)
        return str(result["id"])

    async def approve(
        self,
        approval_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        groups: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> ApprovalInfo:
        """One vote towards the approval's quorum."""
        body: dict[str, Any] = {"id": approval_id, "by": by, "reason": reason, "metadata": metadata}
        body["groups"] = list(groups) or None
        return await self._approval("approval.approve", body, idempotency_key)

    async def reject(
        self,
        approval_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        groups: Iterable[str] = (),
        idempotency_key: str | None = None,
    ) -> ApprovalInfo:
        """Rejects the approval."""
        body: dict[str, Any] = {
            "id": approval_id,
            "by": by,
            "reason": reason,
            "groups": list(groups) or None,
        }
        return await self._approval("approval.reject", body, idempotency_key)

    async def cancel(
        self,
        approval_id: str,
        *,
        by: str | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApprovalInfo:
        """Withdraws the approval (its requester only)."""
        body: dict[str, Any] = {"id": approval_id, "by": by, "reason": reason}
        return await self._approval("approval.cancel", body, idempotency_key)

    async def reassign(
        self,
        approval_id: str,
        *,
        by: str | None = None,
        approvers: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        reason: str | None = None,
        idempotency_key: str | None = None,
    ) -> ApprovalInfo:
        """Hands the approval to other approvers or groups."""
        body: dict[str, Any] = {"id": approval_id, "by": by, "reason": reason}
        body["approvers"] = None if approvers is None else list(approvers)
        body["groups"] = None if groups is None else list(groups)
        return await self._approval("approval.reassign", body, idempotency_key)

    async def get_approval(self, approval_id: str) -> ApprovalInfo:
        """The approval with its votes."""
        return await self._approval("approval.get", {"id": approval_id}, None)

    async def approval_inbox(
        self,
        approver: str | None = None,
        *,
        groups: Iterable[str] = (),
        order: str = "age",
        limit: int = 100,
        cursor: str | None = None,
    ) -> InboxPage:
        """A page of what ``approver`` (or ``groups``) may decide; pass ``next_cursor`` back
        for the next page."""
        body: dict[str, Any] = {
            "approver": approver,
            "groups": list(groups) or None,
            "order": order,
            "limit": limit,
            "cursor": cursor,
        }
        return InboxPage.model_validate(await self.call("approvals.pending", body))

    async def audit_trail(
        self,
        *,
        workflow_id: str | None = None,
        aggregate_id: str | None = None,
        after: int = 0,
        limit: int = 1000,
    ) -> list[AuditEntry]:
        """Decisions and lifecycle events in log order, after position ``after``."""
        body = {
            "workflow_id": workflow_id,
            "aggregate_id": aggregate_id,
            "after": after,
            "limit": limit,
        }
        return [AuditEntry.model_validate(e) for e in await self.call("audit.trail", body)]

    async def metrics(self) -> Metrics:
        """Counts by status, decision latency percentiles, approvals past their deadline."""
        return Metrics.model_validate(await self.call("metrics.get", {}))

    async def upcoming_timers(
        self, *, before: datetime | None = None, kind: str | None = None, limit: int = 100
    ) -> list[TimerInfo]:
        """What the runtime will fire, earliest first."""
        body = {"before": before.isoformat() if before else None, "kind": kind, "limit": limit}
        return [TimerInfo.model_validate(t) for t in await self.call("timers.upcoming", body)]

    async def pending_approvals(
        self, approver: str | None = None, *, groups: Iterable[str] = (), limit: int = 100
    ) -> list[InboxItem]:
        """What ``approver`` may decide, oldest first (the inbox's first page)."""
        page = await self.approval_inbox(approver, groups=groups, limit=limit)
        return page.items
