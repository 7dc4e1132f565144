"""The audit hash chain's arithmetic: what each stored event's hash covers and how it links.

Every stored event gets a *digest* of its own content (aggregate id, version,
topic, state bytes), which says nothing about where it sits, and a *hash*
that ties it to the event chained before it::

    hash_n = H(hash_prev || prev_position || position || digest_n)

so editing, deleting, inserting or moving one event breaks the chain at that
position. H is SHA-256, or HMAC-SHA-256 when ``SIGNOFF_AUDIT_KEY`` is set, so
that write access to the database alone is not enough to forge a consistent
chain. The persistence adapters write these rows in the events' own
transaction; :mod:`signoff.audit_chain` checks them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from signoff.domain.errors import SignoffError

KEY_ENV = "SIGNOFF_AUDIT_KEY"
"""The environment variable holding the chain's secret key (optional)."""

GENESIS = bytes(32)
"""The hash the first chained event links to."""

StoredRow = tuple[int, str, int, str, bytes]
"""A stored event as the chain sees it: position, originator id, version, topic, state."""


_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_LINK = struct.Struct(">qq")


class AuditChainError(SignoffError):
    """Raised when the chain cannot be extended or checked: a writer's key differs from
    the chain's, or the event log lost its tail behind the chain's back."""

    code = "audit_chain"


@dataclass(frozen=True)
class ChainRow:
    """One chained event: its position (notification id), its predecessor's, and hashes."""

    position: int
    prev_position: int
    digest: bytes
    hash: bytes


@dataclass(frozen=True)
class ChainHead:
    """The chain's last link, kept outside the event table, and how the chain began."""

    position: int
    hash: bytes
    key_id: str
    backfilled_to: int


class Chainer:
    """Computes digests and links, keyed or not."""

    def __init__(self, key: bytes | None = None) -> None:
        self.key = key or None
        self.key_id = (
            hashlib.sha256(b"signoff-audit-key-id:" + self.key).hexdigest()[:16] if self.key else ""
        )

    @staticmethod
    def digest(originator_id: str, version: int, topic: str, state: bytes) -> bytes:
        """The event's own content, length-prefixed so that no two events share a digest."""
        oid, top = originator_id.encode(), topic.encode()
        parts = (_U32.pack(len(oid)), oid, _I64.pack(version), _U32.pack(len(top)), top, state)
        return hashlib.sha256(b"".join(parts)).digest()

    def link(self, prev_hash: bytes, prev_position: int, position: int, digest: bytes) -> bytes:
        """The hash of the event at ``position``, given its predecessor's."""
        message = prev_hash + _LINK.pack(prev_position, position) + digest
        if self.key:
            return hmac.new(self.key, message, hashlib.sha256).digest()
        return hashlib.sha256(message).digest()

    def extend(self, head: tuple[int, bytes], events: Sequence[StoredRow]) -> list[ChainRow]:
        """Chains ``(position, originator_id, version, topic, state)`` tuples after ``head``
        (their positions ascending, all beyond it)."""
        rows: list[ChainRow] = []
        prev_position, prev_hash = head
        for position, originator_id, version, topic, state in events:
            if position <= prev_position:
                raise AuditChainError(
                    f"event position {position} is not beyond the chain's {prev_position}: "
                    "events were deleted from the log's tail (run `signoff audit verify`)"
                )
            digest = self.digest(originator_id, version, topic, state)
            prev_hash = self.link(prev_hash, prev_position, position, digest)
            rows.append(ChainRow(position, prev_position, digest, prev_hash))
            prev_position = position
        return rows


def chainer_from_env() -> Chainer:
    """The chainer for this process: keyed when ``SIGNOFF_AUDIT_KEY`` is set."""
    key = os.environ.get(KEY_ENV)
    return Chainer(key.encode() if key else None)


class ChainSnapshot(Protocol):
    """One consistent read of the event log, the chain and its head."""

    def head(self) -> ChainHead | None:
        """The head row, or ``None`` when the chain's tables or row are missing."""
        ...

    def events(self, after: int, limit: int) -> list[StoredRow]:
        """Stored events with positions beyond ``after``, ascending."""
        ...

    def rows(self, after: int, limit: int) -> list[ChainRow]:
        """Chain rows with positions beyond ``after``, ascending."""
        ...


class ChainLog(Protocol):
    """What the chain's checker reads from a store (the SQL recorders implement it)."""

    def chain_snapshot(self) -> AbstractContextManager[ChainSnapshot]:
        """A read transaction in which the events, chain and head agree."""
        ...
