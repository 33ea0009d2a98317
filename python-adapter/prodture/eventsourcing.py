"""Event-sourced aggregates as effect handlers: the command handler is the trace's handler.

An aggregate's history *is* its state, so a trace of a command handler — the ``LoadEvents``
result plus the command — holds everything needed to replay it: no database, no seed data.
Appending is an effect too, so replay and :func:`speculate` never persist anything.

    class Player(Aggregate):
        chips = 0

        @handles(PlaceBet)
        def place_bet(self, command):
            if command.amount > self.chips:
                raise InsufficientChips(...)
            return [BetPlaced(command.amount)]

        @applies(BetPlaced)
        def _bet_placed(self, event):
            self.chips -= event.amount

    @prodture.handler
    def handle_player_command(request):
        history = yield LoadEvents(f"player-{request.player_id}")
        player = Player.rehydrate(history)
        events = player.execute(request.command)
        yield AppendEvents(f"player-{request.player_id}", len(history), tuple(events))
        return player.chips
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from .effects import Effect
from .runtime import Outcome, run_sync

__all__ = [
    "Aggregate",
    "handles",
    "applies",
    "LoadEvents",
    "AppendEvents",
    "ConcurrencyConflict",
    "InMemoryEventStore",
    "Speculation",
    "speculate",
]


@dataclasses.dataclass(frozen=True)
class LoadEvents(Effect, name="prodture.LoadEvents"):
    """The events of ``stream``, oldest first (a list)."""

    stream: str


@dataclasses.dataclass(frozen=True)
class AppendEvents(Effect, name="prodture.AppendEvents"):
    """Append ``events`` to ``stream`` if it still has ``expected_version`` events; the result is
    the new version."""

    stream: str
    expected_version: int
    events: tuple[Any, ...]


class ConcurrencyConflict(Exception):
    """The stream moved on since it was loaded."""


def handles(command_type: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an aggregate method as the handler of ``command_type``: it validates against the
    current state and returns the new events (it must not change state itself)."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__prodture_handles__ = command_type  # type: ignore[attr-defined]  # a marker attribute
        return method

    return mark


def applies(event_type: type) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an aggregate method as the reducer of ``event_type``: it changes state, nothing else."""

    def mark(method: Callable[..., Any]) -> Callable[..., Any]:
        method.__prodture_applies__ = event_type  # type: ignore[attr-defined]  # a marker attribute
        return method

    return mark


class Aggregate:
    """Base class: collects ``@handles`` and ``@applies`` methods; state is rebuilt from events."""

    _command_handlers: ClassVar[dict[type, Callable[..., Any]]]
    _reducers: ClassVar[dict[type, Callable[..., Any]]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._command_handlers, cls._reducers = {}, {}
        for klass in reversed(cls.__mro__):
            for value in vars(klass).values():
                if hasattr(value, "__prodture_handles__"):
                    cls._command_handlers[value.__prodture_handles__] = value
                if hasattr(value, "__prodture_applies__"):
                    cls._reducers[value.__prodture_applies__] = value

    def __init__(self) -> None:
        self.version = 0

    @classmethod
    def rehydrate(cls, events: Iterable[Any]) -> Aggregate:
        aggregate = cls()
        for event in events:
            aggregate.apply(event)
        return aggregate

    def apply(self, event: Any) -> None:
        reducer = self._reducers.get(type(event))
        if reducer is None:
            raise TypeError(
                f"{type(self).__name__} has no @applies({type(event).__name__}) reducer"
            )
        reducer(self, event)
        self.version += 1

    def execute(self, command: Any) -> list[Any]:
        """Handle ``command``: the new events, already applied to this aggregate."""
        handler = self._command_handlers.get(type(command))
        if handler is None:
            raise TypeError(
                f"{type(self).__name__} has no @handles({type(command).__name__}) method"
            )
        events = list(handler(self, command) or ())
        for event in events:
            self.apply(event)
        return events


class InMemoryEventStore:
    """A production-style performer of ``LoadEvents`` / ``AppendEvents`` (tests, examples)."""

    def __init__(self) -> None:
        self.streams: dict[str, list[Any]] = {}
        self._lock = threading.Lock()

    def load(self, effect: LoadEvents) -> list[Any]:
        with self._lock:
            return list(self.streams.get(effect.stream, ()))

    def append(self, effect: AppendEvents) -> int:
        with self._lock:
            stream = self.streams.setdefault(effect.stream, [])
            if len(stream) != effect.expected_version:
                raise ConcurrencyConflict(
                    f"{effect.stream} has {len(stream)} events, expected {effect.expected_version}"
                )
            stream.extend(effect.events)
            return len(stream)

    def performers(self) -> dict[type, Callable[[Any], Any]]:
        return {LoadEvents: self.load, AppendEvents: self.append}


@dataclasses.dataclass(frozen=True)
class Speculation:
    """What a command *would* do: its outcome and the events it would have appended."""

    outcome: Outcome
    would_append: tuple[Any, ...]


def speculate(
    handler: Callable[..., Any],
    command: Any,
    history: Sequence[Any] | Callable[[str], Sequence[Any]],
    *,
    performers: dict[type, Callable[[Any], Any]] | None = None,
) -> Speculation:
    """Run ``handler(command)`` against ``history`` without persisting anything.

    ``history`` is the stream's events (or a function ``stream -> events``, e.g. a read-only
    fetch from production). ``AppendEvents`` is answered as if it succeeded and collected;
    other effects go to ``performers``.
    """
    appended: list[Any] = []
    others = dict(performers or {})

    def perform(call: Any) -> Any:
        effect = call.effect
        if isinstance(effect, LoadEvents):
            return list(history(effect.stream) if callable(history) else history)
        if isinstance(effect, AppendEvents):
            appended.extend(effect.events)
            return effect.expected_version + len(effect.events)
        performer = others.get(type(effect))
        if performer is None:
            raise LookupError(
                f"speculate: no performer for {type(effect).__name__}; pass performers={{...}}"
            )
        return performer(effect)

    outcome = run_sync(handler, command, perform)
    return Speculation(outcome, tuple(appended))
