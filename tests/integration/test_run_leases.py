"""Run leases: one engine at a time executes a run; a live engine keeps its runs, a dead
one's are taken over once its lease ran out, an engine that lost a run can never write
for it, ready runs are shared, and an engine whose clock is off does not start."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from signoff import ClockSkewError, Engine, InvalidInputError
from tests.integration.fleet import ROOT
from tests.integration.lease_workflows import SLOW_SECONDS, Gated, Slow


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 30.0) -> None:
    """Waits until ``check()`` holds (the test fails after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def holders(engine: Engine, run_ids: list[str]) -> dict[str, tuple[str | None, int]]:
    """Who holds each run's lease, and its token."""
    return engine.application.recorder.lease_holders(run_ids)  # type: ignore[attr-defined, no-any-return]


def executing(engine: Engine, seen: Counter[str]) -> Engine:
    """``engine``, counting the step executions it starts in ``seen`` (by run)."""
    engine.step_observer = lambda run_id, generation, step, attempt: seen.update([run_id])
    return engine


async def test_a_live_engine_keeps_its_run_past_many_leases(
    durable_store_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(SLOW_SECONDS, "2.0")
    ran_on_a: Counter[str] = Counter()
    ran_on_b: Counter[str] = Counter()
    a = executing(Engine(durable_store_url, lease="0.5 seconds", poll_interval=0.02), ran_on_a)
    b = executing(Engine(durable_store_url, lease="0.5 seconds", poll_interval=0.02), ran_on_b)
    a.register(Slow)
    b.register(Slow)
    async with a, b:
        # A starts the run, so A claims it, and its step lasts four leases
        run_id = await a.run_workflow("slow")
        await eventually(lambda: _status(a, run_id, "complete"))

    # B, polling all along, never took it: the step ran once, on A
    assert ran_on_a == {run_id: 1}
    assert ran_on_b == Counter()


async def test_a_dead_engines_runs_are_taken_over_once_its_lease_runs_out(
    durable_store_url: str, tmp_path: Path
):
    # A worker process executes three runs whose steps last a minute
    ready = tmp_path / "ready"
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.lease_worker",
            durable_store_url,
            "1 second",
            ready,
        ],
        cwd=ROOT,
        env={**os.environ, SLOW_SECONDS: "60"},
    )
    try:
        async with Engine(durable_store_url) as api:
            api.register(Slow, execute=False)
            runs = [await api.run_workflow("slow") for _ in range(3)]
            await eventually(lambda: _held_by_worker(api, runs, ready))
            worker_id = ready.read_text()
            tokens = {run_id: token for run_id, (_, token) in holders(api, runs).items()}

            # Another engine polls for three leases' time and takes none of them
            taken: Counter[str] = Counter()
            other = executing(
                Engine(durable_store_url, lease="1 second", poll_interval=0.05), taken
            )
            other.register(Slow)
            async with other:
                await asyncio.sleep(3.0)
                assert taken == Counter()
                assert {owner for owner, _ in holders(api, runs).values()} == {worker_id}

                # The worker dies; its runs are taken over (a new token each) and finish
                worker.send_signal(signal.SIGKILL)
                worker.wait()
                await eventually(lambda: _all_complete(api, runs))

            assert taken == Counter(runs)
            after = holders(api, runs)
            assert all(after[run_id][1] == tokens[run_id] + 1 for run_id in runs)
            for run_id in runs:
                assert (await api.get_workflow(run_id)).result == os.getpid()
    finally:
        worker.kill()
        worker.wait()


async def test_an_engine_that_lost_its_run_cannot_write_and_stops_quietly(
    durable_store_url: str,
):
    engine = Engine(durable_store_url, lease="1 second", poll_interval=0.05)
    engine.register(Gated)
    async with engine:
        run_id = await engine.run_workflow("gated")
        await eventually(lambda: _at_the_gate(run_id))

        # While its step runs, another engine takes the run over (a newer token)
        owner, token = holders(engine, [run_id])[run_id]
        assert owner == engine.instance_id
        steal(durable_store_url, run_id, "thief")
        Gated.gates[run_id].set()
        await engine.settle()

        # The step's result was refused: nothing recorded, the run is not errored, and
        # the thief still holds it
        info = await engine.get_workflow(run_id)
        assert info.status == "queued", info
        names = [entry.event for entry in await engine.history(run_id)]
        assert names == ["Started"]
        assert holders(engine, [run_id])[run_id] == ("thief", token + 1)

        # The thief's lease runs out: the run is taken back and completes
        expire(durable_store_url, run_id)
        await eventually(lambda: _status(engine, run_id, "complete"))
        names = [entry.event for entry in await engine.history(run_id)]
        assert names.count("StepRecorded") == 1
        assert "Errored" not in names


async def test_ready_runs_are_shared_between_engines(durable_store_url: str):
    ran: dict[str, Counter[str]] = {"a": Counter(), "b": Counter()}
    engines = {
        name: executing(Engine(durable_store_url, poll_interval=0.02), seen)
        for name, seen in ran.items()
    }
    for engine in engines.values():
        engine.register(Slow)
    async with Engine(durable_store_url) as api, engines["a"], engines["b"]:
        # An engine that executes nothing starts the runs; the two others claim them
        api.register(Slow, execute=False)
        runs = await asyncio.gather(*(api.run_workflow("slow") for _ in range(300)))
        await eventually(lambda: _all_complete(api, runs))

    # Each run ran once, and each engine ran a good share of them
    assert ran["a"] + ran["b"] == Counter(runs)
    assert min(len(ran["a"]), len(ran["b"])) >= 30, {k: len(v) for k, v in ran.items()}


@pytest.mark.postgres
async def test_postgres_wakes_engines_for_runs_made_ready_elsewhere(postgres_url: str):
    # The executing engine polls only every ten minutes: only NOTIFY can wake it in time
    executor = Engine(postgres_url, poll_interval=600)
    executor.register(Slow)
    async with executor, Engine(postgres_url) as api:
        api.register(Slow, execute=False)
        run_id = await api.run_workflow("slow")
        await eventually(lambda: _status(api, run_id, "complete"), timeout=60)


async def test_an_engine_that_closes_gives_its_runs_up_at_once(durable_store_url: str):
    first = Engine(durable_store_url, lease="10 minutes")
    first.register(Gated)
    async with first:
        run_id = await first.run_workflow("gated")
        await eventually(lambda: _at_the_gate(run_id))
    # Closed in the middle of the step: the run is free for the next engine right away
    Gated.gates[run_id].set()
    second = Engine(durable_store_url, lease="10 minutes")
    second.register(Gated)
    async with second:
        assert holders(second, [run_id])[run_id][0] in (None, second.instance_id)
        await eventually(lambda: _status(second, run_id, "complete"))


class SkewedClock:
    """The wall clock, off by ``offset``."""

    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.mark.parametrize("offset", [timedelta(hours=1), timedelta(seconds=-30)])
async def test_an_engine_whose_clock_is_off_refuses_to_start(
    durable_store_url: str, offset: timedelta
):
    engine = Engine(durable_store_url, clock=SkewedClock(offset))
    with pytest.raises(ClockSkewError) as refused:
        await engine.start()
    await engine.close()
    expected = "ahead of" if offset > timedelta(0) else "behind"
    assert expected in str(refused.value)
    assert "tolerance 5 s" in str(refused.value)

    # A wider tolerance, or none, lets it start; a clock within the tolerance starts
    for tolerance in ("2 hours", None):
        async with Engine(durable_store_url, clock=SkewedClock(offset), max_clock_skew=tolerance):
            pass
    async with Engine(durable_store_url, clock=SkewedClock(timedelta(seconds=2))):
        pass


# Helpers ------------------------------------------------------------------------


async def _status(engine: Engine, run_id: str, status: str) -> bool:
    return (await engine.get_workflow(run_id)).status == status


async def _all_complete(engine: Engine, run_ids: list[str]) -> bool:
    return all([await _status(engine, run_id, "complete") for run_id in run_ids])


async def _at_the_gate(run_id: str) -> bool:
    return run_id in Gated.gates


async def _held_by_worker(api: Engine, runs: list[str], ready: Path) -> bool:
    if not ready.exists():
        return False
    held = holders(api, runs)
    return all(held.get(run_id, (None, 0))[0] == ready.read_text() for run_id in runs)


def _sql(store: str, statement: str, run_id: str) -> None:
    if store.startswith("sqlite"):
        import sqlite3

        with sqlite3.connect(store.removeprefix("sqlite:///")) as conn:
            conn.execute(statement.replace("%s", "?"), (run_id,))
        return
    url, _, schema = store.partition("?schema=")
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(statement, (run_id,))


def steal(store: str, run_id: str, thief: str) -> None:
    """Another engine's claim, as it lands in the store."""
    _sql(
        store,
        f"UPDATE signoff_runs SET lease_owner = '{thief}', lease_token = lease_token + 1, "
        "lease_until = 1e12 WHERE id = %s",
        run_id,
    )


def expire(store: str, run_id: str) -> None:
    """The holder's lease runs out."""
    _sql(store, "UPDATE signoff_runs SET lease_until = 1 WHERE id = %s", run_id)


@pytest.mark.parametrize("setting", ["lease", "max_clock_skew"])
def test_a_lease_or_tolerance_that_is_not_a_duration_is_refused(setting: str):
    with pytest.raises(InvalidInputError, match="not a duration"):
        Engine("memory://", **{setting: "nonsense"})  # type: ignore[arg-type]
