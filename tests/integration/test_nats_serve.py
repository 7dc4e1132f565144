"""``signoff serve`` as a real process: a bundled broker, workflows from a module, and a
SIGTERM that drains in-flight commands before exit."""

from __future__ import annotations

import asyncio
import signal
import socket
import sqlite3
import subprocess
import sys
from typing import Any

import nats
import orjson
import pytest

from signoff.adapters.nats.server import free_port
from tests.integration.process_support import (
    assert_all_gone,
    children_of,
    command_line,
    wait_for_line,
)

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("views", ["thread", "process"])
async def test_serve_drains_in_flight_commands_on_sigterm(tmp_path, views):
    port = free_port()
    db = tmp_path / "e.db"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "signoff",
            "serve",
            "--store",
            f"sqlite:///{db}",
            "--workflows",
            "tests.integration.nats_workflows",
            "--data-dir",
            str(tmp_path / "nats"),
            "--nats-port",
            str(port),
            "--views",
            views,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        # It starts a bundled broker, loads the workflows and says it runs unauthenticated
        banner = wait_for_line(process, "signoff serving")
        workers = [pid for pid in children_of(process.pid) if "projections" in command_line(pid)]
        if views == "process":  # the views are built by a worker process of its own
            assert len(workers) == 1
        assert "nats-expense" in banner
        assert "unauthenticated" in banner

        # Many requests are in flight when SIGTERM arrives: all published, and the flush's
        # PONG says the broker has routed them to signoff, before the signal is sent
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        inbox = nc.new_inbox()
        answers: asyncio.Queue[bytes] = asyncio.Queue()

        async def collect(msg: Any) -> None:
            await answers.put(msg.data)

        await nc.subscribe(inbox, cb=collect)
        body = orjson.dumps({"title": "t", "requested_by": "carol"})
        for _ in range(300):
            await nc.publish("signoff.approval.request", body, reply=inbox)
        await nc.flush()
        process.send_signal(signal.SIGTERM)
        replies = [await asyncio.wait_for(answers.get(), 20) for _ in range(300)]
        await nc.close()

        # Every one was answered and stored, and the process exits cleanly
        assert all(orjson.loads(reply)["ok"] for reply in replies)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM signoff_approvals").fetchone()[0] == 300
    assert_all_gone(workers)  # no worker outlived signoff serve

    # The bundled broker stopped with it
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
