"""A store's password never shows: not in ``signoff serve``'s output, not in its view
worker's command line, not in the CLI's messages (PostgreSQL here trusts any password)."""

from __future__ import annotations

import signal
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest

from signoff.adapters.nats.server import free_port
from tests.integration.process_support import (
    children_of,
    command_line,
    environment,
    finish,
    signoff_process,
    stop,
    wait_for_line,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

SECRET = "s3cret-pw"


def with_password(url: str) -> str:
    """``url`` with SECRET as its password (the test server trusts any password)."""
    parts = urlsplit(url)
    user = parts.username or "postgres"
    host = parts.hostname or "127.0.0.1"
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:{SECRET}@{host}{port}"))


def test_serve_masks_the_password_and_hands_it_to_its_worker_unseen(tmp_path, postgres_url):
    store = with_password(postgres_url)
    process = signoff_process(
        "serve",
        "--store",
        store,
        "--data-dir",
        str(tmp_path / "nats"),
        "--nats-port",
        str(free_port()),
        "--views",
        "process",
    )
    try:
        # The startup line shows the store with its password masked
        banner = wait_for_line(process, "signoff serving")
        assert f"signoff serving {store.replace(SECRET, '***')} on nats://" in banner

        # The view worker gets the URL in its environment, not in its command line
        workers = [pid for pid in children_of(process.pid) if "projections" in command_line(pid)]
        assert len(workers) == 1
        assert not any(SECRET in arg for arg in command_line(workers[0]))
        assert environment(workers[0])["SIGNOFF_STORE"] == store

        process.send_signal(signal.SIGTERM)
        code, rest, _ = finish(process, timeout=30)
    finally:
        stop(process)
    assert code == 0
    assert SECRET not in banner + rest


def test_cli_messages_mask_the_password(tmp_path, postgres_url):
    store = with_password(postgres_url)

    def signoff(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "signoff", *args], capture_output=True, text=True, timeout=60
        )

    # A store that cannot be reached is named, masked
    unreachable = store.replace(":5432/", ":1/")
    failed = signoff("pending", "--store", unreachable)
    assert failed.returncode == 2
    assert "postgres:***@127.0.0.1:1/" in failed.stderr

    # So is one a command worked on
    demo = signoff("demo", "--store", store)
    assert demo.returncode == 0, demo.stderr
    indexed = signoff("rebuild-index", "--store", store)
    assert indexed.returncode == 0, indexed.stderr
    assert "postgres:***@" in indexed.stdout
    for done in (failed, demo, indexed):
        assert SECRET not in done.stdout + done.stderr
