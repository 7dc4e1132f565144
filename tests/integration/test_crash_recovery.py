"""kill -9 at random points loses nothing: real processes on a SQLite file."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from signoff import AlreadyDecidedError, Engine, SignoffError
from tests.integration.crash_worker import Crashy

WORKER = Path(__file__).with_name("crash_worker.py")
RUNS = 40


def spawn(store: str, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WORKER), store, str(log)])


async def approve_waiting(store: str, rng: random.Random) -> int:
    """Approves some of the runs that wait, from another process's engine (which has not
    registered the workflow: it records decisions, the worker executes)."""
    approved = 0
    async with Engine(store) as engine:
        for approval in await engine.pending_approvals():
            if rng.random() < 0.3 and approval.workflow_id:
                try:
                    await engine.approve_workflow(
                        approval.workflow_id, by=f"approver-{rng.randint(1, 3)}"
                    )
                    approved += 1
                except (AlreadyDecidedError, SignoffError):
                    pass
    return approved


@pytest.mark.slow
async def test_sigkill_at_random_points_loses_nothing_and_never_reruns_a_completed_step(
    tmp_path: Path,
):
    store = f"sqlite:///{tmp_path}/events.db"
    log = tmp_path / "executions.log"
    rng = random.Random(20261125)

    # Queue the runs from this process (it does not execute them: no workflow registered).
    async with Engine(store) as engine:
        engine.register(Crashy, execute=False)
        for n in range(RUNS):
            await engine.run_workflow("crashy", {"log": str(log)}, id=f"run-{n}")

    # A worker executes them; kill it again and again at random moments, approving
    # waiting runs from this process in between.
    kills = 0
    worker = spawn(store, log)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            time.sleep(rng.uniform(0.3, 0.9))  # the worker needs ~0.3 s to start
            worker.send_signal(signal.SIGKILL)
            worker.wait()
            kills += 1
            await approve_waiting(store, rng)
            async with Engine(store) as engine:
                page = await engine.get_workflows(status="complete", limit=1)
            if page.total == RUNS:
                break
            worker = spawn(store, log)
        else:
            pytest.fail("runs did not complete in time")
    finally:
        worker.kill()
        worker.wait()

    # Every run completed with every step counted once in its result.
    async with Engine(store) as engine:
        recorded: dict[tuple[str, str], float] = {}
        for n in range(RUNS):
            info = await engine.get_workflow(f"run-{n}")
            assert info.status == "complete", (info.id, info.status, info.error)
            assert info.result["total"] == 4
            trail = await engine.history(info.id)
            assert [e.event for e in trail].count("WaitResolved") == 1
            approval_trail = await engine.history(f"{info.id}:approval:1")
            assert [e.event for e in approval_trail].count("Approved") == 1
            for entry in trail:
                if entry.event == "StepRecorded" and entry.data["error"] is None:
                    recorded[(info.id, entry.data["name"])] = entry.at.timestamp()

    # No step ran again after its completion was recorded; in-flight ones may have.
    executions: dict[tuple[str, str], list[float]] = defaultdict(list)
    for line in log.read_text().splitlines():
        run_id, step, at = line.split()
        executions[(run_id, step)].append(float(at))
    assert set(executions) == set(recorded)
    for key, times in executions.items():
        assert all(t <= recorded[key] for t in times), (key, times, recorded[key])
    reruns = sum(len(t) - 1 for t in executions.values())
    assert kills >= 3
    print(f"{kills} kills, {len(executions)} steps, {reruns} in-flight re-executions")
