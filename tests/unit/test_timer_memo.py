"""The writer leaves the timer index alone only when it knows what is committed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from signoff.domain.base import Cause
from signoff.domain.workflow_run import WorkflowRun
from signoff.index import IndexUpdate
from signoff.indexing import index_for
from signoff.writer import AggregateCache

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CAUSE = Cause("system", "cmd", NOW)


def _update(run: WorkflowRun) -> IndexUpdate:
    update = index_for([run])["index"]
    assert isinstance(update, IndexUpdate)
    return update


def _saved(cache: AggregateCache, run: WorkflowRun) -> IndexUpdate:
    """What one batch that changed ``run`` writes to the timer index, then commits."""
    update = _update(run)
    cache.drop_unchanged_timers(update, [run])
    run.collect_events()
    cache.remember_timers([run])
    cache.put(run)
    return update


def test_unchanged_timers_are_not_rewritten_but_changed_ones_are():
    cache = AggregateCache(100)
    run = WorkflowRun.start(run_id="r", name="w", params={}, metadata={}, cause=CAUSE)
    assert "r" not in _saved(cache, run).timers  # new, without timers: nothing to write

    run.record_step(CAUSE, name="a", result=1, attempt=1)
    assert "r" not in _saved(cache, run).timers  # still none

    retry = NOW + timedelta(minutes=1)
    run.record_step(CAUSE, name="b", error={"type": "E", "message": "m"}, attempt=1, retry_at=retry)
    assert [t.key for t in _saved(cache, run).timers["r"]] == ["retry:b"]  # a new timer

    run.wake(Cause("system", "cmd", retry))
    assert "r" not in _saved(cache, run).timers  # woken, the retry still pending: the same

    run.record_step(CAUSE, name="b", result=2, attempt=2)
    assert _saved(cache, run).timers["r"] == []  # the retry is done: its row is deleted


def test_a_run_another_process_moved_on_gets_its_timers_written():
    cache = AggregateCache(100)
    run = WorkflowRun.start(run_id="r", name="w", params={}, metadata={}, cause=CAUSE)
    _saved(cache, run)
    # Another process records a failing step: the index holds its retry timer. This
    # writer fast-forwards its copy with that event and records the retry's success:
    # the timers it remembers ([] at version 1) equal the new ones, yet the stored retry
    # row must be deleted.
    retry = NOW + timedelta(minutes=1)
    run.record_step(CAUSE, name="b", error={"type": "E", "message": "m"}, attempt=1, retry_at=retry)
    run.collect_events()  # stored by the other process, with its timer row
    run.wake(Cause("system", "cmd", retry))
    run.record_step(CAUSE, name="b", result=2, attempt=2)
    assert _saved(cache, run).timers["r"] == []
