"""Fail fast, with the cause, on a store that cannot be used.

eventsourcing's PostgreSQL pool retries in the background and reports only "couldn't get
a connection after 10 s"; a SQLite file in a missing folder fails deep inside the
recorder. One direct connection with a short timeout, and a look at the file system,
say what is wrong before either is opened. Commands that only read also refuse a store
that was never created instead of creating an empty one.

    SignoffError
    └── StoreError
        ├── StoreUnavailableError
        └── StoreMissingError

Messages name the store with its password masked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from signoff.domain.errors import SignoffError
from signoff.redact import masked_url

if TYPE_CHECKING:
    import psycopg

    from signoff.adapters.persistence import StoreConfig

FIRST_CONNECT_TIMEOUT = 5
"""Seconds the first connection to PostgreSQL may take (libpq's minimum is 2)."""
EVENTS_TABLE = "signoff_events"
"""The events table of every PostgreSQL store signoff created (eventsourcing names it
after the application)."""


class StoreError(SignoffError):
    """Raised when the event store cannot be used; the message names it (masked)."""


class StoreUnavailableError(StoreError):
    """Raised when the store cannot be reached or opened: nobody listens at the address,
    the user or database does not exist, the password is refused, the folder is missing."""


class StoreMissingError(StoreError):
    """Raised when a command that only reads names a store that was never created."""

    def __init__(self, config: StoreConfig, why: str) -> None:
        super().__init__(f"no store at {masked_url(config.url)}: {why}")


def _cause(error: Exception) -> str:
    """libpq's reason, on one line ('Connection refused', 'database "x" does not exist')."""
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    reason = text.rpartition(" failed: ")[2] or text
    return " ".join(reason.removeprefix("FATAL:").split())


@contextmanager
def first_connection(config: StoreConfig) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """An autocommit connection to the store's PostgreSQL, or StoreUnavailableError."""
    import psycopg

    env = config.env
    try:
        conn = psycopg.connect(
            dbname=env["POSTGRES_DBNAME"],
            host=env["POSTGRES_HOST"],
            port=int(env["POSTGRES_PORT"]),
            user=env["POSTGRES_USER"],
            password=env["POSTGRES_PASSWORD"] or None,
            connect_timeout=FIRST_CONNECT_TIMEOUT,
            autocommit=True,
        )
    except psycopg.OperationalError as error:
        raise StoreUnavailableError(
            f"cannot connect to the PostgreSQL store {masked_url(config.url)}: {_cause(error)}"
        ) from None
    with conn:
        yield conn


def check_folder(config: StoreConfig) -> None:
    """Raises StoreUnavailableError when a SQLite store's folder does not exist."""
    if config.kind != "sqlite":
        return
    folder = os.path.dirname(config.env["SQLITE_DBNAME"])
    if not os.path.isdir(folder):
        raise StoreUnavailableError(
            f"cannot open the SQLite store {masked_url(config.url)}: folder {folder} does not exist"
        )


def check_exists(config: StoreConfig) -> None:
    """Raises a StoreError unless the store exists and can be reached (for commands that
    only read, which must not create an empty store for a mistyped URL)."""
    if config.kind == "memory":
        raise StoreMissingError(config, "a memory:// store lives only inside its process")
    if config.kind == "sqlite":
        check_folder(config)
        path = config.env["SQLITE_DBNAME"]
        if not os.path.isfile(path):
            raise StoreMissingError(config, f"{path} does not exist")
        return
    schema = config.schema or "public"
    with first_connection(config) as conn:
        found = conn.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
            (schema, EVENTS_TABLE),
        ).fetchone()
    if found is None:
        raise StoreMissingError(config, f"schema {schema!r} holds no signoff events")
