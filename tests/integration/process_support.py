"""Helpers of the tests that run ``signoff`` as real processes: start one, read its stderr
up to a line, find its child processes, and check that nothing outlived it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path


def signoff_process(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``python -m signoff <args>`` with stderr piped (stdout discarded)."""
    return subprocess.Popen(
        [sys.executable, "-m", "signoff", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def wait_for_line(process: subprocess.Popen[bytes], text: str, timeout: float = 30) -> str:
    """Reads stderr until a line holds ``text``; returns everything read."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        assert process.stderr is not None
        line = process.stderr.readline().decode()
        seen.append(line)
        if text in line:
            return "".join(seen)
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"no {text!r} in output: {''.join(seen)}")


def children_of(pid: int) -> list[int]:
    """The pids of ``pid``'s child processes."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found.extend(int(child) for child in children.read().split())
    except OSError:
        pass
    return found


def command_line(pid: int) -> list[str]:
    """A process's argv (empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return [arg.decode() for arg in cmdline.read().split(b"\0") if arg]
    except OSError:
        return []


def environment(pid: int) -> dict[str, str]:
    """A process's environment (empty once it is gone)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as environ:
            pairs = [item.decode().partition("=") for item in environ.read().split(b"\0") if item]
    except OSError:
        return {}
    return {name: value for name, _, value in pairs}


def alive(pid: int) -> bool:
    """Tells whether ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def assert_all_gone(pids: Iterable[int], timeout: float = 5.0) -> None:
    """Waits until none of ``pids`` runs."""
    deadline = time.monotonic() + timeout
    left = [pid for pid in pids if alive(pid)]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [pid for pid in left if alive(pid)]
    assert not left, f"still running: {[command_line(pid) for pid in left]}"


def listening(port: int) -> bool:
    """Tells whether something accepts connections on ``port`` of 127.0.0.1."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def finish(process: subprocess.Popen[bytes], timeout: float) -> tuple[int, str, float]:
    """Waits for the process; returns its exit code, the rest of its stderr and the
    seconds it took (it is killed, and the test fails, after ``timeout``)."""
    started = time.monotonic()
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError(f"still running after {timeout} s") from None
    return process.returncode, err.decode(), time.monotonic() - started


def stop(process: subprocess.Popen[bytes]) -> None:
    """Kills the process if a test left it running."""
    if process.poll() is None:
        process.kill()
        process.wait()
