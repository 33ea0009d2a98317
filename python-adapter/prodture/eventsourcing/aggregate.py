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
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, TypeVar

from ..effects import Effect
from ..runtime import Outcome, run_sync
from .model import AppendStream, ConcurrencyConflict, EventBook, EventPage, LoadStream

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


_A = TypeVar("_A", bound="Aggregate")


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
    def rehydrate(cls: type[_A], events: Iterable[Any]) -> _A:
        """A new aggregate with ``events`` applied in order (an :class:`EventBook`, its pages,
        or plain events); its ``version`` is then the stream's head."""
        aggregate = cls()
        aggregate.fold(events)
        return aggregate

    def fold(self, events: Iterable[Any]) -> None:
        """Apply ``events`` (or pages) in order, each through its ``@applies`` reducer."""
        if isinstance(events, EventBook):
            events = events.values
        get = self._reducers.get
        for event in events:
            reducer = get(type(event))
            if reducer is None:  # off the hot path: a page, or a type with no reducer
                if type(event) is EventPage:
                    self.apply(event.event)
                    continue
                raise TypeError(
                    f"{type(self).__name__} has no @applies({type(event).__name__}) reducer"
                )
            reducer(self, event)
            self.version += 1

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
    """What a command *would* do: its outcome and the events it would have appended
    (``appended`` keeps them per stream: ``{(domain, root): (event, ...)}``)."""

    outcome: Outcome
    would_append: tuple[Any, ...]
    appended: dict[tuple[str, str], tuple[Any, ...]] = dataclasses.field(default_factory=dict)


History = Any  # events | {(domain, root): EventBook | events} | callable


def as_book(domain: str, root: str, found: Any) -> EventBook:
    """``found`` (an EventBook, pages, or plain events numbered from 1) as an EventBook."""
    if isinstance(found, EventBook):
        return found
    pages = tuple(
        item if isinstance(item, EventPage) else EventPage(i, item)
        for i, item in enumerate(found or (), start=1)
    )
    return EventBook(domain, root, pages)


def speculative_performer(
    history: History, performers: dict[type, Callable[[Any], Any]] | None = None
) -> tuple[Callable[[Any], Any], list[Any], dict[tuple[str, str], list[Any]]]:
    """A ``perform(call)`` answering loads from ``history`` and collecting appends (nothing is
    persisted); plus the list of all appended events and the per-stream dict it fills."""
    appended: list[Any] = []
    per_stream: dict[tuple[str, str], list[Any]] = {}
    others = dict(performers or {})

    loaded: dict[tuple[str, str], Any] = {}

    def lookup(domain: str, root: str) -> Any:
        """The history of a stream, asked of ``history`` once per speculation."""
        key = (domain, root)
        if key in loaded:
            return loaded[key]
        if callable(history):
            found = history(domain, root)
        elif isinstance(history, dict):
            found = history.get(key, ())
        else:
            found = history
        loaded[key] = found = as_book(domain, root, found)
        return found

    def perform(call: Any) -> Any:
        effect = call.effect
        if isinstance(effect, LoadStream):
            book = as_book(effect.domain, effect.root, lookup(effect.domain, effect.root))
            own = per_stream.get((effect.domain, effect.root))
            if own:  # a second load in the same execution sees what it appended
                start = book.head
                book = EventBook(
                    book.domain,
                    book.root,
                    book.pages + tuple(EventPage(start + i, e) for i, e in enumerate(own, 1)),
                    book.edition,
                )
            return book
        if isinstance(effect, AppendStream):
            key = (effect.domain, effect.root)
            book = as_book(effect.domain, effect.root, lookup(*key))
            head = book.head + len(per_stream.get(key, ()))
            if effect.expected != head:
                raise ConcurrencyConflict(
                    f"{effect.domain}/{effect.root} is at sequence {head}, the command expected "
                    f"{effect.expected}: reload the stream and retry"
                )
            per_stream.setdefault(key, []).extend(effect.events)
            appended.extend(effect.events)
            return effect.expected + len(effect.events)
        if isinstance(effect, LoadEvents):
            found = history(effect.stream) if callable(history) else history
            if isinstance(history, dict):
                found = history.get(effect.stream, ())
            return list(found)
        if isinstance(effect, AppendEvents):
            appended.extend(effect.events)
            per_stream.setdefault((effect.stream, ""), []).extend(effect.events)
            return effect.expected_version + len(effect.events)
        performer = others.get(type(effect))
        if performer is None:
            from ..runtime import BUILTIN_PERFORMERS

            performer = BUILTIN_PERFORMERS.get(type(effect))
        if performer is None:
            raise LookupError(
                f"speculate: no performer for {type(effect).__name__}; pass performers={{...}}"
            )
        return performer(effect)

    return perform, appended, per_stream


def speculate(
    handler: Callable[..., Any],
    command: Any,
    history: History,
    *,
    performers: dict[type, Callable[[Any], Any]] | None = None,
) -> Speculation:
    """Run ``handler(command)`` against ``history`` without persisting anything.

    ``history`` is the stream's events, a dict ``{(domain, root): EventBook | events}``, or a
    function returning them (``stream -> events`` for ``LoadEvents``, ``(domain, root) ->``
    for ``LoadStream``; e.g. a read-only fetch from production). Appends are answered as if
    they succeeded and collected; other effects go to ``performers`` (built-ins by default).
    """
    perform, appended, per_stream = speculative_performer(history, performers)
    outcome = run_sync(handler, command, perform)
    return Speculation(outcome, tuple(appended), {k: tuple(v) for k, v in per_stream.items()})
