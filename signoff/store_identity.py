"""The store id: a random name written once into each event store.

A notification id says where an event sits in *a* store; it says nothing of which
store. Whatever mirrors a store elsewhere (the NATS events stream) keeps the store
id beside the copy, so that a reset or different store behind the same mirror is
a clear error rather than events silently taken for ones already copied.
"""

from __future__ import annotations

import uuid
from typing import Protocol, runtime_checkable


@runtime_checkable
class StoreIdentity(Protocol):
    """What every signoff recorder answers: the id of the store it writes to."""

    def store_id(self) -> str:
        """The id written when the store was created (one per process for memory://)."""
        ...


def new_store_id() -> str:
    """A fresh store id (32 hex digits, safe to inline in SQL and in stream metadata)."""
    return uuid.uuid4().hex
