"""Every ``--store`` command, run as a real process against stores that cannot be used:
one line on stderr and exit code 2, at once; commands that only read never create a
store for a mistyped path; ``SIGNOFF_STORE`` stands in for ``--store``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

READERS = [
    ["pending"],
    ["history", "some-id"],
    ["rebuild-index"],
    ["audit", "verify"],
    ["audit", "anchor", "--out", "anchor.json"],
    ["audit", "export"],
    ["projections", "status"],
    ["projections", "rebuild", "audit"],
]
"""Commands that work on a store that exists."""
WRITERS = [["demo"], ["projections", "worker"]]
"""Commands that create the store when it is missing."""


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[int, str, str, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "signoff", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def assert_one_line_failure(code: int, out: str, err: str, seconds: float, text: str) -> None:
    assert code == 2, out + err
    assert err.count("\n") == 1, err
    assert err.startswith("signoff: ")
    assert text in err
    assert "Traceback" not in out + err
    assert seconds < 5


@pytest.mark.parametrize("command", READERS + WRITERS, ids=" ".join)
def test_an_unreachable_postgres_is_one_line(tmp_path, command):
    url = f"postgresql://postgres@127.0.0.1:{unused_port()}/test"

    code, out, err, seconds = run(*command, "--store", url, cwd=tmp_path)

    assert_one_line_failure(
        code, out, err, seconds, f"cannot connect to the PostgreSQL store {url}: Connection refused"
    )


@pytest.mark.parametrize(
    "command",
    [["pending"], ["audit", "verify"], ["projections", "status"], *WRITERS],
    ids=" ".join,
)
def test_a_sqlite_file_in_a_missing_folder_is_one_line(tmp_path, command):
    code, out, err, seconds = run(*command, "--store", "sqlite:///nope/dir/x.db", cwd=tmp_path)

    assert_one_line_failure(code, out, err, seconds, f"folder {tmp_path}/nope/dir does not exist")
    assert not (tmp_path / "nope").exists()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("url", "cause"),
    [
        ("postgresql://postgres@127.0.0.1:5432/no_such_db", 'database "no_such_db" does not exist'),
        ("postgresql://no_such_user@127.0.0.1:5432/test", 'role "no_such_user" does not exist'),
    ],
    ids=["database", "user"],
)
def test_a_wrong_postgres_database_or_user_is_one_line(tmp_path, postgres_server, url, cause):
    code, out, err, seconds = run("pending", "--store", url, cwd=tmp_path)

    assert_one_line_failure(code, out, err, seconds, cause)


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_commands_that_read_do_not_create_a_store(tmp_path, command):
    code, out, err, seconds = run(*command, "--store", "sqlite:///typo.db", cwd=tmp_path)

    assert_one_line_failure(
        code, out, err, seconds, f"no store at sqlite:///typo.db: {tmp_path}/typo.db does not exist"
    )
    assert list(tmp_path.iterdir()) == []


def test_signoff_store_stands_in_for_the_store_option(tmp_path):
    env = {"SIGNOFF_STORE": f"sqlite:///{tmp_path}/from-env.db"}

    # A command without --store uses the variable's store ...
    code, _, err, _ = run("demo", cwd=tmp_path, env=env)
    assert code == 0, err
    assert (tmp_path / "from-env.db").exists()
    assert not (tmp_path / "signoff.db").exists()

    # ... and so does one that only reads it
    code, out, err, _ = run("pending", "--approver", "bob", cwd=tmp_path, env=env)
    assert code == 0, err
    assert "pending approvals" in out

    # --help says so
    _, out, _, _ = run("pending", "--help", cwd=tmp_path)
    assert "SIGNOFF_STORE" in out
