"""Durable schedules on every store: one-shot, cron and interval timers calling named callbacks."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from signoff import Engine, InvalidInputError, ManualClock, ScheduleNotFoundError
from signoff.errors import UnknownCallbackError

CALLS: Counter[str] = Counter()


def counting(engine: Engine) -> None:
    @engine.register_callback("count")
    async def count(payload: Any, _engine: Engine) -> None:
        CALLS[payload["key"]] += 1


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 1, 1, 9, 0, tzinfo=UTC))


@pytest.fixture
async def engine(store_url: str, clock: ManualClock):
    CALLS.clear()
    engine = Engine(store_url, clock=clock)
    counting(engine)
    async with engine:
        yield engine


async def test_a_delayed_schedule_fires_once_when_due(engine: Engine, clock: ManualClock):
    # Schedule a reminder in four hours (the seed's schedule(Date.now() + 4h, ...)).
    schedule_id = await engine.schedule("4 hours", "count", {"key": "reminder"})

    # Nothing happens before it is due.
    clock.advance("3 hours 59 minutes")
    await engine.settle()
    assert CALLS["reminder"] == 0

    # It fires once when due, and never again.
    clock.advance("2 minutes")
    await engine.settle()
    clock.advance("1 day")
    await engine.settle()
    info = await engine.get_schedule(schedule_id)
    assert CALLS["reminder"] == 1
    assert (info.status, info.fired_count, info.next_run) == ("finished", 1, None)
    assert [e.event for e in await engine.history(schedule_id)] == [
        "Created",
        "Claimed",
        "Finished",
    ]


async def test_cron_and_interval_schedules_advance_and_do_not_replay_missed_firings(
    engine: Engine, clock: ManualClock
):
    cron = await engine.schedule("0 * * * *", "count", {"key": "cron"})
    every = await engine.schedule_every("30 minutes", "count", {"key": "every"})

    # Ten hours pass while nobody looks: each fires once, then keeps its rhythm.
    clock.advance("10 hours 5 minutes")
    await engine.settle()
    assert Counter({"cron": 1, "every": 1}) == CALLS
    assert (await engine.get_schedule(cron)).next_run == datetime(2026, 1, 1, 20, 0, tzinfo=UTC)
    assert (await engine.get_schedule(every)).next_run == datetime(2026, 1, 1, 19, 30, tzinfo=UTC)

    clock.advance("1 hour")
    await engine.settle()
    assert Counter({"cron": 2, "every": 2}) == CALLS  # 19:30 and 20:00 were due: one firing


async def test_an_idempotent_schedule_does_not_pile_up(engine: Engine):
    first = await engine.schedule("1 day", "count", {"key": "daily"}, idempotent=True)
    again = await engine.schedule("1 day", "count", {"key": "daily"}, idempotent=True)
    other = await engine.schedule("1 day", "count", {"key": "other"}, idempotent=True)

    assert first == again != other
    assert len(await engine.list_schedules()) == 2


async def test_a_failing_callback_is_retried_with_backoff_and_each_failure_recorded(
    engine: Engine, clock: ManualClock
):
    failures_left = [2]

    @engine.register_callback("flaky")
    def flaky(payload: Any, _engine: Engine) -> None:
        if failures_left[0]:
            failures_left[0] -= 1
            raise ConnectionError("mail server down")

    schedule_id = await engine.schedule(60, "flaky", {"to": "alice"})
    for _ in range(4):
        clock.advance("2 minutes")
        await engine.settle()

    trail = [(e.event, e.reason) for e in await engine.history(schedule_id)]
    assert trail.count(("FireFailed", "ConnectionError: mail server down")) == 2
    assert trail[-1][0] == "Finished"


async def test_cancelled_schedules_never_fire_and_listing_filters(
    engine: Engine, clock: ManualClock
):
    once = await engine.schedule("1 hour", "count", {"key": "once"})
    cron = await engine.schedule("*/15 * * * *", "count", {"key": "cron"})

    await engine.cancel_schedule(once)
    listed = await engine.list_schedules()
    crons = await engine.list_schedules(type="cron")
    soon = await engine.list_schedules(end=datetime(2026, 1, 1, 9, 10, tzinfo=UTC))
    clock.advance("2 hours")
    await engine.settle()

    assert [s.id for s in listed] == [cron]
    assert [s.id for s in crons] == [cron]
    assert soon == []
    assert CALLS["once"] == 0
    assert (await engine.get_schedule(once)).status == "cancelled"


async def test_bad_schedules_are_refused_with_typed_errors(engine: Engine):
    with pytest.raises(UnknownCallbackError):
        await engine.schedule(60, "nobody-registered-this")
    for when in ("soon", -5, "61 * * * *", datetime(2026, 1, 1)):
        with pytest.raises(InvalidInputError):
            await engine.schedule(when, "count", {"key": "x"})
    with pytest.raises(InvalidInputError):
        await engine.schedule(60, "count", {"key": float("nan")})
    with pytest.raises(InvalidInputError):
        await engine.list_schedules(type="weekly")
    with pytest.raises(ScheduleNotFoundError):
        await engine.get_schedule("nope")
    assert await engine.list_schedules() == []


async def test_overdue_schedules_fire_once_after_a_restart(durable_store_url: str, clock):
    CALLS.clear()
    first = Engine(durable_store_url, clock=clock)
    counting(first)
    async with first:
        await first.schedule("1 hour", "count", {"key": "once"})
        await first.schedule("*/10 * * * *", "count", {"key": "cron"})
        await first.schedule("1 hour", "count", {"key": "idem"}, idempotent=True)

    # The process is down for a day; another one starts and schedules the same again.
    clock.advance("1 day")
    second = Engine(durable_store_url, clock=clock)
    counting(second)
    async with second:
        await second.schedule("1 hour", "count", {"key": "idem"}, idempotent=True)
        await second.settle()
        await second.settle()

    assert Counter({"once": 1, "cron": 1, "idem": 1}) == CALLS


async def test_several_engines_on_one_store_fire_a_schedule_once(
    durable_store_url: str, clock: ManualClock
):
    CALLS.clear()
    engines = [Engine(durable_store_url, clock=clock) for _ in range(3)]
    for engine in engines:
        counting(engine)
        await engine.start()
    try:
        for n in range(20):
            await engines[0].schedule("1 minute", "count", {"key": f"s{n}"})
        clock.advance("2 minutes")
        await asyncio.gather(*(engine.settle() for engine in engines))
        await asyncio.gather(*(engine.settle() for engine in engines))
    finally:
        for engine in engines:
            await engine.close()

    assert Counter({f"s{n}": 1 for n in range(20)}) == CALLS


async def test_a_timer_fires_within_a_second_of_its_time_in_real_time(tmp_path):
    fired: list[float] = []
    engine = Engine(f"sqlite:///{tmp_path}/rt.db", poll_interval=0.05)

    @engine.register_callback("stamp")
    def stamp(payload: Any, _engine: Engine) -> None:
        fired.append(time.time())

    async with engine:
        due = time.time() + 0.5
        await engine.schedule(0.5, "stamp")
        while not fired and time.time() < due + 5:
            await asyncio.sleep(0.01)

    assert fired
    assert 0 <= fired[0] - due < 1.0


async def test_a_long_callback_keeps_its_claim_so_no_other_engine_starts_it_again(tmp_path):
    store = f"sqlite:///{tmp_path}/lease.db"
    starts: list[str] = []
    release = asyncio.Event()
    engines = [Engine(store, poll_interval=0.02, lease="0.3 seconds") for _ in range(2)]
    for engine in engines:

        @engine.register_callback("slow")
        async def slow(payload: Any, engine: Engine) -> None:
            starts.append(engine.instance_id)
            await release.wait()

        await engine.start()
    try:
        await engines[0].schedule(0.05, "slow")
        await asyncio.sleep(1.5)  # five leases long: renewed, never taken over
        release.set()
        await asyncio.sleep(0.2)
    finally:
        for engine in engines:
            await engine.close()

    assert len(starts) == 1
