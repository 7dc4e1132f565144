"""signoff's domain model: aggregates, events, state machines, policies.

Imports nothing of signoff's outer layers; everything here is pure and
replayable.
"""

from signoff.domain.approval import APPROVAL_LIFECYCLE, Approval, Vote
from signoff.domain.base import SYSTEM_ACTOR, Cause, SignoffAggregate
from signoff.domain.durations import parse_duration
from signoff.domain.lifecycle import Lifecycle
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.schedule import SCHEDULE_LIFECYCLE, Schedule
from signoff.domain.workflow_run import RUN_LIFECYCLE, WorkflowRun

__all__ = [
    "APPROVAL_LIFECYCLE",
    "RUN_LIFECYCLE",
    "SCHEDULE_LIFECYCLE",
    "SYSTEM_ACTOR",
    "Approval",
    "ApprovalPolicy",
    "Cause",
    "Lifecycle",
    "Schedule",
    "SignoffAggregate",
    "Vote",
    "WorkflowRun",
    "parse_duration",
]
