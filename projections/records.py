"""Stored events as projections read them: decoded JSON, without building domain objects.

Rebuilding a view must be fast (tens of thousands of events a second), so
projections read the notification log's JSON directly instead of going
through the event mapper; ``plain`` and ``epoch`` turn the transcoder's
``{"_type_": ..., "_data_": ...}`` wrappers into plain values.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

CAUSE_FIELDS = frozenset({"actor", "reason", "command_id", "timestamp", "originator_topic"})


class EventRecord:
    """One stored event: its place in the log, whose it is, and its data.

    The data is decoded on every use of ``data`` and not kept: a view reads it once
    per event. Kept, a batch's decoded events (several dicts each) would outlive the
    garbage collector's young generations, and every few batches the collector would
    walk the whole heap of the engine. What caused the event (who, when, why, which
    command) is kept, as plain values, the first time it is decoded, since most views
    read it.
    """

    __slots__ = (
        "_actor",
        "_at",
        "_command_id",
        "_decoded",
        "_reason",
        "aggregate",
        "aggregate_id",
        "event",
        "position",
        "state",
        "version",
    )

    def __init__(
        self,
        position: int,
        aggregate: str,
        event: str,
        aggregate_id: str,
        version: int,
        state: bytes,
    ) -> None:
        self.position = position
        self.aggregate = aggregate
        self.event = event
        self.aggregate_id = aggregate_id
        self.version = version
        self.state = state
        """The stored JSON, as it is (kept by the audit trail without re-encoding)."""
        self._decoded = False
        self._actor = ""
        self._at: float | None = None
        self._reason: Any = None
        self._command_id: Any = ""

    @property
    def data(self) -> dict[str, Any]:
        """The event's fields as stored (datetimes and value objects still wrapped),
        decoded anew: read it once and keep it while needed."""
        data: dict[str, Any] = orjson.loads(self.state)
        if not self._decoded:
            self._keep_cause(data)
        return data

    def _keep_cause(self, data: dict[str, Any]) -> None:
        self._decoded = True
        self._actor = str(data.get("actor", ""))
        self._at = epoch(data["timestamp"]) or 0.0 if "timestamp" in data else None
        self._reason = data.get("reason")
        self._command_id = data.get("command_id", "")

    @property
    def actor(self) -> str:
        """Who caused the event."""
        if not self._decoded:
            self._keep_cause(orjson.loads(self.state))
        return self._actor

    @property
    def at(self) -> float:
        """When the event happened (seconds since the epoch)."""
        if not self._decoded:
            self._keep_cause(orjson.loads(self.state))
        if self._at is None:
            raise KeyError("timestamp")
        return self._at

    @property
    def reason(self) -> Any:
        """Why, as the command said (None if it did not)."""
        if not self._decoded:
            self._keep_cause(orjson.loads(self.state))
        return self._reason

    @property
    def command_id(self) -> str:
        """The command that caused the event (empty if unknown)."""
        if not self._decoded:
            self._keep_cause(orjson.loads(self.state))
        return str(self._command_id)

    def details(self) -> dict[str, Any]:
        """The event's own fields (without the cause every event carries), as plain JSON."""
        return details(self.data)


_NAMES: dict[str, tuple[str, str]] = {}


def decode(
    position: int, topic: str, originator_id: Any, version: int, state: bytes
) -> EventRecord:
    """Reads one notification (``module:Aggregate.Event`` topic, JSON state)."""
    names = _NAMES.get(topic)
    if names is None:
        aggregate, _, event = topic.rpartition(":")[2].rpartition(".")
        names = _NAMES[topic] = (aggregate, event)
    return EventRecord(position, names[0], names[1], str(originator_id), version, state)


def details(data: dict[str, Any]) -> dict[str, Any]:
    """An event's own fields (without the cause every event carries), as plain JSON."""
    return {k: plain(v) for k, v in data.items() if k not in CAUSE_FIELDS}


def epoch(value: Any) -> float | None:
    """A stored datetime as seconds since the epoch (None stays None)."""
    if value is None:
        return None
    if isinstance(value, dict):
        value = value.get("_data_")
    return datetime.fromisoformat(str(value)).timestamp()


def plain(value: Any) -> Any:
    """A stored value with the transcoder's type wrappers replaced by their plain data
    (datetimes as ISO strings, value objects as their dicts)."""
    if isinstance(value, dict):
        if len(value) == 2 and "_type_" in value and "_data_" in value:
            return plain(value["_data_"])
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value
