"""Which approvals are pending, kept current from the notification log.

Only ids are held (a few dozen bytes each); the approvals themselves are
loaded when asked for. The projections issue replaces this with a table.
"""

from __future__ import annotations

import threading

from eventsourcing.persistence import ApplicationRecorder
from eventsourcing.utils import get_topic

from signoff.domain.approval import Approval
from signoff.domain.base import event_class

_REQUESTED = get_topic(event_class(Approval, "Requested"))
_CLOSED = {
    get_topic(event_class(Approval, name))
    for name in ("Approved", "Rejected", "Expired", "Cancelled")
}
_TOPICS = [_REQUESTED, *sorted(_CLOSED)]
_BATCH = 1000


class PendingIndex:
    """Ids of pending approvals, in the order they were requested."""

    def __init__(self, recorder: ApplicationRecorder) -> None:
        self._recorder = recorder
        self._position = 0
        self._pending: dict[str, None] = {}
        self._lock = threading.Lock()

    def pending_ids(self) -> list[str]:
        """Catches up with the log, then returns the pending ids."""
        with self._lock:
            self._catch_up()
            return list(self._pending)

    def _catch_up(self) -> None:
        top = self._recorder.max_notification_id() or 0
        while self._position < top:
            batch = self._recorder.select_notifications(
                start=self._position,
                limit=_BATCH,
                stop=top,
                topics=_TOPICS,
                inclusive_of_start=False,
            )
            for notification in batch:
                if notification.topic == _REQUESTED:
                    self._pending[str(notification.originator_id)] = None
                elif notification.topic in _CLOSED:
                    self._pending.pop(str(notification.originator_id), None)
            if len(batch) < _BATCH:
                self._position = top
            else:
                self._position = batch[-1].id
