"""Several ``signoff serve`` processes on one store and one broker, one of them SIGKILLed
and restarted again and again while runs are started and approved over NATS: every run
completes, no step runs again once its completion was committed, every approval is
decided once, every command with a key is answered as it was applied, and every stored
event reaches the events stream once."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path

import nats
import pytest

from signoff.adapters.nats.server import NatsServer
from signoff.adapters.nats.stream_identity import NOTIFICATION_HEADER
from signoff.client import SignoffClient
from tests.integration.fleet import Fleet, all_complete, stored_history, until_answered
from tests.integration.nats_support import stream_messages

pytestmark = pytest.mark.slow

RUNS = 1000


async def drive(fleet: Fleet, runs: int, log: Path, seed: int) -> tuple[int, Counter[str]]:
    """Starts ``runs`` runs and approves each (some before they reach their approval,
    some after) while engines are killed and restarted; returns the kills and the
    answers' kinds."""
    rng = random.Random(seed)
    answers: Counter[str] = Counter()
    nc = await nats.connect(fleet.nats_url, max_reconnect_attempts=-1)
    client = SignoffClient(nc, prefix=fleet.prefix, timeout=3.0)
    slots = asyncio.Semaphore(64)

    async def one(n: int) -> None:
        async with slots:
            run_id = await until_answered(
                lambda: client.start_workflow(
                    "counted", {"log": str(log)}, idempotency_key=f"start-{n}"
                )
            )
            await asyncio.sleep(rng.uniform(0.0, 1.5))
            decided = await until_answered(
                lambda: client.approve_workflow(
                    run_id, by="approver", reason="ok", idempotency_key=f"approve-{n}"
                )
            )
            answers["kept for later" if decided is None else decided.status] += 1

    chaos = asyncio.create_task(fleet.chaos(5, every=(1.0, 3.0), rng=rng))
    try:
        await asyncio.gather(*(one(n) for n in range(runs)))
        kills = await chaos
    finally:
        chaos.cancel()
        await nc.close()
    return kills, answers


async def run_fleet(store: str, engines: int, tmp_path: Path, seed: int) -> None:
    log = tmp_path / "executions.log"
    tag = uuid.uuid4().hex[:8]
    with NatsServer(tmp_path / "nats") as broker:
        fleet = Fleet(store, broker.url, f"f{tag}", f"F{tag}", tmp_path, engines)
        try:
            # The engines start, and runs are started and approved while one engine at a
            # time is killed and restarted
            fleet.start_all()
            kills, answers = await drive(fleet, RUNS, log, seed)

            # Every run completes (the killed engines' runs are taken over)
            statuses = await all_complete(store, RUNS, timeout=180)
            assert statuses == {"complete": RUNS}, (statuses, fleet.logs())
        finally:
            codes = fleet.stop_all()
        assert codes == [0] * engines, fleet.logs()
        events = await stream_messages(broker.url, f"F{tag}_EVENTS", f"f{tag}.events.>")

    ids, history = stored_history(store)
    runs = {key: trail for key, trail in history.items() if trail[0][0] == "Started"}
    assert len(runs) == RUNS
    assert kills == 5
    assert sum(answers.values()) == RUNS, answers

    # Each run: one start, each step completed once, one resolved wait, one completion
    committed: dict[tuple[str, str], float] = {}
    for run_id, trail in runs.items():
        names = [name for name, _ in trail]
        assert "Errored" not in names, trail
        assert names.count("Completed") == 1, trail
        assert names.count("WaitResolved") == 1, trail
        steps = [data for name, data in trail if name == "StepRecorded"]
        assert sorted(s["name"] for s in steps) == ["process", "validate"], steps
        for s in steps:
            recorded = datetime.fromisoformat(s["timestamp"]["_data_"])
            committed[(run_id, s["name"])] = recorded.timestamp()
        # Its approval was decided once, by the one approver
        approval = history[f"{run_id}:approval:1"]
        votes = [data for name, data in approval if name == "VoteCast"]
        assert [v["actor"] for v in votes] == ["approver"], approval
        assert [name for name, _ in approval].count("Approved") == 1, approval

    # No step ran after its completion was committed (one in flight when its engine died
    # may have run again: at least once, as documented)
    executions: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        run_id, step, _, at = line.split()
        executions[(run_id, step)].append(float(at))
    assert set(executions) == set(committed)
    late = {k: v for k, v in executions.items() if any(t > committed[k] for t in v)}
    assert not late, late
    reruns = sum(len(v) - 1 for v in executions.values())

    # Every stored event is in the events stream, once, in order
    published = [int(m.headers[NOTIFICATION_HEADER]) for m in events]
    assert published == ids
    print(f"{engines} engines, {kills} kills, {reruns} in-flight re-executions, {dict(answers)}")


@pytest.mark.postgres
async def test_three_engines_on_postgres_with_one_killed_again_and_again(
    postgres_url: str, tmp_path: Path
):
    await run_fleet(postgres_url, 3, tmp_path, seed=20261203)


async def test_two_engines_on_one_sqlite_file_with_one_killed_again_and_again(tmp_path: Path):
    await run_fleet(f"sqlite:///{tmp_path}/fleet.db", 2, tmp_path, seed=20261204)
