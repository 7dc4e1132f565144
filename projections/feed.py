"""Live row changes of the views, fanned out to asyncio subscribers.

The runner publishes from its thread; each subscriber owns a bounded queue
on its event loop. A subscriber too slow to keep up is told it overflowed
(rather than blocking the runner or growing without bound) and resumes from
its last position, as a client that reconnects does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from signoff.projections.sql import Change

OVERFLOW: list[Change] = []
"""Put on a subscriber's queue when changes were dropped for it."""
CLOSED: list[Change] = []
"""Put on every subscriber's queue when the feed closes (the engine stops)."""


class Subscriber:
    """One consumer of one view's changes."""

    def __init__(self, view: str, loop: asyncio.AbstractEventLoop, capacity: int) -> None:
        self.view = view
        self.loop = loop
        self.queue: asyncio.Queue[list[Change]] = asyncio.Queue(maxsize=capacity)
        self.overflowed = False

    def offer(self, changes: list[Change]) -> None:
        """Queues a batch (on the subscriber's loop)."""
        if changes is CLOSED:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(CLOSED)
            return
        if self.overflowed:
            return
        try:
            self.queue.put_nowait(changes)
        except asyncio.QueueFull:
            self.overflowed = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(OVERFLOW)

    async def get(self) -> list[Change]:
        """The next batch, ``OVERFLOW`` (then the subscriber must resume) or ``CLOSED``."""
        batch = await self.queue.get()
        if batch is OVERFLOW:
            self.overflowed = False
        return batch


class ChangeFeed:
    """Subscribers by view; ``publish`` is safe from any thread."""

    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._subscribers: set[Subscriber] = set()
        self._lock = threading.Lock()

    def subscribe(self, view: str) -> Subscriber:
        """Starts queueing ``view``'s changes for the calling event loop."""
        subscriber = Subscriber(view, asyncio.get_running_loop(), self.capacity)
        with self._lock:
            self._subscribers.add(subscriber)
        return subscriber

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Stops queueing for ``subscriber``."""
        with self._lock:
            self._subscribers.discard(subscriber)

    def watched(self, view: str) -> bool:
        """Tells whether anyone subscribes to ``view``."""
        with self._lock:
            return any(s.view == view for s in self._subscribers)

    def close(self) -> None:
        """Ends every subscription (their iterators stop)."""
        with self._lock:
            subscribers = list(self._subscribers)
            self._subscribers.clear()
        for subscriber in subscribers:
            if not subscriber.loop.is_closed():
                subscriber.loop.call_soon_threadsafe(subscriber.offer, CLOSED)

    def publish(self, changes: Sequence[Change]) -> None:
        """Hands each subscriber the changes of its view."""
        with self._lock:
            subscribers = list(self._subscribers)
        for subscriber in subscribers:
            mine = [c for c in changes if c.view == subscriber.view]
            if mine and not subscriber.loop.is_closed():
                subscriber.loop.call_soon_threadsafe(subscriber.offer, mine)
