"""The outside world: persistence, NATS, web, MCP, notifications.

Adapters import the application layer and are imported only by the
composition root (Engine construction, CLI). No adapter imports another.
"""
