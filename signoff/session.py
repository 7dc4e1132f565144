"""A unit of work's view of the store: the aggregates it loads, changes and adds, and the
run leases its transaction takes, checks and gives up."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Protocol, TypeVar

from signoff.domain.base import SignoffAggregate
from signoff.domain.errors import AlreadyExistsError
from signoff.domain.workflow_run import WorkflowRun
from signoff.idempotency import KeyedCommand
from signoff.leases import LeaseWork

if TYPE_CHECKING:
    from signoff.application import SignoffApplication

AggregateT = TypeVar("AggregateT", bound=SignoffAggregate)


class AggregateSource(Protocol):
    """Where a session may find aggregates saved earlier (the writer's cache)."""

    def get(self, aggregate_id: str) -> SignoffAggregate | None: ...


class Session:
    """The aggregates one batch (or one retried unit) works on."""

    def __init__(
        self,
        app: SignoffApplication,
        cache: AggregateSource | None,
        *,
        verify_new: bool = False,
        leases: LeaseWork | None = None,
        executes: Callable[[str], bool] | None = None,
    ) -> None:
        self.app = app
        self.verify_new = verify_new
        self.leases = leases
        """The transaction's lease work (None: a session that takes no leases)."""
        self._executes = executes
        self.readied: dict[str, WorkflowRun] = {}
        """Runs this session made ready to execute."""
        self.replies: list[tuple[KeyedCommand, bytes]] = []
        """Replies of keyed commands, committed with their events."""
        self._unit_mark: tuple[tuple[int, int, int, bool], int] | None = None
        self._cache = cache
        self._loaded: dict[str, SignoffAggregate] = {}
        self._base_version: dict[str, int] = {}
        self._from_cache: set[str] = set()
        self._unit_versions: dict[str, int] = {}
        self.used_cache = False
        """Set when an aggregate came from the cache (it may be stale)."""

    def get(self, cls: type[AggregateT], aggregate_id: str, *, fresh: bool = False) -> AggregateT:
        """The aggregate ``aggregate_id`` of type ``cls``, loaded once per session.

        ``fresh``: other processes may have changed it, so a cached copy is
        fast-forwarded with any newer stored events (one indexed query).
        """
        aggregate = self._loaded.get(aggregate_id)
        if aggregate is None:
            cached = self._cache.get(aggregate_id) if self._cache is not None else None
            if cached is not None and fresh:
                cached = self.app.fast_forward(cached)
            elif cached is not None:
                self._from_cache.add(aggregate_id)
            aggregate = cached if cached is not None else self.app.load(cls, aggregate_id)
            self._loaded[aggregate_id] = aggregate
            self._base_version[aggregate_id] = aggregate.version
        if aggregate_id in self._from_cache:
            self.used_cache = True
        self._unit_versions.setdefault(aggregate_id, aggregate.version)
        if not isinstance(aggregate, cls):
            return self.app.load(cls, aggregate_id)  # raises the typed not-found error
        return aggregate

    def add(self, aggregate: SignoffAggregate, *, check_store: bool = False) -> None:
        """Adds a new aggregate; ``check_store`` looks for the id in the store first
        (for ids that callers choose; a retried unit always looks)."""
        taken = aggregate.id in self._loaded or (
            (check_store or self.verify_new)
            and self.app.recorder.select_events(aggregate.id, limit=1)
        )
        if taken:
            raise AlreadyExistsError(aggregate.id)
        self._loaded[aggregate.id] = aggregate
        self._base_version[aggregate.id] = 0
        self._unit_versions.setdefault(aggregate.id, 0)

    def begin_unit(self) -> None:
        """Starts tracking what the next unit touches (to detect half-done changes)."""
        self._unit_versions = {}
        self.used_cache = False
        if self.leases is not None:
            self._unit_mark = (self.leases.mark(), len(self.readied))

    def undo_unit(self) -> None:
        """Forgets the lease work of a unit that failed without changing anything."""
        if self.leases is not None and self._unit_mark is not None:
            mark, readied = self._unit_mark
            self.leases.undo(mark)
            for run_id in list(self.readied)[readied:]:
                del self.readied[run_id]

    def record_reply(self, command: KeyedCommand, reply: bytes) -> None:
        """Commits ``command``'s reply under its idempotency key with the session's events."""
        self.replies.append((command, reply))

    # Leases ------------------------------------------------------------------

    def ready(self, run: WorkflowRun) -> None:
        """Notes that ``run`` is ready to execute: the transaction claims it for this engine
        when it executes that workflow, and wakes the other engines otherwise."""
        if self.leases is None or run.id in self.readied:
            return
        self.readied[run.id] = run
        if self._executes is not None and self._executes(run.name):
            self.leases.claims.append(run.id)
        else:
            self.leases.announce = True

    def fence(self, run_id: str, token: int) -> None:
        """Commits the transaction only while this engine still holds ``run_id`` with
        ``token`` (else it raises LeaseLostError and nothing is written)."""
        if self.leases is not None:
            self.leases.fences[run_id] = token

    def release(self, run_id: str, token: int) -> None:
        """Gives up this engine's lease of ``run_id`` when the transaction commits."""
        if self.leases is not None:
            self.leases.releases[run_id] = token

    def unit_changed(self) -> bool:
        """Tells whether the current unit gave any aggregate new events (or added one)."""
        return any(self._loaded[k].version != v for k, v in self._unit_versions.items())

    def changed(self) -> list[SignoffAggregate]:
        """The aggregates with unsaved events."""
        return [a for k, a in self._loaded.items() if a.version != self._base_version[k]]

    def all(self) -> Iterable[SignoffAggregate]:
        """Every aggregate the session loaded or added."""
        return self._loaded.values()
