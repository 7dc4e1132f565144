"""``make bench``: throughput figures on the real stores (printed, never asserted).

Usage: python -m signoff.bench [--n N] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable

import psycopg

from signoff.engine import Engine

POSTGRES = os.environ.get("SIGNOFF_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


async def approval_cycles(store: str, n: int) -> dict[str, float]:
    """Requests ``n`` approvals, then approves them all; returns the rates."""
    async with Engine(store) as engine:
        started = time.perf_counter()
        ids = await asyncio.gather(
            *(engine.request_approval(title=f"bench {i}", requested_by="carol") for i in range(n))
        )
        requested = time.perf_counter()
        await asyncio.gather(*(engine.approve(i, by="alice") for i in ids))
        approved = time.perf_counter()
    return {
        "requests/s": n / (requested - started),
        "approvals/s": n / (approved - requested),
        "cycles/s": n / (approved - started),
    }


def _report(name: str, figures: dict[str, float]) -> None:
    cells = "  ".join(f"{k} {v:>9,.0f}" for k, v in figures.items())
    print(f"{name:<34} {cells}", flush=True)


async def _on_stores(
    stores: list[str], label: str, bench: Callable[[str], Awaitable[dict[str, float]]]
) -> None:
    for kind in stores:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                _report(f"{label} [sqlite]", await bench(f"sqlite:///{tmp}/bench.db"))
        elif kind == "postgres":
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            try:
                _report(f"{label} [postgres]", await bench(f"{POSTGRES}?schema={schema}"))
            finally:
                with psycopg.connect(POSTGRES, autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        else:
            _report(f"{label} [memory]", await bench("memory://"))


def main() -> None:
    """Runs every benchmark and prints one line of figures each."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--stores", default="sqlite,postgres")
    args = parser.parse_args()
    stores = args.stores.split(",")
    asyncio.run(
        _on_stores(
            stores, f"approval request+approve x{args.n}", lambda s: approval_cycles(s, args.n)
        )
    )


if __name__ == "__main__":
    main()
