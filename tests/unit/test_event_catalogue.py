"""Every event carries its cause, and docs/events.md describes every event there is."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from signoff.domain import Approval, Schedule, WorkflowRun
from signoff.domain.base import CAUSE_FIELDS, SignoffAggregate, SignoffCreated, SignoffEvent

CATALOGUE = Path(__file__).parents[2] / "docs" / "events.md"


def emitted_events(aggregate: type[SignoffAggregate]) -> list[type[SignoffEvent]]:
    """Event classes that ``@event`` defined on the aggregate itself.

    eventsourcing also redefines the base ``Created`` on every subclass; it is
    never emitted when ``__init__`` names its own created event (``Requested``).
    """
    events = {
        name: value
        for name, value in vars(aggregate).items()
        if isinstance(value, type) and issubclass(value, SignoffEvent) and name != "Event"
    }
    created = [n for n, e in events.items() if issubclass(e, SignoffCreated)]
    if len(created) > 1:
        del events["Created"]
    return list(events.values())


@pytest.mark.parametrize("aggregate", [Approval, WorkflowRun, Schedule])
def test_every_event_records_who_why_which_command_and_when(aggregate):
    events = emitted_events(aggregate)

    assert events
    for event_class in events:
        fields = {f.name for f in dataclasses.fields(event_class)}
        assert set(CAUSE_FIELDS) <= fields, event_class.__qualname__


@pytest.mark.parametrize("aggregate", [Approval, WorkflowRun, Schedule])
def test_the_catalogue_documents_every_event(aggregate):
    catalogue = CATALOGUE.read_text()

    for event_class in emitted_events(aggregate):
        assert f"### {event_class.__qualname__}\n" in catalogue, event_class.__qualname__
