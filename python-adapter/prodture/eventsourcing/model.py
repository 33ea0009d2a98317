"""The values an event store deals in: streams, pages, books, the two store effects, the errors.

A stream is keyed by ``(domain, root)``: ``("player", "p-7")``. Its events are numbered from 1
(``sequence``); a stream's *head* is the sequence of its last event (0 when empty), which is also
the aggregate's version. ``LoadStream`` and ``AppendStream`` are ordinary effects, so a command's
execution is an ordinary trace and replaying it persists nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Iterable, Iterator, Sequence
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
@dataclasses.dataclass(frozen=True, init=False)
class EventBook:
    """A stream's events, oldest first (the result of :class:`LoadStream`).

    Stored column by column (one tuple per page field) so that a book of 100,000 events is a
    compact trace value; ``pages`` gives them as :class:`EventPage` objects and ``events`` as
    the plain events. ``EventBook(domain, root, pages, edition)`` builds one from pages."""

    domain: str
    root: str
    edition: str
    sequences: tuple[int, ...]
    values: tuple[Any, ...]
    #: Seconds since the epoch (UTC) as floats, or None: ``pages`` turns them into datetimes.
    recorded_at: tuple[float | None, ...]
    correlation_ids: tuple[str, ...]
    causation_ids: tuple[str, ...]
    page_editions: tuple[str, ...]

    def __init__(
        self, domain: str, root: str, pages: Iterable[EventPage] = (), edition: str = MAIN
    ) -> None:
        pages = tuple(pages)
        set_ = object.__setattr__
        set_(self, "domain", domain)
        set_(self, "root", root)
        set_(self, "edition", edition)
        set_(self, "sequences", tuple(p.sequence for p in pages))
        set_(self, "values", tuple(p.event for p in pages))
        set_(self, "recorded_at", tuple(_epoch(p.recorded_at) for p in pages))
        set_(self, "correlation_ids", tuple(p.correlation_id for p in pages))
        set_(self, "causation_ids", tuple(p.causation_id for p in pages))
        set_(self, "page_editions", tuple(p.edition for p in pages))

    @classmethod
    def from_columns(
        cls,
        domain: str,
        root: str,
        edition: str,
        sequences: Sequence[int],
        values: Sequence[Any],
        recorded_at: Sequence[float | None],
        correlation_ids: Sequence[str],
        causation_ids: Sequence[str],
        page_editions: Sequence[str],
    ) -> EventBook:
        book = object.__new__(cls)
        set_ = object.__setattr__
        set_(book, "domain", domain)
        set_(book, "root", root)
        set_(book, "edition", edition)
        set_(book, "sequences", tuple(sequences))
        set_(book, "values", tuple(values))
        set_(book, "recorded_at", tuple(recorded_at))
        set_(book, "correlation_ids", tuple(correlation_ids))
        set_(book, "causation_ids", tuple(causation_ids))
        set_(book, "page_editions", tuple(page_editions))
        return book

    @property
    def pages(self) -> tuple[EventPage, ...]:
        return tuple(
            EventPage(*fields)
            for fields in zip(
                self.sequences,
                self.values,
                map(_datetime, self.recorded_at),
                self.correlation_ids,
                self.causation_ids,
                self.page_editions,
                strict=False,
            )
        )

    @property
    def head(self) -> int:
        """The sequence of the last event (0 for an empty stream): the expected sequence of the
        next append."""
        return self.sequences[-1] if self.sequences else 0

    @property
    def events(self) -> list[Any]:
        return list(self.values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def __repr__(self) -> str:
        where = f"{self.domain}/{self.root}" + (f" in {self.edition}" if self.edition else "")
        if not self.values:
            return f"EventBook({where}, empty)"
        kinds = ", ".join(_short_type(v) for v in self.values[:3])
        more = ", …" if len(self.values) > 3 else ""
        return f"EventBook({where}, #{self.sequences[0]}..#{self.head}: {kinds}{more})"


def _short_type(value: Any) -> str:
    recorded = getattr(value, "type_name", None)  # an event whose class is not imported here
    if isinstance(recorded, str):
        return recorded.rsplit(".", 1)[-1]
    return type(value).__name__


def _epoch(when: _dt.datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _datetime(seconds: float | None) -> _dt.datetime | None:
    return None if seconds is None else _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc)


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
