"""Checking the audit hash chain: names the first position where the stored log was tampered with.

:func:`verify` walks the event log and the chain side by side, a page at a
time and in one read transaction (so that writers running meanwhile never
look like tampering), and reports each position where they disagree:

- ``edited``: the event's content is not what was chained at its position;
- ``reordered``: the event's content was chained at another position;
- ``deleted``: a chained event is missing;
- ``inserted``: an event (or a chain row) that was never chained by a writer;
- ``chain``: the chain table itself was changed (a row edited or deleted);
- ``head``: the head, kept outside both tables, disagrees with the chain;
- ``anchor``: the chain does not contain the head saved by ``signoff audit anchor``;
- ``key``: the chain was written with another ``SIGNOFF_AUDIT_KEY`` (or none).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from signoff.chain import GENESIS, Chainer, ChainHead, ChainLog, ChainRow, StoredRow
from signoff.domain.errors import InvalidInputError

T = TypeVar("T")

_ANCHOR_FORMAT = "signoff-audit-anchor/1"
_KEPT = 100_000  # problems kept while walking (a rewritten log has one per event)


@dataclass(frozen=True)
class Problem:
    """One place where the stored log and its chain disagree."""

    position: int
    kind: str
    detail: str


@dataclass(frozen=True)
class Anchor:
    """A chain head saved outside the database: the chain must still contain it."""

    position: int
    hash: bytes
    key_id: str

    @classmethod
    def of(cls, head: ChainHead) -> Anchor:
        return cls(head.position, head.hash, head.key_id)

    def save(self, path: Path) -> None:
        """Writes the anchor as a small JSON document."""
        document = {
            "format": _ANCHOR_FORMAT,
            "position": self.position,
            "hash": self.hash.hex(),
            "key_id": self.key_id,
            "anchored_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path.write_text(json.dumps(document, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Anchor:
        """Reads an anchor file; a malformed one is invalid input."""
        try:
            document = json.loads(path.read_text())
            if document.get("format") != _ANCHOR_FORMAT:
                raise ValueError(f"format is not {_ANCHOR_FORMAT}")
            return cls(
                int(document["position"]), bytes.fromhex(document["hash"]), document["key_id"]
            )
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise InvalidInputError(f"cannot read anchor {str(path)!r}: {error}") from None


@dataclass
class VerifyReport:
    """What :func:`verify` found: problems in position order (the first is the first bad
    position), capped at ``max_problems`` with the rest counted in ``more``."""

    head: ChainHead | None
    events: int = 0
    problems: list[Problem] = field(default_factory=list)
    more: int = 0

    @property
    def ok(self) -> bool:
        """Tells whether the log, chain, head (and anchor) all agree."""
        return not self.problems

    @property
    def first(self) -> Problem | None:
        """The problem at the lowest position, if any."""
        return self.problems[0] if self.problems else None


def verify(
    log: ChainLog,
    *,
    chainer: Chainer,
    anchor: Anchor | None = None,
    page: int = 1000,
    max_problems: int = 100,
) -> VerifyReport:
    """Checks every stored event against the chain, the head and ``anchor``."""
    with log.chain_snapshot() as snapshot:
        head = snapshot.head()
        report = VerifyReport(head)
        if head is None:
            report.problems.append(Problem(0, "head", "the chain table or its head is missing"))
            return report
        if chainer.key_id != head.key_id:
            detail = f"the chain's key id is {head.key_id or 'none'}, "
            detail += f"SIGNOFF_AUDIT_KEY's is {chainer.key_id or 'none'}"
            report.problems.append(Problem(0, "key", detail))
            return report
        walk = _Walk(chainer, anchor, report)
        events = _paged(snapshot.events, page, lambda e: e[0])
        rows = _paged(snapshot.rows, page, lambda r: r.position)
        for position, event, row in _merge(events, rows):
            walk.step(position, event, row)
        walk.finish(head)
    report.problems.sort(key=lambda p: p.position)
    if len(report.problems) > max_problems:
        report.more += len(report.problems) - max_problems
        del report.problems[max_problems:]
    return report


class _Walk:
    """The state of one pass over events and chain rows in position order."""

    def __init__(self, chainer: Chainer, anchor: Anchor | None, report: VerifyReport) -> None:
        self.chainer = chainer
        self.anchor = anchor
        self.report = report
        self.last = (0, GENESIS)  # the last chain row seen: position, hash
        self.unchained: Problem | None = None  # the last event without a chain row
        self.mismatches: dict[int, tuple[bytes, bytes]] = {}  # position: (event's, chained)
        self.anchor_seen = False

    def add(self, position: int, kind: str, detail: str) -> Problem:
        problem = Problem(position, kind, detail)
        if len(self.report.problems) < _KEPT:
            self.report.problems.append(problem)
        else:
            self.report.more += 1
        return problem

    def step(self, position: int, event: StoredRow | None, row: ChainRow | None) -> None:
        if event is not None:
            self.report.events += 1
        if row is None:
            self.unchained = self.add(position, "inserted", "this event was never chained")
            return
        if event is None:
            self.add(position, "deleted", "the event chained at this position is missing")
        else:
            digest = self.chainer.digest(*event[1:])
            if digest != row.digest:
                self.mismatches[position] = (digest, row.digest)
        self._link(row)
        if self.anchor is not None and row.position == self.anchor.position:
            self.anchor_seen = True
            if row.hash != self.anchor.hash:
                self.add(row.position, "anchor", "the chain was rewritten up to the anchor")
        self.last = (row.position, row.hash)
        self.unchained = None

    def _link(self, row: ChainRow) -> None:
        last_position, last_hash = self.last
        if row.prev_position == last_position:
            if self.chainer.link(last_hash, last_position, row.position, row.digest) != row.hash:
                self.add(row.position, "chain", "this chain row does not follow the one before")
        elif self.unchained is not None and row.prev_position == self.unchained.position:
            self._relabel_unchained()
        elif row.prev_position > last_position:
            self.add(row.prev_position, "deleted", "an event and its chain row were deleted")
        else:
            self.add(
                last_position, "inserted", "a forged event and chain row: the next links past it"
            )

    def _relabel_unchained(self) -> None:
        """The next chain row (or the head) names the unchained event: its row was deleted."""
        problems = self.report.problems
        if self.unchained is None or self.unchained not in problems:
            return
        problems[problems.index(self.unchained)] = Problem(
            self.unchained.position, "chain", "the chain row of this event was deleted"
        )
        self.unchained = None

    def finish(self, head: ChainHead) -> None:
        chained_at = {chained: position for position, (_, chained) in self.mismatches.items()}
        for position, (digest, _) in self.mismatches.items():
            elsewhere = chained_at.get(digest)
            if elsewhere is not None and elsewhere != position:
                self.add(position, "reordered", f"this event was chained at position {elsewhere}")
            else:
                self.add(position, "edited", "the event differs from what was chained here")
        last_position, last_hash = self.last
        if self.unchained is not None and head.position == self.unchained.position:
            self._relabel_unchained()
        elif head.position > last_position:
            self.add(head.position, "deleted", f"the chain ends at {last_position}, its head later")
        elif head.position < last_position:
            self.add(head.position, "head", f"the head is behind the chain's end {last_position}")
        elif head.hash != last_hash:
            self.add(head.position, "head", "the head's hash is not the chain's last")
        self._finish_anchor(last_position)

    def _finish_anchor(self, last_position: int) -> None:
        anchor = self.anchor
        if anchor is None:
            return
        if anchor.key_id != self.chainer.key_id:
            self.add(anchor.position, "anchor", "the anchor was taken with another key")
        elif anchor.position > last_position:
            self.add(anchor.position, "anchor", f"the chain ends at {last_position}: truncated")
        elif not self.anchor_seen:
            self.add(anchor.position, "anchor", "the chain has no row at the anchored position")


def _paged(read: Callable[[int, int], list[T]], page: int, key: Callable[[T], int]) -> Iterator[T]:
    """Everything ``read(after, limit)`` returns, a page at a time."""
    after = 0
    while True:
        batch = read(after, page)
        yield from batch
        if len(batch) < page:
            return
        after = key(batch[-1])


def _merge(
    events: Iterator[StoredRow], rows: Iterator[ChainRow]
) -> Iterator[tuple[int, StoredRow | None, ChainRow | None]]:
    """Events and chain rows side by side, by position."""
    event, row = next(events, None), next(rows, None)
    while event is not None or row is not None:
        if row is None or (event is not None and event[0] < row.position):
            assert event is not None
            yield event[0], event, None
            event = next(events, None)
        elif event is None or row.position < event[0]:
            yield row.position, None, row
            row = next(rows, None)
        else:
            yield row.position, event, row
            event, row = next(events, None), next(rows, None)
