"""Raw SQL on a SQLite file or a PostgreSQL schema: what someone with write access to the
database, but not to signoff, can do to the stored events, the chain and its head."""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlsplit

import psycopg

from signoff.adapters.persistence import parse_store_url


class RawStore:
    """Runs SQL with ``?`` placeholders and ``{events}``/``{pos}`` standing for the event
    table and its notification id column."""

    def __init__(self, url: str) -> None:
        config = parse_store_url(url)
        self.sqlite = config.kind == "sqlite"
        if self.sqlite:
            self._conn: Any = sqlite3.connect(config.env["SQLITE_DBNAME"], isolation_level=None)
            self.events, self.pos = "stored_events", "rowid"
        else:
            parts = urlsplit(url)
            self._conn = psycopg.connect(parts._replace(query="").geturl(), autocommit=True)
            self._conn.execute(f'SET search_path TO "{config.schema}"')
            self.events, self.pos = "signoff_events", "notification_id"

    def run(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        sql = sql.format(events=self.events, pos=self.pos)
        if not self.sqlite:
            sql = sql.replace("?", "%s")
        cursor = self._conn.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []

    def close(self) -> None:
        self._conn.close()

    # Looking -----------------------------------------------------------------

    def positions(self, topic_part: str = "") -> list[int]:
        """Positions of the events whose topic contains ``topic_part``, ascending."""
        rows = self.run(
            "SELECT {pos} FROM {events} WHERE topic LIKE ? ORDER BY {pos}", f"%{topic_part}%"
        )
        return [int(r[0]) for r in rows]

    def event(self, position: int) -> tuple[str, int, str, bytes]:
        (row,) = self.run(
            "SELECT originator_id, originator_version, topic, state FROM {events} WHERE {pos} = ?",
            position,
        )
        return str(row[0]), int(row[1]), str(row[2]), bytes(row[3])

    # Tampering ---------------------------------------------------------------

    def edit(self, position: int, old: bytes, new: bytes) -> None:
        """Rewrites part of one event's stored state."""
        state = self.event(position)[3]
        assert old in state
        self.run("UPDATE {events} SET state = ? WHERE {pos} = ?", state.replace(old, new), position)

    def delete(self, position: int) -> None:
        self.run("DELETE FROM {events} WHERE {pos} = ?", position)

    def put(self, position: int | None, event: tuple[str, int, str, bytes]) -> int:
        """Inserts an event (at ``position``, or where the database puts it); returns where."""
        if position is None:
            self.run(
                "INSERT INTO {events} (originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?)",
                *event,
            )
        else:
            self.run(
                "INSERT INTO {events} ({pos}, originator_id, originator_version, topic, state) "
                "VALUES (?, ?, ?, ?, ?)",
                position,
                *event,
            )
        (row,) = self.run(
            "SELECT {pos} FROM {events} WHERE originator_id = ? AND originator_version = ?",
            event[0],
            event[1],
        )
        return int(row[0])

    def swap(self, first: int, second: int) -> None:
        """Exchanges the places of two events."""
        a, b = self.event(first), self.event(second)
        self.delete(first)
        self.delete(second)
        self.put(first, b)
        self.put(second, a)
