"""Several ``signoff serve`` processes on one store and one broker, for the tests of
engines sharing a store: start them, kill one with SIGKILL and restart it, stop them all;
and a client that retries a keyed command until it gets an answer, as a careful service
would."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import nats.errors

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
