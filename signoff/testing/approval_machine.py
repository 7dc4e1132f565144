"""A hypothesis state machine that drives random approval commands through a real store.

Every command goes twice: through the application service (and so the event
store), and onto a live Approval kept in memory that never touches the
store. After every step the machine checks that replaying the stored events
gives exactly the live state, that the approvals view and every person's
inbox agree with it, that a refused command raised the expected
typed error and appended nothing, that a final status never changes, and
that no approval was granted with fewer distinct allowed approvers than
required or with the requester's vote.

Subclass it and set ``store_url`` to run it against another store
(``memory://``; ``sqlite://`` for a fresh temporary file per example;
``postgresql://...?schema=name``), then collect its ``TestCase``::

    class OnSQLite(ApprovalMachine):
        store_url = "sqlite://"

    TestApprovalsOnSQLite = OnSQLite.TestCase
"""

from __future__ import annotations

import itertools
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, multiple, rule

from signoff.adapters.persistence import parse_store_url, prepare_store
from signoff.adapters.persistence.views import views_for
from signoff.application import SignoffApplication
from signoff.clock import ManualClock
from signoff.commands import Cancel, Decide, Reassign, RequestApproval
from signoff.domain.approval import Approval
from signoff.domain.base import Cause
from signoff.domain.errors import (
    AlreadyDecidedError,
    AlreadyVotedError,
    DeadlinePassedError,
    InvalidInputError,
    NotAnApproverError,
    NotRequesterError,
    NotYetDueError,
    SelfApprovalError,
    SignoffError,
)
from signoff.domain.policy import ApprovalPolicy
from signoff.projections import queries
from signoff.projections.approvals import ApprovalsProjection
from signoff.projections.runner import ProjectionRunner
from signoff.testing.replay import assert_replays
from signoff.testing.strategies import PEOPLE, approval_requests, group_sets, people
from signoff.views import ApprovalInfo

_counter = itertools.count()


class ApprovalMachine(RuleBasedStateMachine):
    """Random approval commands against ``store_url``, checked step by step."""

    store_url = "memory://"
    approvals = Bundle("approvals")

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        url = self.store_url
        if url.startswith("sqlite://"):
            url = f"sqlite:///{Path(self._tmp.name) / 'events.db'}"
        config = parse_store_url(url)
        prepare_store(config)
        self.clock = ManualClock()
        prefix = f"m{uuid.uuid4().hex[:10]}-"
        ids = (f"{prefix}{n}" for n in itertools.count())
        self.app = SignoffApplication(config.env, clock=self.clock, ids=lambda: next(ids))
        self.live: dict[str, Approval] = {}
        self.final: dict[str, tuple[str, int]] = {}
        self.views = ProjectionRunner(
            self.app.recorder, views_for(self.app.recorder), [ApprovalsProjection()]
        )
        self.views.setup()

    def teardown(self) -> None:
        self.app.close()
        self._tmp.cleanup()

    # Helpers -----------------------------------------------------------------

    def _top(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def _cause(self, actor: str, reason: str | None = None) -> Cause:
        return Cause(actor, self.app.ids(), self.clock.now(), reason)

    def _run(
        self,
        expected: type[SignoffError] | None,
        store_call: Callable[[], ApprovalInfo],
        live: Approval,
        live_call: Callable[[], None],
        status_after: str | None = None,
    ) -> None:
        """Runs a command on the store and on the live copy; both must agree."""
        before = self._top()
        try:
            info = store_call()
        except SignoffError as error:
            assert expected is not None, f"refused unexpectedly: {error!r}"
            assert isinstance(error, expected), f"expected {expected.__name__}, got {error!r}"
            assert self._top() == before, "a refused command appended events"
            return
        assert expected is None, f"accepted, but expected {expected.__name__}"
        assert self._top() > before, "an accepted command appended nothing"
        live_call()
        live.collect_events()
        if status_after is not None:
            assert live.status == status_after, f"{live.status} where {status_after} was due"
        assert info == ApprovalInfo.of(live), "the returned view differs from the live state"

    @staticmethod
    def _vote_error(live: Approval, person: str, groups: list[str], now: Any) -> Any:
        if live.status != "pending":
            return AlreadyDecidedError
        if live.deadline is not None and now >= live.deadline:
            return DeadlinePassedError
        if person == live.requested_by:
            return SelfApprovalError
        if not live.policy.allows(person, groups):
            return NotAnApproverError
        if any(v.voter == person for v in live.votes):
            return AlreadyVotedError
        return None

    # Rules -------------------------------------------------------------------

    @rule(target=approvals, request=approval_requests())
    def request(self, request: dict[str, Any]) -> Any:
        cmd = RequestApproval.model_validate(request)
        eligible = [p for p in cmd.approvers if p != cmd.requested_by]
        unsatisfiable = (
            bool(cmd.approvers) and not cmd.groups and len(eligible) < cmd.required_approvals
        )
        before = self._top()
        command_id = f"cmd-{next(_counter)}"
        try:
            approval_id = self.app.request_approval(cmd, command_id=command_id)
        except InvalidInputError:
            assert unsatisfiable, "a satisfiable request was refused"
            assert self._top() == before
            return multiple()
        assert not unsatisfiable, "an unsatisfiable request was accepted"
        first_at = self.app.history(approval_id)[0].at
        live = Approval.request(
            approval_id=approval_id,
            title=cmd.title,
            description=cmd.description,
            context=dict(cmd.context),
            policy=ApprovalPolicy(
                required_approvals=cmd.required_approvals,
                approvers=tuple(cmd.approvers),
                groups=tuple(cmd.groups),
                rejection_threshold=cmd.rejection_threshold,
            ),
            deadline=self.clock.now() + cmd.timeout if cmd.timeout else None,
            workflow_id=None,
            cause=Cause(cmd.requested_by, command_id, first_at),
        )
        live.collect_events()
        self.live[approval_id] = live
        return approval_id

    @rule(approval_id=approvals, person=people(), groups=group_sets(), data=st.data())
    def approve(
        self, approval_id: str, person: str, groups: list[str], data: st.DataObject
    ) -> None:
        live = self.live[approval_id]
        metadata = data.draw(st.dictionaries(st.sampled_from("xyz"), st.integers(0, 9), max_size=2))
        cause = self._cause(person, "looks right")
        cmd = Decide(by=person, groups=groups, reason=cause.reason, metadata=metadata)
        self._run(
            self._vote_error(live, person, groups, cause.timestamp),
            lambda: self.app.approve(approval_id, cmd, command_id=cause.command_id),
            live,
            lambda: live.approve(cause, groups=groups, metadata=metadata),
            "approved"
            if len(live.approvers_so_far) + 1 >= live.policy.required_approvals
            else "pending",
        )

    @rule(approval_id=approvals, person=people(), groups=group_sets())
    def reject(self, approval_id: str, person: str, groups: list[str]) -> None:
        live = self.live[approval_id]
        cause = self._cause(person, "no")
        cmd = Decide(by=person, groups=groups, reason=cause.reason)
        self._run(
            self._vote_error(live, person, groups, cause.timestamp),
            lambda: self.app.reject(approval_id, cmd, command_id=cause.command_id),
            live,
            lambda: live.reject(cause, groups=groups),
            self._status_after_rejection(live, person),
        )

    @staticmethod
    def _status_after_rejection(live: Approval, person: str) -> str:
        if len(live.rejecters_so_far) + 1 >= live.policy.rejection_threshold:
            return "rejected"
        if live.policy.approvers and not live.policy.groups:
            voted = {v.voter for v in live.votes} | {person}
            could_still = [
                p for p in live.policy.approvers if p not in voted and p != live.requested_by
            ]
            if len(live.approvers_so_far) + len(could_still) < live.policy.required_approvals:
                return "rejected"
        return "pending"

    @rule(approval_id=approvals, person=people())
    def cancel(self, approval_id: str, person: str) -> None:
        live = self.live[approval_id]
        expected: Any = None
        if live.status != "pending":
            expected = AlreadyDecidedError
        elif person != live.requested_by:
            expected = NotRequesterError
        cause = self._cause(person, "not needed")
        self._run(
            expected,
            lambda: self.app.cancel(
                approval_id, Cancel(by=person, reason=cause.reason), command_id=cause.command_id
            ),
            live,
            lambda: live.cancel(cause),
        )

    @rule(approval_id=approvals)
    def expire(self, approval_id: str) -> None:
        live = self.live[approval_id]
        expected: Any = None
        if live.status != "pending":
            expected = AlreadyDecidedError
        elif live.deadline is None or self.clock.now() < live.deadline:
            expected = NotYetDueError
        cause = self._cause("system", "deadline passed")
        self._run(
            expected,
            lambda: self.app.expire_approval(approval_id, command_id=cause.command_id),
            live,
            lambda: live.expire(cause),
        )

    @rule(
        approval_id=approvals,
        person=people(),
        person_groups=group_sets(),
        new_approvers=st.lists(people(), unique=True, max_size=3),
    )
    def reassign(
        self, approval_id: str, person: str, person_groups: list[str], new_approvers: list[str]
    ) -> None:
        live = self.live[approval_id]
        expected: Any = None
        eligible = [p for p in new_approvers if p != live.requested_by]
        voted = {v.voter for v in live.votes}
        restricted_to_people = bool(new_approvers) and not live.policy.groups
        if live.status != "pending":
            expected = AlreadyDecidedError
        elif person != live.requested_by and not live.policy.allows(person, person_groups):
            expected = NotAnApproverError
        elif (
            (restricted_to_people and len(eligible) < live.policy.required_approvals)
            or (not new_approvers and not live.policy.groups and not live.policy.is_open)
            or (
                restricted_to_people
                and len(live.approvers_so_far) + len([p for p in eligible if p not in voted])
                < live.policy.required_approvals
            )
        ):
            expected = InvalidInputError
        cause = self._cause(person, "on holiday")
        cmd = Reassign(
            by=person, approvers=new_approvers, by_groups=person_groups, reason=cause.reason
        )
        self._run(
            expected,
            lambda: self.app.reassign(approval_id, cmd, command_id=cause.command_id),
            live,
            lambda: live.reassign(cause, approvers=new_approvers, actor_groups=person_groups),
        )

    @rule(duration=st.sampled_from(["30 minutes", "12 hours", "2 days", "8 days"]))
    def advance_clock(self, duration: str) -> None:
        self.clock.advance(duration)

    # Invariants --------------------------------------------------------------

    @invariant()
    def replay_gives_the_live_state(self) -> None:
        for live in self.live.values():
            assert_replays(self.app, live)

    @invariant()
    def the_approvals_view_and_every_inbox_agree_with_the_live_state(self) -> None:
        self.views.catch_up()
        db = self.views.db
        projection = self.views.projection("approvals")
        now = self.clock.now()
        with db.transaction(commit=False) as cursor:
            rows = projection.read_rows(cursor, db, list(self.live))
            inboxes = {
                person: {
                    row["id"]
                    for row in queries.inbox(  # (a store may hold earlier examples' too)
                        cursor,
                        db,
                        approver=person,
                        groups=(),
                        now=now.timestamp(),
                        order="age",
                        limit=1000,
                        after=None,
                    )
                    if row["id"] in self.live
                }
                for person in PEOPLE
            }
        for approval_id, live in self.live.items():
            row = rows[approval_id]
            assert row["status"] == live.status
            assert row["approvals_needed"] == live.approvals_needed
            assert [v["voter"] for v in row["votes"]] == [v.voter for v in live.votes]
            assert row["approvers"] == list(live.policy.approvers)
            assert row["groups"] == list(live.policy.groups)
            assert row["escalation_level"] == live.escalation_level
            deadline = live.deadline.timestamp() if live.deadline else None
            assert row["deadline"] == deadline
        for person, inbox in inboxes.items():
            may_vote = {
                approval_id
                for approval_id, live in self.live.items()
                if self._vote_error(live, person, [], now) is None
            }
            assert inbox == may_vote, f"{person}'s inbox"

    @invariant()
    def final_statuses_never_change(self) -> None:
        for approval_id, live in self.live.items():
            if approval_id in self.final:
                assert (live.status, live.version) == self.final[approval_id]
            elif live.is_decided:
                self.final[approval_id] = (live.status, live.version)

    @invariant()
    def quorum_needs_distinct_allowed_approvers(self) -> None:
        for approval_id in self.live:
            history = self.app.history(approval_id)
            requested = history[0]
            requester = requested.actor
            policy = requested.data["policy"]
            approvers_seen: list[str] = []
            for entry in history[1:]:
                if entry.event == "Reassigned":
                    policy = {
                        **policy,
                        "approvers": entry.data["approvers"],
                        "groups": entry.data["groups"],
                    }
                if entry.event == "VoteCast":
                    assert entry.actor != requester, "the requester voted"
                    allowed = ApprovalPolicy.model_validate(policy).allows(
                        entry.actor, entry.data["groups"]
                    )
                    assert allowed, f"{entry.actor} voted without being allowed"
                    if entry.data["decision"] == "approve":
                        approvers_seen.append(entry.actor)
                if entry.event == "Approved":
                    assert len(set(approvers_seen)) == len(approvers_seen)
                    assert len(approvers_seen) >= policy["required_approvals"]
