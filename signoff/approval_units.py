"""Approval use cases as units of work: functions of a Session, run by the writer.

Each loads what it needs, runs one domain command and returns plain data;
the writer saves the session in one transaction. A decision that settles an
approval belonging to a workflow run also resolves the run's wait, in the
same transaction, and readies the run (which that transaction claims for
this engine when it executes the workflow).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from signoff.commands import Cancel, Decide, Reassign, RequestApproval
from signoff.domain.approval import APPROVED, EXPIRED, REJECTED, Approval
from signoff.domain.base import SYSTEM_ACTOR, Cause
from signoff.domain.errors import InvalidInputError, NotFoundError
from signoff.domain.policy import ApprovalPolicy, EscalationLevel
from signoff.domain.workflow_run import WorkflowRun
from signoff.session import Session
from signoff.views import ApprovalInfo

MakeCause = Callable[..., Cause]


def policy_of(cmd: RequestApproval) -> ApprovalPolicy:
    """The policy a request asks for (refused with InvalidInputError when inconsistent)."""

    def seconds(duration: timedelta | None) -> float | None:
        return duration.total_seconds() if duration is not None else None

    try:
        return ApprovalPolicy(
            required_approvals=cmd.required_approvals,
            approvers=tuple(cmd.approvers),
            groups=tuple(cmd.groups),
            rejection_threshold=cmd.rejection_threshold,
            on_timeout=cmd.on_timeout,
            remind_every=seconds(cmd.remind_every),
            escalate_after=seconds(cmd.escalate_after),
            escalation=tuple(
                EscalationLevel(
                    approvers=tuple(level.approvers),
                    groups=tuple(level.groups),
                    timeout=seconds(level.timeout),
                )
                for level in cmd.escalation
            ),
        )
    except ValueError as error:
        raise InvalidInputError(str(error).splitlines()[-1].strip()) from None


def request(session: Session, cmd: RequestApproval, *, approval_id: str, command_id: str) -> str:
    """Opens an approval; returns its id."""
    cause = session.app.cause(cmd.requested_by, command_id=command_id)
    approval = Approval.request(
        approval_id=approval_id,
        title=cmd.title,
        description=cmd.description,
        context=dict(cmd.context),
        policy=policy_of(cmd),
        deadline=cause.timestamp + cmd.timeout if cmd.timeout else None,
        workflow_id=None,
        cause=cause,
    )
    session.add(approval)
    return approval.id


def decide(
    session: Session, approval_id: str, decision: str, cmd: Decide, *, command_id: str
) -> ApprovalInfo:
    """Casts a vote; when it settles a workflow's approval, resolves the run's wait too."""
    approval = session.get(Approval, approval_id)
    cause = session.app.cause(cmd.by, reason=cmd.reason, command_id=command_id)
    if decision == "approve":
        approval.approve(cause, groups=cmd.groups, metadata=cmd.metadata)
    else:
        approval.reject(cause, groups=cmd.groups)
    resume_run(session, approval, command_id=command_id)
    return ApprovalInfo.of(approval)


def cancel(session: Session, approval_id: str, cmd: Cancel, *, command_id: str) -> ApprovalInfo:
    """Withdraws a pending approval."""
    approval = session.get(Approval, approval_id)
    approval.cancel(session.app.cause(cmd.by, reason=cmd.reason, command_id=command_id))
    resume_run(session, approval, command_id=command_id)
    return ApprovalInfo.of(approval)


def reassign(session: Session, approval_id: str, cmd: Reassign, *, command_id: str) -> ApprovalInfo:
    """Hands a pending approval to other approvers or groups."""
    approval = session.get(Approval, approval_id)
    approval.reassign(
        session.app.cause(cmd.by, reason=cmd.reason, command_id=command_id),
        approvers=cmd.approvers,
        groups=cmd.groups,
        actor_groups=cmd.by_groups,
    )
    return ApprovalInfo.of(approval)


def expire(session: Session, approval_id: str, *, command_id: str) -> ApprovalInfo:
    """Closes an approval whose deadline passed (signoff acts as ``system``)."""
    approval = session.get(Approval, approval_id)
    approval.expire(
        session.app.cause(SYSTEM_ACTOR, reason="deadline passed", command_id=command_id)
    )
    resume_run(session, approval, command_id=command_id)
    return ApprovalInfo.of(approval)


def on_timer(session: Session, approval_id: str, key: str, *, command_id: str) -> None:
    """Does what an approval's timer asks when it is due: time out (per the policy),
    remind or escalate. Tells the waiting run, if any, and readies it once decided.

    Does nothing when the timer is no longer due (timers may fire twice).
    """
    approval = session.get(Approval, approval_id, fresh=True)
    if approval.is_decided:
        return
    now = session.app.clock.now()
    due = {
        "deadline": approval.deadline,
        "remind": approval.next_reminder_at,
        "escalate": approval.escalate_at,
    }.get(key)
    if due is None or now < due:
        return
    reason = {
        "deadline": "deadline passed",
        "remind": "still pending",
        "escalate": "not decided in time",
    }[key]
    cause = session.app.cause(SYSTEM_ACTOR, reason=reason, command_id=command_id)
    level, reminders = approval.escalation_level, approval.reminders
    if key == "deadline":
        approval.time_out(cause)
    elif key == "remind":
        approval.remind(cause)
    else:
        approval.escalate(cause)
    if approval.escalation_level != level or approval.reminders != reminders:
        note_run_wait(session, approval, cause)
    resume_run(session, approval, command_id=command_id)


def note_run_wait(session: Session, approval: Approval, cause: Cause) -> None:
    """Tells the run that waits on ``approval`` about a reminder or an escalation."""
    if approval.workflow_id is None or approval.wait_name is None:
        return
    try:
        run = session.get(WorkflowRun, approval.workflow_id)
    except NotFoundError:
        return
    name = approval.wait_name
    if run.is_active and name in run.waits and name not in run.resolutions:
        run.note_wait(
            cause,
            name=name,
            detail={
                "escalation_level": approval.escalation_level,
                "reminders": approval.reminders,
                "approvers": list(approval.policy.approvers),
                "groups": list(approval.policy.groups),
                "deadline": approval.deadline,
            },
        )


def resume_run(session: Session, approval: Approval, *, command_id: str) -> None:
    """Resolves the run wait an approval belongs to, once it is decided, and readies the
    run when that was what it waited for."""
    settled = settle_run_wait(session, approval, command_id=command_id)
    if settled and approval.workflow_id is not None:
        session.ready(session.get(WorkflowRun, approval.workflow_id))


def settle_run_wait(session: Session, approval: Approval, *, command_id: str) -> bool:
    """Resolves the run wait an approval belongs to, once the approval is decided.

    Returns:
        Whether the run became ready to go on.
    """
    if not approval.is_decided or approval.workflow_id is None or approval.wait_name is None:
        return False
    try:
        run = session.get(WorkflowRun, approval.workflow_id)
    except NotFoundError:
        return False
    name = approval.wait_name
    wait = run.waits.get(name)
    if not run.is_active or wait is None or wait.get("approval_id") != approval.id:
        return False
    if name in run.resolutions:
        return False
    outcome = {APPROVED: "approved", REJECTED: "rejected", EXPIRED: "timeout"}.get(
        approval.status, "rejected"
    )
    value = {
        "approval_id": approval.id,
        "metadata": approval.metadata,
        "approvers": approval.approvers_so_far,
    }
    actor = approval.decided_by or SYSTEM_ACTOR
    cause = Cause(actor, command_id, session.app.clock.now(), approval.decision_reason)
    run.resolve_wait(cause, name=name, outcome=outcome, value=value)
    return run.status == "queued"
