"""The store id: written once into each store, the same for every process that opens it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import psycopg
import pytest

from signoff.adapters.persistence import parse_store_url, prepare_store
from signoff.application import SignoffApplication

SCRIPT = """
import sys
from signoff.adapters.persistence import parse_store_url, prepare_store
from signoff.application import SignoffApplication

config = parse_store_url(sys.argv[1])
prepare_store(config)
print(SignoffApplication(config.env).store_id())
"""


def store_id(url: str) -> str:
    config = parse_store_url(url)
    prepare_store(config)
    return SignoffApplication(config.env).store_id()


def test_a_store_keeps_its_id_and_another_store_has_another(durable_store_url, tmp_path):
    # Open a new store twice
    first = store_id(durable_store_url)
    again = store_id(durable_store_url)

    # Same id; another store (a new file) has another
    assert first == again
    assert len(first) == 32
    assert store_id(f"sqlite:///{tmp_path}/other.db") != first


def test_each_memory_store_has_a_fresh_id():
    assert store_id("memory://") != store_id("memory://")


def drop_store_table(url: str) -> None:
    """Makes the store look like one written before the store id existed."""
    config = parse_store_url(url)
    if config.kind == "sqlite":
        with sqlite3.connect(config.env["SQLITE_DBNAME"]) as conn:
            conn.execute("DROP TABLE signoff_store")
        return
    with psycopg.connect(url.split("?")[0], autocommit=True) as conn:
        conn.execute(f'DROP TABLE "{config.schema}".signoff_store')


def test_a_store_made_before_the_id_existed_gets_one(durable_store_url):
    store_id(durable_store_url)
    drop_store_table(durable_store_url)

    # Opening it again writes an id, which then stays
    found = store_id(durable_store_url)
    assert store_id(durable_store_url) == found


@pytest.mark.slow
def test_processes_opening_a_new_store_at_once_agree_on_its_id(durable_store_url):
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, durable_store_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(6)
    ]
    outputs = [p.communicate(timeout=120) for p in openers]

    assert [p.returncode for p in openers] == [0] * 6, [err.decode() for _, err in outputs]
    ids = {out.decode().strip() for out, _ in outputs}
    assert len(ids) == 1
    assert ids == {store_id(durable_store_url)}
