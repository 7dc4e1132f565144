"""Bulk inserts and deletes (executemany on SQLite, binary column arrays on PostgreSQL)."""

from __future__ import annotations

import sqlite3
from typing import Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from signoff.adapters.persistence.bulk import BulkDelete, BulkInsert

ROWS = st.lists(
    st.tuples(
        st.text(min_size=1, max_size=12).filter(lambda s: "\x00" not in s),
        st.one_of(st.none(), st.integers(-(2**40), 2**40), st.floats(allow_nan=False)),
        st.binary(max_size=40),
        st.dictionaries(
            st.text(max_size=5).filter(lambda s: "\x00" not in s), st.integers(-(2**53), 2**53)
        ),
    ),
    max_size=30,
    unique_by=lambda row: row[0],
)


def _write(cursor: Any, param: str, rows: list[tuple[Any, ...]]) -> None:
    insert = BulkInsert(
        "bulk_t",
        ("id", "n", "b", "j"),
        ("text", "float8", "bytea", "jsonb"),
        param=param,
        suffix="ON CONFLICT (id) DO UPDATE SET n = excluded.n",
    )
    import orjson

    encoded = [(i, n, b, orjson.dumps(j).decode()) for i, n, b, j in rows]
    insert(cursor, encoded)
    insert(cursor, [(i, 7.0, b, j) for i, _, b, j in encoded[:1]])  # an upsert of the first
    BulkDelete("bulk_t", "id", param=param)(cursor, [row[0] for row in rows[1:2]])


def _expected(rows: list[tuple[Any, ...]]) -> dict[str, tuple[Any, ...]]:
    kept = {i: (None if n is None else float(n), bytes(b), j) for i, n, b, j in rows}
    if rows:
        first = rows[0]
        kept[first[0]] = (7.0, bytes(first[2]), first[3])
    for row in rows[1:2]:
        del kept[row[0]]
    return kept


@given(rows=ROWS)
def test_sqlite_bulk_writes_store_every_row(rows: list[tuple[Any, ...]]):
    import orjson

    with sqlite3.connect(":memory:") as conn:
        conn.execute("CREATE TABLE bulk_t (id TEXT PRIMARY KEY, n REAL, b BLOB, j TEXT)")
        _write(conn.cursor(), "?", rows)
        found = {
            i: (n, bytes(b), orjson.loads(j))
            for i, n, b, j in conn.execute("SELECT id, n, b, j FROM bulk_t")
        }
    assert found == _expected(rows)


@pytest.mark.postgres
@given(rows=ROWS)
def test_postgres_bulk_writes_store_every_row(postgres_server: str, rows: list[tuple[Any, ...]]):
    with psycopg.connect(postgres_server) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bulk_t (id TEXT PRIMARY KEY, n FLOAT8, b BYTEA, j JSONB)")
        _write(cursor, "%s", rows)
        cursor.execute("SELECT id, n, b, j FROM bulk_t")
        found = {i: (n, bytes(b), j) for i, n, b, j in cursor.fetchall()}
        conn.rollback()
    assert found == _expected(rows)
