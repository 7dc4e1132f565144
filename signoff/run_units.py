"""Workflow-run use cases as units of work (functions of a Session, run by the writer).

They cover what the runtime records for an activation (``RunWrite``, waits)
and what callers do to runs: start, decide, deliver events, time out, pause,
resume, terminate and restart.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from signoff import approval_units
from signoff.commands import Decide
from signoff.domain.approval import Approval
from signoff.domain.base import SYSTEM_ACTOR, Cause
from signoff.domain.errors import IllegalTransitionError, SignoffError
from signoff.domain.workflow_run import EXECUTABLE, QUEUED, WAITING, WorkflowRun
from signoff.leases import Lease
from signoff.session import Session
from signoff.views import ApprovalInfo

if TYPE_CHECKING:
    from signoff.step import ApprovalRequest

T = TypeVar("T")


@dataclass(frozen=True)
class RunSnapshot:
    """What an activation replays against (the aggregate's dicts are never mutated)."""

    id: str
    name: str
    status: str
    generation: int
    version: int
    params: dict[str, Any]
    metadata: dict[str, Any]
    steps: dict[str, dict[str, Any]]
    waits: dict[str, dict[str, Any]]
    resolutions: dict[str, dict[str, Any]]
    reports: int
    started_at: datetime

    @classmethod
    def of(cls, run: WorkflowRun) -> RunSnapshot:
        """Reads a snapshot off the aggregate (in the writer thread)."""
        return cls(
            run.id,
            run.name,
            run.status,
            run.generation,
            run.version,
            run.params,
            run.metadata,
            run.steps,
            run.waits,
            run.resolutions,
            len(run.reports),
            run.created_on,
        )


def snapshot(session: Session, run_id: str) -> RunSnapshot:
    """A unit that reads a run's snapshot, fast-forwarded with what other engines stored
    (run after the lease is taken, so that nothing newer can be written meanwhile)."""
    return RunSnapshot.of(session.get(WorkflowRun, run_id, fresh=True))


def claim(session: Session, run_id: str) -> None:
    """A unit that claims ``run_id`` for this engine when it is ready (and no live lease
    holds it): its transaction takes the lease, and the writer hands the run over."""
    run = session.get(WorkflowRun, run_id, fresh=True)
    if run.status in EXECUTABLE:
        session.ready(run)


def release(session: Session, *, lease: Lease) -> None:
    """A unit that gives up this engine's lease of a run (its activation is done)."""
    session.release(lease.run_id, lease.token)


class RunWrite(Generic[T]):
    """A unit that changes a run on behalf of one of its activations.

    The write carries the activation's lease (it commits only while the engine
    still holds the run). It refuses (and flags ``run_moved_on``) when the run
    was restarted or is no longer executable, and flags ``stale`` when the run
    changed since the activation's snapshot (so that a conflict it meets is
    the activation's news, not the workflow's error). It records the
    activation's buffered reports, applies ``change``, gives the lease up when
    the run no longer needs an engine (it waits or ended), and returns the
    change's value and a fresh snapshot.
    """

    def __init__(
        self,
        snapshot: RunSnapshot,
        token: int,
        reports: list[tuple[str, Any]],
        change: Callable[[WorkflowRun, Session, RunWrite[T]], T],
        make_cause: Callable[..., Cause],
    ) -> None:
        self.run_id = snapshot.id
        self.generation = snapshot.generation
        self.version = snapshot.version
        self.token = token
        self.reports = reports
        self.change = change
        self._make_cause = make_cause
        self._cause: Cause | None = None
        self.run_moved_on = False
        self.stale = False
        self.released = False

    def cause(self) -> Cause:
        """The cause of what the runtime records: actor ``system``, one command id and
        time for everything this write records."""
        if self._cause is None:
            self._cause = self._make_cause(SYSTEM_ACTOR)
        return self._cause

    def __call__(self, session: Session) -> tuple[T, RunSnapshot]:
        session.fence(self.run_id, self.token)
        run = session.get(WorkflowRun, self.run_id)
        self.stale = run.version != self.version
        self.released = False
        if run.generation != self.generation or run.status not in EXECUTABLE:
            self.run_moved_on = True
            raise IllegalTransitionError(self.run_id, run.status, "continue")
        for kind, value in self.reports:
            run.report(self.cause(), kind=kind, value=value)
        value = self.change(run, session, self)
        if run.status not in EXECUTABLE:
            session.release(self.run_id, self.token)
            self.released = True
        return value, RunSnapshot.of(run)


def start_wait(
    session: Session,
    run: WorkflowRun,
    write: RunWrite[Any],
    *,
    name: str,
    kind: str,
    deadline: datetime | None,
    detail: dict[str, Any],
) -> dict[str, Any] | None:
    """Starts wait ``name``; resolves it at once when its answer is already there (an
    early decision, an event sent before). Returns the resolution, if any."""
    cause = write.cause()
    if kind == "approval":
        request: ApprovalRequest = detail["request"]
        approval = _open_approval(session, run, name, request, deadline, cause)
        applied, discarded = _apply_early_decisions(run, approval, cause)
        run.start_wait(
            cause,
            name=name,
            kind=kind,
            deadline=deadline,
            detail={
                "approval_id": approval.id,
                "applied_decisions": applied,
                "discarded_decisions": discarded,
            },
        )
        approval_units.settle_run_wait(session, approval, command_id=cause.command_id)
    elif kind == "event":
        event_type = detail["type"]
        run.start_wait(cause, name=name, kind=kind, deadline=deadline, detail={"type": event_type})
        waiting = run.unconsumed_event(event_type)
        if waiting is not None:
            run.resolve_wait(cause, name=name, outcome="event", value=waiting[0])
    else:
        run.start_wait(cause, name=name, kind=kind, deadline=deadline, detail={})
    return run.resolutions.get(name)


def _open_approval(
    session: Session,
    run: WorkflowRun,
    name: str,
    request: ApprovalRequest,
    deadline: datetime | None,
    cause: Cause,
) -> Approval:
    policy = approval_units.policy_of(request.command)
    approval = Approval.request(
        approval_id=f"{run.id}:{name}:{run.generation}",
        title=request.title,
        description=request.description,
        context=request.context,
        policy=policy,
        deadline=deadline,
        workflow_id=run.id,
        wait_name=name,
        cause=Cause(request.requested_by, cause.command_id, cause.timestamp),
    )
    session.add(approval)
    return approval


def _apply_early_decisions(
    run: WorkflowRun, approval: Approval, cause: Cause
) -> tuple[int, list[dict[str, Any]]]:
    applied, discarded = 0, []
    for decision in run.decisions_for(approval.wait_name or ""):
        if approval.is_decided:
            break
        applied += 1
        vote = Cause(decision["by"], cause.command_id, cause.timestamp, decision["reason"])
        try:
            if decision["decision"] == "approve":
                approval.approve(vote, groups=decision["groups"], metadata=decision["metadata"])
            else:
                approval.reject(vote, groups=decision["groups"])
        except SignoffError as error:
            discarded.append(
                {
                    "by": decision["by"],
                    "decision": decision["decision"],
                    "error": type(error).__name__,
                    "message": str(error),
                }
            )
    return applied, discarded


# What callers do to runs -----------------------------------------------------


def decide(
    session: Session,
    run_id: str,
    decision: str,
    cmd: Decide,
    *,
    command_id: str,
    wait: str | None = None,
) -> ApprovalInfo | None:
    """Votes on the run's pending approval (``wait``: only if it is that one); keeps the
    decision for an approval wait the run has not reached yet."""
    run = session.get(WorkflowRun, run_id)
    pending = run.pending_wait()
    waiting_here = pending is not None and pending[1]["kind"] == "approval"
    if pending is not None and waiting_here and wait in (None, pending[0]):
        approval_id = pending[1]["approval_id"]
        return approval_units.decide(session, approval_id, decision, cmd, command_id=command_id)
    if not run.is_active:
        raise IllegalTransitionError(run_id, run.status, decision)
    cause = session.app.cause(cmd.by, reason=cmd.reason, command_id=command_id)
    run.receive_decision(
        cause, decision=decision, groups=cmd.groups, metadata=cmd.metadata, wait=wait
    )
    return None


def send_event(
    session: Session, run_id: str, event_type: str, payload: Any, *, actor: str, command_id: str
) -> None:
    """Delivers an event to the run; readies it when it waited for that event."""
    run = session.get(WorkflowRun, run_id)
    cause = session.app.cause(actor, command_id=command_id)
    run.receive_event(cause, event_type=event_type, payload=payload)
    pending = run.pending_wait()
    if pending is not None and pending[1]["kind"] == "event" and pending[1]["type"] == event_type:
        waiting = run.unconsumed_event(event_type)
        if waiting is not None:
            run.resolve_wait(cause, name=pending[0], outcome="event", value=waiting[0])
            _ready_if_queued(session, run)


def time_out(session: Session, run_id: str, name: str, *, command_id: str) -> None:
    """Ends wait ``name`` whose deadline passed, readying the run.

    Does nothing when the wait was resolved meanwhile (timers may fire twice).
    """
    run = session.get(WorkflowRun, run_id, fresh=True)
    wait = run.waits.get(name)
    if not run.is_active or wait is None or name in run.resolutions:
        return
    if wait["kind"] == "approval":  # the approval's own timer applies its on_timeout policy
        return
    now = session.app.clock.now()
    if wait["deadline"] is None or now < wait["deadline"]:
        return
    cause = session.app.cause(SYSTEM_ACTOR, reason="deadline passed", command_id=command_id)
    outcome = "timeout" if wait["kind"] == "event" else "elapsed"
    run.resolve_wait(cause, name=name, outcome=outcome)
    _ready_if_queued(session, run)


def retry_due(session: Session, run_id: str, *, command_id: str) -> None:
    """Readies a run whose step retry is due."""
    run = session.get(WorkflowRun, run_id, fresh=True)
    retry_at = run.pending_retry()
    now = session.app.clock.now()
    if run.status != WAITING or run.current_wait is not None or retry_at is None or now < retry_at:
        return
    run.wake(session.app.cause(SYSTEM_ACTOR, reason="step retry due", command_id=command_id))
    _ready_if_queued(session, run)


def _ready_if_queued(session: Session, run: WorkflowRun) -> None:
    if run.status == QUEUED:
        session.ready(run)


def control(session: Session, run_id: str, action: str, cause: Cause) -> str:
    """Pauses, resumes, terminates or restarts a run; returns its new status.

    Terminating or restarting withdraws the pending approval (actor ``system``).
    """
    run = session.get(WorkflowRun, run_id)
    if action in ("terminate", "restart"):
        pending = run.pending_wait()
        if pending is not None and pending[1]["kind"] == "approval":
            approval = session.get(Approval, pending[1]["approval_id"])
            if not approval.is_decided:
                system = Cause(SYSTEM_ACTOR, cause.command_id, cause.timestamp, f"run {action}d")
                approval.cancel(system)
    getattr(run, action)(cause)
    _ready_if_queued(session, run)
    return run.status
