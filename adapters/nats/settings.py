"""Where the NATS adapter listens and publishes, and its limits (defaults as in docs/nats.md)."""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class NatsSettings:
    """Subjects, stream names and limits; tests on a shared broker give each run its own
    ``prefix`` and stream names so that they never see each other's messages."""

    prefix: str = "signoff"
    """First token of every subject: ``<prefix>.workflow.start``, ``<prefix>.events.>``..."""
    queue_group: str = "signoff-engine"
    """Engines in one queue group share the request/reply commands."""
    events_stream: str = "SIGNOFF_EVENTS"
    commands_stream: str = "SIGNOFF_COMMANDS"
    dead_stream: str = "SIGNOFF_DEAD"
    commands_consumer: str = "signoff-engine"
    """Durable pull consumer that every engine shares (a work queue)."""
    max_body: int = MIB
    """Largest command body accepted, in bytes."""
    max_in_flight: int = 2000
    """Most requests an engine works on at once; more wait in the subscription."""
    max_deliver: int = 5
    """Deliveries of a durable command before it moves to the dead-letter subject."""
    ack_wait: float = 30.0
    """Seconds JetStream waits for an ack before redelivering a durable command."""
    duplicate_window: float = 120.0
    """Seconds JetStream remembers a ``Nats-Msg-Id`` (both streams)."""
    relay_interval: float = 0.05
    """Seconds between looks at the notification log when nothing woke the relay."""
    relay_batch: int = 500
    """Most events published before their acks are awaited."""
    fetch_batch: int = 200
    """Most durable commands pulled and applied at once."""
    connect_timeout: float = 30.0
    """Seconds to keep trying the first connection to the broker before giving up (once
    connected, the engine reconnects forever)."""
    idempotency_lease: float = 60.0
    """Seconds after which a command claimed by a silent engine may be run by another."""
    reset_events: bool = False
    """Delete and recreate the events stream on start, so that the relay republishes the
    store's whole history from notification 1 (the way out of a StreamMismatchError)."""

    def subject(self, *tokens: str) -> str:
        """``<prefix>.<tokens...>``."""
        return ".".join((self.prefix, *tokens))

    @property
    def commands_subjects(self) -> str:
        """Subjects of durable commands: ``<prefix>.cmd.<noun>.<verb>``."""
        return self.subject("cmd", ">")

    @property
    def events_subjects(self) -> str:
        """Subjects of relayed events: ``<prefix>.events.<aggregate>.<event>.<id>``."""
        return self.subject("events", ">")

    @property
    def dead_subjects(self) -> str:
        """Subjects of dead letters: ``<prefix>.dead.<noun>.<verb>``."""
        return self.subject("dead", ">")
