"""The Engine's workflow commands and queries (a mixin, to keep engine.py about wiring)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from signoff import run_units
from signoff.application import SignoffApplication
from signoff.commands import Control, Decide, SendEvent, StartWorkflow, validate
from signoff.domain.base import Cause
from signoff.domain.errors import InvalidInputError, UnknownWorkflowError
from signoff.domain.workflow_run import WorkflowRun
from signoff.session import Session
from signoff.views import ApprovalInfo, WorkflowInfo
from signoff.workflow import Workflow

T = TypeVar("T")

API_ACTOR = "api"
"""The actor recorded for run controls and events sent without a named person."""


class WorkflowCommands:
    """Starting, deciding, signalling, controlling and listing workflow runs."""

    workflows: dict[str, type[Workflow]]
    _ids: Callable[[], str]

    async def _write(self, unit: Callable[[Session], T]) -> T:
        raise NotImplementedError

    async def _read(self, use_case: Callable[[SignoffApplication], T]) -> T:
        raise NotImplementedError

    async def run_workflow(
        self,
        name: str,
        params: Mapping[str, Any] | Any = None,
        *,
        id: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        by: str = API_ACTOR,
    ) -> str:
        """Starts a run of a registered workflow and returns its id.

        Args:
            name: the workflow's ``name``.
            params: the run's input; validated by the workflow's ``params_model``
                when it declares one (bad params are refused before anything is stored).
            id: the run's id (default: a new one); an id already used is an error.
            metadata: labels for listing and filtering runs.
            by: who starts it (the actor of the ``Started`` event).
        """
        if hasattr(params, "model_dump"):
            params = params.model_dump(mode="json")
        cmd = validate(
            StartWorkflow,
            {
                "name": name,
                "params": {} if params is None else params,
                "id": id,
                "metadata": {} if metadata is None else metadata,
                "by": by,
            },
        )
        workflow = self.workflows.get(cmd.name)
        if workflow is None:
            raise UnknownWorkflowError(cmd.name)
        checked = dict(cmd.params)
        if workflow.params_model is not None:
            try:
                checked = workflow.params_model.model_validate(checked).model_dump(mode="json")
            except ValidationError as error:
                raise InvalidInputError(
                    f"invalid params for {cmd.name!r}: {error.error_count()} error(s): "
                    + "; ".join(e["msg"] for e in error.errors(include_url=False))
                ) from None
        run_id = cmd.id or self._ids()
        command_id = self._ids()

        def start(session: Session) -> str:
            cause = session.app.cause(cmd.by, command_id=command_id)
            run = WorkflowRun.start(
                run_id=run_id,
                name=cmd.name,
                params=checked,
                metadata=dict(cmd.metadata),
                cause=cause,
            )
            session.add(run, check_store=cmd.id is not None)
            session.ready(run)
            return run.id

        return await self._write(start)

    async def approve_workflow(
        self,
        workflow_id: str,
        *,
        by: str,
        reason: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        groups: Iterable[str] = (),
        wait: str | None = None,
    ) -> ApprovalInfo | None:
        """Approves the run's pending approval (as one vote of its quorum).

        A run that has not reached an approval yet keeps the decision for its first
        one; name ``wait`` to decide ahead for a later approval gate.

        Returns:
            The approval as it now stands, or ``None`` when the run has not reached
            its approval yet: the decision is then kept and applied there.
        """
        cmd = validate(
            Decide,
            {
                "by": by,
                "reason": reason,
                "metadata": {} if metadata is None else metadata,
                "groups": list(groups),
            },
        )
        return await self._decide_run(workflow_id, "approve", cmd, wait)

    async def reject_workflow(
        self,
        workflow_id: str,
        *,
        by: str,
        reason: str | None = None,
        groups: Iterable[str] = (),
        wait: str | None = None,
    ) -> ApprovalInfo | None:
        """Rejects the run's pending approval; its ``wait_for_approval`` raises
        ``ApprovalRejected``. Kept for later, like ``approve_workflow``."""
        cmd = validate(Decide, {"by": by, "reason": reason, "groups": list(groups)})
        return await self._decide_run(workflow_id, "reject", cmd, wait)

    async def _decide_run(
        self, workflow_id: str, decision: str, cmd: Decide, wait: str | None
    ) -> ApprovalInfo | None:
        command_id = self._ids()
        return await self._write(
            lambda s: run_units.decide(
                s, workflow_id, decision, cmd, command_id=command_id, wait=wait
            )
        )

    async def send_event(
        self,
        workflow_id: str,
        type: str,
        payload: Any = None,
        *,
        by: str = API_ACTOR,
    ) -> None:
        """Delivers an event to the run's ``step.wait_for_event`` (now or when it gets there)."""
        cmd = validate(SendEvent, {"type": type, "payload": payload, "by": by})
        command_id = self._ids()
        await self._write(
            lambda s: run_units.send_event(
                s, workflow_id, cmd.type, cmd.payload, actor=cmd.by, command_id=command_id
            )
        )

    async def _control(
        self, workflow_id: str, action: str, by: str, reason: str | None
    ) -> WorkflowInfo:
        cmd = validate(Control, {"by": by, "reason": reason})
        command_id = self._ids()

        def act(session: Session) -> WorkflowInfo:
            cause: Cause = session.app.cause(cmd.by, reason=cmd.reason, command_id=command_id)
            run_units.control(session, workflow_id, action, cause)
            return WorkflowInfo.of(session.get(WorkflowRun, workflow_id))

        return await self._write(act)

    async def terminate_workflow(
        self, workflow_id: str, *, by: str = API_ACTOR, reason: str | None = None
    ) -> WorkflowInfo:
        """Stops a run for good; its pending approval is withdrawn."""
        return await self._control(workflow_id, "terminate", by, reason)

    async def pause_workflow(
        self, workflow_id: str, *, by: str = API_ACTOR, reason: str | None = None
    ) -> WorkflowInfo:
        """Holds a run: decisions and events are still recorded, nothing executes."""
        return await self._control(workflow_id, "pause", by, reason)

    async def resume_workflow(
        self, workflow_id: str, *, by: str = API_ACTOR, reason: str | None = None
    ) -> WorkflowInfo:
        """Lets a paused run go on."""
        return await self._control(workflow_id, "resume", by, reason)

    async def restart_workflow(
        self, workflow_id: str, *, by: str = API_ACTOR, reason: str | None = None
    ) -> WorkflowInfo:
        """Runs the workflow again from the start with the same params (history is kept)."""
        return await self._control(workflow_id, "restart", by, reason)

    async def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        """The run's status, params, result, error, metadata, progress and timestamps."""
        return await self._read(lambda app: WorkflowInfo.of(app.load(WorkflowRun, workflow_id)))
