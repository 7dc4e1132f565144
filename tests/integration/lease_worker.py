"""An engine process for the lease tests: it executes ``slow`` runs with a short lease until
it is killed. Usage: python lease_worker.py STORE_URL LEASE READY_FILE"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from signoff import Engine
from tests.integration.lease_workflows import Slow


async def main(store: str, lease: str, ready: Path) -> None:
    engine = Engine(store, poll_interval=0.05, lease=lease)
    engine.register(Slow)
    async with engine:
        ready.write_text(engine.instance_id)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], Path(sys.argv[3])))
