"""The Approval aggregate: a request for a human decision, its votes and outcome."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from eventsourcing.domain import event

from signoff.domain.base import SYSTEM_ACTOR, Cause, SignoffAggregate
from signoff.domain.errors import (
    AlreadyDecidedError,
    AlreadyVotedError,
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
    ) -> None:
        self.title = title
        self.description = description
        self.context = context
        self.requested_by = requested_by
        self.policy = policy
        self.deadline = deadline
        self.workflow_id = workflow_id
        self.wait_name = wait_name
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
        self._vote_cast(
            decision="approve", groups=voter_groups, metadata=dict(metadata or {}), **cause.fields()
        )
        if len(self.approvers_so_far) >= self.policy.required_approvals:
            self.lifecycle.next_status(self.id, self.status, "approve")
            merged: dict[str, Any] = {}
            for vote in self.votes:
                if vote.decision == "approve":
                    merged.update(vote.metadata)
            self._approved(approvers=self.approvers_so_far, metadata=merged, **cause.fields())

    def reject(self, cause: Cause, *, groups: Iterable[str] = ()) -> None:
        """Records ``cause.actor``'s rejection; rejects once the threshold is met
        or the quorum became unreachable."""
        voter_groups = self._check_vote(cause, groups, "reject")
        self._vote_cast(decision="reject", groups=voter_groups, metadata={}, **cause.fields())
        if len(
            self.rejecters_so_far
        ) >= self.policy.rejection_threshold or not self._quorum_reachable(self.policy):
            self.lifecycle.next_status(self.id, self.status, "reject")
            self._rejected(rejecters=self.rejecters_so_far, **cause.fields())

    def cancel(self, cause: Cause) -> None:
        """Withdraws the request; only its requester (or signoff itself) may."""
        self.lifecycle.next_status(self.id, self.status, "cancel")
        if cause.actor not in (self.requested_by, SYSTEM_ACTOR):
            raise NotRequesterError(self.id, cause.actor)
        self._cancelled(**cause.fields())

    def expire(self, cause: Cause) -> None:
        """Closes the approval undecided once its deadline has passed."""
        self.lifecycle.next_status(self.id, self.status, "expire")
        if self.deadline is None or cause.timestamp < self.deadline:
            raise NotYetDueError(self.id)
        self._expired(deadline=self.deadline, **cause.fields())

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
        self._reassigned(
            approvers=list(policy.approvers),
            groups=list(policy.groups),
            previous_approvers=list(self.policy.approvers),
            previous_groups=list(self.policy.groups),
            **cause.fields(),
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

    def _decide(self, status: str, actor: str, reason: str | None, timestamp: datetime) -> None:
        self.status = status
        self.decided_by = actor
        self.decision_reason = reason
        self.decided_at = timestamp
