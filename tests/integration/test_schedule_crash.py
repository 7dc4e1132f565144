"""kill -9 at random moments while schedules fire: real processes on a SQLite file.

A worker process (schedule_worker.py) fires the schedules; its callback logs every
execution (fsynced) before anything else. The test kills it again and again, waits
while it is down (so that schedules become overdue), and restarts it, until every
one-shot schedule has finished. Then it compares the log with each schedule's
recorded history.
"""

from __future__ import annotations

import bisect
import itertools
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from signoff import Engine, HistoryEntry
from tests.integration.schedule_worker import CALLBACK, LEASE, READY

WORKER = Path(__file__).with_name("schedule_worker.py")
ONE_SHOTS = 30
MIN_KILLS = 6


def spawn(store: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), store, str(log)])


def check_claims(key: str, trail: list[HistoryEntry], times: list[float]) -> int:
    """Checks that every execution of a schedule belongs to one of its claims: at most one
    execution per claim, exactly one for a claim whose firing was recorded, none before
    the first claim or between a recorded firing and the next claim. Returns the number
    of executions whose firing was lost (their process died before recording it)."""
    times = sorted(times)
    marks = [(e.at.timestamp(), e.event) for e in trail if e.event != "Created"]
    lost = 0
    first_claim = next((at for at, event in marks if event == "Claimed"), None)
    assert first_claim is None or all(t >= first_claim for t in times), (key, times, marks)
    for n, (at, event) in enumerate(marks):
        if event != "Claimed":
            continue
        following = marks[n + 1] if n + 1 < len(marks) else None
        if following is not None and following[1] in ("Finished", "Advanced"):
            inside = [t for t in times if at <= t <= following[0]]
            assert len(inside) == 1, (key, "one execution per recorded firing", inside, marks)
            after = marks[n + 2][0] if n + 2 < len(marks) else float("inf")
            late = [t for t in times if following[0] < t < after]
            assert not late, (key, "execution after its firing was recorded", late, marks)
        else:
            # The claimant died (or is still firing, for the interval at the end).
            until = following[0] if following is not None else float("inf")
            inside = [t for t in times if at <= t < until]
            assert len(inside) <= 1, (key, "two executions under one claim", inside, marks)
            lost += len(inside)
    return lost


def ready_times(log: Path) -> list[float]:
    """When each worker started firing, from its "@ready" lines."""
    return [
        float(line.split()[1]) for line in log.read_text().splitlines() if line.startswith(READY)
    ]


def start_worker(store: str, log: Path) -> subprocess.Popen[bytes]:
    """Starts a worker and waits until its engine runs (imports take a second or so)."""
    started = len(ready_times(log))
    worker = spawn(store, log)
    deadline = time.monotonic() + 15
    while len(ready_times(log)) == started:
        if worker.poll() is not None or time.monotonic() > deadline:
            worker.kill()
            pytest.fail("the schedule worker did not start")
        time.sleep(0.01)
    return worker


@pytest.mark.slow
async def test_schedules_fire_at_least_once_and_never_twice_per_claim_through_sigkills(
    tmp_path: Path,
):
    begun = time.monotonic()
    store = f"sqlite:///{tmp_path}/events.db"
    log = tmp_path / "executions.log"
    log.touch()
    rng = random.Random(20261126)

    # This process only writes and reads: it registers the callback (schedule() refuses
    # unknown names) but never starts its runtime, so only the workers fire.
    client = Engine(store)
    client.register_callback(CALLBACK, lambda payload, engine: None)
    worker = start_worker(store, log)
    try:
        one_shots: dict[str, str] = {}
        for n in range(ONE_SHOTS):
            key = f"once-{n}"
            delay = 0.2 + 1.3 * n / (ONE_SHOTS - 1)
            one_shots[key] = await client.schedule(delay, CALLBACK, {"key": key})
        every = await client.schedule_every("1 second", CALLBACK, {"key": "every"})
        idem = await client.schedule(1.0, CALLBACK, {"key": "idem"}, idempotent=True)
        assert await client.schedule(1.0, CALLBACK, {"key": "idem"}, idempotent=True) == idem
        due: dict[str, float] = {}
        for key, sid in one_shots.items():
            next_run = (await client.get_schedule(sid)).next_run
            assert next_run is not None
            due[key] = next_run.timestamp()

        # Kill the worker at random moments; while it is down, schedules become overdue.
        kills = 0
        while True:
            time.sleep(rng.uniform(0.05, 1.5))
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            infos = [await client.get_schedule(sid) for sid in one_shots.values()]
            elapsed = time.monotonic() - begun
            if all(i.status == "finished" for i in infos):
                if kills >= MIN_KILLS or elapsed > 25:  # enough (a slow machine: in time)
                    break
            elif elapsed > 35:
                pytest.fail("one-shot schedules did not all finish in time")
            time.sleep(rng.uniform(0.1, 0.6))
            worker = start_worker(store, log)
    finally:
        worker.kill()
        worker.wait()
    try:
        # Another process schedules the idempotent one again: same id, returned as it is.
        assert await client.schedule(1.0, CALLBACK, {"key": "idem"}, idempotent=True) == idem

        starts = ready_times(log)
        executions: dict[str, list[float]] = defaultdict(list)
        for line in log.read_text().splitlines():
            key, at = line.split()
            if key != READY:
                executions[key].append(float(at))

        # Every one-shot fired (at least once), and each recorded firing ran exactly once.
        lost = 0
        overdue = 0
        for key, sid in [*one_shots.items(), ("idem", idem)]:
            info = await client.get_schedule(sid)
            trail = await client.history(sid)
            assert (info.status, info.fired_count) == ("finished", 1), (key, info)
            assert [e.event for e in trail].count("Finished") == 1
            assert executions[key], (key, "finished without running its callback")
            lost += check_claims(key, trail, executions[key])
            if key in due:
                assert trail[-1].at.timestamp() >= due[key]
                fired_by = starts[bisect.bisect_right(starts, executions[key][-1]) - 1]
                if due[key] < fired_by:
                    overdue += 1  # due while no worker ran: it fired after the restart
        assert overdue >= 1

        # The interval never ran two firings under one claim; the firings it counts are
        # the executions minus those whose process died before recording them.
        every_info = await client.get_schedule(every)
        every_trail = await client.history(every)
        every_lost = check_claims("every", every_trail, executions["every"])
        advanced = [e for e in every_trail if e.event == "Advanced"]
        assert every_info.fired_count == len(advanced) >= 1
        assert every_info.fired_count == len(executions["every"]) - every_lost
        assert every_lost <= kills
        claims = [e.at.timestamp() for e in every_trail if e.event == "Claimed"]
        # A new claim comes only after the previous firing was recorded or its lease ran out.
        for earlier, later in itertools.pairwise(claims):
            recorded = [
                e
                for e in every_trail
                if e.event in ("Advanced", "FireFailed") and earlier < e.at.timestamp() <= later
            ]
            assert recorded or later - earlier >= LEASE.total_seconds(), (earlier, later)
        print(
            f"{kills} kills, {sum(map(len, executions.values()))} executions, "
            f"{lost + every_lost} lost to kills, {overdue} one-shots overdue at a restart, "
            f"interval fired {every_info.fired_count}x, {time.monotonic() - begun:.1f} s"
        )
    finally:
        await client.close()
