"""Event stores: one contract, two backends (SQLite from the standard library, PostgreSQL).

``open_store(url)`` opens either; ``open_store(url, read_only=True)`` opens it so that nothing can
be written (``mode=ro`` on SQLite, read-only transactions on PostgreSQL) — that is how ``prodture
events fetch`` reads production. The schema and its migrations are described in
``protocol/event-store.md``.

Each event is stored as its registered type name plus its fields encoded by the trace codec (never
pickle). Reading an event only ever instantiates a class registered under the stored name; its
``__init__`` is not called (the recorded state, exactly), so a hostile store cannot make this
process import or call anything.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import inspect
import itertools
import operator
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import msgpack

from ..effects import registry
from ..gcpause import cyclic_gc_paused
from ..store_url import mask_password
from ..trace.codec import (
    UNPACK_OPTIONS,
    TraceFormatError,
    _rebuild_object,
    decode_value,
    encode_value,
)
from .model import (
    MAIN,
    AppendStream,
    ConcurrencyConflict,
    EventBook,
    EventPage,
    EventStoreError,
    LoadStream,
    StoreUnavailable,
    UnregisteredEventType,
)

__all__ = [
    "EventStore",
    "SQLiteEventStore",
    "PostgresEventStore",
    "StoredExecution",
    "open_store",
    "SCHEMA_VERSION",
]

#: The schema version this code writes (see protocol/event-store.md for the migrations).
SCHEMA_VERSION = 1


def encode_event(event: Any) -> tuple[str, bytes]:
    """(registered type name, payload) for an event; refuses an unregistered type."""
    cls = type(event)
    name = registry.name_of(cls)
    if name is None or not dataclasses.is_dataclass(cls):
        raise UnregisteredEventType(
            f"event type {cls.__module__}.{cls.__qualname__} is not a registered dataclass; "
            f'decorate it with @prodture.register(name="<domain>.{cls.__name__}")'
        )
    fields = {f.name: getattr(event, f.name) for f in dataclasses.fields(cls)}
    return name, encode_value(fields)


def decode_event(type_name: str, payload: bytes, where: str = "") -> Any:
    """The event stored as ``(type_name, payload)``; only a registered dataclass is built."""
    cls = registry.lookup(type_name)
    cached = _builders.get(type_name)
    if cached is None or cached[0] is not cls:
        if cls is None or not dataclasses.is_dataclass(cls):
            raise UnregisteredEventType(
                f"event type {type_name!r}{where} is not registered in this process; import the module "
                f'that defines it (add it to [tool.prodture] modules) and decorate the class with @prodture.register(name="{type_name}")'
            )
        cached = _builders[type_name] = (cls, frozenset(f.name for f in dataclasses.fields(cls)))
    try:
        fields = msgpack.unpackb(payload, **UNPACK_OPTIONS)
    except Exception:
        try:
            fields = decode_value(bytes(payload))  # the precise error
        except TraceFormatError as e:
            raise EventStoreError(
                f"event {type_name!r}{where} has a corrupt payload: {e}"
            ) from None
    if type(fields) is not dict:
        raise EventStoreError(f"event {type_name!r}{where} has a corrupt payload (not a record)")
    if fields.keys() == cached[1]:
        # The common case: exactly the class's fields. Built without __init__ (the stored state).
        event: Any = _new(cls)
        for key, value in fields.items():
            _setattr(event, key, value)
        return event
    event = _rebuild_object(type_name, fields)  # defaults for fields added since, or refusal
    if type(event) is not cls:
        raise EventStoreError(
            f"event {type_name!r}{where} does not match its class's fields (stored: "
            f"{sorted(map(str, fields))}); the class changed since it was written"
        )
    return event


_builders: dict[str, tuple[type, frozenset[str]]] = {}
_new = object.__new__
_setattr = object.__setattr__

#: Payloads decoded per Unpacker in :func:`decode_events` (bounds the joined buffer).
_DECODE_CHUNK = 8192


def decode_events(
    type_names: Sequence[str], payloads: Sequence[bytes], where: Callable[[int], str]
) -> list[Any]:
    """The events stored as ``(type_names[i], payloads[i])``, in order: what
    ``[decode_event(t, p, where(i)) ...]`` gives, at a fraction of the cost for a long stream.

    Payloads are unpacked by one streaming unpacker per chunk, and each value must end exactly
    where its payload ends (so a payload holding two values, or half of one, is caught as it
    would be alone). When every event of a chunk has exactly its class's fields, each is built
    by handing it its decoded field dict (no ``__init__``, as :func:`decode_event`), in loops
    that run in C. Anything else, and every error, goes through :func:`decode_event`, which
    names the event (``where(i)``)."""
    plans = {name: _build_plan(name) for name in set(type_names)}
    events: list[Any] = []
    for start in range(0, len(payloads), _DECODE_CHUNK):
        chunk = payloads[start : start + _DECODE_CHUNK]
        names = type_names[start : start + _DECODE_CHUNK]
        decoded = _unpack_each(chunk)
        built = None if decoded is None else _build_all(names, decoded, plans)
        if built is not None:
            events += built
            continue
        for i, type_name in enumerate(names):  # the careful way, with its errors
            plan = plans[type_name]
            fields = None if decoded is None else decoded[i]
            if plan is not None and type(fields) is dict and fields.keys() == plan[1]:
                event: Any = _new(plan[0])
                for key, value in fields.items():
                    _setattr(event, key, value)
                events.append(event)
            else:
                events.append(decode_event(type_name, chunk[i], where(start + i)))
    return events


def _build_all(
    names: Sequence[str], decoded: list[Any], plans: dict[str, tuple[type, Any, bool] | None]
) -> list[Any] | None:
    """The events, when each decoded value is a dict of exactly its class's fields and every
    class keeps its fields in the instance ``__dict__``; None otherwise."""
    if any(plan is None or not plan[2] for plan in map(plans.__getitem__, set(names))):
        return None
    keys = {name: plan[1] for name, plan in plans.items() if plan is not None}
    try:  # dict.keys refuses anything but a dict
        if not all(map(operator.eq, map(dict.keys, decoded), map(keys.__getitem__, names))):
            return None
    except TypeError:
        return None
    classes = {name: plan[0] for name, plan in plans.items() if plan is not None}
    events: list[Any] = list(map(_new, map(classes.__getitem__, names)))
    # Each decoded dict is fresh (no one else holds it): it becomes the event's __dict__.
    collections.deque(map(_setattr, events, itertools.repeat("__dict__"), decoded), maxlen=0)
    return events


def _build_plan(type_name: str) -> tuple[type, Any, bool] | None:
    """(class, its field names as a keys view, whether instances have a ``__dict__``) of a
    registered dataclass event type; None for anything else (decode_event explains it)."""
    cls = registry.lookup(type_name)
    if cls is None or not isinstance(cls, type) or not dataclasses.is_dataclass(cls):
        return None
    names = {f.name: None for f in dataclasses.fields(cls)}.keys()
    # The dict can be handed over only when every field lives in it: an instance __dict__,
    # and no field a slot or other data descriptor of the class (object.__new__ runs no code
    # of the class).
    has_dict = hasattr(_new(cls), "__dict__") and not any(
        hasattr(type(inspect.getattr_static(cls, name, None)), "__set__") for name in names
    )
    return cls, names, has_dict


def _unpack_each(payloads: Sequence[bytes]) -> list[Any] | None:
    """Each payload's one msgpack value, or None when any payload is not exactly one value."""
    try:
        unpacker = msgpack.Unpacker(None, max_buffer_size=0, **UNPACK_OPTIONS)
        unpacker.feed(b"".join(payloads))
        tell = unpacker.tell
        values = []
        end = 0
        for payload, value in zip(payloads, unpacker, strict=False):  # fewer: counted below
            end += len(payload)
            if tell() != end:
                return None
            values.append(value)
    except Exception:  # malformed bytes, a bad ext value, not bytes at all: decode_event says
        return None
    return values if len(values) == len(payloads) else None


@dataclasses.dataclass(frozen=True)
class StoredExecution:
    """One component execution of a flow, as the coordinator logged it (for fetch by
    correlation id): which handler ran on which input, and the store position it saw."""

    id: int
    correlation_id: str
    causation_id: str
    handler: str
    input_payload: bytes  # decoded by the caller once the handler's module is imported
    position: int
    domain: str
    root: str
    ok: bool
    error: str
    edition: str = MAIN


class EventStore:
    """The contract both backends keep. Thread-safe (one connection, one lock).

    Reads and writes address a stream by ``(domain, root)`` and an *edition* (``MAIN`` is the
    main timeline). :meth:`performers` answers :class:`LoadStream` / :class:`AppendStream`.
    """

    url: str
    read_only: bool
    dialect: str
    #: SQL giving ``recorded_at`` as seconds since the epoch (a float: cheap to carry in a book).
    _epoch: str
    _param = "?"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        #: Stamped on every event this store appends (the coordinator sets them per execution).
        self.stamp = threading.local()

    # -- backend hooks -------------------------------------------------------------------------

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _write(self, work: Callable[[Callable[..., list[tuple[Any, ...]]]], Any]) -> Any:
        """Run ``work(execute)`` in one write transaction; unique violations become conflicts."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> EventStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def display_url(self) -> str:
        return mask_password(self.url)

    def _q(self, sql: str) -> str:
        return sql.replace("?", self._param)

    def _check_version(self, version: Any) -> None:
        if version is not None and int(version) > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"{self.display_url}: event store schema version {version} is newer than this "
                f"prodture reads ({SCHEMA_VERSION}); upgrade prodture"
            )

    # -- editions ------------------------------------------------------------------------------

    def create_edition(self, name: str, divergence: dict[str, int] | None = None) -> None:
        """Declare edition ``name`` with optional divergence points per domain: in domain ``d``
        the edition sees the main timeline up to ``divergence[d]``, then its own events."""
        if not name:
            raise ValueError("an edition needs a name (the main timeline has none)")

        def work(execute: Callable[..., Any]) -> None:
            execute(self._q("DELETE FROM prodture_editions WHERE name = ?"), (name,))
            for domain, sequence in (divergence or {}).items():
                execute(
                    self._q(
                        "INSERT INTO prodture_editions (name, domain, divergence) VALUES (?, ?, ?)"
                    ),
                    (name, domain, int(sequence)),
                )

        self._write(work)

    def edition(self, name: str) -> EditionView:
        """This store as seen and written by edition ``name``."""
        return EditionView(self, name)

    def editions(self) -> list[str]:
        rows = self._execute(
            "SELECT DISTINCT edition FROM prodture_events WHERE edition <> '' "
            "UNION SELECT name FROM prodture_editions ORDER BY 1"
        )
        return [r[0] for r in rows]

    def edition_events(
        self, name: str, domain: str | None = None
    ) -> list[tuple[str, str, EventPage]]:
        """``(domain, root, page)`` of every event written in edition ``name``."""
        sql = "SELECT domain, root, sequence, type, payload, recorded_at, correlation_id, causation_id FROM prodture_events WHERE edition = ?"
        params: list[Any] = [name]
        if domain is not None:
            sql += " AND domain = ?"
            params.append(domain)
        rows = self._execute(self._q(sql + " ORDER BY domain, root, sequence"), params)
        return [(r[0], r[1], self._page(r[2:], name, r[0], r[1])) for r in rows]

    def delete_edition_events(self, name: str, domain: str | None = None) -> int:
        """Delete edition ``name``'s own events (of one domain, or all); the main timeline and
        other editions are untouched. Returns how many were deleted."""
        if not name:
            raise ValueError("refusing to delete the main timeline's events")
        sql = "DELETE FROM prodture_events WHERE edition = ?"
        params: list[Any] = [name]
        if domain is not None:
            sql += " AND domain = ?"
            params.append(domain)

        def work(execute: Callable[..., Any]) -> int:
            before = execute(
                self._q("SELECT count(*) FROM prodture_events WHERE edition = ?"), (name,)
            )[0][0]
            execute(self._q(sql), params)
            after = execute(
                self._q("SELECT count(*) FROM prodture_events WHERE edition = ?"), (name,)
            )[0][0]
            if domain is None:
                execute(self._q("DELETE FROM prodture_editions WHERE name = ?"), (name,))
            return int(before - after)

        return self._write(work)

    def _divergence(
        self, edition: str, domain: str, root: str, execute: Callable[..., Any] | None = None
    ) -> int | None:
        """Up to which main sequence edition ``edition`` sees stream (domain, root)."""
        execute = execute or self._execute
        rows = execute(
            self._q("SELECT divergence FROM prodture_editions WHERE name = ? AND domain = ?"),
            (edition, domain),
        )
        if rows:
            return int(rows[0][0])
        # No declared point: the edition forked where its first own event of the stream sits.
        rows = execute(
            self._q(
                "SELECT min(sequence) FROM prodture_events WHERE edition = ? AND domain = ? AND root = ?"
            ),
            (edition, domain, root),
        )
        first = rows[0][0] if rows else None
        return None if first is None else int(first) - 1

    # -- reading -------------------------------------------------------------------------------

    def load(
        self,
        domain: str,
        root: str,
        *,
        edition: str = MAIN,
        up_to: int | None = None,
        position: int | None = None,
    ) -> EventBook:
        """The stream's events (up to sequence ``up_to``, or written at or before global
        ``position``), as edition ``edition`` sees it."""
        cols = f"sequence, type, payload, {self._epoch}, correlation_id, causation_id"
        where = "domain = ? AND root = ?"
        params: list[Any] = [domain, root]
        if up_to is not None:
            where += " AND sequence <= ?"
            params.append(int(up_to))
        if position is not None:
            where += " AND position <= ?"
            params.append(int(position))
        with self._lock:
            if edition == MAIN:  # every page's edition is "": not read row by row
                rows = self._execute(
                    self._q(
                        f"SELECT {cols} FROM prodture_events WHERE edition = '' AND {where} ORDER BY sequence"
                    ),
                    params,
                )
            else:
                limit = self._divergence(edition, domain, root)
                main_where = where + ("" if limit is None else " AND sequence <= ?")
                main_params = params + ([] if limit is None else [limit])
                rows = self._execute(
                    self._q(
                        f"SELECT {cols}, edition FROM prodture_events WHERE edition = '' AND {main_where} "
                        f"UNION ALL SELECT {cols}, edition FROM prodture_events WHERE edition = ? AND {where} "
                        "ORDER BY 1"
                    ),
                    main_params + [edition] + params,
                )
        return self._book(domain, root, edition, rows)

    def _book(self, domain: str, root: str, edition: str, rows: list[tuple[Any, ...]]) -> EventBook:
        if not rows:
            return EventBook.from_columns(domain, root, edition, (), (), (), (), (), ())
        if len(rows) >= _GC_PAUSE_ROWS:
            # 100,000s of events, none in a reference cycle: meanwhile the cyclic collector
            # would only walk them, and everything already alive, again and again.
            with cyclic_gc_paused():
                return self._columns(domain, root, edition, rows)
        return self._columns(domain, root, edition, rows)

    def _columns(
        self, domain: str, root: str, edition: str, rows: list[tuple[Any, ...]]
    ) -> EventBook:
        # Column by column (zip(*rows) transposes in C), as the book keeps them.
        columns = list(zip(*rows, strict=True))
        sequences, type_names, payloads, recorded_at, correlation_ids, causation_ids = columns[:6]
        editions = _texts(columns[6]) if len(columns) > 6 else ("",) * len(rows)
        values = decode_events(
            type_names, payloads, lambda i: f" ({domain}/{root} #{sequences[i]})"
        )
        return EventBook.from_columns(
            domain,
            root,
            edition,
            sequences,
            values,
            recorded_at,
            _texts(correlation_ids),
            _texts(causation_ids),
            editions,
        )

    def _page(self, row: Sequence[Any], edition: str, domain: str, root: str) -> EventPage:
        sequence, type_name, payload, recorded_at, correlation_id, causation_id = row
        event = decode_event(type_name, payload, f" ({domain}/{root} #{sequence})")
        page = _new(EventPage)  # the dataclass's frozen __init__, without its per-field overhead
        _setattr(page, "sequence", sequence)
        _setattr(page, "event", event)
        _setattr(page, "recorded_at", _as_datetime(recorded_at))
        _setattr(page, "correlation_id", correlation_id or "")
        _setattr(page, "causation_id", causation_id or "")
        _setattr(page, "edition", edition or "")
        return page

    def head(self, domain: str, root: str, *, edition: str = MAIN) -> int:
        """The stream's head as ``edition`` sees it (0 when it has no events), without loading it."""
        with self._lock:
            if edition != MAIN:
                return self._edition_head(self._execute, edition, domain, root)
            rows = self._execute(
                self._q(
                    "SELECT max(sequence) FROM prodture_events WHERE edition = '' AND domain = ? AND root = ?"
                ),
                (domain, root),
            )
        return int(rows[0][0] or 0)

    def streams(self, domain: str | None = None) -> list[tuple[str, str, int]]:
        """``(domain, root, head)`` of every stream of the main timeline."""
        sql = "SELECT domain, root, max(sequence) FROM prodture_events WHERE edition = ''"
        params: list[Any] = []
        if domain is not None:
            sql += " AND domain = ?"
            params.append(domain)
        rows = self._execute(self._q(sql + " GROUP BY domain, root ORDER BY domain, root"), params)
        return [(r[0], r[1], int(r[2])) for r in rows]

    def position(self) -> int:
        """The global position of the latest event (0 for an empty store)."""
        rows = self._execute("SELECT max(position) FROM prodture_events")
        return int(rows[0][0] or 0)

    def correlated(self, correlation_id: str) -> list[tuple[str, str, EventPage]]:
        """Every main-timeline event of one flow, in the order written."""
        rows = self._execute(
            self._q(
                "SELECT domain, root, sequence, type, payload, recorded_at, correlation_id, causation_id "
                "FROM prodture_events WHERE edition = '' AND correlation_id = ? ORDER BY position"
            ),
            (correlation_id,),
        )
        return [(r[0], r[1], self._page(r[2:], MAIN, r[0], r[1])) for r in rows]

    def executions(self, correlation_id: str) -> list[StoredExecution]:
        """The component executions the coordinator logged for one flow, in order (inputs still
        encoded: decode them with ``decode_value`` after importing the handlers' modules)."""
        rows = self._execute(
            self._q(
                "SELECT id, correlation_id, causation_id, handler, input, position, domain, root, ok, "
                "error, edition FROM prodture_executions WHERE correlation_id = ? ORDER BY id"
            ),
            (correlation_id,),
        )
        return [
            StoredExecution(
                int(r[0]),
                r[1],
                r[2],
                r[3],
                bytes(r[4]),
                int(r[5]),
                r[6],
                r[7],
                bool(r[8]),
                r[9],
                r[10] or MAIN,
            )
            for r in rows
        ]

    # -- writing -------------------------------------------------------------------------------

    def append(
        self,
        domain: str,
        root: str,
        expected: int,
        events: Iterable[Any],
        *,
        edition: str = MAIN,
        correlation_id: str = "",
        causation_id: str = "",
    ) -> int:
        """Append ``events`` after sequence ``expected``; the new head. Raises
        :class:`ConcurrencyConflict` if the stream's head (as ``edition`` sees it) is not
        ``expected`` — exactly one of several racing writers wins."""
        encoded = [encode_event(e) for e in events]
        now = _dt.datetime.now(_dt.timezone.utc)

        def work(execute: Callable[..., list[tuple[Any, ...]]]) -> int:
            if edition == MAIN:
                head = execute(
                    self._q(
                        "SELECT max(sequence) FROM prodture_events WHERE edition = '' AND domain = ? AND root = ?"
                    ),
                    (domain, root),
                )[0][0]
            else:
                head = self._edition_head(execute, edition, domain, root)
            head = int(head or 0)
            if head != expected:
                raise ConcurrencyConflict(
                    f"{domain}/{root} is at sequence {head}, the command expected {expected}: "
                    "another writer appended first; reload the stream and retry"
                )
            for i, (type_name, payload) in enumerate(encoded, start=1):
                execute(
                    self._q(
                        "INSERT INTO prodture_events (edition, domain, root, sequence, type, payload, "
                        "recorded_at, correlation_id, causation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    (
                        edition,
                        domain,
                        root,
                        expected + i,
                        type_name,
                        self._blob(payload),
                        self._time(now),
                        correlation_id,
                        causation_id,
                    ),
                )
            return expected + len(encoded)

        try:
            return self._write(work)
        except _UniqueViolation:
            raise ConcurrencyConflict(
                f"{domain}/{root}: another writer appended after sequence {expected} first; "
                "reload the stream and retry"
            ) from None

    def _edition_head(
        self, execute: Callable[..., Any], edition: str, domain: str, root: str
    ) -> int:
        own = execute(
            self._q(
                "SELECT max(sequence) FROM prodture_events WHERE edition = ? AND domain = ? AND root = ?"
            ),
            (edition, domain, root),
        )[0][0]
        if own is not None:
            return int(own)
        limit = self._divergence(edition, domain, root, execute)
        sql = "SELECT max(sequence) FROM prodture_events WHERE edition = '' AND domain = ? AND root = ?"
        params: list[Any] = [domain, root]
        if limit is not None:
            sql += " AND sequence <= ?"
            params.append(limit)
        return int(execute(self._q(sql), params)[0][0] or 0)

    def log_execution(
        self,
        *,
        correlation_id: str,
        causation_id: str,
        handler: str,
        input: Any,
        position: int,
        domain: str = "",
        root: str = "",
        ok: bool = True,
        error: str = "",
        edition: str = MAIN,
    ) -> None:
        """Record that ``handler`` ran on ``input`` (in ``edition``) having seen the store up to
        ``position``."""
        payload = self._blob(encode_value(input))

        def work(execute: Callable[..., Any]) -> None:
            execute(
                self._q(
                    "INSERT INTO prodture_executions (correlation_id, causation_id, handler, input, "
                    "position, domain, root, ok, error, edition) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                (
                    correlation_id,
                    causation_id,
                    handler,
                    payload,
                    position,
                    domain,
                    root,
                    ok,
                    error,
                    edition,
                ),
            )

        self._write(work)

    # -- effects ------------------------------------------------------------------------------

    def performers(self, edition: str = MAIN) -> dict[type, Callable[[Any], Any]]:
        """Performers of :class:`LoadStream` / :class:`AppendStream` against this store."""
        stamp = self.stamp

        def load(effect: LoadStream) -> EventBook:
            return self.load(effect.domain, effect.root, edition=edition)

        def append(effect: AppendStream) -> int:
            return self.append(
                effect.domain,
                effect.root,
                effect.expected,
                effect.events,
                edition=edition,
                correlation_id=getattr(stamp, "correlation_id", ""),
                causation_id=getattr(stamp, "causation_id", ""),
            )

        return {LoadStream: load, AppendStream: append}

    def _blob(self, data: bytes) -> Any:
        return data

    def _time(self, when: _dt.datetime) -> Any:
        return when


class EditionView:
    """A store seen through an edition: reads see main up to the divergence plus the edition's
    own events; writes go to the edition only."""

    def __init__(self, store: EventStore, name: str) -> None:
        if not name:
            raise ValueError("an edition needs a name (the main timeline has none)")
        self.store, self.name = store, name

    def load(self, domain: str, root: str, **kw: Any) -> EventBook:
        return self.store.load(domain, root, edition=self.name, **kw)

    def append(
        self, domain: str, root: str, expected: int, events: Iterable[Any], **kw: Any
    ) -> int:
        return self.store.append(domain, root, expected, events, edition=self.name, **kw)

    def events(self, domain: str | None = None) -> list[tuple[str, str, EventPage]]:
        return self.store.edition_events(self.name, domain)

    def delete_events(self, domain: str | None = None) -> int:
        return self.store.delete_edition_events(self.name, domain)

    def performers(self) -> dict[type, Callable[[Any], Any]]:
        return self.store.performers(self.name)


class _UniqueViolation(Exception):
    pass


#: Streams at least this long are decoded with the cyclic garbage collector paused.
_GC_PAUSE_ROWS = 1000


def _texts(column: tuple[Any, ...]) -> tuple[Any, ...]:
    """A text column with NULL read as "" (the schema forbids NULL; an old store may not)."""
    return tuple(v or "" for v in column) if None in column else column


def _as_datetime(value: Any) -> _dt.datetime | None:
    if value is None or isinstance(value, _dt.datetime):
        return value
    try:
        return _dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# SQLite

_SQLITE_SCHEMA = """
CREATE TABLE IF NOT EXISTS prodture_schema (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS prodture_events (
    position INTEGER PRIMARY KEY AUTOINCREMENT,
    edition TEXT NOT NULL DEFAULT '',
    domain TEXT NOT NULL,
    root TEXT NOT NULL,
    sequence INTEGER NOT NULL CHECK (sequence >= 1),
    type TEXT NOT NULL,
    payload BLOB NOT NULL,
    recorded_at TEXT NOT NULL,
    correlation_id TEXT NOT NULL DEFAULT '',
    causation_id TEXT NOT NULL DEFAULT '',
    UNIQUE (edition, domain, root, sequence)
);
CREATE INDEX IF NOT EXISTS prodture_events_correlation ON prodture_events (correlation_id);
CREATE TABLE IF NOT EXISTS prodture_editions (
    name TEXT NOT NULL,
    domain TEXT NOT NULL,
    divergence INTEGER NOT NULL,
    PRIMARY KEY (name, domain)
);
CREATE TABLE IF NOT EXISTS prodture_executions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    correlation_id TEXT NOT NULL,
    causation_id TEXT NOT NULL,
    handler TEXT NOT NULL,
    input BLOB NOT NULL,
    position INTEGER NOT NULL,
    domain TEXT NOT NULL,
    root TEXT NOT NULL,
    ok BOOLEAN NOT NULL,
    error TEXT NOT NULL,
    edition TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS prodture_executions_correlation ON prodture_executions (correlation_id);
"""


class SQLiteEventStore(EventStore):
    """The embedded store: one SQLite file. ``read_only`` opens it with ``mode=ro``."""

    dialect = "sqlite"
    _epoch = "(julianday(recorded_at) - 2440587.5) * 86400.0"

    def __init__(self, path: str, *, read_only: bool = False, url: str | None = None) -> None:
        super().__init__()
        self.path, self.read_only = os.path.abspath(path), read_only
        self.url = url or f"sqlite:///{self.path}"
        if read_only and not os.path.isfile(self.path):
            raise StoreUnavailable(f"{self.url}: no such event store file; check the path")
        try:
            if read_only:
                uri = "file:" + _uri_path(self.path) + "?mode=ro"
                self._conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30
                )
            else:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                self._conn = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30
                )
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise StoreUnavailable(f"{self.url}: not a usable event store ({e})") from None

    def _migrate(self) -> None:
        if self.read_only:
            found = self._conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE name = 'prodture_events'"
            ).fetchone()[0]
            if not found:
                raise StoreUnavailable(f"{self.url}: not an event store (no prodture_events table)")
            self._check_version(
                self._conn.execute("SELECT max(version) FROM prodture_schema").fetchone()[0]
            )
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SQLITE_SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                version = self._conn.execute("SELECT max(version) FROM prodture_schema").fetchone()[
                    0
                ]
                self._check_version(version)
                if version is None:
                    self._conn.execute(
                        "INSERT INTO prodture_schema (version) VALUES (?)", (SCHEMA_VERSION,)
                    )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, tuple(params)).fetchall()

    def _write(self, work: Callable[..., Any]) -> Any:
        if self.read_only:
            raise EventStoreError(f"{self.url} is open read-only; nothing can be written")

        def execute(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            return self._conn.execute(sql, tuple(params)).fetchall()

        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")  # one writer at a time across connections
            try:
                result = work(execute)
                self._conn.execute("COMMIT")
                return result
            except sqlite3.IntegrityError:
                self._conn.execute("ROLLBACK")
                raise _UniqueViolation() from None
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _time(self, when: _dt.datetime) -> str:
        return when.isoformat()

    def close(self) -> None:
        self._conn.close()


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(path)


# ---------------------------------------------------------------------------------------------
# PostgreSQL

_PG_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS prodture_schema (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS prodture_events (
        position BIGSERIAL PRIMARY KEY,
        edition TEXT NOT NULL DEFAULT '',
        domain TEXT NOT NULL,
        root TEXT NOT NULL,
        sequence BIGINT NOT NULL CHECK (sequence >= 1),
        type TEXT NOT NULL,
        payload BYTEA NOT NULL,
        recorded_at TIMESTAMPTZ NOT NULL,
        correlation_id TEXT NOT NULL DEFAULT '',
        causation_id TEXT NOT NULL DEFAULT '',
        UNIQUE (edition, domain, root, sequence)
    )""",
    "CREATE INDEX IF NOT EXISTS prodture_events_correlation ON prodture_events (correlation_id)",
    """CREATE TABLE IF NOT EXISTS prodture_editions (
        name TEXT NOT NULL,
        domain TEXT NOT NULL,
        divergence BIGINT NOT NULL,
        PRIMARY KEY (name, domain)
    )""",
    """CREATE TABLE IF NOT EXISTS prodture_executions (
        id BIGSERIAL PRIMARY KEY,
        correlation_id TEXT NOT NULL,
        causation_id TEXT NOT NULL,
        handler TEXT NOT NULL,
        input BYTEA NOT NULL,
        position BIGINT NOT NULL,
        domain TEXT NOT NULL,
        root TEXT NOT NULL,
        ok BOOLEAN NOT NULL,
        error TEXT NOT NULL,
        edition TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS prodture_executions_correlation ON prodture_executions (correlation_id)",
]


class PostgresEventStore(EventStore):
    """The server store (psycopg 3, the ``postgres`` extra). ``read_only`` makes every
    transaction of the connection read-only: the server itself refuses any write."""

    dialect = "postgresql"
    _epoch = "extract(epoch from recorded_at)::float8"
    _param = "%s"

    def __init__(self, url: str, *, read_only: bool = False) -> None:
        super().__init__()
        self.url, self.read_only = url, read_only
        try:
            import psycopg
        except ModuleNotFoundError:
            raise StoreUnavailable(
                f"{mask_password(url)}: PostgreSQL needs psycopg 3; pip install 'prodture[postgres]'"
            ) from None
        self._psycopg = psycopg
        try:
            self._conn = psycopg.connect(url, autocommit=False, connect_timeout=10)
        except psycopg.Error as e:
            raise StoreUnavailable(
                f"cannot open event store {mask_password(url)}: {_first_line(e, url)}"
            ) from None
        if read_only:
            self._conn.read_only = True
            try:
                row = self._conn.execute("SELECT to_regclass('prodture_events')").fetchone()
                found = row[0] if row is not None else None  # one row: the select has no FROM
                self._conn.rollback()
            except psycopg.Error as e:
                raise StoreUnavailable(f"{mask_password(url)}: {_first_line(e, url)}") from None
            if found is None:
                raise StoreUnavailable(
                    f"{mask_password(url)}: not an event store (no prodture_events table)"
                )
            self._check_version(self._execute("SELECT max(version) FROM prodture_schema")[0][0])
        else:
            self._migrate()

    def _migrate(self) -> None:
        with self._lock:
            try:
                # One migrator at a time, even across processes.
                self._conn.execute("SELECT pg_advisory_xact_lock(7420100)")
                for statement in _PG_SCHEMA:
                    self._conn.execute(statement)
                row = self._conn.execute("SELECT max(version) FROM prodture_schema").fetchone()
                version = row[0] if row is not None else None  # max() always yields one row
                self._check_version(version)
                if version is None:
                    self._conn.execute(
                        "INSERT INTO prodture_schema (version) VALUES (%s)", (SCHEMA_VERSION,)
                    )
                self._conn.commit()
            except StoreUnavailable:
                self._conn.rollback()
                raise
            except self._psycopg.Error as e:
                self._conn.rollback()
                raise StoreUnavailable(
                    f"{self.display_url}: cannot create the event store schema: {_first_line(e, self.url)}"
                ) from None

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                # Binary results: BYTEA payloads arrive as bytes, not hex text to parse.
                cursor = self._conn.execute(sql, tuple(params), binary=True)
                rows = cursor.fetchall() if cursor.description is not None else []
                self._conn.rollback() if self.read_only else self._conn.commit()
                return rows
            except BaseException:
                self._conn.rollback()
                raise

    def _write(self, work: Callable[..., Any]) -> Any:
        psycopg = self._psycopg

        def execute(sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
            cursor = self._conn.execute(sql, tuple(params))
            return cursor.fetchall() if cursor.description is not None else []

        with self._lock:
            try:
                result = work(execute)
                self._conn.commit()
                return result
            except psycopg.errors.UniqueViolation:
                self._conn.rollback()
                raise _UniqueViolation() from None
            except psycopg.errors.ReadOnlySqlTransaction:
                self._conn.rollback()
                raise EventStoreError(
                    f"{self.display_url} is open read-only; nothing can be written"
                ) from None
            except BaseException:
                self._conn.rollback()
                raise

    def close(self) -> None:
        self._conn.close()


def _first_line(error: BaseException, url: str) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    password = urlsplit(url).password if "://" in url else None
    if password:
        text = text.replace(password, "***").replace(unquote(password), "***")
    return text[:300]


# ---------------------------------------------------------------------------------------------


def open_store(url: str, *, read_only: bool = False) -> EventStore:
    """An event store from a URL: ``postgresql://...``, ``sqlite:///path`` or a plain path."""
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresEventStore(url, read_only=read_only)
    if url.startswith("sqlite:///"):
        return SQLiteEventStore(unquote(url[len("sqlite:///") :]), read_only=read_only, url=url)
    if "://" in url:
        raise StoreUnavailable(
            f"{mask_password(url)}: unknown event store URL scheme; use postgresql://... or sqlite:///path"
        )
    return SQLiteEventStore(url, read_only=read_only)
