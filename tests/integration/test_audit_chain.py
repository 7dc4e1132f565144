"""The audit hash chain: every kind of tampering with a real SQLite file or PostgreSQL schema is
found by ``signoff audit verify``, which names the first bad position; honest stores verify."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from signoff import Engine, ManualClock, Step, Workflow, WorkflowEvent
from signoff.audit_chain import VerifyReport
from signoff.chain import KEY_ENV, AuditChainError, Chainer
from signoff.cli import app as cli
from signoff.cli_audit import check
from tests.integration.raw_store import RawStore


class Payout(Workflow):
    """A step, a wait for a person, another step."""

    name = "payout"

    async def run(self, event: WorkflowEvent, step: Step) -> Any:
        checked = await step.do("check", lambda: {"ok": True})
        decision = await self.wait_for_approval(step, timeout="1 day", context=event.payload)
        return await step.do("pay", lambda: {**checked, "by": decision})


async def record_some_history(url: str, *, approvals: int = 4) -> None:
    """Requests, approves, rejects and runs a workflow through a real engine, then closes it."""
    engine = Engine(url, clock=ManualClock())
    engine.register(Payout)
    async with engine:
        for n in range(approvals):
            approval_id = await engine.request_approval(
                title=f"Pay invoice {n}", requested_by="carol", context={"amount": 100 + n}
            )
            if n % 2:
                await engine.reject(approval_id, by="bob", reason="no")
            else:
                await engine.approve(approval_id, by="alice", reason="ok")
        run_id = await engine.run_workflow("payout", {"amount": 7})
        await engine.settle()
        await engine.approve_workflow(run_id, by="alice")
        await engine.settle()


def verify_cli(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["audit", "verify", "--store", url, *args])
    return result.exit_code, result.output


def assert_tampered(url: str, position: int, kind: str) -> VerifyReport:
    report = check(url, None)
    assert not report.ok
    assert report.first is not None
    assert (report.first.position, report.first.kind) == (position, kind), report.problems
    code, output = verify_cli(url)
    assert code == 1
    assert f"first bad position {position}: {kind}" in output
    return report


@pytest.fixture
def history(durable_store_url: str) -> Iterator[RawStore]:
    """A store with some real history, and raw access to its database."""
    asyncio.run(record_some_history(durable_store_url))
    raw = RawStore(durable_store_url)
    yield raw
    raw.close()


# Honest stores -----------------------------------------------------------------


def test_an_untampered_store_verifies(durable_store_url: str, history: RawStore):
    report = check(durable_store_url, None)
    code, output = verify_cli(durable_store_url)

    assert report.ok, report.problems
    assert report.events == len(history.positions()) > 20
    assert report.head is not None
    assert report.head.position == history.positions()[-1]
    assert code == 0
    assert "OK" in output


def test_a_store_verifies_after_concurrent_writers_and_a_restart(durable_store_url: str):
    # The store exists (three processes creating its tables at once would race).
    asyncio.run(record_some_history(durable_store_url, approvals=1))
    before = check(durable_store_url, None).events

    # Three processes write at once (each its own connections and transactions).
    script = (
        "import asyncio, sys\n"
        "from signoff import Engine\n"
        "async def main():\n"
        "    async with Engine(sys.argv[1]) as e:\n"
        "        ids = await asyncio.gather(*(e.request_approval(title='t', requested_by='c')"
        " for _ in range(40)))\n"
        "        await asyncio.gather(*(e.approve(i, by='a') for i in ids))\n"
        "asyncio.run(main())\n"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", script, durable_store_url]) for _ in range(3)
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    assert check(durable_store_url, None).events == before + 3 * 40 * 3

    # An engine restarted on the store keeps extending the same chain.
    asyncio.run(record_some_history(durable_store_url, approvals=2))

    report = check(durable_store_url, None)
    assert report.ok, report.problems
    assert report.events > before + 3 * 40 * 3


# Tampering with events -----------------------------------------------------------


def test_an_edited_event_is_found(durable_store_url: str, history: RawStore):
    vote = history.positions("VoteCast")[1]
    history.edit(vote, b'"bob"', b'"eve"')

    assert_tampered(durable_store_url, vote, "edited")


def test_a_deleted_event_is_found(durable_store_url: str, history: RawStore):
    gone = history.positions("Approved")[0]
    history.delete(gone)

    assert_tampered(durable_store_url, gone, "deleted")


def test_reordered_events_are_found(durable_store_url: str, history: RawStore):
    first, second = history.positions("VoteCast")[:2]
    history.swap(first, second)

    report = assert_tampered(durable_store_url, first, "reordered")
    assert [(p.position, p.kind) for p in report.problems] == [
        (first, "reordered"),
        (second, "reordered"),
    ]


def test_a_forged_event_is_found(durable_store_url: str, history: RawStore):
    _, _, topic, state = history.event(history.positions("Requested")[0])
    forged = history.put(None, ("forged-approval", 1, topic, state))

    assert_tampered(durable_store_url, forged, "inserted")


def test_an_event_replaced_in_place_is_found(durable_store_url: str, history: RawStore):
    gap = history.positions("Rejected")[0]
    event = history.event(gap)
    history.delete(gap)
    history.put(gap, (event[0], event[1], event[2], event[3].replace(b"bob", b"eve")))

    assert_tampered(durable_store_url, gap, "edited")


# Tampering with the chain and its head ---------------------------------------------


def test_an_edited_chain_row_is_found(durable_store_url: str, history: RawStore):
    position = history.positions()[5]
    history.run("UPDATE signoff_chain SET hash = ? WHERE position = ?", bytes(32), position)

    assert_tampered(durable_store_url, position, "chain")


def test_a_deleted_chain_row_is_found(durable_store_url: str, history: RawStore):
    position = history.positions()[3]
    history.run("DELETE FROM signoff_chain WHERE position = ?", position)

    assert_tampered(durable_store_url, position, "chain")


def test_an_edited_head_is_found(durable_store_url: str, history: RawStore):
    last = history.positions()[-1]
    history.run("UPDATE signoff_chain_head SET hash = ?", bytes(32))

    assert_tampered(durable_store_url, last, "head")


def test_a_deleted_head_is_reported_and_not_rebuilt_by_verify(
    durable_store_url: str, history: RawStore
):
    history.run("DELETE FROM signoff_chain_head")

    assert_tampered(durable_store_url, 0, "head")
    assert_tampered(durable_store_url, 0, "head")


def test_a_dropped_chain_table_is_reported(durable_store_url: str, history: RawStore):
    history.run("DROP TABLE signoff_chain")

    assert_tampered(durable_store_url, 0, "head")


def test_a_consistently_truncated_log_is_found_only_through_an_anchor(
    durable_store_url: str, history: RawStore, tmp_path: Path
):
    # Save the head outside the database.
    anchor = tmp_path / "anchor.json"
    result = CliRunner().invoke(
        cli, ["audit", "anchor", "--store", durable_store_url, "--out", str(anchor)]
    )
    assert result.exit_code == 0, result.output
    last = history.positions()[-1]

    # Remove the last events, their chain rows, and move the head back: the chain agrees.
    cut = history.positions()[-3]
    history.run("DELETE FROM {events} WHERE {pos} >= ?", cut)
    history.run("DELETE FROM signoff_chain WHERE position >= ?", cut)
    ((position, hash_),) = history.run(
        "SELECT position, hash FROM signoff_chain ORDER BY position DESC LIMIT 1"
    )
    history.run("UPDATE signoff_chain_head SET position = ?, hash = ?", position, hash_)
    assert check(durable_store_url, None).ok

    # The anchor does not.
    code, output = verify_cli(durable_store_url, "--anchor", str(anchor))
    assert code == 1
    assert f"first bad position {last}: anchor" in output


# The key --------------------------------------------------------------------------


def test_with_a_key_a_recomputed_chain_does_not_verify(
    durable_store_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(KEY_ENV, "s3cret")
    asyncio.run(record_some_history(durable_store_url, approvals=2))
    raw = RawStore(durable_store_url)

    # A forger appends an event and chains it properly, but without the key.
    ((head_position, head_hash),) = raw.run("SELECT position, hash FROM signoff_chain_head")
    _, _, topic, state = raw.event(raw.positions("Requested")[0])
    forged = raw.put(None, ("forged", 1, topic, state))
    (row,) = Chainer(None).extend(
        (head_position, bytes(head_hash)), [(forged, "forged", 1, topic, state)]
    )
    raw.run(
        "INSERT INTO signoff_chain VALUES (?, ?, ?, ?)",
        row.position,
        row.prev_position,
        row.digest,
        row.hash,
    )
    raw.run("UPDATE signoff_chain_head SET position = ?, hash = ?", row.position, row.hash)
    raw.close()

    assert_tampered(durable_store_url, forged, "chain")
    monkeypatch.delenv(KEY_ENV)
    assert_tampered(durable_store_url, 0, "key")


def test_a_writer_with_another_key_is_refused(
    durable_store_url: str, monkeypatch: pytest.MonkeyPatch
):
    asyncio.run(record_some_history(durable_store_url, approvals=1))
    monkeypatch.setenv(KEY_ENV, "not-the-chain-key")

    with pytest.raises(AuditChainError):
        asyncio.run(record_some_history(durable_store_url, approvals=1))


# Stores written before the chain ---------------------------------------------------


def test_a_store_from_before_the_chain_is_chained_when_first_opened(
    durable_store_url: str, history: RawStore
):
    last = history.positions()[-1]
    history.run("DROP TABLE signoff_chain")
    history.run("DROP TABLE signoff_chain_head")

    asyncio.run(record_some_history(durable_store_url, approvals=1))

    report = check(durable_store_url, None)
    assert report.ok, report.problems
    assert report.head is not None
    assert report.head.backfilled_to == last


def test_on_sqlite_writes_after_the_log_lost_its_tail_are_refused(tmp_path: Path):
    url = f"sqlite:///{tmp_path}/events.db"
    asyncio.run(record_some_history(url, approvals=1))
    raw = RawStore(url)
    last = raw.positions()[-1]
    raw.delete(last)  # its rowid would be handed out again
    raw.close()

    with pytest.raises(AuditChainError):
        asyncio.run(record_some_history(url, approvals=1))
    assert_tampered(url, last, "deleted")
