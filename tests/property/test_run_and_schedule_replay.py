"""Random workflow-run and schedule commands against each store, checked step by step.

Every command goes twice: through ``SignoffApplication.change`` (and so the
event store), and onto a live aggregate kept in memory with the same cause,
never reloaded. An oracle written here from the rules of the issue (not read
from ``RUN_LIFECYCLE`` or ``SCHEDULE_LIFECYCLE``) judges each command and
keeps its own model of the state. The machines check that:

- an accepted command appends one event and leaves the state the oracle expects;
- a refused command raises the typed error, appends nothing and leaves the live
  copy as it was;
- a final status never changes (for runs: except through ``restart``);
- after every step, replaying the stored events gives exactly the live state.
"""

from __future__ import annotations

import itertools
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
)

from signoff.adapters.persistence import parse_store_url, prepare_store
from signoff.application import SignoffApplication
from signoff.clock import ManualClock
from signoff.domain.base import Cause, SignoffAggregate
from signoff.domain.errors import (
    AlreadyExistsError,
    ConflictError,
    IllegalTransitionError,
    InvalidInputError,
    SignoffError,
)
from signoff.domain.schedule import Schedule
from signoff.domain.workflow_run import WorkflowRun
from signoff.testing import assert_replays
from tests.conftest import POSTGRES_URL, postgres_available

# The oracle ------------------------------------------------------------------

SAME = "="
"""Destination of a command that leaves the status as it is."""

_FORWARD_MOVES = {
    "record_step": "running",  # a success, or a failure that will not be retried
    "backoff": "waiting",  # a failure with a retry_at: a durable backoff
    "report": "running",
    "start_wait": "waiting",
    "complete": "complete",
    "fail": "errored",
}
_INBOX_MOVES = {"receive_event": SAME, "receive_decision": SAME, "resolve_wait": SAME}
RUN_RULES: dict[str, dict[str, str]] = {
    "queued": {
        **_FORWARD_MOVES,
        **_INBOX_MOVES,
        "pause": "paused",
        "terminate": "terminated",
        "restart": "queued",
    },
    "running": {
        **_FORWARD_MOVES,
        **_INBOX_MOVES,
        "pause": "paused",
        "terminate": "terminated",
        "restart": "queued",
    },
    "waiting": {
        **_INBOX_MOVES,
        "resolve_waking": "queued",  # resolving the very wait the run is blocked on
        "wake": "queued",  # a step retry is due
        "pause": "paused",
        "terminate": "terminated",
        "restart": "queued",
    },
    "paused": {
        **_INBOX_MOVES,
        "resume": "queued",
        "resume_waiting": "waiting",  # a wait is pending, or a step retry is not due yet
        "terminate": "terminated",
        "restart": "queued",
    },
    "complete": {"restart": "queued"},
    "errored": {"restart": "queued"},
    "terminated": {"restart": "queued"},
}
"""Status -> move -> destination, as the runtime's rules state the run lifecycle.

A command picks its move from its arguments and the state (``record_step``
with an error and a ``retry_at`` is ``backoff``; ``resolve_wait`` of the wait
a waiting run is blocked on is ``resolve_waking``; ``resume`` is
``resume_waiting`` while a wait or a not-yet-due step retry holds the run). A
move missing from the status's row is an ``IllegalTransitionError``."""

FINAL = ("complete", "errored", "terminated")

WAIT_OUTCOMES = {
    "approval": ("approved", "rejected", "timeout"),
    "event": ("event", "timeout"),
    "sleep": ("elapsed",),
}
"""The outcomes that end a wait of each kind."""


@dataclass
class RunModel:
    """What a run should look like, kept by the oracle alone."""

    name: str
    params: dict[str, Any]
    metadata: dict[str, Any]
    modified_on: datetime
    version: int = 1
    status: str = "queued"
    generation: int = 1
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    waits: dict[str, dict[str, Any]] = field(default_factory=dict)
    resolutions: dict[str, dict[str, Any]] = field(default_factory=dict)
    current_wait: str | None = None
    reports: list[dict[str, Any]] = field(default_factory=list)
    inbox: dict[str, list[Any]] = field(default_factory=dict)
    consumed: dict[str, int] = field(default_factory=dict)
    decisions: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    error: dict[str, str] | None = None
    completed_at: datetime | None = None

    def earliest_retry(self) -> datetime | None:
        """When the first step that failed and will be retried is due again."""
        due = [s["retry_at"] for s in self.steps.values() if not s["done"] and s["retry_at"]]
        return min(due) if due else None

    def held(self, now: datetime) -> bool:
        """Tells whether a pending wait, or a step retry not due at ``now``, holds the run."""
        retry_at = self.earliest_retry()
        return self.current_wait is not None or (retry_at is not None and now < retry_at)


@dataclass
class ScheduleModel:
    """What a schedule should look like, kept by the oracle alone."""

    kind: str
    callback: str
    payload: Any
    spec: str | None
    due_at: datetime | None
    modified_on: datetime
    version: int = 1
    status: str = "scheduled"  # the only live status
    fired_count: int = 0
    failures: int = 0
    last_error: str | None = None


# Strategies ------------------------------------------------------------------

# Object keys stay clear of "_type_" and "_data_": eventsourcing's JSON
# transcoder reads {"_type_": ..., "_data_": ...} as one of its own encodings.
_WORDS = st.text(alphabet="abcxyz", max_size=4)
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _WORDS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_WORDS, inner, max_size=3),
    max_leaves=3,
)
OBJECTS = st.dictionaries(_WORDS, JSON, max_size=3)
BY = st.tuples(st.sampled_from(["ada", "bob", "system"]), st.none() | st.just("ops"))
ERRORS = st.fixed_dictionaries(
    {"type": st.sampled_from(["ValueError", "Timeout"]), "message": _WORDS}
)
DELAYS = st.sampled_from([timedelta(minutes=1), timedelta(hours=1), timedelta(days=2)])
NEXT = st.sampled_from([None, timedelta(minutes=5), timedelta(days=1), timedelta(days=7)])
"""When a recurring schedule is due next; None (no next firing) a quarter of the time."""

STEP_NAMES = st.sampled_from(["fetch", "charge"])
WAIT_NAMES = st.sampled_from(["gate", "cooldown", "ready"])
EVENT_TYPES = st.sampled_from(["ready", "paid"])

RUN_ARGS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "record_step": st.fixed_dictionaries(
        {
            "name": STEP_NAMES,
            "outcome": JSON.map(lambda v: (v, None)) | ERRORS.map(lambda e: (None, e)),
            "attempt": st.integers(1, 3),
            "retry": st.none() | DELAYS,  # retry_at = now + retry (kept on a success too)
        }
    ),
    "report": st.fixed_dictionaries({"kind": st.sampled_from(["progress", "log"]), "value": JSON}),
    "start_wait": st.fixed_dictionaries(
        {
            "name": WAIT_NAMES,
            "kind": st.sampled_from(sorted(WAIT_OUTCOMES)),
            "delay": st.none() | DELAYS,
            "event_type": EVENT_TYPES,
        }
    ),
    "resolve_wait": st.fixed_dictionaries(
        {
            "name": WAIT_NAMES,
            "outcome": st.sampled_from(sorted({o for os in WAIT_OUTCOMES.values() for o in os})),
            "value": JSON,
        }
    ),
    "wake": st.fixed_dictionaries({}),
    "receive_event": st.fixed_dictionaries({"event_type": EVENT_TYPES, "payload": JSON}),
    "receive_decision": st.fixed_dictionaries(
        {
            "decision": st.sampled_from(["approve", "reject"]),
            "groups": st.lists(st.sampled_from(["ops", "fin"]), max_size=2),
            "metadata": OBJECTS,
            "wait": st.none() | WAIT_NAMES,
        }
    ),
    "complete": st.fixed_dictionaries({"result": JSON}),
    "fail": st.fixed_dictionaries({"error": ERRORS}),
    "pause": st.fixed_dictionaries({}),
    "resume": st.fixed_dictionaries({}),
    "terminate": st.fixed_dictionaries({}),
    "restart": st.fixed_dictionaries({}),
    "tick": st.fixed_dictionaries({"delay": DELAYS}),  # the clock moves, not a command
}
"""The arguments each run command draws, besides the run and the cause."""

_EXTRA = {
    "queued": ["record_step"] * 3 + ["report", "start_wait", "start_wait"],
    "running": ["record_step"] * 3 + ["start_wait", "start_wait", "complete", "fail"],
    "waiting": ["resolve_wait", "resolve_wait", "wake", "wake", "tick", "tick", "pause"],
    "paused": ["resume", "resume", "resolve_wait", "resolve_wait"],
    **{status: ["restart", "restart"] for status in FINAL},  # so that runs leave them
}
POOLS = {status: [*sorted(RUN_ARGS), *_EXTRA[status]] for status in RUN_RULES}
"""The commands drawn in each status: every one once, legal or not, and some more often
so that runs get deep (weights only: ``RUN_RULES`` judges)."""

Who = tuple[str, str | None]
"""An actor and a reason, drawn from ``BY``."""


# The shared machinery --------------------------------------------------------


class _ReplayMachine(RuleBasedStateMachine):
    """A real store, a live copy and an oracle model per aggregate, and the checks."""

    store_url = "memory://"
    final_statuses: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self._tmp = tempfile.TemporaryDirectory()
        url = self.store_url
        if url.startswith("sqlite://"):
            url = f"sqlite:///{Path(self._tmp.name) / 'events.db'}"
        config = parse_store_url(url)
        prepare_store(config)
        self.clock = ManualClock()
        self.app = SignoffApplication(config.env, clock=self.clock)
        self.prefix = uuid.uuid4().hex[:8]  # ids stay unique in a shared Postgres schema
        self._numbers = itertools.count()
        self.live: dict[str, Any] = {}
        self.models: dict[str, Any] = {}

    def teardown(self) -> None:
        self.app.close()
        self._tmp.cleanup()

    def _top(self) -> int:
        return self.app.recorder.max_notification_id() or 0

    def _new_id(self, kind: str) -> str:
        return f"{kind}-{self.prefix}-{next(self._numbers)}"

    def _cause(self, by: Who) -> Cause:
        return Cause(by[0], self._new_id("cmd"), self.clock.now(), by[1])

    def _check(self, aggregate_id: str) -> None:
        """The live copy holds what the oracle expects."""
        expected = asdict(self.models[aggregate_id])
        live = self.live[aggregate_id]
        actual = {name: getattr(live, name) for name in expected}
        assert actual == expected, f"{aggregate_id}: live {actual} != oracle {expected}"

    def _create(
        self,
        build: Callable[[], SignoffAggregate],
        expected: type[SignoffError] | None,
        model: Any = None,
    ) -> bool:
        """Builds the aggregate twice: once saved, once kept live. Tells whether it was."""
        before = self._top()
        try:
            self.app.create(build())
        except SignoffError as error:
            assert expected is not None, f"creation refused: {error!r}"
            assert isinstance(error, expected), f"expected {expected.__name__}, got {error!r}"
            assert self._top() == before, "a refused creation appended events"
            return False
        assert expected is None, f"created, but {expected.__name__} was due"
        assert self._top() > before, "a creation appended nothing"
        live = build()
        live.collect_events()
        self.live[live.id], self.models[live.id] = live, model
        self._check(live.id)
        return True

    def _command(
        self,
        aggregate_id: str,
        call: Callable[[Any, Cause], None],
        by: Who,
        expected: type[SignoffError] | None,
        update: Callable[[Any, Cause], None],
    ) -> None:
        """Runs ``call`` on the store and on the live copy with one cause, and checks both."""
        live, cause = self.live[aggregate_id], self._cause(by)
        before, version, status = self._top(), live.version, live.status
        generation = getattr(live, "generation", 0)
        try:
            stored = self.app.change(type(live), aggregate_id, lambda agg: call(agg, cause))
        except SignoffError as error:
            assert expected is not None, f"refused: {error!r}"
            _assert_error(error, expected, aggregate_id, status)
            assert self._top() == before, "a refused command appended events"
            with pytest.raises(SignoffError) as refusal:
                call(live, cause)
            _assert_error(refusal.value, expected, aggregate_id, status)
            assert live.version == version, "a refused command moved the live copy"
            assert not live.collect_events(), "a refused command left events on the live copy"
            self._check(aggregate_id)
            return
        assert expected is None, f"accepted, but {expected.__name__} was due"
        assert self._top() > before, "an accepted command appended nothing"
        assert stored.version == version + 1, "an accepted command stored more than one event"
        call(live, cause)
        assert len(live.collect_events()) == 1
        if status in self.final_statuses:  # only a restart leads out of a final status
            assert live.status == "queued", f"{aggregate_id} left {status} for {live.status}"
            assert getattr(live, "generation", 0) == generation + 1, "not a restart"
        model = self.models[aggregate_id]
        update(model, cause)
        model.version, model.modified_on = version + 1, cause.timestamp
        self._check(aggregate_id)

    @rule(delay=DELAYS)
    def advance_clock(self, delay: timedelta) -> None:
        self.clock.advance(delay)

    @invariant()
    def replay_gives_the_live_state(self) -> None:
        for live in self.live.values():
            assert_replays(self.app, live)


def _assert_error(
    error: SignoffError, expected: type[SignoffError], aggregate_id: str, status: str
) -> None:
    assert isinstance(error, expected), f"expected {expected.__name__}, got {error!r}"
    if expected is ConflictError:  # a repeated step, wait or key: not a status problem
        assert not isinstance(error, IllegalTransitionError), f"got {error!r}"
    if isinstance(error, IllegalTransitionError):
        assert (error.aggregate_id, error.status) == (aggregate_id, status), repr(error)


# Workflow runs ---------------------------------------------------------------


class RunMachine(_ReplayMachine):
    """Random commands, legal and illegal, on two workflow runs."""

    runs = Bundle("runs")
    final_statuses = FINAL

    @initialize(target=runs, params=st.lists(OBJECTS, min_size=2, max_size=2), by=BY)
    def start(self, params: list[dict[str, Any]], by: Who) -> MultipleResults[str]:
        """Starts the two runs every example works on."""
        run_ids = []
        for name, run_params in zip(["invoice", "deploy"], params, strict=True):
            cause, run_id, metadata = self._cause(by), self._new_id("run"), {"by": by[0]}
            self._create(
                partial(
                    WorkflowRun.start,
                    run_id=run_id,
                    name=name,
                    params=run_params,
                    metadata=metadata,
                    cause=cause,
                ),
                None,
                RunModel(name, run_params, metadata, cause.timestamp),
            )
            run_ids.append(run_id)
        return multiple(*run_ids)

    @rule(run_id=runs, by=BY)
    def start_again(self, run_id: str, by: Who) -> None:
        cause = self._cause(by)
        self._create(
            lambda: WorkflowRun.start(run_id=run_id, name="x", params={}, metadata={}, cause=cause),
            AlreadyExistsError,
        )

    @rule(run_id=runs, by=BY, moves=st.integers(1, 8), data=st.data())
    def commands(self, run_id: str, by: Who, moves: int, data: st.DataObject) -> None:
        """Fires a few commands, legal or not, drawn from the status's ``POOLS`` (the
        clock may move between them)."""
        for _ in range(moves):
            command = data.draw(st.sampled_from(POOLS[self.models[run_id].status]))
            args = data.draw(RUN_ARGS[command])
            if command == "tick":
                self.clock.advance(args["delay"])
            else:
                getattr(self, command)(run_id, by, **args)

    def _run(
        self,
        run_id: str,
        move: str,
        by: Who,
        call: Callable[[WorkflowRun, Cause], None],
        *,
        conflict: bool = False,
        conflict_first: bool = False,
        update: Callable[[RunModel, Cause], None] = lambda model, cause: None,
    ) -> None:
        """Judges ``move`` by the oracle, runs it, and moves the model if it was legal.

        The status is judged before the conflict, unless ``conflict_first``.
        """
        allowed = RUN_RULES[self.models[run_id].status]
        expected: type[SignoffError] | None = None
        if conflict and conflict_first:
            expected = ConflictError
        elif move not in allowed:
            expected = IllegalTransitionError
        elif conflict:
            expected = ConflictError

        def apply(model: RunModel, cause: Cause) -> None:
            if allowed[move] != SAME:
                model.status = allowed[move]
            update(model, cause)

        self._command(run_id, call, by, expected, apply)

    # The commands, as ``commands`` fires them --------------------------------

    def record_step(
        self,
        run_id: str,
        by: Who,
        name: str,
        outcome: tuple[Any, dict[str, str] | None],
        attempt: int,
        retry: timedelta | None,
    ) -> None:
        result, error = outcome
        retry_at = None if retry is None else self.clock.now() + retry
        known = self.models[run_id].steps.get(name)
        step = {
            "done": error is None,
            "result": result,
            "error": None if error is None else dict(error),
            "attempts": attempt,
            "retry_at": retry_at,
        }

        def update(model: RunModel, _: Cause) -> None:
            model.steps[name] = step

        self._run(
            run_id,
            "backoff" if error is not None and retry_at is not None else "record_step",
            by,
            lambda run, cause: run.record_step(
                cause, name=name, result=result, error=error, attempt=attempt, retry_at=retry_at
            ),
            # a step that finished (done, or failed for good) is not recorded again
            conflict=known is not None and (known["done"] or known["retry_at"] is None),
            update=update,
        )

    def report(self, run_id: str, by: Who, kind: str, value: Any) -> None:
        def update(model: RunModel, cause: Cause) -> None:
            model.reports.append({"kind": kind, "value": value, "at": cause.timestamp})

        self._run(
            run_id,
            "report",
            by,
            lambda run, cause: run.report(cause, kind=kind, value=value),
            update=update,
        )

    def start_wait(
        self,
        run_id: str,
        by: Who,
        name: str,
        kind: str,
        delay: timedelta | None,
        event_type: str,
    ) -> None:
        model = self.models[run_id]
        deadline = None if delay is None else self.clock.now() + delay
        detail = {
            "approval": {"approval_id": f"{run_id}:{name}:{model.generation}"},
            "event": {"type": event_type},
            "sleep": {},
        }[kind]

        def update(model: RunModel, _: Cause) -> None:
            model.waits[name] = {"kind": kind, "deadline": deadline, **detail}
            model.current_wait = name
            # The wait takes the decisions kept for it: named for it, or, for an
            # approval wait, unnamed (they were for the first approval).
            model.decisions = [
                d
                for d in model.decisions
                if d["wait"] != name and not (d["wait"] is None and kind == "approval")
            ]

        self._run(
            run_id,
            "start_wait",
            by,
            lambda run, cause: run.start_wait(
                cause, name=name, kind=kind, deadline=deadline, detail=dict(detail)
            ),
            conflict=name in model.waits,
            update=update,
        )

    def resolve_wait(self, run_id: str, by: Who, name: str, outcome: str, value: Any) -> None:
        model = self.models[run_id]
        wait = model.waits.get(name)
        if wait is not None and outcome not in WAIT_OUTCOMES[wait["kind"]]:
            outcome = WAIT_OUTCOMES[wait["kind"]][-1]
        wakes = model.status == "waiting" and model.current_wait == name

        def update(model: RunModel, cause: Cause) -> None:
            model.resolutions[name] = {
                "outcome": outcome,
                "value": value,
                "by": cause.actor,
                "reason": cause.reason,
                "at": cause.timestamp,
            }
            if model.current_wait == name:
                model.current_wait = None
            if outcome == "event":
                event_type = model.waits[name]["type"]
                model.consumed[event_type] = model.consumed.get(event_type, 0) + 1

        self._run(
            run_id,
            "resolve_waking" if wakes else "resolve_wait",
            by,
            lambda run, cause: run.resolve_wait(cause, name=name, outcome=outcome, value=value),
            conflict=wait is None or name in model.resolutions,
            update=update,
        )

    def wake(self, run_id: str, by: Who) -> None:
        model = self.models[run_id]
        retry_at = model.earliest_retry()
        self._run(
            run_id,
            "wake",
            by,
            lambda run, cause: run.wake(cause),
            # no step retry due (or a wait pending): refused before the status is judged
            conflict=model.current_wait is not None
            or retry_at is None
            or self.clock.now() < retry_at,
            conflict_first=True,
        )

    def receive_event(self, run_id: str, by: Who, event_type: str, payload: Any) -> None:
        def update(model: RunModel, _: Cause) -> None:
            model.inbox[event_type] = [*model.inbox.get(event_type, []), payload]

        self._run(
            run_id,
            "receive_event",
            by,
            lambda run, cause: run.receive_event(cause, event_type=event_type, payload=payload),
            update=update,
        )

    def receive_decision(
        self,
        run_id: str,
        by: Who,
        decision: str,
        groups: list[str],
        metadata: dict[str, Any],
        wait: str | None,
    ) -> None:
        model = self.models[run_id]
        approval_reached = any(w["kind"] == "approval" for w in model.waits.values())

        def update(model: RunModel, cause: Cause) -> None:
            kept = {
                "decision": decision,
                "by": cause.actor,
                "reason": cause.reason,
                "groups": list(groups),
                "metadata": dict(metadata),
                "wait": wait,
            }
            model.decisions.append(kept)

        self._run(
            run_id,
            "receive_decision",
            by,
            lambda run, cause: run.receive_decision(
                cause, decision=decision, groups=groups, metadata=metadata, wait=wait
            ),
            # a named wait already reached, or unnamed once an approval was reached
            conflict=(wait is not None and wait in model.waits)
            or (wait is None and approval_reached),
            update=update,
        )

    def complete(self, run_id: str, by: Who, result: Any) -> None:
        def update(model: RunModel, cause: Cause) -> None:
            model.result, model.completed_at = result, cause.timestamp

        def call(run: WorkflowRun, cause: Cause) -> None:
            run.complete(cause, result=result)

        self._run(run_id, "complete", by, call, update=update)

    def fail(self, run_id: str, by: Who, error: dict[str, str]) -> None:
        def update(model: RunModel, cause: Cause) -> None:
            model.error, model.completed_at = dict(error), cause.timestamp

        def call(run: WorkflowRun, cause: Cause) -> None:
            run.fail(cause, error_type=error["type"], message=error["message"])

        self._run(run_id, "fail", by, call, update=update)

    def pause(self, run_id: str, by: Who) -> None:
        self._run(run_id, "pause", by, lambda run, cause: run.pause(cause))

    def resume(self, run_id: str, by: Who) -> None:
        held = self.models[run_id].held(self.clock.now())
        self._run(
            run_id,
            "resume_waiting" if held else "resume",
            by,
            lambda run, cause: run.resume(cause),
        )

    def terminate(self, run_id: str, by: Who) -> None:
        def update(model: RunModel, cause: Cause) -> None:
            model.current_wait, model.completed_at = None, cause.timestamp

        self._run(run_id, "terminate", by, lambda run, cause: run.terminate(cause), update=update)

    def restart(self, run_id: str, by: Who) -> None:
        def update(model: RunModel, _: Cause) -> None:
            model.generation += 1
            model.steps, model.waits, model.resolutions = {}, {}, {}
            model.current_wait, model.reports, model.inbox = None, [], {}
            model.consumed, model.decisions = {}, []
            model.result = model.error = model.completed_at = None

        self._run(run_id, "restart", by, lambda run, cause: run.restart(cause), update=update)


# Schedules -------------------------------------------------------------------


class ScheduleMachine(_ReplayMachine):
    """Random firings, failures and cancellations of a few schedules."""

    schedules = Bundle("schedules")
    final_statuses = ("finished", "cancelled")

    @precondition(lambda self: len(self.live) < 3)  # a few schedules that go deep
    @rule(
        target=schedules,
        kind=st.sampled_from(["once", "cron", "interval"]),
        spec=st.sampled_from(["*/5 * * * *", "300", None, ""]),
        payload=JSON,
        delay=DELAYS,
        by=BY,
    )
    def create(self, kind: Any, spec: str | None, payload: Any, delay: timedelta, by: Who) -> Any:
        cause, schedule_id = self._cause(by), self._new_id("schedule")
        due_at = self.clock.now() + delay
        created = self._create(
            lambda: Schedule.create(
                schedule_id=schedule_id,
                kind=kind,
                callback="billing.remind",
                payload=payload,
                due_at=due_at,
                spec=spec,
                cause=cause,
            ),
            InvalidInputError if kind != "once" and not spec else None,
            ScheduleModel(kind, "billing.remind", payload, spec, due_at, cause.timestamp),
        )
        return schedule_id if created else multiple()

    @rule(schedule_id=schedules, by=BY)
    def create_again(self, schedule_id: str, by: Who) -> None:
        cause = self._cause(by)
        self._create(
            lambda: Schedule.create(
                schedule_id=schedule_id,
                kind="once",
                callback="x",
                payload=None,
                due_at=cause.timestamp,
                spec=None,
                cause=cause,
            ),
            AlreadyExistsError,
        )

    def _refusal(self, schedule_id: str) -> type[SignoffError] | None:
        return None if self.models[schedule_id].status == "scheduled" else IllegalTransitionError

    @rule(schedule_id=schedules, by=BY, delay=NEXT)
    def fired(self, schedule_id: str, by: Who, delay: timedelta | None) -> None:
        next_due_at = None if delay is None else self.clock.now() + delay

        def update(model: ScheduleModel, _: Cause) -> None:
            model.fired_count += 1
            model.failures = 0  # a success clears the failure count
            if model.kind == "once" or next_due_at is None:
                model.status, model.due_at = "finished", None
            else:
                model.due_at = next_due_at

        self._command(
            schedule_id,
            lambda schedule, cause: schedule.fired(cause, next_due_at=next_due_at),
            by,
            self._refusal(schedule_id),
            update,
        )

    @rule(schedule_id=schedules, by=BY, error=_WORDS, delay=DELAYS)
    def failed(self, schedule_id: str, by: Who, error: str, delay: timedelta) -> None:
        retry_at = self.clock.now() + delay

        def update(model: ScheduleModel, _: Cause) -> None:
            model.failures += 1
            model.last_error, model.due_at = error, retry_at

        self._command(
            schedule_id,
            lambda schedule, cause: schedule.failed(cause, error=error, retry_at=retry_at),
            by,
            self._refusal(schedule_id),
            update,
        )

    @rule(schedule_id=schedules, by=BY)
    def cancel(self, schedule_id: str, by: Who) -> None:
        def update(model: ScheduleModel, _: Cause) -> None:
            model.status, model.due_at = "cancelled", None

        self._command(
            schedule_id,
            lambda schedule, cause: schedule.cancel(cause),
            by,
            self._refusal(schedule_id),
            update,
        )


# The stores ------------------------------------------------------------------


def _profile(examples: int, steps: int) -> settings:
    """Settings that keep a failure's report quick: one bug shrunk, no explain phase
    (it re-runs the failing case ~100 times to annotate it, minutes here)."""
    return settings(
        max_examples=examples,
        stateful_step_count=steps,
        deadline=None,
        phases=[p for p in Phase if p is not Phase.explain],
        report_multiple_bugs=False,
    )


class RunsInMemory(RunMachine):
    store_url = "memory://"


class RunsOnSQLite(RunMachine):
    store_url = "sqlite://"  # a fresh file per example


class SchedulesInMemory(ScheduleMachine):
    store_url = "memory://"


class SchedulesOnSQLite(ScheduleMachine):
    store_url = "sqlite://"  # a fresh file per example


TestRunsInMemory = RunsInMemory.TestCase
TestRunsInMemory.settings = _profile(100, 50)

TestRunsOnSQLite = RunsOnSQLite.TestCase
TestRunsOnSQLite.settings = _profile(30, 25)

TestSchedulesInMemory = SchedulesInMemory.TestCase
TestSchedulesInMemory.settings = _profile(100, 50)

TestSchedulesOnSQLite = SchedulesOnSQLite.TestCase
TestSchedulesOnSQLite.settings = _profile(30, 25)


@pytest.mark.postgres
@pytest.mark.parametrize("machine", [RunMachine, ScheduleMachine], ids=["runs", "schedules"])
def test_runs_and_schedules_on_postgres_short_profile(machine: type[_ReplayMachine]) -> None:
    if not postgres_available():
        pytest.skip("PostgreSQL not reachable (outside CI only)")
    schema = f"p_{uuid.uuid4().hex[:12]}"

    class OnPostgres(machine):  # type: ignore[valid-type,misc]
        store_url = f"{POSTGRES_URL}?schema={schema}"

    try:
        run = OnPostgres.TestCase
        run.settings = _profile(10, 20)
        run("runTest").runTest()
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_a_sleep_or_event_wait_keeps_an_unnamed_early_decision() -> None:
    """An unnamed decision is for the run's first approval wait (docs/workflows.md,
    "Early decisions": it may arrive while the run runs steps, sleeps or waits for an
    event); a sleep or event wait started before that approval must leave it kept.

    The random ``RunMachine`` meets it too; here the same oracle meets it head on."""
    machine = RunsInMemory()
    try:
        run_id = machine.start([{}, {}], ("ada", None)).values[0]
        machine.receive_decision(run_id, ("bob", "ok"), "approve", ["ops"], {}, wait=None)
        for name, kind in [("cooldown", "sleep"), ("ready", "event")]:
            machine.start_wait(run_id, ("system", None), name, kind, None, "ready")
            machine.resolve_wait(run_id, ("system", None), name, "elapsed", None)
            assert machine.live[run_id].decisions_for("gate"), f"{kind} wait dropped it"
        machine.start_wait(run_id, ("system", None), "gate", "approval", None, "ready")
        assert not machine.live[run_id].decisions_for("gate")  # the approval took it
    finally:
        machine.teardown()
