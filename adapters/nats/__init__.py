"""NATS adapters: commands in over request/reply and JetStream, domain events out.

- :mod:`.service` answers ``signoff.<noun>.<verb>`` requests in a queue group;
- :mod:`.durable` applies the same commands from the ``SIGNOFF_COMMANDS`` stream;
- :mod:`.relay` publishes every stored event to the ``SIGNOFF_EVENTS`` stream, which
  :mod:`.stream_identity` keeps to one store (``StreamMismatchError`` otherwise);
- :mod:`.adapter` runs the three together and drains them on shutdown.

The wire protocol is in docs/nats.md (generated from :mod:`.messages`).
"""

from signoff.adapters.nats.adapter import NatsAdapter
from signoff.adapters.nats.identity import Authenticator
from signoff.adapters.nats.settings import NatsSettings
from signoff.adapters.nats.stream_identity import StreamMismatchError

__all__ = ["Authenticator", "NatsAdapter", "NatsSettings", "StreamMismatchError"]
