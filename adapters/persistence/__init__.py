"""Event store selection by URL: memory://, sqlite:///path, postgresql://user@host:port/db."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from signoff.adapters.persistence.checks import check_folder, first_connection
from signoff.domain.errors import InvalidInputError
from signoff.redact import masked_url

_RECORDERS = {
    "memory": "signoff.adapters.persistence.memory:MemorySignoffRecorder",
    "sqlite": "signoff.adapters.persistence.sqlite:SQLiteSignoffRecorder",
    "postgres": "signoff.adapters.persistence.postgres:PostgresSignoffRecorder",
}
"""eventsourcing recorders extended with signoff's run and timer index."""
STORE_ENV = "SIGNOFF_STORE"
"""Names the store when a command's ``--store`` is not given (and hands an engine's URL
to its view worker without showing it in the worker's command line)."""


@dataclass(frozen=True)
class StoreConfig:
    """An event store URL turned into eventsourcing's environment settings."""

    url: str
    kind: str
    env: dict[str, str]
    schema: str | None = None

    @property
    def shown_url(self) -> str:
        """The URL as it may be printed: its password masked."""
        return masked_url(self.url)

    @property
    def is_durable(self) -> bool:
        """Tells whether events outlive the process."""
        return self.kind != "memory"


def parse_store_url(url: str) -> StoreConfig:
    """Turns a store URL into eventsourcing settings.

    ``sqlite:///relative.db`` and ``sqlite:////abs/path.db`` name a file;
    ``postgresql://user:password@host:port/db?schema=name`` names a database
    and an optional schema (created when missing).
    """
    parts = urlsplit(url)
    common = {"ORIGINATOR_ID_TYPE": "text"}
    if parts.scheme == "memory":
        return StoreConfig(
            url,
            "memory",
            {
                **common,
                "PERSISTENCE_MODULE": "eventsourcing.popo",
                "APPLICATION_RECORDER_TOPIC": _RECORDERS["memory"],
            },
        )
    if parts.scheme == "sqlite":
        path = unquote(parts.path)[1:] if parts.path.startswith("/") else unquote(parts.path)
        if not path:
            raise InvalidInputError(f"sqlite store URL needs a file path: {url!r}")
        path = os.path.abspath(path)
        return StoreConfig(
            url,
            "sqlite",
            {
                **common,
                "PERSISTENCE_MODULE": "eventsourcing.sqlite",
                "SQLITE_DBNAME": path,
                "SQLITE_LOCK_TIMEOUT": "30",
                "APPLICATION_RECORDER_TOPIC": _RECORDERS["sqlite"],
            },
        )
    if parts.scheme in ("postgresql", "postgres"):
        query = parse_qs(parts.query)
        schema = query.get("schema", [""])[0] or None
        env = {
            **common,
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.lstrip("/")) or "postgres",
            "POSTGRES_HOST": parts.hostname or "127.0.0.1",
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": _RECORDERS["postgres"],
        }
        if schema:
            env["POSTGRES_SCHEMA"] = schema
        return StoreConfig(url, "postgres", env, schema)
    raise InvalidInputError(
        f"unknown store URL {masked_url(url)!r}: use memory://, sqlite:///path or postgresql://..."
    )


def prepare_store(config: StoreConfig) -> None:
    """Checks that the store can be opened, failing fast with the cause (see
    :mod:`.checks`), and creates what it needs before eventsourcing opens it (a Postgres
    schema)."""
    check_folder(config)
    if config.kind == "sqlite":
        write_ahead_log(config.env["SQLITE_DBNAME"])
    if config.kind != "postgres":
        return
    # Processes creating it at once race inside IF NOT EXISTS: one wins, all go on.
    with first_connection(config) as conn:
        if config.schema:
            import psycopg
            from psycopg import sql

            with contextlib.suppress(psycopg.errors.UniqueViolation):
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(config.schema))
                )


def write_ahead_log(path: str, *, attempts: int = 100) -> None:
    """Puts a SQLite file in WAL mode before eventsourcing opens it: switching a new file's
    journal mode needs the file to itself and fails at once, without waiting, when several
    processes open the new file together (once in WAL mode, the switch is a no-op)."""
    import sqlite3
    import time

    for attempt in range(attempts):
        try:
            with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or attempt == attempts - 1:
                raise
            time.sleep(0.05)
