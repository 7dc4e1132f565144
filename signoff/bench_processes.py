"""Engine processes for the fleet benchmarks: starts ``signoff.bench_worker`` processes on
one store, gives them orders, reads their answers, and makes sure none outlives the
benchmark.

Each process runs in a session of its own, so that Ctrl-C reaches only the driver, whose
clean-up then kills them all (on any error or cancellation too); and each exits when its
stdin closes, so that even a driver killed outright leaves none behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any


class EngineProcessError(RuntimeError):
    """Raised when an engine process of a benchmark ends, or stays silent, unexpectedly."""


class EngineProcess:
    """One ``signoff.bench_worker`` process, with its stderr in a file."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log
        self._unread: list[dict[str, Any]] = []
        """Answers read while looking for another kind."""

    @classmethod
    async def spawn(cls, store: str, log: Path, *, lease: float, poll: float) -> EngineProcess:
        """Starts a process writing its stderr to ``log`` (it answers ``ready`` once its
        engine started)."""
        with log.open("wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                *(sys.executable, "-m", "signoff.bench_worker", store),
                *("--lease", str(lease), "--poll", str(poll)),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                start_new_session=True,
            )
        return cls(process, log)

    @property
    def pid(self) -> int:
        """The process id."""
        return self.process.pid

    async def order(self, do: str, **fields: Any) -> None:
        """Sends one order (see ``signoff.bench_worker``)."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"do": do, **fields}).encode() + b"\n")
        await self.process.stdin.drain()

    async def answer(
        self, key: str, *, count: int = 1, timeout: float = 600
    ) -> list[dict[str, Any]]:
        """Waits for ``count`` answers holding ``key`` (others are kept for later calls)."""
        found = [m for m in self._unread if key in m][:count]
        self._unread = [m for m in self._unread if not any(m is f for f in found)]
        try:
            async with asyncio.timeout(timeout):
                while len(found) < count:
                    message = await self._next()
                    (found if key in message else self._unread).append(message)
        except TimeoutError:
            raise EngineProcessError(self._story(f"no {key!r} within {timeout} s")) from None
        return found

    async def _next(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            await self.process.wait()
            raise EngineProcessError(self._story(f"exited with {self.process.returncode}"))
        message: dict[str, Any] = json.loads(line)
        return message

    def _story(self, what: str) -> str:
        tail = self.log.read_text(errors="replace")[-4000:]
        return f"engine process {self.pid} {what}; its stderr:\n{tail}"

    def kill(self) -> None:
        """SIGKILLs the process unless it ended (no drain: its leases run out)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def stop(self, timeout: float = 30) -> None:
        """Asks the process to close its engine and exit; kills it if it takes longer."""
        if self.process.returncode is None:
            with contextlib.suppress(ConnectionError):
                await self.order("stop")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self.process.wait()
        await self.reap()

    async def reap(self) -> None:
        """Kills the process unless it ended, and waits for it."""
        self.kill()
        await self.process.wait()


@contextlib.asynccontextmanager
async def engine_processes(
    store: str, count: int, *, lease: float = 30.0, poll: float = 0.1
) -> AsyncIterator[list[EngineProcess]]:
    """``count`` engine processes on ``store``, started and ready; stopped on exit (killed
    on an error or cancellation)."""
    async with contextlib.AsyncExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="signoff-bench-")))
        engines: list[EngineProcess] = []
        for number in range(count):
            log = folder / f"engine-{number}.log"
            engine = await EngineProcess.spawn(store, log, lease=lease, poll=poll)
            stack.push_async_callback(engine.reap)
            engines.append(engine)
        await asyncio.gather(*(e.answer("ready", timeout=120) for e in engines))
        yield engines
        await asyncio.gather(*(e.stop() for e in engines))
