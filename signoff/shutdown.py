"""How SIGTERM and SIGINT end a served process promptly, whatever it is doing.

- Before the event loop runs (importing workflows, starting the bundled broker) both
  raise KeyboardInterrupt, so that ``with`` blocks stop what they started.
- While it starts (opening the store, connecting to the broker) a signal abandons the
  start; what was started is stopped.
- While it serves, a signal begins the drain: no new commands, those in flight
  answered, stored events published, the engine closed.
- A second signal, or a drain that outlasts its timeout (a store or broker that hangs),
  ends the process at once with exit code 1. That loses nothing stored: it is a crash,
  which the engine is built to survive (unacked commands are redelivered, unpublished
  events relayed on the next start). Child processes are stopped first (the view
  worker stops by itself when its stdin closes with this process).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGTERM, signal.SIGINT)
EXIT_CUT_SHORT = 1
"""Exit code of a process whose drain was cut short."""


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Makes SIGTERM raise KeyboardInterrupt, as Ctrl-C does, outside the event loop."""
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Shutdown:
    """The signal handlers of a served event loop, which know the phase it is in.

    Use as ``with Shutdown(...) as shutdown:`` inside the loop's main task, and call
    :meth:`serving` once it serves.

    Args:
        timeout: seconds the stop may take after the first signal.
        before_exit: stops child processes before a forced exit (the bundled broker).
    """

    def __init__(self, *, timeout: float, before_exit: Callable[[], None] | None = None) -> None:
        self.requested = asyncio.Event()
        """Set by the first signal while serving: time to drain."""
        self.timeout = timeout
        self._before_exit = before_exit
        self._serving = False
        self._task = asyncio.current_task()
        self._previous: dict[int, Any] = {}
        self._watchdog: threading.Timer | None = None

    def serving(self) -> None:
        """From now on, a first signal asks for a drain instead of abandoning the start."""
        self._serving = True

    def _on_signal(self) -> None:
        if self._watchdog is not None:
            self.force_exit("a second signal")
        self._watchdog = threading.Timer(
            self.timeout, self.force_exit, args=(f"the stop took longer than {self.timeout:g} s",)
        )
        self._watchdog.daemon = True
        self._watchdog.start()
        if self._serving:
            self.requested.set()
        elif self._task is not None:
            self._task.cancel()

    def force_exit(self, why: str) -> None:
        """Stops the child processes and ends this one now, with exit code 1."""
        print(f"signoff: stopped without finishing the drain ({why})", file=sys.stderr, flush=True)
        if self._before_exit is not None:
            self._before_exit()
        os._exit(EXIT_CUT_SHORT)

    def __enter__(self) -> Shutdown:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            self._previous[sig] = signal.getsignal(sig)
            loop.add_signal_handler(sig, self._on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)
            signal.signal(sig, self._previous.pop(sig))
