"""The Approval aggregate: a request for a human decision, its votes and outcome."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from eventsourcing.domain import event

from signoff.domain.base import SYSTEM_ACTOR, Cause, SignoffAggregate
from signoff.domain.errors import (
    AlreadyDecidedError,
    AlreadyVotedError,
    ConflictError,
    DeadlinePassedError,
    InvalidInputError,
    NotAnApproverError,
    NotRequesterError,
    NotYetDueError,
    SelfApprovalError,
)
from signoff.domain.lifecycle import Lifecycle
from signoff.domain.policy import ApprovalPolicy

PENDING, APPROVED, REJECTED, EXPIRED, CANCELLED = (
    "pending",
    "approved",
    "rejected",
    "expired",
    "cancelled",
)

APPROVAL_LIFECYCLE = Lifecycle(
    "approval",
    states=[PENDING, APPROVED, REJECTED, EXPIRED, CANCELLED],
    initial=PENDING,
    terminal=[APPROVED, REJECTED, EXPIRED, CANCELLED],
    moves=[
        ("vote", PENDING, PENDING),
        ("approve", PENDING, APPROVED),
        ("reject", PENDING, REJECTED),
        ("expire", PENDING, EXPIRED),
        ("cancel", PENDING, CANCELLED),
        ("reassign", PENDING, PENDING),
        ("remind", PENDING, PENDING),
        ("escalate", PENDING, PENDING),
    ],
    error=AlreadyDecidedError,
)

Decision = Literal["approve", "reject"]


@dataclass(frozen=True)
class Vote:
    """One person's recorded vote."""

    voter: str
    decision: Decision
    reason: str | None
    at: datetime
    groups: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)


class Approval(SignoffAggregate):
    """A request for a decision: who asked, what for, who may decide, and the votes.

    Public methods are commands: they check the lifecycle guard and the
    policy, work out derived values, then call private ``@event`` methods
    that only assign, so that replay is pure.
    """

    lifecycle = APPROVAL_LIFECYCLE

    @classmethod
    def request(
        cls,
        *,
        approval_id: str,
        title: str,
        description: str,
        context: dict[str, Any],
        policy: ApprovalPolicy,
        deadline: datetime | None,
        workflow_id: str | None,
        cause: Cause,
        wait_name: str | None = None,
    ) -> Approval:
        """Opens a new pending approval requested by ``cause.actor``."""
        try:
            policy.check_satisfiable(cause.actor)
        except ValueError as error:
            raise InvalidInputError(str(error)) from None
        if deadline is not None and deadline <= cause.timestamp:
            raise InvalidInputError("the deadline must lie in the future")
        if policy.on_timeout != "expire" and deadline is None:
            raise InvalidInputError(f"on_timeout={policy.on_timeout!r} needs a timeout")
        for level in policy.escalation:
            try:
                policy.model_copy(
                    update={"approvers": level.approvers, "groups": level.groups}
                ).check_satisfiable(cause.actor)
            except ValueError as error:
                raise InvalidInputError(f"escalation level: {error}") from None
        now = cause.timestamp
        return cls(
            id=approval_id,
            title=title,
            description=description,
            context=context,
            requested_by=cause.actor,
            policy=policy,
            deadline=deadline,
            workflow_id=workflow_id,
            wait_name=wait_name,
            next_reminder_at=_after(now, policy.remind_every, deadline),
            escalate_at=_after(now, policy.escalate_after, None),
            **cause.fields(),
        )

    @event("Requested")
    def __init__(
        self,
        *,
        id: str,
        title: str,
        description: str,
        context: dict[str, Any],
        requested_by: str,
        policy: ApprovalPolicy,
        deadline: datetime | None,
        workflow_id: str | None,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
        wait_name: str | None = None,
        next_reminder_at: datetime | None = None,
        escalate_at: datetime | None = None,
    ) -> None:
        self.title = title
        self.description = description
        self.context = context
        self.requested_by = requested_by
        self.policy = policy
        self.deadline = deadline
        self.workflow_id = workflow_id
        self.wait_name = wait_name
        self.next_reminder_at = next_reminder_at
        self.escalate_at = escalate_at
        self.reminders = 0
        self.escalation_level = 0
        self.status = PENDING
        self.votes: list[Vote] = []
        self.decided_at: datetime | None = None
        self.decided_by: str | None = None
        self.decision_reason: str | None = None
        self.metadata: dict[str, Any] = {}

    # Queries ---------------------------------------------------------------

    @property
    def approvers_so_far(self) -> list[str]:
        """People whose approve votes count towards the quorum, in vote order."""
        return [v.voter for v in self.votes if v.decision == "approve"]

    @property
    def rejecters_so_far(self) -> list[str]:
        """People who voted to reject, in vote order."""
        return [v.voter for v in self.votes if v.decision == "reject"]

    @property
    def approvals_needed(self) -> int:
        """Approve votes still missing for the quorum."""
        return max(0, self.policy.required_approvals - len(self.approvers_so_far))

    @property
    def is_decided(self) -> bool:
        """Tells whether the approval reached a final status."""
        return self.lifecycle.is_terminal(self.status)

    def can_vote(
        self, person: str, groups: Iterable[str] = (), *, now: datetime | None = None
    ) -> bool:
        """Tells whether ``person`` could vote (at ``now``): a UI's "show the buttons"."""
        return (
            not self.is_decided
            and (now is None or self.deadline is None or now < self.deadline)
            and person != self.requested_by
            and self.policy.allows(person, groups)
            and all(v.voter != person for v in self.votes)
        )

    # Commands --------------------------------------------------------------

    def approve(self, cause: Cause, *, groups: Iterable[str] = (), metadata: Any = None) -> None:
        """Records ``cause.actor``'s approval; approves once the quorum is reached."""
        voter_groups = self._check_vote(cause, groups, "approve")
        self._emit(
            "VoteCast",
            cause,
            decision="approve",
            groups=voter_groups,
            metadata=dict(metadata or {}),
        )
        if len(self.approvers_so_far) >= self.policy.required_approvals:
            self.lifecycle.next_status(self.id, self.status, "approve")
            merged: dict[str, Any] = {}
            for vote in self.votes:
                if vote.decision == "approve":
                    merged.update(vote.metadata)
            self._emit("Approved", cause, approvers=self.approvers_so_far, metadata=merged)

    def reject(self, cause: Cause, *, groups: Iterable[str] = ()) -> None:
        """Records ``cause.actor``'s rejection; rejects once the threshold is met
        or the quorum became unreachable."""
        voter_groups = self._check_vote(cause, groups, "reject")
        self._emit("VoteCast", cause, decision="reject", groups=voter_groups, metadata={})
        if len(
            self.rejecters_so_far
        ) >= self.policy.rejection_threshold or not self._quorum_reachable(self.policy):
            self.lifecycle.next_status(self.id, self.status, "reject")
            self._emit("Rejected", cause, rejecters=self.rejecters_so_far)

    def cancel(self, cause: Cause) -> None:
        """Withdraws the request; only its requester (or signoff itself) may."""
        self.lifecycle.next_status(self.id, self.status, "cancel")
        if cause.actor not in (self.requested_by, SYSTEM_ACTOR):
            raise NotRequesterError(self.id, cause.actor)
        self._emit("Cancelled", cause)

    def expire(self, cause: Cause) -> None:
        """Closes the approval undecided once its deadline has passed."""
        self.lifecycle.next_status(self.id, self.status, "expire")
        if self.deadline is None or cause.timestamp < self.deadline:
            raise NotYetDueError(self.id)
        self._emit("Expired", cause, deadline=self.deadline)

    def time_out(self, cause: Cause) -> None:
        """Applies the policy's ``on_timeout`` once the deadline has passed: expire,
        reject, approve (recorded with the caller's actor, ``system``) or escalate."""
        self.lifecycle.next_status(self.id, self.status, "expire")
        if self.deadline is None or cause.timestamp < self.deadline:
            raise NotYetDueError(self.id)
        action = self.policy.on_timeout
        if action == "escalate" and self.escalation_level < len(self.policy.escalation):
            self.escalate(cause, on_timeout=True)
        elif action == "reject":
            self._emit("Rejected", cause, rejecters=[])
        elif action == "approve":
            self._emit("Approved", cause, approvers=[], metadata={})
        else:
            self._emit("Expired", cause, deadline=self.deadline)

    def remind(self, cause: Cause) -> None:
        """Records a reminder to the approvers (and when the next one is due)."""
        self.lifecycle.next_status(self.id, self.status, "remind")
        if self.next_reminder_at is None or cause.timestamp < self.next_reminder_at:
            raise NotYetDueError(self.id)
        self._emit(
            "Reminded",
            cause,
            recipients=[*self.policy.approvers, *self.policy.groups],
            count=self.reminders + 1,
            next_reminder_at=_after(cause.timestamp, self.policy.remind_every, self.deadline),
        )

    def escalate(self, cause: Cause, *, on_timeout: bool = False) -> None:
        """Hands the approval to the next level of the escalation chain, with its new
        deadline; recorded with who, why and to whom."""
        self.lifecycle.next_status(self.id, self.status, "escalate")
        chain = self.policy.escalation
        if self.escalation_level >= len(chain):
            raise ConflictError(f"approval {self.id!r} has no escalation level left")
        if not on_timeout and (self.escalate_at is None or cause.timestamp < self.escalate_at):
            raise NotYetDueError(self.id)
        level = chain[self.escalation_level]
        deadline = self.deadline
        if level.timeout is not None:
            deadline = cause.timestamp + timedelta(seconds=level.timeout)
        elif on_timeout and deadline is not None:
            deadline = cause.timestamp + (deadline - self.created_on)  # the original timeout
        more = self.escalation_level + 1 < len(chain)
        self._emit(
            "Escalated",
            cause,
            level=self.escalation_level + 1,
            approvers=list(level.approvers),
            groups=list(level.groups),
            previous_approvers=list(self.policy.approvers),
            previous_groups=list(self.policy.groups),
            deadline=deadline,
            escalate_at=_after(cause.timestamp, self.policy.escalate_after, None) if more else None,
        )

    def reassign(
        self,
        cause: Cause,
        *,
        approvers: Iterable[str] | None = None,
        groups: Iterable[str] | None = None,
        actor_groups: Iterable[str] = (),
    ) -> None:
        """Hands the decision to other approvers or groups (delegation).

        The requester, signoff itself, or a currently allowed approver may
        reassign. Votes already cast stay recorded and keep counting.
        """
        self.lifecycle.next_status(self.id, self.status, "reassign")
        actor = cause.actor
        if actor not in (self.requested_by, SYSTEM_ACTOR) and not self.policy.allows(
            actor, actor_groups
        ):
            raise NotAnApproverError(self.id, actor)
        if approvers is None and groups is None:
            raise InvalidInputError("reassign needs new approvers, new groups or both")
        try:
            policy = ApprovalPolicy.model_validate(
                {
                    **self.policy.model_dump(),
                    "approvers": tuple(self.policy.approvers if approvers is None else approvers),
                    "groups": tuple(self.policy.groups if groups is None else groups),
                }
            )
            policy.check_satisfiable(self.requested_by)
        except ValueError as error:
            raise InvalidInputError(str(error)) from None
        if policy.is_open and not self.policy.is_open:
            raise InvalidInputError("reassign must name approvers or groups, not open it to anyone")
        if not self._quorum_reachable(policy):
            raise InvalidInputError("after this reassignment the quorum could not be reached")
        self._emit(
            "Reassigned",
            cause,
            approvers=list(policy.approvers),
            groups=list(policy.groups),
            previous_approvers=list(self.policy.approvers),
            previous_groups=list(self.policy.groups),
        )

    # Rules -----------------------------------------------------------------

    def _check_vote(self, cause: Cause, groups: Iterable[str], decision: Decision) -> list[str]:
        self.lifecycle.next_status(self.id, self.status, "vote")
        if self.deadline is not None and cause.timestamp >= self.deadline:
            raise DeadlinePassedError(self.id)
        voter = cause.actor
        if voter == self.requested_by:
            raise SelfApprovalError(self.id, voter)
        voter_groups = sorted(set(groups))
        if not self.policy.allows(voter, voter_groups):
            raise NotAnApproverError(self.id, voter)
        for vote in self.votes:
            if vote.voter == voter:
                raise AlreadyVotedError(self.id, voter, vote.decision)
        return voter_groups

    def _quorum_reachable(self, policy: ApprovalPolicy) -> bool:
        if policy.eligible_count(self.requested_by) is None:
            return True
        voted = {v.voter for v in self.votes}
        still_eligible = [p for p in policy.approvers if p != self.requested_by and p not in voted]
        return len(self.approvers_so_far) + len(still_eligible) >= policy.required_approvals

    # Events (assignment only) ----------------------------------------------

    @event("VoteCast")
    def _vote_cast(
        self,
        *,
        decision: Decision,
        groups: list[str],
        metadata: dict[str, Any],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        vote = Vote(actor, decision, reason, timestamp, tuple(groups), metadata)
        self.votes = [*self.votes, vote]

    @event("Approved")
    def _approved(
        self,
        *,
        approvers: list[str],
        metadata: dict[str, Any],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self._decide(APPROVED, actor, reason, timestamp)
        self.metadata = metadata

    @event("Rejected")
    def _rejected(
        self,
        *,
        rejecters: list[str],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self._decide(REJECTED, actor, reason, timestamp)

    @event("Cancelled")
    def _cancelled(
        self, *, actor: str, reason: str | None, command_id: str, timestamp: datetime
    ) -> None:
        self._decide(CANCELLED, actor, reason, timestamp)

    @event("Expired")
    def _expired(
        self,
        *,
        deadline: datetime,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self._decide(EXPIRED, actor, reason, timestamp)

    @event("Reassigned")
    def _reassigned(
        self,
        *,
        approvers: list[str],
        groups: list[str],
        previous_approvers: list[str],
        previous_groups: list[str],
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.policy = self.policy.model_copy(
            update={"approvers": tuple(approvers), "groups": tuple(groups)}
        )

    @event("Reminded")
    def _reminded(
        self,
        *,
        recipients: list[str],
        count: int,
        next_reminder_at: datetime | None,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.reminders = count
        self.next_reminder_at = next_reminder_at

    @event("Escalated")
    def _escalated(
        self,
        *,
        level: int,
        approvers: list[str],
        groups: list[str],
        previous_approvers: list[str],
        previous_groups: list[str],
        deadline: datetime | None,
        escalate_at: datetime | None,
        actor: str,
        reason: str | None,
        command_id: str,
        timestamp: datetime,
    ) -> None:
        self.escalation_level = level
        self.policy = self.policy.model_copy(
            update={"approvers": tuple(approvers), "groups": tuple(groups)}
        )
        self.deadline = deadline
        self.escalate_at = escalate_at
        if self.next_reminder_at is not None and deadline is not None:
            self.next_reminder_at = min(self.next_reminder_at, deadline)

    def _decide(self, status: str, actor: str, reason: str | None, timestamp: datetime) -> None:
        self.status = status
        self.next_reminder_at = None
        self.escalate_at = None
        self.decided_by = actor
        self.decision_reason = reason
        self.decided_at = timestamp


def _after(now: datetime, seconds: float | None, limit: datetime | None) -> datetime | None:
    """``now`` plus ``seconds``, or None when there is no period or it falls past ``limit``."""
    if seconds is None:
        return None
    when = now + timedelta(seconds=seconds)
    return None if limit is not None and when >= limit else when
