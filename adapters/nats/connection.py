"""The engine's NATS connection: the first one is bounded, later ones are not.

No broker at start is an operator's mistake (a wrong URL, a broker not up yet): the
engine tries for ``connect_timeout`` seconds, one log line per attempt, backing off,
then gives up with :class:`NatsUnavailableError`. Once connected, a broker restart is
routine: nats-py reconnects forever and restores the subscriptions. nats-py logs every
failed attempt with a traceback unless given callbacks; these log one line instead.
"""

from __future__ import annotations

import asyncio
import logging
import math

import nats.errors
import nats.js.errors
from nats.aio.client import Client

from signoff.domain.errors import SignoffError
from signoff.redact import masked_url

log = logging.getLogger("signoff.nats")

FIRST_BACKOFF = 0.25
"""Seconds between the first two attempts; doubled after each, up to MAX_BACKOFF."""
MAX_BACKOFF = 2.0


class NatsUnavailableError(SignoffError):
    """Raised when no NATS server answered at the URL within the connect timeout."""

    def __init__(self, url: str, timeout: float, cause: str) -> None:
        super().__init__(
            f"no NATS server answered at {masked_url(url)} within {timeout:g} s ({cause})"
        )
        self.url = masked_url(url)


_NO_JETSTREAM = (nats.errors.NoRespondersError, nats.js.errors.ServiceUnavailableError)
"""What JetStream's API answers with on a broker that does not run it."""


class NatsRefusedError(SignoffError):
    """Raised when the broker answered but refused what the engine needs: JetStream is
    off, or signoff's streams cannot be created as configured."""

    def __init__(self, url: str, error: nats.errors.Error) -> None:
        if isinstance(error, _NO_JETSTREAM):
            why = "JetStream is not enabled there (nats-server -js)"
        else:
            why = _describe(error)
        super().__init__(f"the NATS server at {masked_url(url)} refused signoff's streams: {why}")
        self.url = masked_url(url)


def _describe(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


class _Callbacks:
    """nats-py's callbacks, one log line each; while the first connection is still being
    tried, the error callback's pause is the back-off (nats-py awaits it before retrying)."""

    def __init__(self, nc: Client, url: str) -> None:
        self.nc = nc
        self.url = masked_url(url)
        self.connected = False
        self.attempts = 0
        self.last_error = "no attempt finished"

    async def error(self, error: Exception) -> None:
        if not self.connected:
            self.attempts += 1
            self.last_error = _describe(error)
            log.warning(
                "cannot connect to NATS at %s (attempt %d): %s",
                self.url,
                self.attempts,
                self.last_error,
            )
            await asyncio.sleep(min(MAX_BACKOFF, FIRST_BACKOFF * 2 ** (self.attempts - 1)))
        elif self.nc.is_reconnecting:
            log.debug("reconnecting to NATS at %s: %s", self.url, _describe(error))
        else:
            log.warning("NATS: %s", _describe(error))

    async def disconnected(self) -> None:
        if self.connected and self.nc.is_reconnecting:
            log.warning("lost the NATS connection to %s; reconnecting", self.url)

    async def reconnected(self) -> None:
        log.warning("reconnected to NATS at %s", self.url)


async def connect(url: str, *, name: str, timeout: float, reconnect_wait: float = 0.2) -> Client:
    """Connects to ``url``, trying for ``timeout`` seconds; the connection then reconnects
    forever (every ``reconnect_wait`` seconds) when the broker goes away.

    Raises:
        NatsUnavailableError: nothing answered in time (nothing is left open).
    """
    nc = Client()
    callbacks = _Callbacks(nc, url)
    try:
        async with asyncio.timeout(timeout):
            await nc.connect(
                url,
                name=name,
                connect_timeout=max(1, min(2, math.ceil(timeout))),
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=reconnect_wait,  # type: ignore[arg-type]
                error_cb=callbacks.error,
                disconnected_cb=callbacks.disconnected,
                reconnected_cb=callbacks.reconnected,
            )
    except TimeoutError:
        await nc.close()
        raise NatsUnavailableError(url, timeout, callbacks.last_error) from None
    except BaseException:  # cancelled (SIGTERM while connecting): leave nothing running
        await nc.close()
        raise
    callbacks.connected = True
    return nc
