"""Legal moves of an aggregate type, read off one shared ``transitions`` Machine.

The machine is built once per aggregate type at import and used only as a
guard: an aggregate asks it whether a trigger is legal from its status before
emitting an event. Aggregates are never bound as machine models (that costs
~0.5 ms each and leaks bound methods into snapshots), and replay never
touches the machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from transitions import Machine

from signoff.domain.errors import IllegalTransitionError

Move = tuple[str, str | Sequence[str], str]
"""A legal move: (trigger, source state or states, destination state)."""


class Lifecycle:
    """The statuses of one aggregate type and the triggers that move between them."""

    def __init__(
        self,
        name: str,
        *,
        states: Sequence[str],
        initial: str,
        terminal: Iterable[str],
        moves: Iterable[Move],
        error: type[IllegalTransitionError] = IllegalTransitionError,
    ) -> None:
        self.name = name
        self.states = tuple(states)
        self.initial = initial
        self.terminal = frozenset(terminal)
        self.error = error
        self.machine: Any = Machine(
            model=None,
            states=list(states),
            initial=initial,
            auto_transitions=False,
            name=name,
        )
        for trigger, source, dest in moves:
            sources: list[Any] = [source] if isinstance(source, str) else list(source)
            self.machine.add_transition(trigger, sources, dest)
        # The machine's answers, read once: guards run on every command.
        self._dest: dict[tuple[str, str], str] = {}
        for trigger, machine_event in self.machine.events.items():
            for source, transitions in machine_event.transitions.items():
                for transition in transitions:
                    self._dest[(source, trigger)] = transition.dest or source
        self._triggers = {s: tuple(sorted(self.machine.get_triggers(s))) for s in self.states}

    def next_status(self, aggregate_id: str, status: str, trigger: str) -> str:
        """Returns the status ``trigger`` leads to, or raises the typed error."""
        try:
            return self._dest[(status, trigger)]
        except KeyError:
            raise self.error(aggregate_id, status, trigger) from None

    def allows(self, status: str, trigger: str) -> bool:
        """Tells whether ``trigger`` is a legal move from ``status``."""
        return (status, trigger) in self._dest

    def triggers(self, status: str) -> tuple[str, ...]:
        """The commands a UI may offer for an aggregate in ``status``."""
        return self._triggers.get(status, ())

    def is_terminal(self, status: str) -> bool:
        """Tells whether ``status`` is final (no move leads out of it)."""
        return status in self.terminal
