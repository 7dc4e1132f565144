"""Test helpers for signoff and for code built on it.

- ``ManualClock``: time that moves only when told, so a 7-day timeout is
  tested in milliseconds.
- ``assert_replays`` / ``rebuild``: the replay check: the state rebuilt from
  stored events must equal the live state.
- ``strategies``: hypothesis strategies for people, groups, JSON context and
  approval requests.
- ``WorkflowEnvironment``: an Engine on a ManualClock that skips time
  (``await env.sleep("7 days")``), restarts on the same store, counts step
  executions and checks replays of runs.
- ``ApprovalMachine``: a hypothesis ``RuleBasedStateMachine`` that drives
  random approval commands through a real store and checks the invariants
  after every step; subclass it with another ``store_url``.
"""

from signoff.clock import ManualClock
from signoff.testing import strategies
from signoff.testing.approval_machine import ApprovalMachine
from signoff.testing.replay import ReplayMismatchError, aggregate_state, assert_replays, rebuild
from signoff.testing.workflows import WorkflowEnvironment

__all__ = [
    "ApprovalMachine",
    "ManualClock",
    "ReplayMismatchError",
    "WorkflowEnvironment",
    "aggregate_state",
    "assert_replays",
    "rebuild",
    "strategies",
]
