"""What the benchmark modules share: the PostgreSQL server they run on, a fresh schema for
each benchmark (dropped after it, so that no figure depends on an earlier one's rows), and
the one-line report format of ``make bench``."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

POSTGRES = os.environ.get("SIGNOFF_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


@contextlib.contextmanager
def postgres_store(server: str = POSTGRES) -> Iterator[str]:
    """A store URL naming a new schema of ``server``; the schema is dropped on exit."""
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        yield f"{server}?schema={schema}"
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def report(name: str, figures: dict[str, float]) -> None:
    """Prints one benchmark's figures on one line."""
    cells = "  ".join(f"{k} {v:>9,.1f}" for k, v in figures.items())
    print(f"{name:<40} {cells}", flush=True)
