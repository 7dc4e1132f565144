"""Read models built from the event stream: the approvals inbox, the workflow board and
the audit trail, their runner (exactly-once tracking, live, rebuildable) and change feed.

See docs/views.md. The engine's read API (``signoff.read_api``) queries these tables.
"""
