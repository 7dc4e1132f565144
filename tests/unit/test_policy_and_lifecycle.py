"""Approval policies and the lifecycle guards read off the shared transitions machines."""

from __future__ import annotations

import pytest

from signoff.domain import APPROVAL_LIFECYCLE, RUN_LIFECYCLE, SCHEDULE_LIFECYCLE, ApprovalPolicy
from signoff.domain.errors import AlreadyDecidedError, IllegalTransitionError


def test_an_open_policy_allows_anyone():
    assert ApprovalPolicy().allows("anybody")


def test_a_restricted_policy_allows_listed_people_and_group_members():
    policy = ApprovalPolicy(approvers=("alice",), groups=("finance",))

    assert policy.allows("alice")
    assert policy.allows("bob", ["finance", "ops"])
    assert not policy.allows("bob", ["ops"])


def test_an_unsatisfiable_quorum_is_detected():
    policy = ApprovalPolicy(required_approvals=2, approvers=("alice", "carol"))

    with pytest.raises(ValueError, match="2 approvals required"):
        policy.check_satisfiable("carol")
    ApprovalPolicy(required_approvals=2, approvers=("alice",), groups=("x",)).check_satisfiable("c")


@pytest.mark.parametrize(
    "bad",
    [{"required_approvals": 0}, {"approvers": ("a", "a")}, {"groups": (" ",)}, {"unknown": 1}],
)
def test_invalid_policies_are_refused(bad: dict[str, object]):
    with pytest.raises(ValueError, match="validation error"):
        ApprovalPolicy.model_validate(bad)


def test_decided_approvals_refuse_every_move_with_already_decided():
    for status in ("approved", "rejected", "expired", "cancelled"):
        assert APPROVAL_LIFECYCLE.triggers(status) == ()
        with pytest.raises(AlreadyDecidedError):
            APPROVAL_LIFECYCLE.next_status("a1", status, "vote")


def test_a_pending_approval_offers_its_commands():
    assert set(APPROVAL_LIFECYCLE.triggers("pending")) == {
        "vote",
        "approve",
        "reject",
        "expire",
        "cancel",
        "reassign",
        "remind",
        "escalate",
    }


def test_run_moves_follow_the_lifecycle():
    assert RUN_LIFECYCLE.next_status("r", "queued", "record") == "running"
    assert RUN_LIFECYCLE.next_status("r", "waiting", "resolve") == "waiting"
    assert RUN_LIFECYCLE.next_status("r", "waiting", "wake") == "queued"
    assert RUN_LIFECYCLE.next_status("r", "complete", "restart") == "queued"
    with pytest.raises(IllegalTransitionError) as caught:
        RUN_LIFECYCLE.next_status("r", "complete", "record")
    assert (caught.value.status, caught.value.command) == ("complete", "record")


def test_schedule_terminal_statuses_are_final():
    for status in ("finished", "cancelled"):
        assert SCHEDULE_LIFECYCLE.is_terminal(status)
        assert SCHEDULE_LIFECYCLE.triggers(status) == ()
