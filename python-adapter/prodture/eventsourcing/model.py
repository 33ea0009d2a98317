"""The values an event store deals in: streams, pages, books, the two store effects, the errors.

A stream is keyed by ``(domain, root)``: ``("player", "p-7")``. Its events are numbered from 1
(``sequence``); a stream's *head* is the sequence of its last event (0 when empty), which is also
the aggregate's version. ``LoadStream`` and ``AppendStream`` are ordinary effects, so a command's
execution is an ordinary trace and replaying it persists nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterator
from typing import Any

from ..effects import Effect, register

__all__ = [
    "EventPage",
    "EventBook",
    "LoadStream",
    "AppendStream",
    "Delivery",
    "EventStoreError",
    "ConcurrencyConflict",
    "UnregisteredEventType",
    "StreamNotFound",
    "StoreUnavailable",
    "MAIN",
]

#: The name of the main timeline (the edition every production write goes to).
MAIN = ""


@register(name="prodture.es.EventPage")
@dataclasses.dataclass(frozen=True, slots=True)
class EventPage:
    """One stored event with its place in the stream and its provenance."""

    sequence: int
    event: Any
    recorded_at: _dt.datetime | None = None
    correlation_id: str = ""
    causation_id: str = ""
    edition: str = MAIN

    @property
    def type(self) -> str:
        from ..trace.codec import type_name

        return type_name(type(self.event))


@register(name="prodture.es.EventBook")
@dataclasses.dataclass(frozen=True, slots=True)
class EventBook:
    """A stream's events, oldest first (the result of :class:`LoadStream`)."""

    domain: str
    root: str
    pages: tuple[EventPage, ...] = ()
    edition: str = MAIN

    @property
    def head(self) -> int:
        """The sequence of the last event (0 for an empty stream): the expected sequence of the
        next append."""
        return self.pages[-1].sequence if self.pages else 0

    @property
    def events(self) -> list[Any]:
        return [p.event for p in self.pages]

    def __iter__(self) -> Iterator[Any]:
        return (p.event for p in self.pages)

    def __len__(self) -> int:
        return len(self.pages)


@dataclasses.dataclass(frozen=True)
class LoadStream(Effect, name="prodture.LoadStream"):
    """The :class:`EventBook` of stream ``(domain, root)`` (empty when it has no events)."""

    domain: str
    root: str


@dataclasses.dataclass(frozen=True)
class AppendStream(Effect, name="prodture.AppendStream"):
    """Append ``events`` to ``(domain, root)`` if its head is still ``expected``; the result is
    the new head. Raises :class:`ConcurrencyConflict` when another writer got there first.

    Correlation and causation ids are stamped by whoever performs the effect (the coordinator),
    not by the handler: the same handler code runs in production, replay and speculation."""

    domain: str
    root: str
    expected: int
    events: tuple[Any, ...]


@register(name="prodture.es.Delivery")
@dataclasses.dataclass(frozen=True, slots=True)
class Delivery:
    """What a saga, process manager or projector receives: one event and where it came from."""

    domain: str
    root: str
    sequence: int
    event: Any
    correlation_id: str = ""
    causation_id: str = ""


class EventStoreError(Exception):
    """Base of the event store's errors; each message is one line naming the fix."""


@register(name="prodture.es.ConcurrencyConflict")
class ConcurrencyConflict(EventStoreError):
    """The stream moved on since it was loaded: reload and retry the command."""


class UnregisteredEventType(EventStoreError):
    """A stored event names a type this process has not registered."""


class StreamNotFound(EventStoreError):
    """A fetch named a stream with no events."""


class StoreUnavailable(EventStoreError):
    """The store cannot be opened (unreachable, refused credentials, not a store)."""
