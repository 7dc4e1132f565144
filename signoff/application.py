"""The synchronous application service over the event store.

Each public method is one use case: load, run one command, save, return
plain data. Optimistic-concurrency conflicts are retried by reloading, so
two racing decisions give one winner and one typed error. The eventsourcing
library is synchronous; the async Engine runs these methods off the event
loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    JSONTranscoder,
    Transcoder,
)
from eventsourcing.popo import POPOFactory
from eventsourcing.utils import resolve_topic

from signoff import approval_units
from signoff.clock import Clock, SystemClock
from signoff.commands import Cancel, Decide, Reassign, RequestApproval
from signoff.domain.approval import Approval
from signoff.domain.base import Cause, SignoffAggregate
from signoff.domain.errors import (
    ApprovalNotFoundError,
    ConcurrencyError,
    InvalidInputError,
    NotFoundError,
    ScheduleNotFoundError,
    WorkflowNotFoundError,
)
from signoff.domain.policy import ApprovalPolicy
from signoff.domain.schedule import Schedule
from signoff.domain.workflow_run import WorkflowRun
from signoff.ids import new_command_id, new_id
from signoff.index import RunIndex
from signoff.indexing import index_for
from signoff.json_values import inspect_json
from signoff.session import AggregateT, Session
from signoff.store_identity import StoreIdentity
from signoff.transcodings import FastJSONTranscoder, PydanticAsDict
from signoff.views import ApprovalInfo, HistoryEntry

T = TypeVar("T")

MAX_ATTEMPTS = 20
"""How often a command is retried after losing an optimistic-concurrency race."""

_NOT_FOUND: dict[type[SignoffAggregate], Callable[[str], NotFoundError]] = {
    Approval: ApprovalNotFoundError,
    WorkflowRun: WorkflowNotFoundError,
    Schedule: ScheduleNotFoundError,
}


def fold(aggregate: Any, events: Iterable[Any]) -> Any:
    """Folds events into an aggregate (eventsourcing's projector, without its per-event
    runtime Protocol check, which costs ~0.1 ms per event on Python 3.11)."""
    for domain_event in events:
        aggregate = domain_event.mutate(aggregate)
    return aggregate


class SignoffApplication(Application[str]):
    """Approvals, workflow runs and schedules, stored as events."""

    name = "signoff"

    def __init__(
        self,
        env: dict[str, str],
        *,
        clock: Clock | None = None,
        ids: Callable[[], str] = new_id,
    ) -> None:
        super().__init__(env=env)
        self.clock: Clock = clock or SystemClock()
        self.ids = ids

    def construct_recorder(self) -> ApplicationRecorder:
        """The store's recorder; the in-memory factory ignores a configured recorder
        class, so it is resolved here."""
        topic = self.env.get(InfrastructureFactory.APPLICATION_RECORDER_TOPIC)
        if topic and isinstance(self.factory, POPOFactory):
            recorder: ApplicationRecorder = resolve_topic(topic)()
            return recorder
        return super().construct_recorder()

    def construct_transcoder(self) -> Transcoder:
        """A JSON transcoder that encodes with orjson; same stored format as eventsourcing's."""
        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        """Adds the value objects that events carry."""
        super().register_transcodings(transcoder)
        transcoder.register(PydanticAsDict(ApprovalPolicy))

    # Building blocks ---------------------------------------------------------

    def store(self, *aggregates: Any, **kwargs: Any) -> None:
        """Stores the pending events of ``aggregates`` in one transaction (``kwargs`` go to
        the recorder: the index rows).

        ``Application.save`` minus what signoff does not use and pays for on every
        event: runtime Protocol isinstance checks (slow on Python 3.11), a recording
        object per event, snapshotting (not configured) and the deprecated ``notify``
        hook.
        """
        events = [event for aggregate in aggregates for event in aggregate.collect_events()]
        if events:
            to_stored = self.mapper.to_stored_event
            self.recorder.insert_events([to_stored(event) for event in events], **kwargs)

    def cause(
        self, actor: str, *, reason: str | None = None, command_id: str | None = None
    ) -> Cause:
        """The cause of a change made now."""
        return Cause(actor, command_id or new_command_id(), self.clock.now(), reason)

    def load(self, cls: type[AggregateT], aggregate_id: str) -> AggregateT:
        """Loads an aggregate of type ``cls`` or raises its typed not-found error."""
        try:
            aggregate: object = self.repository.get(aggregate_id, projector_func=fold)
        except AggregateNotFoundError:
            raise _NOT_FOUND[cls](aggregate_id) from None
        if not isinstance(aggregate, cls):
            raise _NOT_FOUND[cls](aggregate_id)
        return aggregate

    def execute(self, unit: Callable[[Session], T]) -> T:
        """Runs a unit of work in its own transaction, retrying after a concurrent write.

        The unit may raise a typed error: nothing is saved then. After a lost
        race it runs again on freshly loaded aggregates, so a decision that
        came second sees the first one.
        """
        for attempt in range(MAX_ATTEMPTS):
            session = Session(self, None, verify_new=attempt > 0)
            value = unit(session)
            changed = session.changed()
            if not changed:
                return value
            try:
                self.store(*changed, **index_for(changed))
            except IntegrityError:
                continue
            return value
        raise ConcurrencyError(changed[0].id, MAX_ATTEMPTS)

    def normalize(self, value: Any, what: str) -> Any:
        """Returns ``value`` as the store will give it back (tuples become lists ...), so
        that live code and replays see the same thing; refuses what the store cannot hold
        (not JSON, NaN, huge ints, reserved shapes) before it could fail a whole batch."""
        problem, plain = inspect_json(value)
        if problem:
            raise InvalidInputError(f"{what} cannot be stored: {problem}")
        if plain:
            return value
        try:
            return self.mapper.transcoder.decode(self.mapper.transcoder.encode(value))
        except (TypeError, ValueError) as error:
            raise InvalidInputError(f"{what} cannot be stored as JSON: {error}") from None

    def fast_forward(self, aggregate: AggregateT) -> AggregateT:
        """Applies the stored events newer than ``aggregate``'s version to it (in place)."""
        newer: Any = fold(aggregate, self.events.get(aggregate.id, gt=aggregate.version))
        result: AggregateT = newer
        return result

    def create(self, *aggregates: SignoffAggregate) -> None:
        """Saves new aggregates in one transaction; an id already taken is a typed error."""

        def add(session: Session) -> None:
            for aggregate in aggregates:
                session.add(aggregate, check_store=True)

        self.execute(add)

    def change(
        self, cls: type[AggregateT], aggregate_id: str, command: Callable[[AggregateT], None]
    ) -> AggregateT:
        """Loads, applies ``command`` and saves (retrying after a concurrent write)."""

        def apply(session: Session) -> AggregateT:
            aggregate = session.get(cls, aggregate_id)
            command(aggregate)
            return aggregate

        return self.execute(apply)

    def rebuild_index(self, *, batch: int = 500) -> int:
        """Rewrites the run, approval and timer index from the event log (after an
        upgrade, or to repair it); returns how many aggregates it indexed."""
        index: RunIndex = self.recorder  # type: ignore[assignment]
        ids: dict[str, None] = {}
        position = 0
        while True:
            notifications = self.recorder.select_notifications(
                start=position, limit=1000, inclusive_of_start=False
            )
            for notification in notifications:
                ids[str(notification.originator_id)] = None
            if len(notifications) < 1000:
                break
            position = notifications[-1].id
        indexed = 0
        chunk: list[SignoffAggregate] = []
        for aggregate_id in ids:
            chunk.append(self.repository.get(aggregate_id, projector_func=fold))
            if len(chunk) == batch:
                indexed += self._write_index(index, chunk)
                chunk = []
        return indexed + self._write_index(index, chunk)

    @staticmethod
    def _write_index(index: RunIndex, aggregates: list[SignoffAggregate]) -> int:
        update = index_for(aggregates).get("index")
        if update:
            index.write_index(update)
        return len(aggregates)

    def store_id(self) -> str:
        """The id written once into this store (see :mod:`signoff.store_identity`): what
        tells this store from a reset or different one behind the same notification ids."""
        recorder = self.recorder
        if not isinstance(recorder, StoreIdentity):
            raise TypeError(f"{type(recorder).__name__} does not record a store id")
        return recorder.store_id()

    # Approvals ---------------------------------------------------------------

    def request_approval(self, cmd: RequestApproval, *, command_id: str | None = None) -> str:
        """Opens an approval and returns its id."""
        approval_id, command_id = self.ids(), command_id or self.ids()
        return self.execute(
            lambda s: approval_units.request(s, cmd, approval_id=approval_id, command_id=command_id)
        )

    def approve(
        self, approval_id: str, cmd: Decide, *, command_id: str | None = None
    ) -> ApprovalInfo:
        """Casts an approve vote; returns the approval as it now stands."""
        command_id = command_id or self.ids()
        return self.execute(
            lambda s: approval_units.decide(s, approval_id, "approve", cmd, command_id=command_id)
        )

    def reject(
        self, approval_id: str, cmd: Decide, *, command_id: str | None = None
    ) -> ApprovalInfo:
        """Casts a reject vote; returns the approval as it now stands."""
        command_id = command_id or self.ids()
        return self.execute(
            lambda s: approval_units.decide(s, approval_id, "reject", cmd, command_id=command_id)
        )

    def cancel(
        self, approval_id: str, cmd: Cancel, *, command_id: str | None = None
    ) -> ApprovalInfo:
        """Withdraws a pending approval."""
        command_id = command_id or self.ids()
        return self.execute(
            lambda s: approval_units.cancel(s, approval_id, cmd, command_id=command_id)
        )

    def reassign(
        self, approval_id: str, cmd: Reassign, *, command_id: str | None = None
    ) -> ApprovalInfo:
        """Hands a pending approval to other approvers or groups."""
        command_id = command_id or self.ids()
        return self.execute(
            lambda s: approval_units.reassign(s, approval_id, cmd, command_id=command_id)
        )

    def expire_approval(self, approval_id: str, *, command_id: str | None = None) -> ApprovalInfo:
        """Closes an approval whose deadline has passed (signoff acts as ``system``)."""
        command_id = command_id or self.ids()
        return self.execute(lambda s: approval_units.expire(s, approval_id, command_id=command_id))

    def get_approval(self, approval_id: str) -> ApprovalInfo:
        """The approval's status, policy and votes."""
        return ApprovalInfo.of(self.load(Approval, approval_id))

    # Audit -------------------------------------------------------------------

    def history(self, aggregate_id: str) -> list[HistoryEntry]:
        """The ordered events of one approval, run or schedule: its audit trail."""
        entries = [HistoryEntry.of(e) for e in self.events.get(aggregate_id)]  # type: ignore[arg-type]
        if not entries:
            raise NotFoundError(f"nothing recorded under {aggregate_id!r}")
        return entries
