"""Views kept by a worker process (``Engine(views="process")``), on a SQLite file and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from signoff import Engine, InvalidInputError
from signoff.read_views import ViewChange


async def _collect(changes: AsyncIterator[ViewChange], seen: list[ViewChange], done: Any) -> None:
    async for change in changes:
        seen.append(change)
        if done(seen):
            return


def _status(seen: list[ViewChange], key: str) -> str | None:
    rows = [c.row for c in seen if c.key == key]
    return rows[-1]["status"] if rows and rows[-1] else None


async def _until_approved(engine: Engine, approval_id: str) -> list[ViewChange]:
    """Watches the inbox until ``approval_id`` shows as approved; returns what arrived."""
    seen: list[ViewChange] = []
    task = asyncio.create_task(
        _collect(engine.watch("approvals"), seen, lambda s: _status(s, approval_id) == "approved")
    )
    await asyncio.sleep(0.05)
    await engine.approve(approval_id, by="alice")
    await asyncio.wait_for(task, 20)
    return seen


def _alive(pid: int) -> bool:
    """Tells whether ``pid`` runs (an exited process nobody reaped yet does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_worker_process_keeps_the_views_live_and_is_stopped_with_the_engine(
    durable_store_url: str,
):
    async with Engine(durable_store_url, views="process") as engine:
        worker = engine._view_worker
        assert worker is not None
        pid = worker.pid
        assert pid is not None
        # The engine builds no views itself: changes reach watchers through the worker.
        assert engine.read_models.runner._thread is None
        first = await engine.request_approval(title="first", requested_by="carol")
        seen = await _until_approved(engine, first)
        row = seen[-1].row
        assert row is not None
        assert row["decided_by"] == "alice"

        # A worker that dies is replaced, and watchers go on receiving changes.
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while worker.pid == pid and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert worker.pid != pid
        assert worker.restarts == 1
        second = await engine.request_approval(title="second", requested_by="carol")
        await _until_approved(engine, second)

        # Queries read their own writes whatever the worker is doing.
        third = await engine.request_approval(title="third", requested_by="carol")
        page = await engine.approval_inbox(approver="alice")
        assert third in {item.id for item in page.items}
        last = worker.pid
    assert last is not None
    deadline = time.monotonic() + 10
    while _alive(last) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert not _alive(last), "the worker outlived its engine"


async def test_views_are_applied_once_between_a_worker_and_the_engine(durable_store_url: str):
    async with Engine(durable_store_url, views="process") as engine:
        ids = await asyncio.gather(
            *(engine.request_approval(title=f"a{i}", requested_by="carol") for i in range(200))
        )
        await asyncio.gather(*(engine.approve(i, by="alice") for i in ids[::2]))
        metrics = await engine.metrics()  # catches up in the engine while the worker runs
        assert metrics.approvals.get("approved") == 100
        assert metrics.approvals.get("pending") == 100
        trail = await engine.audit_trail(limit=1000)
        # 200 requests, then a vote and an approval each for 100: every event once.
        assert len(trail) == len({entry.position for entry in trail}) == 400


def test_views_process_needs_a_shared_store_and_a_known_mode():
    with pytest.raises(InvalidInputError, match="SQLite file or PostgreSQL"):
        Engine("memory://", views="process")
    with pytest.raises(InvalidInputError, match="'thread' or 'process'"):
        Engine("memory://", views="elsewhere")


async def test_the_worker_command_catches_up_a_store_and_stops_on_sigterm(tmp_path: Any):
    url = f"sqlite:///{tmp_path}/store.db"
    engine = Engine(url)  # never started: it writes events but keeps no views live
    ids = [await engine.request_approval(title=f"a{i}", requested_by="carol") for i in range(5)]
    runner = engine.read_models.runner
    head = runner.head()
    assert min(runner.positions().values()) < head
    worker = subprocess.Popen(
        [sys.executable, "-m", "signoff", "projections", "worker", "--store", url],
        stdout=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while min(runner.positions().values()) < head and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert min(runner.positions().values()) == head
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) is not None
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    page = await engine.approval_inbox(approver="alice")
    assert {item.id for item in page.items} == set(ids)
    await engine.close()


async def test_a_worker_whose_engine_was_killed_exits(tmp_path: Any):
    """An engine process SIGKILLed leaves no worker behind: its stdin closes with it."""
    url = f"sqlite:///{tmp_path}/store.db"
    script = (
        "import asyncio, sys\n"
        "from signoff import Engine\n"
        "async def main():\n"
        f"    async with Engine({url!r}, views='process') as engine:\n"
        "        print(engine._view_worker.pid, flush=True)\n"
        "        await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    engine = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert engine.stdout is not None
        worker_pid = int(engine.stdout.readline())
        assert _alive(worker_pid)
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        deadline = time.monotonic() + 10
        while _alive(worker_pid) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _alive(worker_pid), "the worker outlived its killed engine"
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
