"""``signoff serve`` failing cleanly, as a real process with real signals: a broker that is
not there, a port that is taken, a missing module, a hung drain. Each ends with one line
and a documented exit code, promptly, and leaves no child process behind."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import nats
import orjson
import pytest

from signoff.adapters.nats.server import NatsServer, free_port, server_binary
from tests.integration.process_support import (
    assert_all_gone,
    children_of,
    command_line,
    finish,
    listening,
    signoff_process,
    stop,
    wait_for_line,
)

pytestmark = pytest.mark.slow

WORKFLOW_MODULE = """
from signoff import Workflow

class Tidy(Workflow):
    name = "tidy-from-cwd"

    async def run(self, event, step):
        return "done"
"""


def brokers_using(data_dir: Path) -> list[int]:
    """Pids of the bundled nats-servers storing under ``data_dir``, wherever they are."""
    return [
        int(pid)
        for pid in os.listdir("/proc")
        if pid.isdigit() and str(data_dir) in command_line(int(pid))
    ]


def test_serve_gives_up_on_an_unreachable_broker_with_one_line_per_attempt(tmp_path):
    nobody = free_port()
    process = signoff_process(
        "serve",
        "--store",
        f"sqlite:///{tmp_path}/e.db",
        "--nats",
        f"nats://127.0.0.1:{nobody}",
        "--nats-connect-timeout",
        "2",
        "--views",
        "process",
    )
    try:
        # It tries, one short line per attempt, while its view worker runs
        first = wait_for_line(process, "attempt 1")
        children = children_of(process.pid)
        assert children, "no view worker started"

        # ... then gives up with one line and exit code 2, after about the timeout
        code, rest, seconds = finish(process, timeout=15)
    finally:
        stop(process)
    output = first + rest
    assert code == 2, output
    assert "Traceback" not in output
    attempts = [line for line in output.splitlines() if "cannot connect to NATS" in line]
    assert len(attempts) >= 2
    assert all(len(line) < 200 for line in attempts)
    assert output.splitlines()[-1].startswith(
        f"signoff: no NATS server answered at nats://127.0.0.1:{nobody} within 2 s"
    )
    assert seconds < 10
    assert_all_gone(children)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_serve_while_it_is_still_connecting(tmp_path, sig):
    url = f"nats://127.0.0.1:{free_port()}"
    process = signoff_process(
        "serve",
        "--store",
        f"sqlite:///{tmp_path}/e.db",
        "--views",
        "process",
        env={"SIGNOFF_NATS": url},  # stands in for --nats
    )
    try:
        # It keeps trying (for 30 s by default) ...
        wait_for_line(process, f"cannot connect to NATS at {url} (attempt 2)")
        children = children_of(process.pid)

        # ... until the signal, which ends it at once, with what it started
        process.send_signal(sig)
        code, output, seconds = finish(process, timeout=10)
    finally:
        stop(process)
    assert code == 0, output
    assert "stopped before serving" in output
    assert "Traceback" not in output
    assert seconds < 5
    assert_all_gone(children)


def test_sigint_drains_a_serving_engine_like_sigterm(tmp_path):
    port = free_port()
    process = signoff_process(
        "serve",
        "--store",
        f"sqlite:///{tmp_path}/e.db",
        "--data-dir",
        str(tmp_path / "nats"),
        "--nats-port",
        str(port),
    )
    try:
        wait_for_line(process, "signoff serving")
        children = children_of(process.pid)

        process.send_signal(signal.SIGINT)
        code, output, _ = finish(process, timeout=30)
    finally:
        stop(process)
    assert code == 0, output
    assert output.rstrip().endswith("stopped")
    assert_all_gone(children)
    assert not listening(port)


def test_serve_refuses_a_port_another_broker_holds(tmp_path):
    with NatsServer(tmp_path / "other") as other:
        process = signoff_process(
            "serve",
            "--store",
            f"sqlite:///{tmp_path}/e.db",
            "--data-dir",
            str(tmp_path / "nats"),
            "--nats-port",
            str(other.port),
        )
        try:
            code, output, seconds = finish(process, timeout=30)
        finally:
            stop(process)

        # One line naming the port; it did not go on with the other broker
        assert code == 2, output
        assert output.strip().splitlines() == [
            f"signoff: port {other.port} is taken: the bundled nats-server cannot listen "
            f"on 127.0.0.1:{other.port}"
        ]
        assert seconds < 10
        assert brokers_using(tmp_path / "nats") == []


def test_serve_finds_workflows_in_the_current_folder(tmp_path):
    (tmp_path / "tidy_flows.py").write_text(WORKFLOW_MODULE)
    script = Path(sys.executable).parent / "signoff"  # not `python -m`: no cwd on sys.path
    process = subprocess.Popen(
        [
            str(script),
            "serve",
            "--store",
            "sqlite:///e.db",
            "--workflows",
            "tidy_flows",
            "--nats-port",
            str(free_port()),
        ],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
    )
    try:
        banner = wait_for_line(process, "signoff serving")
        process.send_signal(signal.SIGTERM)
        code, _, _ = finish(process, timeout=30)
    finally:
        stop(process)
    assert "workflows: tidy-from-cwd" in banner
    assert code == 0


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (None, "signoff: workflows module 'flows' not found (in "),
        ("import os\nRATE = 1 / 0\n", "failed to import: ZeroDivisionError: division by zero ("),
        ("def broken(:\n", "failed to import: SyntaxError: "),
    ],
    ids=["missing", "raises", "syntax"],
)
def test_a_workflows_module_that_cannot_be_imported_is_one_line(tmp_path, source, expected):
    if source is not None:
        (tmp_path / "flows.py").write_text(source)
    process = signoff_process(
        "serve",
        "--store",
        "sqlite:///e.db",
        "--workflows",
        "flows",
        "--data-dir",
        str(tmp_path / "nats"),
        cwd=tmp_path,
    )
    try:
        code, output, _ = finish(process, timeout=30)
    finally:
        stop(process)
    assert code == 2
    lines = output.strip().splitlines()
    assert len(lines) == 1, output
    assert expected in lines[0]
    if source is not None:
        assert f"{tmp_path}/flows.py:" in lines[0]
    assert brokers_using(tmp_path / "nats") == []  # it failed before starting a broker


@pytest.mark.parametrize("ending", ["second_signal", "drain_timeout"])
async def test_a_hung_drain_is_cut_short(tmp_path, ending):
    port = free_port()
    db = tmp_path / "e.db"
    args = ["--drain-timeout", "1"] if ending == "drain_timeout" else []
    process = signoff_process(
        "serve",
        "--store",
        f"sqlite:///{db}",
        "--data-dir",
        str(tmp_path / "nats"),
        "--nats-port",
        str(port),
        "--views",
        "process",
        *args,
    )
    lock = sqlite3.connect(db, isolation_level=None, timeout=30)
    try:
        wait_for_line(process, "signoff serving")
        children = children_of(process.pid)
        assert len(children) == 2  # the bundled broker and the view worker

        # Commands arrive while another process holds the store's write lock
        lock.execute("BEGIN EXCLUSIVE")
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        body = orjson.dumps({"title": "t", "requested_by": "carol"})
        for _ in range(5):
            await nc.publish("signoff.approval.request", body, reply=nc.new_inbox())
        await nc.flush()
        await nc.close()
        await asyncio.sleep(0.3)

        # SIGTERM starts a drain that cannot finish; a second signal, or the drain
        # timeout, ends the process anyway
        process.send_signal(signal.SIGTERM)
        wait_for_line(process, "draining")
        if ending == "second_signal":
            await asyncio.sleep(0.5)
            process.send_signal(signal.SIGTERM)
        code, output, seconds = await asyncio.to_thread(finish, process, 15)
    finally:
        stop(process)
        lock.close()
    assert code == 1, output
    why = "a second signal" if ending == "second_signal" else "the stop took longer than 1 s"
    assert f"signoff: stopped without finishing the drain ({why})" in output
    assert seconds < 5
    assert_all_gone(children)
    assert not listening(port)


def test_serve_fails_before_starting_a_broker_when_the_store_is_unreachable(tmp_path):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        nobody = closed.getsockname()[1]
    process = signoff_process(
        "serve",
        "--store",
        f"postgresql://postgres@127.0.0.1:{nobody}/test",
        "--data-dir",
        str(tmp_path / "nats"),
    )
    code, output, seconds = finish(process, timeout=30)
    assert code == 2
    assert output.strip().splitlines() == [
        f"signoff: cannot connect to the PostgreSQL store "
        f"postgresql://postgres@127.0.0.1:{nobody}/test: Connection refused"
    ]
    assert seconds < 5
    assert brokers_using(tmp_path / "nats") == []


def test_serve_names_a_broker_without_jetstream(tmp_path):
    port = free_port()
    plain = subprocess.Popen(
        [server_binary(), "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while not listening(port):
            assert plain.poll() is None
        process = signoff_process(
            "serve",
            "--store",
            f"sqlite:///{tmp_path}/e.db",
            "--nats",
            f"nats://127.0.0.1:{port}",
            "--views",
            "process",
        )
        try:
            code, output, _ = finish(process, timeout=30)
        finally:
            stop(process)
    finally:
        plain.terminate()
        plain.wait()
    assert code == 2
    assert output.strip().splitlines()[-1] == (
        f"signoff: the NATS server at nats://127.0.0.1:{port} refused signoff's streams: "
        "JetStream is not enabled there (nats-server -js)"
    )
    assert "Traceback" not in output


def test_sigterm_ends_serve_while_it_imports_workflows(tmp_path):
    (tmp_path / "slow_flows.py").write_text(
        "import sys, time\nprint('importing', file=sys.stderr, flush=True)\ntime.sleep(60)\n"
    )
    process = signoff_process(
        "serve",
        "--store",
        "sqlite:///e.db",
        "--workflows",
        "slow_flows",
        "--data-dir",
        str(tmp_path / "nats"),
        cwd=tmp_path,
    )
    try:
        wait_for_line(process, "importing")
        process.send_signal(signal.SIGTERM)
        code, output, seconds = finish(process, timeout=10)
    finally:
        stop(process)
    assert code == 0, output
    assert output.strip() == "stopped"
    assert seconds < 3
    assert brokers_using(tmp_path / "nats") == []
