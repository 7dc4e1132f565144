"""Idempotency keys through crashes: two ``signoff serve`` processes on one store are
SIGKILLed at random moments while hundreds of keyed commands are in flight (workflow
starts and votes, approval requests and votes), and every command is retried with its
key until it is answered. Every answer for a key is the same, byte for byte, none is a
refusal of what that key itself stored, each command was applied once, and every key
is ``done`` in the store's key table with that answer."""

from __future__ import annotations

import asyncio
import random
import signal
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nats
import orjson
import pytest
from eventsourcing.persistence import OperationalError
from nats.aio.client import Client

from signoff.adapters.nats.routes import run_id_for
from signoff.adapters.nats.server import NatsServer
from signoff.adapters.persistence import parse_store_url
from signoff.application import SignoffApplication
from signoff.client import raise_for
from signoff.errors import SignoffError
from tests.integration.fleet import (
    Fleet,
    all_complete,
    key_table,
    stored_history,
    transient,
    until_answered,
)

pytestmark = pytest.mark.slow

CLIENTS = 12
"""Clients sending commands at once, each flow after flow."""
VOTERS = 3
KILLS = 6


@dataclass(frozen=True)
class Attempt:
    """One send of a keyed command: answered, or why not."""

    answered: bool
    why: str = ""


@dataclass
class Sender:
    """Sends keyed commands as a careful service does, keeping every answer per key."""

    nc: Client
    prefix: str
    answers: dict[str, list[bytes]] = field(default_factory=lambda: defaultdict(list))
    attempts: dict[str, list[Attempt]] = field(default_factory=lambda: defaultdict(list))
    bodies: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    in_flight: int = 0
    first_sends: set[str] = field(default_factory=set)
    """Keys whose first send is in flight (read by the killer's thread under ``lock``)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def once(self, name: str, body: dict[str, Any], key: str) -> bytes:
        """One send; raises what a careful client retries (no answer, key still busy)."""
        self.in_flight += 1
        if not self.attempts[key]:
            with self.lock:
                self.first_sends.add(key)
        answered, why = False, ""
        try:
            reply = await self.nc.request(
                f"{self.prefix}.{name}",
                orjson.dumps(body),
                timeout=3.0,
                headers={"Nats-Msg-Id": key},
            )
            error = orjson.loads(reply.data).get("error")
            if error is not None:
                try:
                    raise_for(error)
                except SignoffError as refusal:
                    if transient(refusal):
                        why = str(refusal)
                        raise
            answered = True
            self.answers[key].append(reply.data)
            return reply.data
        except Exception as e:
            why = why or type(e).__name__
            raise
        finally:
            self.in_flight -= 1
            with self.lock:
                self.first_sends.discard(key)
            self.attempts[key].append(Attempt(answered, why))

    async def send(self, name: str, body: dict[str, Any], key: str) -> Any:
        """Sends until answered; returns the reply's result (None for a refusal)."""
        self.bodies[key] = (name, body)
        data = await until_answered(lambda: self.once(name, body, key))
        answer = orjson.loads(data)
        return answer["result"] if answer["ok"] else None


async def storm(
    fleet: Fleet, sender: Sender, log: Path, rng: random.Random
) -> tuple[list[float], list[str]]:
    """Clients start and approve runs, request approvals and vote on them, without pause,
    while engines are killed (at moments when commands are in flight) and restarted;
    returns the kills' times and the keys committed by an engine killed before it
    answered them."""
    kills: list[float] = []
    lost: list[str] = []
    """Keys committed by an engine that was killed before it answered."""
    calm = asyncio.Event()

    async def run_flow(flow: str) -> None:
        key = f"start-{flow}"
        start = {"name": "counted", "params": {"log": str(log)}}
        created = await sender.send("workflow.start", start, key)
        if created is None:
            return  # refused: the checks after the storm report it
        await asyncio.sleep(rng.uniform(0.0, 0.5))  # some votes are kept for later
        key = f"run-vote-{flow}"
        vote = {"id": created["id"], "by": "approver", "reason": key}
        await sender.send("workflow.approve", vote, key)

    async def approval_flow(flow: str) -> None:
        body = {"title": f"pay {flow}", "requested_by": "carol", "required_approvals": VOTERS}
        created = await sender.send("approval.request", body, f"request-{flow}")
        if created is None:
            return
        votes = [
            {"id": created["id"], "by": f"voter-{v}", "reason": f"vote-{flow}-{v}"}
            for v in range(VOTERS)
        ]
        await asyncio.gather(*(sender.send("approval.approve", b, b["reason"]) for b in votes))

    async def client(number: int) -> None:
        flows = 0
        while not calm.is_set():
            flow = run_flow if rng.random() < 0.5 else approval_flow
            await flow(f"{number}-{flows}")
            flows += 1

    async def chaos() -> None:
        while len(kills) < KILLS:
            await asyncio.sleep(rng.uniform(1.0, 3.0))
            while sender.in_flight < 8:
                await asyncio.sleep(0.001)
            victims = list(fleet.processes)
            if len(kills) % 2:  # both, at a moment a committed command is not answered
                found = await asyncio.to_thread(kill_after_a_commit, fleet, sender)
            else:  # one engine, or both, at a moment
                victims = victims if rng.random() < 0.25 else [rng.randrange(2)]
                for number in victims:
                    fleet.kill(number)
                found = []
            kills.append(time.time())
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            for number in victims:
                await asyncio.to_thread(fleet.start, number)
            while any(not sender.attempts[key] for key in found):
                await asyncio.sleep(0.05)
            lost.extend(key for key in found if not sender.attempts[key][0].answered)
        await asyncio.sleep(1.0)
        calm.set()

    await asyncio.gather(chaos(), *(client(number) for number in range(CLIENTS)))
    return kills, lost


def kill_after_a_commit(fleet: Fleet, sender: Sender) -> list[str]:
    """Stops every engine (SIGSTOP), again and again, until the store says ``done`` for
    keys whose first send, a moment later, still waits for its answer: those commands are
    committed and their engine cannot reply any more. Then SIGKILLs them all (a stopped
    process dies where it stopped); returns those keys."""
    app = SignoffApplication(parse_store_url(fleet.store).env)
    recorder: Any = app.recorder
    found: list[str] = []
    try:
        for _ in range(100):
            for process in fleet.processes.values():
                process.send_signal(signal.SIGSTOP)
            time.sleep(0.1)  # the replies already sent arrive
            with sender.lock:
                waiting = ", ".join(f"'{key}'" for key in sender.first_sends)
            if waiting:
                found = done_keys(recorder, waiting)
            if found:
                break
            for process in fleet.processes.values():
                process.send_signal(signal.SIGCONT)
            time.sleep(0.05)
    finally:
        for number in list(fleet.processes):
            fleet.kill(number)
        app.close()
    return found


def done_keys(recorder: Any, keys: str) -> list[str]:
    """Which of ``keys`` (quoted, comma-separated) the store says are done; none when it
    cannot be read (a SQLite reader gives up, "locking protocol", after spinning on a
    WAL index that a stopped engine was updating)."""
    try:
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(
                f"SELECT key FROM {recorder.keys_table} WHERE status = 'done' AND key IN ({keys})"
            )
            return [row["key"] for row in cursor.fetchall()]
    except OperationalError:
        return []


async def repeat_every_key(sender: Sender) -> None:
    """Sends every key twice more, both at once (the engines share them)."""
    slots = asyncio.Semaphore(64)

    async def again(key: str) -> None:
        async with slots:
            name, body = sender.bodies[key]
            await sender.send(name, body, key)

    await asyncio.gather(*(again(key) for key in list(sender.bodies) for _ in range(2)))


async def crash_storm(store: str, tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    log = tmp_path / "executions.log"
    tag = uuid.uuid4().hex[:8]
    began = time.monotonic()
    with NatsServer(tmp_path / "nats") as broker:
        fleet = Fleet(
            store,
            broker.url,
            f"i{tag}",
            f"I{tag}",
            tmp_path,
            2,
            options=("--idempotency-lease", "2 seconds"),
        )
        nc = await nats.connect(broker.url, max_reconnect_attempts=-1)
        sender = Sender(nc, fleet.prefix)
        try:
            # Two engines serve one store; keyed commands are sent and retried while the
            # engines are killed and restarted
            fleet.start_all()
            kills, lost = await storm(fleet, sender, log, rng)

            # Every key is sent twice more, and the runs go on to their ends
            await repeat_every_key(sender)
            runs = sum(1 for key in sender.bodies if key.startswith("start-"))
            statuses = await all_complete(store, runs, timeout=60)
        finally:
            await nc.close()
            codes = fleet.stop_all()
        assert codes == [0, 0], fleet.logs()

    # Every answer for a key is the same, byte for byte, and none is a refusal (each
    # command was possible once: a refusal could only be of what its key stored itself)
    keys = sender.bodies
    differing = {k: set(a) for k, a in sender.answers.items() if len(set(a)) > 1}
    assert not differing, differing
    assert all(len(sender.answers[key]) >= 3 for key in keys)
    refused = {k: a[0] for k, a in sender.answers.items() if not orjson.loads(a[0])["ok"]}
    assert not refused, refused

    # Every run completed, its vote applied (some were kept for later)
    assert statuses == {"complete": runs}, fleet.logs()

    # Each command was applied once: one run per start key, under the key's run id; one
    # approval per request key; one vote per vote key (kept for later at most once)
    _, history = stored_history(store)
    named = [(i, name, data) for i, trail in history.items() for name, data in trail]
    started = {i for i, name, _ in named if name == "Started"}
    assert started == {run_id_for(key) for key in keys if key.startswith("start-")}
    requested = Counter(data["command_id"] for _, name, data in named if name == "Requested")
    votes = Counter(data["reason"] for _, name, data in named if name == "VoteCast")
    kept = Counter(data["reason"] for _, name, data in named if name == "DecisionReceived")
    for key, (route, _) in keys.items():
        result = orjson.loads(sender.answers[key][0])["result"]
        if route == "workflow.start":
            assert result == {"id": run_id_for(key)}
        elif route == "approval.request":
            assert requested[key] == 1, key
            assert history[result["id"]][0][1]["command_id"] == key
        else:
            assert votes[key] == 1, (key, votes[key])
            assert kept[key] <= 1, (key, kept[key])
    approved = Counter(i for i, name, _ in named if name == "Approved")
    assert all(count == 1 for count in approved.values())
    assert len(approved) == runs + sum(1 for key in keys if key.startswith("request-"))

    # The store's key table says done, with that answer, for every key
    table = key_table(store)
    assert set(table) == set(keys)
    wrong = {k: row for k, row in table.items() if row != ("done", None, sender.answers[k][0])}
    assert not wrong, wrong

    # Some commands were committed by an engine killed before it answered them: their
    # retries could only be answered from the key table
    assert lost
    unanswered = Counter(a.why for sends in sender.attempts.values() for a in sends if a.why)
    print(
        f"{len(kills)} kills, {len(keys)} keys, sends unanswered: {dict(unanswered)}, "
        f"{len(lost)} committed by an engine killed before it answered, "
        f"{time.monotonic() - began:.0f} s"
    )


async def test_every_answer_for_a_key_is_the_same_through_crashes(
    durable_store_url: str, tmp_path: Path
):
    await crash_storm(durable_store_url, tmp_path, seed=20261205)
