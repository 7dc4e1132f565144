"""The replay check: an aggregate rebuilt from its stored events must equal the live one."""

from __future__ import annotations

from typing import Any, cast

from eventsourcing.application import Application

from signoff.domain.base import SignoffAggregate


class ReplayMismatchError(AssertionError):
    """Raised when the state rebuilt from stored events differs from the live state."""


def aggregate_state(aggregate: SignoffAggregate) -> dict[str, Any]:
    """The comparable state of an aggregate (everything but its unsaved events)."""
    return {k: v for k, v in vars(aggregate).items() if k != "_pending_events"}


def rebuild(app: Application[str], aggregate_id: str) -> SignoffAggregate:
    """Folds the stored events of ``aggregate_id`` into a fresh aggregate, bypassing caches."""
    aggregate: Any = None
    for stored in app.events.get(aggregate_id):
        aggregate = cast(Any, stored).mutate(aggregate)
    if aggregate is None:
        raise ReplayMismatchError(f"no events stored for {aggregate_id!r}")
    assert isinstance(aggregate, SignoffAggregate)
    return aggregate


def assert_replays(app: Application[str], live: SignoffAggregate) -> None:
    """Checks that replaying the store gives exactly ``live``'s state.

    Raises:
        ReplayMismatchError: naming the attributes that differ.
    """
    if live.collect_events():
        raise ReplayMismatchError(f"{live.id!r} has unsaved events")
    expected, actual = aggregate_state(live), aggregate_state(rebuild(app, live.id))
    if expected != actual:
        keys = sorted(
            k for k in expected.keys() | actual.keys() if expected.get(k) != actual.get(k)
        )
        detail = ", ".join(
            f"{k}: live={expected.get(k)!r} replayed={actual.get(k)!r}" for k in keys
        )
        raise ReplayMismatchError(f"replay of {live.id!r} differs: {detail}")


def assert_timers_indexed(app: Application[str], aggregates: list[SignoffAggregate]) -> None:
    """Checks that the timer index holds exactly the timers the stored events give each of
    ``aggregates`` (the writer leaves unchanged timer sets alone, so a wrong belief about
    what is committed would show here).

    Raises:
        ReplayMismatchError: naming the aggregate whose timers differ.
    """
    from signoff.indexing import index_for

    index: Any = app.recorder
    indexed: dict[str, set[Any]] = {}
    for timer in index.due_timers(float("inf"), 1_000_000):
        indexed.setdefault(timer.target_id, set()).add(timer)
    for live in aggregates:
        update = index_for([rebuild(app, live.id)]).get("index")
        expected = set(update.timers.get(live.id, [])) if update is not None else set()
        if indexed.get(live.id, set()) != expected:
            raise ReplayMismatchError(
                f"timers of {live.id!r}: indexed {sorted(indexed.get(live.id, set()))!r}, "
                f"replayed {sorted(expected)!r}"
            )
