"""The leases an engine holds for its activations: renewed while they live, confirmed before
a step starts when the engine may have been away, let go when they end."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from signoff.domain.errors import LeaseLostError
from signoff.leases import Lease, LeaseStore

log = logging.getLogger("signoff.runtime")

Read = Callable[[Callable[[], Any]], Awaitable[Any]]
"""Runs a blocking store call off the event loop."""


class LeaseKeeper:
    """Which runs this engine holds, with which token, and since when it knows it."""

    def __init__(self, store: LeaseStore, owner: str, seconds: float, read: Read) -> None:
        self.store = store
        self.owner = owner
        self.seconds = seconds
        self._read = read
        self._held: dict[str, int] = {}
        """Run id -> the token this engine holds it with."""
        self._confirmed: dict[str, float] = {}
        """When each hold was last known to be this engine's (monotonic seconds)."""

    def hold(self, lease: Lease, since: float) -> None:
        """Notes a lease this engine was granted at ``since`` (monotonic)."""
        self._held[lease.run_id] = lease.token
        self._confirmed[lease.run_id] = since

    def confirmed(self, lease: Lease, at: float) -> None:
        """Notes that ``lease`` was this engine's at ``at``: renewed, or a write it fenced
        committed."""
        if self._held.get(lease.run_id) == lease.token:
            self._confirmed[lease.run_id] = max(at, self._confirmed.get(lease.run_id, at))

    def let_go(self, lease: Lease) -> None:
        """Forgets ``lease`` (released, lost, or left to run out)."""
        if self._held.get(lease.run_id) == lease.token:
            del self._held[lease.run_id]
            self._confirmed.pop(lease.run_id, None)

    def forget(self, run_id: str) -> None:
        """Forgets whatever this engine held ``run_id`` with (it is no longer renewed)."""
        self._held.pop(run_id, None)
        self._confirmed.pop(run_id, None)

    async def ensure(self, lease: Lease) -> None:
        """Makes sure this engine still holds ``lease`` before a step starts: an engine
        that was paused or cut off for half a lease asks the store (and extends it).

        Raises:
            LeaseLostError: another engine holds the run now.
        """
        since = time.monotonic() - self._confirmed.get(lease.run_id, float("-inf"))
        if since < self.seconds / 2:
            return
        asked_at = time.monotonic()
        confirm = functools.partial(self.store.confirm_lease, self.owner, lease, self.seconds)
        if not await self._read(confirm):
            raise LeaseLostError([lease.run_id])
        self.confirmed(lease, asked_at)

    async def renew_forever(self) -> None:
        """Renews the held leases three times per lease, until cancelled."""
        while True:
            await asyncio.sleep(self.seconds / 3)
            renew = functools.partial(
                self.store.renew_leases, self.owner, list(self._held), self.seconds
            )
            renewed_at = time.monotonic()
            try:
                renewed: dict[str, int] = await self._read(renew)
            except asyncio.CancelledError:
                raise
            except Exception:  # the next round retries; the fence guards the writes
                log.exception("could not renew run leases; retrying")
                continue
            for run_id, token in renewed.items():
                self.confirmed(Lease(run_id, token), renewed_at)
