"""Several ``signoff serve`` processes on one store and one broker, for the tests of
engines sharing a store: start them, kill one with SIGKILL and restart it, stop them all;
and a client that retries a keyed command until it gets an answer, as a careful service
would; and what the store holds afterwards."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import nats.errors
import orjson

from signoff.adapters.persistence import parse_store_url
from signoff.application import SignoffApplication
from signoff.errors import ConflictError, SignoffError

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Fleet:
    """Engines ``0 .. count-1``, each a ``signoff serve`` process with its stderr in a file."""

    store: str
    nats_url: str
    prefix: str
    streams: str
    folder: Path
    count: int
    lease: str = "2 seconds"
    options: tuple[str, ...] = ()
    """More options of ``signoff serve``."""
    processes: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    starts: int = 0

    def start(self, number: int, *, timeout: float = 60) -> None:
        """Starts engine ``number`` and waits until it serves."""
        self.starts += 1
        log = self.folder / f"engine-{number}-{self.starts}.log"
        with log.open("wb") as err:
            self.processes[number] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "signoff",
                    "serve",
                    "--nats",
                    self.nats_url,
                    "--workflows",
                    "tests.integration.fleet_workflows",
                    "--prefix",
                    self.prefix,
                    "--streams",
                    self.streams,
                    "--views",
                    "thread",
                    "--lease",
                    self.lease,
                    *self.options,
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
                cwd=ROOT,
                env={**os.environ, "SIGNOFF_STORE": self.store},
            )
        deadline = time.monotonic() + timeout
        while "signoff serving" not in log.read_text():
            if self.processes[number].poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"engine {number} did not start: {log.read_text()}")
            time.sleep(0.05)

    def start_all(self) -> None:
        """Starts every engine."""
        for number in range(self.count):
            self.start(number)

    def kill(self, number: int) -> None:
        """SIGKILLs engine ``number``: no drain, no release, its leases run out."""
        process = self.processes.pop(number)
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop_all(self) -> list[int]:
        """SIGTERMs every engine (they drain); returns their exit codes."""
        for process in self.processes.values():
            process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.processes.values():
            try:
                codes.append(process.wait(60))
            except subprocess.TimeoutExpired:
                process.kill()
                codes.append(process.wait())
        self.processes.clear()
        return codes

    def logs(self) -> str:
        """Everything the engines wrote to stderr."""
        return "\n".join(
            f"--- {path.name}\n{path.read_text()}" for path in sorted(self.folder.glob("*.log"))
        )

    async def chaos(self, kills: int, *, every: tuple[float, float], rng: random.Random) -> int:
        """Kills a random engine and restarts it, ``kills`` times; returns the kills."""
        done = 0
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(*every))
            number = rng.randrange(self.count)
            self.kill(number)
            done += 1
            await asyncio.sleep(rng.uniform(0.2, 1.0))
            await asyncio.to_thread(self.start, number)
        return done


def transient(error: BaseException) -> bool:
    """Tells whether a careful client would retry ``error`` with the same key: no answer
    (the engine died, or none serves yet), or the key is still being run elsewhere."""
    if isinstance(error, nats.errors.TimeoutError | nats.errors.NoRespondersError):
        return True
    if isinstance(error, ConflictError):
        message = str(error)
        return "still in progress" in message or "another engine" in message
    return isinstance(error, SignoffError) and error.code == "internal"


async def until_answered(send: Callable[[], Awaitable[T]], *, attempts: int = 600) -> T:
    """Sends a keyed command again and again (same key) until it is answered."""
    for _ in range(attempts):
        try:
            return await send()
        except Exception as error:
            if not transient(error):
                raise
        await asyncio.sleep(0.1)
    raise AssertionError("no answer after every attempt")


async def all_complete(store: str, runs: int, timeout: float) -> dict[str, int]:
    """Waits until every run ended; returns the runs by status."""
    app = SignoffApplication(parse_store_url(store).env)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            index = app.recorder
            statuses = {
                status: len(index.runs_in_status(["counted"], [status], runs + 1))  # type: ignore[attr-defined]
                for status in ("complete", "errored", "terminated")
            }
            statuses = {status: count for status, count in statuses.items() if count}
            ended = sum(statuses.values())
            if ended == runs or loop.time() > deadline:
                return dict(statuses)
            await asyncio.sleep(0.5)
    finally:
        app.close()


def stored_history(store: str) -> tuple[list[int], dict[str, list[tuple[str, dict[str, Any]]]]]:
    """Every notification id, and each aggregate's events (name, data) in order."""
    app = SignoffApplication(parse_store_url(store).env)
    try:
        ids: list[int] = []
        events: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        position = 0
        while True:
            page = app.recorder.select_notifications(position, 1000, inclusive_of_start=False)
            for n in page:
                ids.append(n.id)
                name = n.topic.rsplit(".", 1)[1]
                events[str(n.originator_id)].append((name, orjson.loads(n.state)))
            if len(page) < 1000:
                return ids, events
            position = page[-1].id
    finally:
        app.close()


def key_table(store: str) -> dict[str, tuple[str, str | None, bytes]]:
    """Every idempotency key's status, error code and outcome, as the store holds them."""
    app = SignoffApplication(parse_store_url(store).env)
    try:
        recorder: Any = app.recorder
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(f"SELECT key, status, code, outcome FROM {recorder.keys_table}")
            rows = cursor.fetchall()
        return {r["key"]: (r["status"], r["code"], str(r["outcome"]).encode()) for r in rows}
    finally:
        app.close()
