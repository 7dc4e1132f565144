"""Several processes opening one new PostgreSQL store at the same moment all start."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import asyncio, sys
from signoff import Engine

async def main() -> None:
    async with Engine(sys.argv[1]) as engine:
        approval = await engine.request_approval(title="t", requested_by="carol")
        await engine.approve(approval, by="alice")
        assert len(await engine.audit_trail(aggregate_id=approval)) == 3

asyncio.run(main())
"""


@pytest.mark.postgres
def test_processes_creating_a_store_at_once_all_start(postgres_url: str):
    starters = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, postgres_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(4)
    ]
    codes = [p.wait(timeout=120) for p in starters]
    errors = [
        line
        for p in starters
        for line in p.stderr.read().decode().splitlines()  # type: ignore[union-attr]
        if "Error" in line or "DETAIL" in line
    ]
    assert codes == [0, 0, 0, 0], errors
