"""Views built in a worker process, so that projecting never competes with the engine.

An engine's write path and its workflow code share one interpreter lock; the
projections, run on a thread of the same process, take about a third of it
on a busy engine. With ``Engine(views="process")`` the engine starts
``signoff projections worker`` as a child process instead:

- the engine's writer nudges the worker after each commit (a byte on the
  worker's stdin; PostgreSQL's NOTIFY and polling wake it too);
- the worker applies the new events and prints how many it applied, which
  makes the engine publish the rows that changed to its ``watch``
  subscribers;
- the worker stops when its stdin closes (the engine closed or died), and the
  engine starts a new one if it dies while the engine runs.

Nothing depends on the worker for correctness: queries still catch the views
up first, and each event is applied once whoever applies it (the tracking
rows are moved conditionally), so a slow, dead or restarting worker only
delays ``watch``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

from signoff.adapters.persistence import STORE_ENV, parse_store_url, prepare_store
from signoff.application import SignoffApplication
from signoff.read_models import ReadModels

log = logging.getLogger(__name__)


class ViewWorker:
    """The engine's side of a projection worker process: starts, nudges, watches, stops."""

    def __init__(
        self,
        store_url: str,
        *,
        poll_interval: float,
        on_applied: Callable[[], None],
    ) -> None:
        self.store_url = store_url
        self.poll_interval = poll_interval
        self.on_applied = on_applied
        """Called (on the worker's reader thread) each time the worker applied a batch."""
        self.restarts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        """The worker process's id (None before start)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Starts the worker process and the thread that follows its output."""
        self._stopping.clear()
        self._spawn()
        self._thread = threading.Thread(target=self._follow, name="signoff-views", daemon=True)
        self._thread.start()

    def _spawn(self) -> None:
        command = [
            sys.executable,
            "-m",
            "signoff",
            "projections",
            "worker",
            "--poll-interval",
            str(self.poll_interval),
            "--until-stdin-closes",
        ]
        # The URL may hold a password: in the child's environment, not in its command line
        env = {**os.environ, STORE_ENV: self.store_url}
        process = subprocess.Popen(  # noqa: S603
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        assert process.stdin is not None
        os.set_blocking(process.stdin.fileno(), False)
        with self._lock:
            self._process = process

    def nudge(self) -> None:
        """Tells the worker that events were committed (never blocks: a full pipe
        already holds a nudge)."""
        process = self._process
        if process is None or process.stdin is None:
            return
        with contextlib.suppress(BlockingIOError, BrokenPipeError, ValueError, OSError):
            os.write(process.stdin.fileno(), b".")

    def _follow(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            assert process is not None
            assert process.stdout is not None
            for _line in process.stdout:
                try:
                    self.on_applied()
                except Exception:  # a failed publish must not stop following the worker
                    log.exception("publishing view changes failed")
            process.wait()
            if self._stopping.is_set():
                return
            log.warning(
                "projection worker %s exited with %s; starting a new one",
                process.pid,
                process.returncode,
            )
            self.restarts += 1
            if self._stopping.wait(min(5.0, 0.1 * 2 ** min(self.restarts, 6))):
                return
            self._spawn()

    def stop(self, timeout: float = 10.0) -> None:
        """Closes the worker's stdin (it finishes its batch and exits) and waits for it."""
        self._stopping.set()
        with self._lock:
            process = self._process
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None


def run_worker(store_url: str, *, poll_interval: float, until_stdin_closes: bool) -> None:
    """The worker process: keeps the store's views current until stopped.

    The views are kept live as an engine keeps them (``ReadModels.start``: the runner's
    live thread, PostgreSQL's LISTEN, polling), with bytes read on stdin as wake-ups.
    Prints how many events it applied after each catch-up that applied some (the
    engine's cue to publish changes). Stops on SIGTERM/SIGINT, or when stdin closes if
    ``until_stdin_closes``.
    """
    config = parse_store_url(store_url)
    prepare_store(config)
    app = SignoffApplication(config.env)
    models = ReadModels(app.recorder)
    models.runner.on_applied = lambda read: print(read, flush=True)
    done = threading.Event()
    if until_stdin_closes:  # the engine decides when it ends (a terminal's Ctrl-C goes to both)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Thread(
            target=_read_nudges, args=(models.runner.nudge, done.set), daemon=True
        ).start()
    models.start(poll_interval)
    try:
        while not done.wait(1.0):  # a timed wait, so that Ctrl-C gets through
            pass
    except KeyboardInterrupt:
        pass
    finally:
        models.stop()
        app.close()


def _read_nudges(wake: Callable[[], None], closed: Callable[[], None]) -> None:
    while True:
        try:
            data = os.read(sys.stdin.fileno(), 4096)
        except OSError:
            data = b""
        if not data:
            closed()
            return
        wake()
