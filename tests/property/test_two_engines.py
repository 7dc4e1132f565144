"""Two engines on one store, driven through any interleaving of starts, approvals from
either engine, pauses that let activations overlap, freezes longer than a lease (the other
engine may take runs over) and engine restarts: every run completes, no step runs after
its completion was committed, no run errors, and every approval is decided once."""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from signoff import Engine, SignoffError, Step, Workflow, WorkflowEvent

LEASE = 0.2
"""Seconds; a freeze of the event loop longer than this loses every lease."""

EXECUTIONS: list[tuple[str, str, float]] = []
"""(run, step, when it started) of every step execution in this process."""


class Flow(Workflow):
    """Validate, wait for approval, process; the steps take a moment."""

    name = "two-engines-flow"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        async def work(name: str) -> int:
            EXECUTIONS.append((event.id, name, time.time()))
            await asyncio.sleep(0.003)
            return 1

        validated = await step.do("validate", lambda: work("validate"))
        await self.wait_for_approval(step, timeout="1 day")
        return validated + await step.do("process", lambda: work("process"))


ENGINES = st.sampled_from(["a", "b"])
START = st.tuples(st.just("start"), ENGINES)
OPERATIONS = st.lists(
    st.one_of(
        START,
        st.tuples(st.just("approve"), ENGINES, st.integers(0, 15)),
        st.tuples(st.just("pause"), st.sampled_from([0.0, 0.002, 0.01])),
        st.tuples(st.just("freeze"), st.just(LEASE * 1.5)),
        st.tuples(st.just("restart"), ENGINES),
    ),
    max_size=30,
).flatmap(lambda rest: START.map(lambda first: [first, *rest]))


def new_engine(store: str) -> Engine:
    engine = Engine(store, poll_interval=0.01, lease=LEASE, tune_gc=False)
    engine.register(Flow)
    return engine


async def scenario(db: Path, operations: list[tuple[Any, ...]]) -> None:
    store = f"sqlite:///{db}"
    engines = {"a": new_engine(store), "b": new_engine(store)}
    for engine in engines.values():
        await engine.start()
    runs: list[str] = []
    approved: set[str] = set()
    try:
        for operation in operations:
            kind, *args = operation
            if kind == "start":
                runs.append(await engines[args[0]].run_workflow("two-engines-flow"))
            elif kind == "approve" and runs:
                run_id = runs[args[1] % len(runs)]
                if run_id not in approved:
                    approved.add(run_id)
                    await engines[args[0]].approve_workflow(run_id, by="approver")
            elif kind == "pause":
                await asyncio.sleep(args[0])
            elif kind == "freeze":  # the process stops (a GC pause, SIGSTOP ...): no renewals
                time.sleep(args[0])
            elif kind == "restart":
                await engines[args[0]].close()
                engines[args[0]] = new_engine(store)
                await engines[args[0]].start()

        # Everything left is approved, and both engines run until every run completed
        for run_id in runs:
            if run_id not in approved:
                await engines["a"].approve_workflow(run_id, by="approver")
        deadline = time.monotonic() + 60
        while True:
            await asyncio.gather(*(engine.settle() for engine in engines.values()))
            statuses = [(await engines["a"].get_workflow(r)).status for r in runs]
            if all(status == "complete" for status in statuses):
                break
            assert time.monotonic() < deadline, statuses
            await asyncio.sleep(0.02)

        event(f"runs: {min(len(runs), 5)}{'+' if len(runs) > 5 else ''}")
        event(f"freezes: {sum(op[0] == 'freeze' for op in operations) > 0}")

        # Each step committed once, none ran after that; each approval decided once
        for run_id in runs:
            trail = await engines["a"].history(run_id)
            names = [entry.event for entry in trail]
            assert "Errored" not in names, names
            committed = {
                entry.data["name"]: entry.at.timestamp()
                for entry in trail
                if entry.event == "StepRecorded"
            }
            assert sorted(committed) == ["process", "validate"], names
            assert [e.event for e in await engines["a"].history(f"{run_id}:approval:1")].count(
                "VoteCast"
            ) == 1
            started = defaultdict(list)
            for run, step, at in EXECUTIONS:
                if run == run_id:
                    started[step].append(at)
            for step, times in started.items():
                assert all(at <= committed[step] for at in times), (step, times, committed)
    finally:
        for engine in engines.values():
            await engine.close()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(operations=OPERATIONS)
def test_two_engines_keep_every_promise_whatever_the_interleaving(
    operations: list[tuple[Any, ...]],
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        try:
            asyncio.run(scenario(Path(folder) / "events.db", operations))
        except SignoffError as error:  # a typed refusal is a finding too: show it
            raise AssertionError(f"{type(error).__name__}: {error}") from error
