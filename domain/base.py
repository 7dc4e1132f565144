"""The aggregate and event bases shared by every signoff aggregate.

signoff ids are strings (callers may choose workflow ids), so the events
subclass eventsourcing's generic bases with ``str`` originator ids. Every
event also carries the cause of the change: who (``actor``), why
(``reason``), which command (``command_id``) and when (``timestamp``, taken
from the injected clock rather than the wall clock), which makes the stream
itself the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from eventsourcing.domain import (
    BaseAggregate,
    CanInitAggregate,
    CanMutateAggregate,
    MetaDomainEvent,
)

SYSTEM_ACTOR = "system"
"""The actor recorded for changes signoff makes on its own (timeouts, expiry)."""


@dataclass(frozen=True)
class Cause:
    """Who caused a change, why, through which command, and when."""

    actor: str
    command_id: str
    timestamp: datetime
    reason: str | None = None

    def fields(self) -> dict[str, Any]:
        """The cause as keyword arguments of an ``@event`` method."""
        return {
            "actor": self.actor,
            "reason": self.reason,
            "command_id": self.command_id,
            "timestamp": self.timestamp,
        }


@dataclass(frozen=True)
class SignoffEvent(CanMutateAggregate[str], metaclass=MetaDomainEvent):
    """An event of a signoff aggregate (string id)."""

    originator_id: str
    originator_version: int
    timestamp: datetime


@dataclass(frozen=True)
class SignoffCreated(CanInitAggregate[str], SignoffEvent):
    """The first event of a signoff aggregate."""

    originator_topic: str


CAUSE_FIELDS = ("actor", "reason", "command_id", "timestamp")
"""Fields every signoff event carries (checked by the event catalogue test)."""


def event_class(aggregate: type[BaseAggregate[Any]], name: str) -> type[SignoffEvent]:
    """The event class ``name`` that ``@event`` defined on ``aggregate``."""
    found: type[SignoffEvent] = getattr(aggregate, name)
    return found


class SignoffAggregate(BaseAggregate[str]):
    """Base of Approval, WorkflowRun and Schedule."""

    def _emit(self, event: str, cause: Cause, **fields: Any) -> None:
        """Records the event an ``@event`` method defines, with ``fields`` and the cause.

        Commands call this rather than the decorated method itself: it is the same
        ``trigger_event`` (the event applies through the decorated method's body), minus
        the decorator's inspection of its arguments on every call, which was a tenth of
        the writer's time.
        """
        self.trigger_event(getattr(type(self), event), **fields, **cause.fields())

    class Event(SignoffEvent):
        pass

    class Created(Event, SignoffCreated):
        pass
