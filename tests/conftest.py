"""Shared fixtures: event store URLs for memory, SQLite files and PostgreSQL schemas."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import settings

settings.register_profile("default", deadline=None, print_blob=True)
settings.load_profile("default")

POSTGRES_URL = os.environ.get("SIGNOFF_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def postgres_available() -> bool:
    """Tells whether the test PostgreSQL answers; in CI its absence is a failure."""
    try:
        with psycopg.connect(POSTGRES_URL.split("?")[0], connect_timeout=3):
            return True
    except psycopg.OperationalError:
        if os.environ.get("CI"):
            raise
        return False


@pytest.fixture(scope="session")
def postgres_server() -> str:
    if not postgres_available():
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_URL} (outside CI only)")
    return POSTGRES_URL


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL store in a schema of its own, dropped afterwards."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield f"{postgres_server}?schema={schema}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Each event store in turn: in-memory, a SQLite file, a PostgreSQL schema."""
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def durable_store_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """The stores that outlive their engine: a SQLite file, a PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/events.db"
    return str(request.getfixturevalue("postgres_url"))
