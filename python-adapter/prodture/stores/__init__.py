"""Trace stores: where the traces of many hosts are found again (see protocol/trace-store.md).

A store is either a directory of ``.prodtrace`` files (what :class:`~prodture.DirectorySink`
writes) or a PostgreSQL database (what :class:`~prodture.stores.postgres.PostgresSink` writes).
Both answer the same questions — list with filters, fetch by id or unique prefix, prune by age,
take imported traces — so every ``prodture`` store command works on either.
``open_store(location)`` picks the kind from the location (see :mod:`prodture.store_url`).
"""

from __future__ import annotations

import builtins  # TraceStore.list() shadows the type inside the class
import dataclasses
import datetime as _dt
import os
import re
from typing import Any, Protocol

from ..store_url import mask_password
from ..trace.format import Trace, describe_error, read_trace

__all__ = [
    "AmbiguousId",
    "Query",
    "StoreError",
    "TraceNotFound",
    "TraceStore",
    "TraceSummary",
    "open_store",
    "parse_age",
    "summarize",
]

#: Header ``meta`` keys the OpenTelemetry bridge fills with the execution span's ids.
OTEL_TRACE_ID = "otel.trace_id"
OTEL_SPAN_ID = "otel.span_id"


class StoreError(Exception):
    """A store cannot answer; the message is one line and never holds a password."""


class TraceNotFound(StoreError):
    pass


class AmbiguousId(StoreError):
    def __init__(self, prefix: str, candidates: list[TraceSummary], *, more: bool = False) -> None:
        self.prefix = prefix
        self.candidates = candidates
        count = f"more than {len(candidates)}" if more else str(len(candidates))
        super().__init__(f"trace id prefix {prefix!r} matches {count} traces; give more characters")


@dataclasses.dataclass(frozen=True)
class TraceSummary:
    """The indexed facts about one stored trace (a row of the store's table)."""

    trace_id: str
    handler: str
    started_at: _dt.datetime | None
    duration_ms: float | None
    ok: bool | None  # None: the trace has no outcome (the recording stopped)
    error_type: str = ""
    error_message: str = ""
    failed_effect: int | None = None
    effect_count: int = 0
    size: int = 0
    service: str = ""
    host: str = ""
    otel_trace_id: str = ""
    otel_span_id: str = ""
    location: str = ""  # a directory store's file; empty for a database store

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["started_at"] = self.started_at.isoformat() if self.started_at else None
        return data


@dataclasses.dataclass(frozen=True)
class Query:
    """What ``list`` returns: newest first, at most ``limit``, all given filters applied."""

    failed_only: bool = False
    handler: str | None = None  # substring of the handler name
    since: _dt.datetime | None = None
    error: str | None = None  # substring of the error type or message (case-insensitive)
    otel_trace_id: str | None = None
    limit: int = 50

    def matches(self, s: TraceSummary) -> bool:
        if self.failed_only and s.ok is not False:
            return False
        if self.handler and self.handler not in s.handler:
            return False
        if self.since and (s.started_at is None or s.started_at < self.since):
            return False
        if self.error:
            needle = self.error.lower()
            if needle not in s.error_type.lower() and needle not in s.error_message.lower():
                return False
        return not (self.otel_trace_id and s.otel_trace_id != self.otel_trace_id.lower())


class TraceStore(Protocol):
    location: str

    def list(self, query: Query) -> list[TraceSummary]: ...

    def fetch(self, id_or_prefix: str) -> tuple[TraceSummary, bytes]: ...

    def put_many(self, traces: builtins.list[tuple[TraceSummary, bytes]]) -> int: ...

    def prune(self, older_than: _dt.timedelta) -> int: ...

    def close(self) -> None: ...


def summarize(
    data: bytes | Trace, *, size: int | None = None, service: str = "", host: str = ""
) -> TraceSummary:
    """The indexed facts of a trace (raises ``TraceFormatError`` for bytes that are not one).

    ``service`` and ``host`` are defaults: the header's ``meta`` ``service``/``host`` win."""
    trace = data if isinstance(data, Trace) else read_trace(data)
    if size is None:
        size = len(data) if isinstance(data, bytes) else 0
    meta = trace.header.meta
    outcome = trace.outcome
    error_type = error_message = ""
    if outcome is not None and not outcome.ok:
        described = describe_error(outcome.error)
        error_type, _, error_message = described.partition(": ")
        error_type = getattr(outcome.error, "type_name", None) or error_type
    return TraceSummary(
        trace_id=trace.header.trace_id,
        handler=trace.header.handler,
        started_at=trace.header.started_at,
        duration_ms=outcome.duration_ns / 1e6 if outcome is not None else None,
        ok=outcome.ok if outcome is not None else None,
        error_type=error_type,
        error_message=error_message,
        failed_effect=outcome.failed_effect if outcome is not None else None,
        effect_count=len(trace.effects),
        size=size,
        service=_meta_text(meta, "service") or service,
        host=_meta_text(meta, "host") or host,
        otel_trace_id=_meta_text(meta, OTEL_TRACE_ID).lower(),
        otel_span_id=_meta_text(meta, OTEL_SPAN_ID).lower(),
    )


def _meta_text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) else ""


_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> _dt.timedelta:
    """``30m``, ``12h``, ``7d``, ``2w`` → a timedelta (ValueError naming the form otherwise)."""
    found = _AGE.match(text)
    if not found:
        raise ValueError(f"{text!r} is not an age: use a number and a unit, e.g. 30m, 12h, 7d, 2w")
    return _dt.timedelta(seconds=float(found.group(1)) * _UNITS[found.group(2)])


def parse_since(text: str, now: _dt.datetime | None = None) -> _dt.datetime:
    """An age (``1h``: that long ago) or an ISO time (UTC when it names no zone)."""
    try:
        return (now or _dt.datetime.now(_dt.timezone.utc)) - parse_age(text)
    except ValueError:
        pass
    try:
        when = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use an age (30m, 12h, 7d) or a time (2026-11-30T10:42)"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=_dt.timezone.utc)


def is_database_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_store(location: str, *, create: bool = False) -> TraceStore:
    """The store at ``location``: a ``postgresql://`` URL or a directory of trace files.

    ``create``: make the directory / the table when missing (writers and ``import``)."""
    if is_database_url(location):
        from .postgres import PostgresStore

        return PostgresStore(location, create=create)
    if "://" in location:
        raise StoreError(
            f"{mask_password(location)}: not a trace store; use a postgresql:// URL or a directory"
        )
    from .directory import DirectoryStore

    if create:
        os.makedirs(location, exist_ok=True)
    elif not os.path.isdir(location):
        raise StoreError(f"{location}: no such directory of traces; check the path or pass --store")
    return DirectoryStore(location)


@dataclasses.dataclass
class ImportResult:
    imported: int = 0
    already_stored: int = 0
    unreadable: int = 0
    first_problem: str = ""


def import_traces(traces: Any, store: TraceStore, *, batch_size: int = 200) -> ImportResult:
    """Put ``(name, bytes)`` pairs into ``store`` in batches; unreadable ones are counted and
    skipped (the first reason is kept), traces already stored are left as they are."""
    from ..trace.codec import TraceFormatError

    result = ImportResult()
    batch: list[tuple[TraceSummary, bytes]] = []

    def flush() -> None:
        written = store.put_many(batch)
        result.imported += written
        result.already_stored += len(batch) - written
        batch.clear()

    for name, data in traces:
        try:
            batch.append((summarize(data), data))
        except TraceFormatError as e:
            result.unreadable += 1
            result.first_problem = result.first_problem or f"{name}: {e}"
            continue
        if len(batch) >= batch_size:
            flush()
    flush()
    return result


def directory_traces(directory: str) -> Any:
    """``(path, bytes)`` of every ``.prodtrace`` file under ``directory``, oldest name first."""
    if not os.path.isdir(directory):
        raise StoreError(f"{directory}: no such directory; give a directory of .prodtrace files")
    return _read_all(directory)


def _read_all(directory: str) -> Any:
    paths = []
    for root, _dirs, files in os.walk(directory):
        paths += [os.path.join(root, f) for f in files if f.endswith(".prodtrace")]
    for path in sorted(paths):
        with open(path, "rb") as f:
            yield path, f.read()
