"""Racing decisions from separate processes: optimistic concurrency gives exactly one winner."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from signoff import Engine

WORKER = Path(__file__).with_name("race_worker.py")
ROUNDS = 12


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    return str(request.getfixturevalue("postgres_url"))


def race(
    store: str, sync_dir: Path, voters: dict[str, str], ids: list[str]
) -> list[dict[str, str]]:
    """Runs one process per voter; each decides every approval at the same moment."""
    processes = [
        subprocess.Popen(
            [sys.executable, str(WORKER), store, str(sync_dir), name, decision, *ids],
            stdout=subprocess.PIPE,
            text=True,
        )
        for name, decision in voters.items()
    ]
    try:
        for round_no in range(len(ids)):
            deadline = time.monotonic() + 60
            while not all((sync_dir / f"ready-{n}-{round_no}").exists() for n in voters):
                assert time.monotonic() < deadline, "workers never became ready"
                assert all(p.poll() is None for p in processes), "a worker died"
                time.sleep(0.001)
            (sync_dir / f"go-{round_no}").touch()
        outputs = [p.communicate(timeout=120)[0] for p in processes]
    finally:
        for p in processes:
            p.kill()
    assert all(p.returncode == 0 for p in processes)
    return [json.loads(line) for out in outputs for line in out.splitlines()]


@pytest.mark.slow
async def test_two_processes_deciding_one_approval_give_exactly_one_winner(
    shared_store: str, tmp_path: Path
):
    # Open approvals that need one decision.
    async with Engine(shared_store) as engine:
        ids = [
            await engine.request_approval(title=f"race {n}", requested_by="carol")
            for n in range(ROUNDS)
        ]

    # Two processes decide each of them at the same moment: one approves, one rejects.
    results = race(shared_store, tmp_path, {"alice": "approve", "bob": "reject"}, ids)

    # Exactly one decision per approval won; the loser was told it was already decided.
    async with Engine(shared_store) as engine:
        for approval_id in ids:
            outcomes = Counter(r["outcome"] for r in results if r["id"] == approval_id)
            assert outcomes == Counter({"ok": 1, "AlreadyDecidedError": 1}), outcomes
            trail = [e.event for e in await engine.history(approval_id)]
            assert trail.count("VoteCast") == 1
            assert sum(trail.count(e) for e in ("Approved", "Rejected")) == 1


@pytest.mark.slow
async def test_racing_approvers_fill_a_quorum_exactly(shared_store: str, tmp_path: Path):
    async with Engine(shared_store) as engine:
        ids = [
            await engine.request_approval(
                title=f"quorum {n}", requested_by="carol", required_approvals=2
            )
            for n in range(ROUNDS)
        ]

    results = race(
        shared_store, tmp_path, {"alice": "approve", "bob": "approve", "dave": "approve"}, ids
    )

    async with Engine(shared_store) as engine:
        for approval_id in ids:
            outcomes = Counter(r["outcome"] for r in results if r["id"] == approval_id)
            assert outcomes == Counter({"ok": 2, "AlreadyDecidedError": 1}), outcomes
            info = await engine.get_approval(approval_id)
            assert info.status == "approved"
            assert len(info.votes) == 2
