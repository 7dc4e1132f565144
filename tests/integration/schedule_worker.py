"""A schedule-firing engine process for the schedule crash test: killed with SIGKILL.

Usage: python schedule_worker.py STORE_URL LOG_FILE
The callback "stamp" appends "<payload key> <unix time>" to LOG_FILE (fsynced)
before anything else, then lingers a little, so that kills land between a
callback and the record of its firing. Once its engine runs, the worker appends
"@ready <unix time>".
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
from datetime import timedelta
from typing import Any

from signoff import Engine

CALLBACK = "stamp"
READY = "@ready"
LEASE = timedelta(seconds=1)
"""The claim lease of this worker (the engine's default, 30 s, would make a test wait half a
minute for each schedule whose claimant was killed)."""


def log_execution(path: str, key: str) -> None:
    with open(path, "a") as log:
        log.write(f"{key} {time.time():.6f}\n")
        log.flush()
        os.fsync(log.fileno())


def stamper(path: str) -> Any:
    async def stamp(payload: Any, _engine: Engine) -> None:
        log_execution(path, payload["key"])
        await asyncio.sleep(random.uniform(0.0, 0.2))

    return stamp


async def main(store: str, log: str) -> None:
    engine = Engine(store, poll_interval=0.02, lease=LEASE)
    engine.register_callback(CALLBACK, stamper(log))
    async with engine:
        log_execution(log, READY)
        while True:
            await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
