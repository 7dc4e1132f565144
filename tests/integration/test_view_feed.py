"""Live views: the change feed, several engines on one store, lost notifications, rebuilds."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from signoff import Engine
from signoff.cli import app as cli
from signoff.projections.approvals import ApprovalsProjection
from signoff.projections.runner import ProjectionRunner
from signoff.projections.sql import fetch_all
from signoff.read_models import default_projections
from signoff.read_views import ViewChange


async def _collect_until(
    changes: AsyncIterator[ViewChange], seen: list[ViewChange], done: Any
) -> None:
    async for change in changes:
        seen.append(change)
        if done(seen):
            return


async def _watching(engine: Engine, view: str, done: Any, **kwargs: Any) -> asyncio.Task[None]:
    seen: list[ViewChange] = []
    task = asyncio.create_task(_collect_until(engine.watch(view, **kwargs), seen, done))
    task.seen = seen  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)  # let the subscription start
    return task


def _statuses(seen: list[ViewChange]) -> dict[str, str]:
    return {c.key: c.row["status"] if c.row else "deleted" for c in seen}


async def test_an_inbox_updates_live_and_a_client_resumes_from_its_position(store_url: str):
    async with Engine(store_url) as engine:
        first = await engine.request_approval(title="first", requested_by="carol")
        # A client watches from now on.
        watcher = await _watching(
            engine, "approvals", lambda seen: _statuses(seen).get(first) == "approved"
        )
        await engine.approve(first, by="alice")
        await asyncio.wait_for(watcher, 10)
        seen: list[ViewChange] = watcher.seen  # type: ignore[attr-defined]
        assert seen[-1].row is not None
        assert seen[-1].row["decided_by"] == "alice"
        position = seen[-1].position

        # The client goes away; meanwhile one approval is requested and another decided.
        second = await engine.request_approval(title="second", requested_by="carol")
        await engine.reject(second, by="bob")
        third = await engine.request_approval(title="third", requested_by="carol")

        # It reconnects with its last position and gets exactly what changed, as it is now.
        resumed = await _watching(
            engine,
            "approvals",
            lambda seen: {second, third} <= set(_statuses(seen)),
            after=position,
        )
        await asyncio.wait_for(resumed, 10)
        statuses = _statuses(resumed.seen)  # type: ignore[attr-defined]
        assert statuses == {second: "rejected", third: "pending"}


async def test_watching_an_unknown_view_is_a_typed_error(store_url: str):
    from signoff import InvalidInputError

    async with Engine(store_url) as engine:
        with pytest.raises(InvalidInputError, match="known: approvals, audit, runs"):
            async for _ in engine.watch("nope"):
                pass


async def test_engines_sharing_a_store_apply_every_event_once(durable_store_url: str):
    async with Engine(durable_store_url) as one, Engine(durable_store_url) as two:

        async def requests(engine: Engine, n: int) -> list[str]:
            ids = []
            for i in range(n):
                approval = await engine.request_approval(title=f"#{i}", requested_by="carol")
                if i % 2:
                    await engine.approve(approval, by="alice")
                ids.append(approval)
            return ids

        made = await asyncio.gather(requests(one, 60), requests(two, 60))
        await asyncio.sleep(0.3)  # both live threads race over the same batches
        for engine in (one, two):
            metrics = await engine.metrics()
            assert metrics.approvals == {"pending": 60, "approved": 60}
            trail = await engine.audit_trail(limit=10_000)
            assert len(trail) == 120 + 60 * 2  # requested; vote + approved
            assert len({e.position for e in trail}) == len(trail)
        assert len(made[0]) + len(made[1]) == 120


async def test_another_process_writes_reach_a_watcher_by_polling(tmp_path: Path):
    store = f"sqlite:///{tmp_path}/events.db"
    async with Engine(store) as watcher_engine:
        other = Engine(store)  # not started: its commits do not nudge the watcher's runner
        try:
            approval = await other.request_approval(title="x", requested_by="carol")
            watcher = await _watching(
                watcher_engine, "approvals", lambda seen: approval in _statuses(seen), after=0
            )
            await asyncio.wait_for(watcher, 10)
        finally:
            await other.close()


@pytest.mark.postgres
async def test_a_killed_listen_connection_does_not_stall_the_views(postgres_url: str):
    async with Engine(postgres_url) as watcher_engine:
        listener = watcher_engine.read_models.listener
        assert listener is not None
        for _ in range(100):
            if listener.backend_pid is not None:
                break
            await asyncio.sleep(0.05)
        pid = listener.backend_pid
        server = postgres_url.split("?")[0]
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))

        # Events stored by another engine while nobody listens (their NOTIFY is lost).
        other = Engine(postgres_url)
        try:
            approval = await other.request_approval(title="x", requested_by="carol")
            watcher = await _watching(
                watcher_engine, "approvals", lambda seen: approval in _statuses(seen), after=0
            )
            await asyncio.wait_for(watcher, 10)
            # And the listener is back, on a new connection.
            for _ in range(100):
                if listener.backend_pid not in (None, pid):
                    break
                await asyncio.sleep(0.05)
            assert listener.backend_pid not in (None, pid)
        finally:
            await other.close()


async def test_a_new_version_of_a_projection_rebuilds_its_view(tmp_path: Path):
    store = f"sqlite:///{tmp_path}/events.db"
    async with Engine(store) as engine:
        approval = await engine.request_approval(title="x", requested_by="carol")
        await engine.approve(approval, by="alice")
        engine.read_models.runner.catch_up()

    class ApprovalsV2(ApprovalsProjection):
        version = 2

    reopened = Engine(store)
    try:
        db = reopened.read_models.db
        assert reopened.read_models.runner.positions()["approvals"] == 3
        runner = ProjectionRunner(reopened.application.recorder, db, [ApprovalsV2()])
        runner.setup()
        assert runner.positions() == {"approvals": 0}
        runner.catch_up()
        assert runner.positions() == {"approvals": 3}
        rows = runner.projections["approvals"].read_rows
        with db.transaction(commit=False) as cursor:
            assert rows(cursor, db, [approval])[approval]["status"] == "approved"
    finally:
        await reopened.close()


def test_the_cli_rebuilds_a_view_and_exports_the_audit_trail(tmp_path: Path):
    store = f"sqlite:///{tmp_path}/events.db"

    async def record() -> None:
        async with Engine(store) as engine:
            approval = await engine.request_approval(title="Pay", requested_by="carol")
            await engine.approve(approval, by="alice", reason="ok")

    asyncio.run(record())
    runner = CliRunner()

    rebuilt = runner.invoke(cli, ["projections", "rebuild", "audit", "--store", store])
    assert rebuilt.exit_code == 0, rebuilt.output
    unknown = runner.invoke(cli, ["projections", "rebuild", "nope", "--store", store])
    assert unknown.exit_code == 2

    out = tmp_path / "audit.csv"
    exported = runner.invoke(
        cli, ["audit", "export", "--store", store, "--format", "csv", "--out", str(out)]
    )
    assert exported.exit_code == 0, exported.output
    rows = list(csv.DictReader(out.open()))
    assert [r["decision"] for r in rows] == ["requested", "approve", "approved"]
    assert {"workflow_id", "decision", "decided_by", "decided_at", "reason"} <= set(rows[0])
    assert rows[2]["decided_by"] == "alice"
    assert rows[2]["reason"] == "ok"
    assert rows[2]["decided_at"].endswith("+00:00")

    lines = tmp_path / "audit.jsonl"
    exported = runner.invoke(cli, ["audit", "export", "--store", store, "--out", str(lines)])
    assert exported.exit_code == 0, exported.output
    entries = [json.loads(line) for line in lines.read_text().splitlines()]
    assert [e["position"] for e in entries] == [1, 2, 3]
    assert entries[0]["details"]["title"] == "Pay"


async def test_a_watcher_sees_changes_that_another_engine_applied(durable_store_url: str):
    async with Engine(durable_store_url) as writer, Engine(durable_store_url) as reader:
        requested = [await writer.request_approval(title="warm-up", requested_by="carol")]
        watcher = await _watching(
            reader,
            "approvals",
            lambda seen: sum(1 for s in _statuses(seen).values() if s == "approved") == 20,
        )
        for i in range(20):
            approval = await writer.request_approval(title=f"#{i}", requested_by="carol")
            await writer.approve(approval, by="alice")
            requested.append(approval)
        # The writer's own runner applies these batches (its commits wake it at once);
        # the reader's subscribers still get every row.
        await asyncio.wait_for(watcher, 10)
        statuses = _statuses(watcher.seen)  # type: ignore[attr-defined]
        assert {k for k, s in statuses.items() if s == "approved"} == set(requested[1:])


async def test_watching_ends_when_the_engine_closes(store_url: str):
    engine = Engine(store_url)
    await engine.start()
    seen: list[ViewChange] = []
    watcher = asyncio.create_task(_collect_until(engine.watch("runs"), seen, lambda s: False))
    await asyncio.sleep(0.05)
    await engine.close()
    await asyncio.wait_for(watcher, 5)  # the iterator stopped instead of waiting forever
    assert seen == []


async def test_a_tracking_row_deleted_by_hand_rebuilds_its_view(tmp_path: Path):
    store = f"sqlite:///{tmp_path}/events.db"
    async with Engine(store) as engine:
        approval = await engine.request_approval(title="x", requested_by="carol")
        assert len(await engine.pending_approvals()) == 1
        models = engine.read_models
        with models.db.transaction(commit=True) as cursor:
            cursor.execute("DELETE FROM signoff_projections WHERE name = 'approvals'")
        models.runner._known = None  # as a process that has not seen it yet
        assert [i.id for i in await engine.pending_approvals()] == [approval]


async def test_rows_a_runner_remembers_are_dropped_once_another_process_moved_the_view(
    durable_store_url: str,
):
    """Each runner keeps the rows it last wrote between batches; when another process
    applied batches in between, those rows are stale and must not be written back."""
    engine = Engine(durable_store_url)  # not started: the test drives the runners
    try:
        recorder, db = engine.application.recorder, engine.read_models.db
        first = ProjectionRunner(recorder, db, default_projections())
        second = ProjectionRunner(recorder, db, default_projections())
        approval = await engine.request_approval(
            title="x", requested_by="carol", required_approvals=3
        )
        first.catch_up()  # remembers the pending row
        await engine.approve(approval, by="alice")
        second.catch_up()  # a vote first does not know of
        await engine.approve(approval, by="bob")
        first.catch_up()  # must fold into the stored row, not its own older copy
        with db.transaction(commit=False) as cursor:
            live = fetch_all(cursor, f"SELECT * FROM {db.table('view_approvals')}")
        second.rebuild("approvals")
        with db.transaction(commit=False) as cursor:
            rebuilt = fetch_all(cursor, f"SELECT * FROM {db.table('view_approvals')}")
        assert live == rebuilt
        assert [row["approvals"] for row in live] == [2]
    finally:
        await engine.close()
