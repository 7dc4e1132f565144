"""Run leases: which engine executes a run, and the fencing token its writes carry.

Several engines may share one store. A run that is ready (queued or running)
is executed by the engine holding its lease: a row in the run index (owner,
token, until), taken in a store transaction, so that two engines can never
both hold it. Each claim increments the token; every write an activation
makes carries the token it claimed with, and the store refuses the write
(``LeaseLostError``) when the token moved on, so an engine that was paused
or cut off past its lease can never write over the engine that took over.
Lease time is the database's, never an engine's clock.

A batch of the writer collects its lease work here and the store applies it
in the batch's own transaction:

- ``fence``: the run must still be held with this token (else nothing commits);
- ``ready``: a run the batch made ready; claimed for this engine when it
  executes that workflow, announced to the other engines otherwise;
- ``release``: the activation is done with the run (it waits or ended).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Lease:
    """A run held by this engine, and the fencing token of that hold."""

    run_id: str
    token: int


@dataclass
class LeaseWork:
    """The lease operations of one transaction, and what the store granted."""

    owner: str
    """The engine whose leases these are."""
    seconds: float
    """How long a claim holds before others may take the run over."""
    fences: dict[str, int] = field(default_factory=dict)
    claims: list[str] = field(default_factory=list)
    """Ready runs to claim for ``owner`` (each only if no live lease holds it)."""
    announce: bool = False
    """Some ready run is not claimed here: wake the other engines."""
    releases: dict[str, int] = field(default_factory=dict)
    granted: dict[str, int] = field(default_factory=dict)
    """Filled by the store: the claims it granted, with their tokens."""

    def __bool__(self) -> bool:
        return bool(self.fences or self.claims or self.releases or self.announce)

    def mark(self) -> tuple[int, int, int, bool]:
        """Where the work stands (to undo a unit that failed half-way)."""
        return len(self.fences), len(self.claims), len(self.releases), self.announce

    def undo(self, mark: tuple[int, int, int, bool]) -> None:
        """Drops what was added since ``mark``."""
        fences, claims, releases, announce = mark
        for run_id in list(self.fences)[fences:]:
            del self.fences[run_id]
        del self.claims[claims:]
        for run_id in list(self.releases)[releases:]:
            del self.releases[run_id]
        self.announce = announce

    def split(self, run_ids: set[str]) -> LeaseWork:
        """The part of the work on runs outside ``run_ids`` (it shares ``granted``)."""
        rest = LeaseWork(self.owner, self.seconds, granted=self.granted, announce=self.announce)
        rest.fences = {k: v for k, v in self.fences.items() if k not in run_ids}
        rest.claims = [k for k in self.claims if k not in run_ids]
        rest.releases = {k: v for k, v in self.releases.items() if k not in run_ids}
        return rest

    def locked_ids(self) -> list[str]:
        """Every run row the work touches, sorted (locked in this order first, so that
        concurrent transactions of several engines never deadlock)."""
        return sorted({*self.fences, *self.claims, *self.releases})

    def lost(self, held: dict[str, tuple[str | None, int]]) -> list[str]:
        """The fenced runs that ``held`` (run id -> owner, token, as stored) no longer
        shows as ours with the fenced token."""
        return sorted(
            run_id
            for run_id, token in self.fences.items()
            if held.get(run_id) != (self.owner, token)
        )


class LeaseStore(Protocol):
    """The lease operations of a store that run outside the writer's batches."""

    def claim_ready(
        self, owner: str, names: Sequence[str], limit: int, seconds: float
    ) -> list[Lease]:
        """Claims up to ``limit`` ready runs of the named workflows that no live lease holds."""
        ...

    def renew_leases(self, owner: str, run_ids: Sequence[str], seconds: float) -> dict[str, int]:
        """Extends ``owner``'s leases of ``run_ids`` by ``seconds`` from now; returns the
        runs renewed, with their tokens."""
        ...

    def confirm_lease(self, owner: str, lease: Lease, seconds: float) -> bool:
        """Extends ``lease`` if ``owner`` still holds it; tells whether it does."""
        ...

    def release_all(self, owner: str) -> None:
        """Gives up every lease ``owner`` holds."""
        ...

    def write_leases(self, work: LeaseWork) -> None:
        """Applies lease work that came without events, in a transaction of its own."""
        ...

    def store_time(self) -> float:
        """The store's clock, in seconds since the epoch."""
        ...

    def lease_holders(self, run_ids: Sequence[str]) -> dict[str, tuple[str | None, int]]:
        """Who holds each run's lease (owner or None), and its token."""
        ...
