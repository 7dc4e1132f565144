"""Opaque keyset-pagination cursors: the sort key of a page's last row, base64-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from signoff.domain.errors import InvalidInputError


def encode_cursor(*key: Any) -> str:
    """A cursor holding ``key``."""
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode_cursor(cursor: str, types: tuple[type, ...], what: str) -> tuple[Any, ...]:
    """The key in ``cursor``, each part converted by ``types``; InvalidInputError if it is
    not a cursor of ``what``."""
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(parts, list) or len(parts) != len(types):
            raise ValueError(cursor)
        return tuple(kind(part) for kind, part in zip(types, parts, strict=True))
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInputError(f"not a cursor of {what}: {cursor!r}") from None
