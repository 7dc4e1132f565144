"""The chain checker on an in-memory fake of a store: the cases a real database makes awkward
to stage (a forged row in a gap of the notification ids, a chain rewritten before an anchor)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from signoff.audit_chain import Anchor, verify
from signoff.chain import GENESIS, Chainer, ChainHead, ChainRow, StoredRow


class FakeChainLog:
    """Events, chain rows and a head in lists (a ChainLog and its snapshot at once)."""

    def __init__(self, positions: list[int], chainer: Chainer) -> None:
        self.stored: list[StoredRow] = [(p, f"a-{p}", 1, "T", b"state %d" % p) for p in positions]
        self.chain = chainer.extend((0, GENESIS), self.stored)
        last = self.chain[-1]
        self.top = ChainHead(last.position, last.hash, chainer.key_id, 0)

    @contextmanager
    def chain_snapshot(self) -> Iterator[FakeChainLog]:
        yield self

    def head(self) -> ChainHead | None:
        return self.top

    def events(self, after: int, limit: int) -> list[StoredRow]:
        return [e for e in self.stored if e[0] > after][:limit]

    def rows(self, after: int, limit: int) -> list[ChainRow]:
        return [r for r in self.chain if r.position > after][:limit]


def test_an_honest_log_with_gaps_in_its_ids_verifies():
    log = FakeChainLog([1, 2, 5, 9], Chainer())

    report = verify(log, chainer=Chainer(), page=2)

    assert report.ok
    assert report.events == 4


def test_a_forged_event_and_chain_row_in_a_gap_are_found():
    # Chained 1, 2, 4; the forger fills 3 and chains it after 2, as a writer would have.
    chainer = Chainer()
    log = FakeChainLog([1, 2, 4], chainer)
    forged: StoredRow = (3, "forged", 1, "T", b"money")
    (row,) = chainer.extend((2, log.chain[1].hash), [forged])
    log.stored.insert(2, forged)
    log.chain.insert(2, row)

    report = verify(log, chainer=chainer)

    assert report.first is not None
    assert (report.first.position, report.first.kind) == (3, "inserted")


def test_an_event_deleted_with_its_chain_row_is_named_by_the_next_row():
    log = FakeChainLog([1, 2, 3, 4], Chainer())
    del log.stored[1], log.chain[1]

    report = verify(log, chainer=Chainer())

    assert [(p.position, p.kind) for p in report.problems] == [(2, "deleted")]


def test_a_chain_recomputed_after_an_edit_passes_without_key_but_not_the_anchor():
    chainer = Chainer()
    log = FakeChainLog([1, 2, 3], chainer)
    anchor = Anchor.of(log.top)

    # Edit event 2 and recompute the whole chain and head: consistent without a key.
    log.stored[1] = (2, "a-2", 1, "T", b"edited")
    log.chain = chainer.extend((0, GENESIS), log.stored)
    log.top = ChainHead(3, log.chain[-1].hash, "", 0)
    assert verify(log, chainer=chainer).ok

    report = verify(log, chainer=chainer, anchor=anchor)

    assert report.first is not None
    assert (report.first.position, report.first.kind) == (3, "anchor")


def test_problems_beyond_the_limit_are_counted():
    log = FakeChainLog(list(range(1, 31)), Chainer())
    log.stored = [(p, oid, v, t, s + b"!") for p, oid, v, t, s in log.stored]

    report = verify(log, chainer=Chainer(), max_problems=5)

    assert [p.position for p in report.problems] == [1, 2, 3, 4, 5]
    assert report.more == 25
