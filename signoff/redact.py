"""URLs as operators may see them: the secret of a store or broker URL is never printed
(startup lines, logs and error messages show ``user:***@host``)."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})
"""Schemes whose user part alone is a secret (a NATS token: ``nats://token@host``)."""


def masked_url(url: str) -> str:
    """``url`` (or a comma-separated list of them) with its password, or a NATS URL's
    token, replaced by ``***``."""
    return ",".join(_masked(one) for one in url.split(","))


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    host = parts.netloc.rpartition("@")[2]
    if parts.password is not None:
        user = f"{parts.username or ''}:{MASK}"
    elif parts.scheme in _TOKEN_SCHEMES:
        user = MASK
    else:
        return url
    return urlunsplit(parts._replace(netloc=f"{user}@{host}"))
