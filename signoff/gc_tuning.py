"""Cyclic garbage collector settings for a busy engine.

CPython's default thresholds (700, 10, 10) run a young collection every 700
net allocations and a full one as the heap grows by a quarter. An engine
allocates a few hundred objects per workflow step (events, rows, futures),
and holds thousands of live aggregates, so with the defaults the collector
took about 40% of the engine's CPU in ``make bench`` (full collections of
~100 ms each). While an engine runs, ``tune`` raises the thresholds to
(10,000, 50, 50) (the best of those measured: the collector's share fell to
about a tenth) and freezes the objects that exist at its start (imported code
and configuration: they are never garbage, and the collector no longer walks
them). The previous thresholds come back when the last tuned engine closes.

A process that set its own thresholds keeps them: tuning happens only when
the thresholds are Python's defaults.
"""

from __future__ import annotations

import gc
import threading

PYTHON_DEFAULTS = (700, 10, 10)
ENGINE_THRESHOLDS = (10_000, 50, 50)

_lock = threading.Lock()
_engines = 0
_saved: tuple[int, int, int] | None = None
_frozen = False


def tune() -> None:
    """Applies the engine's settings (once per process, counted per engine)."""
    global _engines, _saved, _frozen
    with _lock:
        _engines += 1
        if _engines > 1:
            return
        current = gc.get_threshold()
        if current != PYTHON_DEFAULTS:
            return  # the application chose its own
        _saved = current
        gc.set_threshold(*ENGINE_THRESHOLDS)
        if not _frozen:
            gc.collect()
            gc.freeze()
            _frozen = True


def untune() -> None:
    """Restores the thresholds when the last tuned engine closes."""
    global _engines, _saved
    with _lock:
        if _engines == 0:
            return
        _engines -= 1
        if _engines == 0 and _saved is not None:
            if gc.get_threshold() == ENGINE_THRESHOLDS:  # unless changed meanwhile
                gc.set_threshold(*_saved)
            _saved = None
