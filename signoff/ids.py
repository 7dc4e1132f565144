"""Random ids from a per-thread pool of OS randomness.

``uuid4()`` makes a system call per id, and a call that releases the
interpreter lock makes the thread queue for it again behind the engine's
other busy thread: on a busy engine that wait, not the randomness, is the
cost. The pool draws 4 KiB from ``os.urandom`` at a time (ids stay
unpredictable) and is dropped in a forked child, so that parent and child
never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading
import uuid

_BLOCK = 4096


class _Pool(threading.local):
    data = b""
    offset = 0


_pool = _Pool()


def random_bytes(count: int) -> bytes:
    """``count`` bytes of OS randomness (``count`` at most 4096)."""
    pool = _pool
    end = pool.offset + count
    if end > len(pool.data):
        pool.data, pool.offset, end = os.urandom(_BLOCK), 0, count
    chunk = pool.data[pool.offset : end]
    pool.offset = end
    return chunk


def _forget() -> None:
    _pool.data, _pool.offset = b"", 0


os.register_at_fork(after_in_child=_forget)


def new_id() -> str:
    """A fresh random (version 4) UUID, as text."""
    return str(uuid.UUID(bytes=random_bytes(16), version=4))


def new_command_id() -> str:
    """A fresh random command id (24 hex digits)."""
    return random_bytes(12).hex()
