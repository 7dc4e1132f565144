"""A separate process that decides approvals in lock-step with its rivals.

Usage: python race_worker.py STORE_URL SYNC_DIR NAME DECISION ID [ID ...]
For each id it signals ready, waits for the go signal, decides, and prints
one JSON line: {"id": ..., "outcome": "ok" | error class name}.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from signoff import Engine, SignoffError


async def main(store: str, sync_dir: Path, name: str, decision: str, ids: list[str]) -> None:
    async with Engine(store) as engine:
        await engine.get_approval(ids[0])  # open the store before the race starts
        for round_no, approval_id in enumerate(ids):
            (sync_dir / f"ready-{name}-{round_no}").touch()
            while not (sync_dir / f"go-{round_no}").exists():
                time.sleep(0.0005)
            try:
                if decision == "approve":
                    await engine.approve(approval_id, by=name)
                else:
                    await engine.reject(approval_id, by=name)
                outcome = "ok"
            except SignoffError as error:
                outcome = type(error).__name__
            print(json.dumps({"id": approval_id, "outcome": outcome}), flush=True)


if __name__ == "__main__":
    store_url, sync, person, vote, *approval_ids = sys.argv[1:]
    asyncio.run(main(store_url, Path(sync), person, vote, approval_ids))
