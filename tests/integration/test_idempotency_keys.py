"""The idempotency key table shared by several engines on one store."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from signoff.adapters.nats import NatsSettings
from signoff.adapters.nats.processing import Processor
from signoff.adapters.persistence import parse_store_url, prepare_store
from signoff.application import SignoffApplication
from signoff.engine import Engine
from signoff.idempotency import Claim, KeyStore, Ledger, Op
from signoff.views import ApprovalInfo


def test_engines_on_one_sqlite_file_claim_keys_at_once_without_locking_errors(tmp_path: Path):
    # Two applications on one SQLite file, as two engines are
    config = parse_store_url(f"sqlite:///{tmp_path}/keys.db")
    prepare_store(config)
    apps = [SignoffApplication(config.env) for _ in range(2)]
    answers: list[Claim | None] = []
    errors: list[Exception] = []

    # Each claims keys of its own as fast as it can, while the other writes too
    def claim(n: int) -> None:
        keys: KeyStore = apps[n].recorder  # type: ignore[assignment]
        for i in range(200):
            try:
                op = Op("claim", f"key-{n}-{i}", "fingerprint")
                answers.extend(keys.apply_key_ops([op], owner=f"engine-{n}", lease=60))
            except Exception as error:
                errors.append(error)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for app in apps:
        app.close()

    # Every claim is answered (a transaction that read first could not write after the
    # other's commit: "database is locked" at once, without waiting)
    assert errors == []
    assert answers == [Claim("new")] * 400


def test_an_engine_whose_claim_was_taken_over_records_nothing(store_url: str):
    # Engine "a" claims a key; its claim runs out and engine "b" takes it over
    config = parse_store_url(store_url)
    prepare_store(config)
    app = SignoffApplication(config.env)
    keys: KeyStore = app.recorder  # type: ignore[assignment]
    assert keys.apply_key_ops([Op("claim", "k", "f")], owner="a", lease=0.05) == [Claim("new")]
    time.sleep(0.2)
    assert keys.apply_key_ops([Op("claim", "k", "f")], owner="b", lease=0.05) == [Claim("new")]

    # Engine "a" can neither give the key up nor record its outcome: it hears that "b"
    # runs the command
    late = [Op("release", "k"), Op("finish", "k", code="conflict", outcome=b"no")]
    assert keys.apply_key_ops(late, owner="a", lease=60) == [None, Claim("busy")]

    # Once "b" recorded its outcome, that is what "a" hears, and what a repeat gets
    assert keys.apply_key_ops([Op("finish", "k", outcome=b"yes")], owner="b", lease=60) == [None]
    assert keys.apply_key_ops(
        [Op("finish", "k", code="conflict", outcome=b"no")], owner="a", lease=60
    ) == [Claim("done", None, b"yes")]
    assert keys.apply_key_ops([Op("claim", "k", "f")], owner="c", lease=60) == [
        Claim("done", None, b"yes")
    ]
    app.close()


class HeldEngine(Engine):
    """An engine whose votes wait until ``go`` is set: a slow engine, not a dead one."""

    go: asyncio.Event

    async def approve(self, approval_id: str, **fields: Any) -> ApprovalInfo:
        await self.go.wait()
        return await super().approve(approval_id, **fields)


def processor(engine: Engine, *, lease: float) -> Processor:
    keys: KeyStore = engine.application.recorder  # type: ignore[assignment]
    ledger = Ledger(keys, owner=engine.instance_id, lease=lease)
    return Processor(engine, NatsSettings(), ledger=ledger)


async def test_a_slow_engine_whose_key_was_taken_over_answers_as_the_key_was_recorded(
    durable_store_url: str,
):
    slow, other = HeldEngine(durable_store_url), Engine(durable_store_url)
    slow.go = asyncio.Event()
    async with slow, other:
        approval_id = await slow.request_approval(title="Pay", requested_by="carol")
        body = orjson.dumps({"id": approval_id, "by": "alice"})
        headers = {"Nats-Msg-Id": "vote-1"}

        # The slow engine claims the key, then stalls past the key's lease
        first = asyncio.create_task(
            processor(slow, lease=0.2).process("approval.approve", body, headers)
        )
        await asyncio.sleep(0.6)

        # A repeat reaches the other engine, which takes the key over and applies the vote
        second = await processor(other, lease=0.2).process("approval.approve", body, headers)
        assert orjson.loads(second.body)["ok"], second.body

        # The slow engine wakes: its vote is refused ("it is approved"), but what it
        # answers is the key's outcome, not that refusal
        slow.go.set()
        late = await first
        assert late.body == second.body
        assert late.repeat
        assert [v.voter for v in (await slow.get_approval(approval_id)).votes] == ["alice"]
