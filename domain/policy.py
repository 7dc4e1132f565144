"""Who may decide an approval, and how many of them it takes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

OnTimeout = Literal["expire", "reject", "approve", "escalate"]


class EscalationLevel(BaseModel):
    """Who decides after an escalation, and how long they get."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    approvers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    timeout: float | None = Field(default=None, gt=0)
    """Seconds the new deciders get (a new deadline from the escalation); None keeps it."""

    @model_validator(mode="after")
    def _names_someone(self) -> EscalationLevel:
        if not self.approvers and not self.groups:
            raise ValueError("an escalation level names approvers or groups")
        return self


class ApprovalPolicy(BaseModel):
    """The decision rules of one approval.

    With no approvers and no groups, anyone but the requester may vote. One
    person has one vote. The approval is approved once ``required_approvals``
    distinct allowed people approve, and rejected once ``rejection_threshold``
    reject (by default the first rejection vetoes), or once too few eligible
    people are left for the quorum to be reachable.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    required_approvals: int = Field(default=1, ge=1, le=1000)
    approvers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    rejection_threshold: int = Field(default=1, ge=1, le=1000)
    on_timeout: OnTimeout = "expire"
    """What the deadline does: expire it (a workflow's wait returns None), reject it,
    approve it (explicit opt-in; recorded with actor ``system``) or escalate it."""
    remind_every: float | None = Field(default=None, gt=0)
    """Seconds between reminders while it is pending."""
    escalate_after: float | None = Field(default=None, gt=0)
    """Seconds after the request (and after each escalation) to escalate to the next level."""
    escalation: tuple[EscalationLevel, ...] = ()
    """The escalation chain: level 1, 2, ... in order."""

    @model_validator(mode="after")
    def _check_times(self) -> ApprovalPolicy:
        if (self.escalate_after is not None or self.on_timeout == "escalate") and not (
            self.escalation
        ):
            raise ValueError("escalating needs an escalation chain (escalation=[...])")
        return self

    @model_validator(mode="after")
    def _check_names(self) -> ApprovalPolicy:
        for name in (*self.approvers, *self.groups):
            if not name.strip():
                raise ValueError("approver and group names must not be blank")
        if len(set(self.approvers)) != len(self.approvers):
            raise ValueError("approvers must not repeat")
        if len(set(self.groups)) != len(self.groups):
            raise ValueError("groups must not repeat")
        return self

    @property
    def is_open(self) -> bool:
        """Tells whether anyone (but the requester) may vote."""
        return not self.approvers and not self.groups

    def allows(self, person: str, groups: Iterable[str] = ()) -> bool:
        """Tells whether ``person`` (member of ``groups``) is an allowed approver."""
        if self.is_open or person in self.approvers:
            return True
        return not set(self.groups).isdisjoint(groups)

    def eligible_count(self, requester: str) -> int | None:
        """How many people could ever vote, or None when groups make it unknown."""
        if self.is_open or self.groups:
            return None
        return sum(1 for person in self.approvers if person != requester)

    def check_satisfiable(self, requester: str) -> None:
        """Raises ValueError when the quorum could never be reached."""
        eligible = self.eligible_count(requester)
        if eligible is not None and eligible < self.required_approvals:
            raise ValueError(
                f"{self.required_approvals} approvals required but only {eligible} "
                f"allowed approver(s) besides the requester"
            )
