"""Recording: what the interpreter did, written as a trace, without ever changing the outcome.

``Interpreter(performers, recorder=Recorder(DirectorySink("traces")))`` records every execution.
Modes: :data:`ALWAYS`, :data:`ON_FAILURE` (kept in memory, written only when the handler fails) and
:class:`Sampled`. Secrets are removed at record time by a :class:`~prodture.trace.Redactor`.

The handler's thread (or event loop) only encodes records into memory. A background writer
thread, one per recorder, creates the files and writes them; its queue is bounded, and when it
is full (a slow or stuck sink) new traces are dropped and counted, never waited on. A sink that
fails is counted and logged (at most once a minute); the handler's result is never affected.
:meth:`Recorder.flush` / :meth:`Recorder.close` (also run at interpreter exit) write everything
pending. What a ``kill -9`` can lose is documented in ``protocol/trace-format.md`` §1.2.
"""

from __future__ import annotations

import atexit
import collections
import dataclasses
import datetime as _dt
import enum
import itertools
import logging
import operator
import os
import platform
import random
import re
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any, Protocol, cast

from . import __version__
from .runtime import EffectCall, Outcome, Success, handlers, recorded_handler_name
from .trace import codec as _codec
from .trace.codec import Redactor, compilable_names
from .trace.format import TraceEncoder, code_fingerprint

__all__ = [
    "Recorder",
    "RecorderStats",
    "Sink",
    "TraceStream",
    "DirectorySink",
    "MemorySink",
    "segment_traces",
    "ALWAYS",
    "ON_FAILURE",
    "Sampled",
]

log = logging.getLogger("prodture.recorder")

ALWAYS = "always"
ON_FAILURE = "on-failure"

#: Only an always-mode execution's first effects may be kept by reference (unencoded): one
#: that then blocks in a performer has no more than these in memory only.
MAX_KEPT = 64

#: The default bound on the encoded bytes of finished traces waiting for the writer.
MAX_QUEUE_BYTES = 64 * 1024 * 1024

#: What a value kept unencoded (not a string or bytes) counts against ``max_queue_bytes``.
KEPT_VALUE_BYTES = 128
#: The kept values counted by their length instead.
_SIZED = frozenset({str, bytes})

#: Seconds between two log lines about the same kind of recorder fault.
LOG_INTERVAL_S = 60.0
#: The clock of those intervals (a module global: one load on the drop path; tests replace it).
_fault_clock = time.monotonic
#: The writer thread's default CPU budget, a fraction of one core (``Recorder(writer_cpu_budget=)``).
WRITER_CPU_BUDGET = 0.1
#: The budget is kept over this many seconds: the writer may use ``budget * window`` seconds of
#: CPU in a burst (after an idle spell) before it is paced.
WRITER_BUDGET_WINDOW_S = 0.1
#: A writer over its budget pauses until it has this many seconds of budget again: pausing for
#: one trace's worth at a time would wake it (and hand it the GIL) once per trace.
WRITER_PAUSE_S = 0.05
#: How much the writer thread lowers its own scheduling priority (``Recorder(writer_nice=)``):
#: not by default. Measured, the CPU budget alone gives the handlers as much, and a thread that
#: holds the GIL at a low priority on a busy host can keep every handler thread waiting.
WRITER_NICE = 0


@dataclasses.dataclass(frozen=True)
class Sampled:
    """Record a random ``rate`` fraction of executions (0.0–1.0)."""

    rate: float

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"sample rate must be between 0 and 1, got {self.rate}")


@dataclasses.dataclass(frozen=True)
class TraceInfo:
    """What a sink may use to name a trace."""

    handler: str
    trace_id: str
    started_at: _dt.datetime


class TraceStream(Protocol):
    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


class Sink(Protocol):
    """Where traces go. ``open`` is called once per written trace, from the recorder's writer
    thread; ``write`` gets whole records (one or more). A stream may also have ``abort()``:
    called instead of ``close()`` when a write failed, to remove what was written.
    A sink with ``in_memory = True`` never blocks and is written in the handler's thread."""

    def open(self, info: TraceInfo) -> TraceStream: ...


class _FileStream:
    __slots__ = ("fd", "path")

    def __init__(self, path: str, file_mode: int) -> None:
        self.path = path
        # O_EXCL: never overwrite; O_APPEND + whole records per write: a kill leaves whole records.
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, file_mode)

    def write(self, data: bytes | bytearray) -> None:
        written = os.write(self.fd, data)
        if written != len(data):  # a short write (signal, full disk): finish the record
            _write_rest(self.fd, data, written)

    def close(self) -> None:
        os.close(self.fd)

    def abort(self) -> None:
        """A write failed (a full disk): close the descriptor and remove the partial file."""
        try:
            os.close(self.fd)
        finally:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class _Segment:
    """One segment file being appended to by one process's writer thread: whole traces only.
    ``size`` is what it holds, so that a failed append can be cut back to the last whole trace."""

    __slots__ = ("fd", "path", "size", "pid", "spoiled", "close", "__weakref__")

    def __init__(self, path: str, file_mode: int) -> None:
        self.path = path
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, file_mode)
        self.size = 0
        self.pid = os.getpid()
        self.spoiled = False  # a failed append could not be cut back: append no more here
        self.close = weakref.finalize(self, _close_quietly, self.fd)  # closes once, at most

    def append(self, data: bytes | bytearray) -> None:
        start = self.size
        try:  # a short write (signal, full disk): finish it, or fail and cut back
            _write_rest(self.fd, data)
        except OSError:
            try:  # remove what the failed append wrote (shrinking a file needs no free space)
                os.ftruncate(self.fd, start)
            except OSError:
                self.spoiled = True
            raise
        self.size = start + len(data)


def _write_rest(fd: int, data: bytes | bytearray, written: int = 0) -> None:
    """Write ``data`` from ``written`` on, however many writes it takes. Its view of ``data`` is
    released before this returns or raises: a view kept alive (by a failed write's traceback)
    would keep a trace's ``bytearray`` of records from being cleared (``BufferError``)."""
    with memoryview(data) as view:
        while written < len(view):
            written += os.write(fd, view[written:])


def _close_quietly(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass


class DirectorySink:
    """One file per execution in ``directory``: ``<UTC time>-<handler>-<id>.prodtrace``.

    Names sort by start time and never collide (the id is random and files are opened with
    ``O_EXCL``). Files are readable by their owner only (``file_mode=0o600``) because traces hold
    customer data, redaction or not. A trace whose write fails (a full disk) is removed, never
    left behind partial.

    ``segment_bytes``: append finished traces to segment files of about that size instead,
    ``<UTC time>-segment-<id>.prodtraces``, many traces each, several per write: creating a file
    per trace costs the writer thread three system calls per trace, and after each one it waits
    for the GIL behind the handler threads. Each trace in a segment is whole and self-contained
    (:func:`segment_traces` splits a segment into traces that :func:`~prodture.read_trace`
    reads); a failed append is cut back, so a segment holds whole traces only, or a killed
    writer's last trace cut short. An execution still running after ``flush_interval`` is
    streamed while it runs, into a ``.prodtrace`` file of its own as without segments.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        file_mode: int = 0o600,
        segment_bytes: int | None = None,
    ) -> None:
        if segment_bytes is not None and segment_bytes < 1:
            raise ValueError(
                f"segment_bytes must be a positive size in bytes (or None for one file per "
                f"trace), got {segment_bytes}"
            )
        self.directory = os.fspath(directory)
        self.file_mode = file_mode
        self.segment_bytes = segment_bytes
        os.makedirs(self.directory, exist_ok=True)
        self._prefix = os.path.join(self.directory, "")
        self._short_names: dict[str, str] = {}  # handler -> its part of the file name
        #: The segment each writer thread appends to (one writer thread per recorder; recorders
        #: may share a sink): a segment has one writer, so a failed append can be cut back.
        self._segments: dict[int, _Segment] = {}

    def append_traces(
        self, traces: list[tuple[TraceInfo, bytes | bytearray]]
    ) -> list[OSError | None]:
        """Append whole finished traces to segments of about ``segment_bytes`` each, in one
        write per segment when they fit; per trace, ``None`` when it is on disk or the error
        that lost it. Called from the recorder's writer thread only.

        A batch is split where a segment fills up: a writer that fell behind (a busy machine,
        its CPU budget) hands over hundreds of traces at once, which must not make one segment
        of them all. A trace bigger than ``segment_bytes`` gets a segment of its own."""
        limit = self.segment_bytes or 0
        results: list[OSError | None] = []
        start = 0
        while start < len(traces):
            segment = self._current(traces[start][0])
            size = len(traces[start][1])
            if segment.size and segment.size + size > limit:
                self.end_segment()  # full for this one: it starts the next segment
                segment = self._current(traces[start][0])
            end = start + 1
            while end < len(traces) and segment.size + size + len(traces[end][1]) <= limit:
                size += len(traces[end][1])
                end += 1
            results += self._append_group(segment, traces[start:end])
            start = end
            current = self._segments.get(threading.get_ident())
            if current is not None and (
                current.size == 0 or current.size >= limit or current.spoiled
            ):
                self.end_segment()  # full; or empty (every append failed): never left behind empty
        return results

    def _append_group(
        self, segment: _Segment, traces: list[tuple[TraceInfo, bytes | bytearray]]
    ) -> list[OSError | None]:
        """Append traces that fit in ``segment``, in one write; one by one after a failure."""
        try:
            segment.append(traces[0][1] if len(traces) == 1 else b"".join([d for _, d in traces]))
            return [None] * len(traces)
        except OSError:  # a full disk: the batch was cut back; as many as fit, one by one
            results: list[OSError | None] = []
            for info, data in traces:
                try:
                    self._current(info).append(data)
                    results.append(None)
                except OSError as error:
                    results.append(error)
            return results

    def _current(self, info: TraceInfo) -> _Segment:
        me = threading.get_ident()
        segment = self._segments.get(me)
        if segment is not None and (segment.pid != os.getpid() or segment.spoiled):
            # A forked child: the segment is its parent's to append to (and to cut back).
            segment.close()
            segment = None
        if segment is None:
            t = info.started_at
            path = (
                f"{self._prefix}{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}"
                f"{t.second:02d}.{t.microsecond:06d}Z-segment-{info.trace_id[:12]}.prodtraces"
            )
            segment = self._segments[me] = _Segment(path, self.file_mode)
        return segment

    def end_segment(self) -> None:
        """Close the calling writer thread's segment (the writer calls it when it stops:
        ``Recorder.close()``); its next trace starts a new one."""
        segment = self._segments.pop(threading.get_ident(), None)
        if segment is None:
            return
        segment.close()
        if segment.size == 0 and segment.pid == os.getpid():
            try:
                os.unlink(segment.path)
            except OSError:
                pass

    def open(self, info: TraceInfo) -> _FileStream:
        # Called once per trace by the writer thread: the name is built with one f-string (a
        # strftime and a regex substitution per trace cost as much as the rest of the writer's
        # Python work per trace).
        handler = info.handler
        short = self._short_names.get(handler)
        if short is None:
            short = _UNSAFE.sub("_", handler.rsplit(":", 1)[-1])[:40]
            self._short_names[handler] = short
        t = info.started_at
        path = (
            f"{self._prefix}{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}"
            f"{t.second:02d}.{t.microsecond:06d}Z-{short}-{info.trace_id[:12]}.prodtrace"
        )
        return _FileStream(path, self.file_mode)

    def __repr__(self) -> str:
        return f"DirectorySink({self.directory!r})"


def segment_traces(source: str | os.PathLike[str] | bytes) -> list[bytes]:
    """The traces a segment file (``DirectorySink(segment_bytes=...)``) holds, in the order
    written, each the bytes of one whole self-contained trace for
    :func:`~prodture.read_trace` (the last one cut short if its writer was killed writing it).
    Records are skipped, never decoded: a trace starts at each ``HEADER`` record (kind 0)."""
    import msgpack

    if isinstance(source, bytes):
        data = source
    else:
        with open(source, "rb") as f:
            data = f.read()
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(data), 1))
    unpacker.feed(data)
    starts: list[int] = []
    pos = 0
    while pos < len(data):
        if _is_header(data, pos):
            starts.append(pos)
        elif not starts:
            raise ValueError(
                f"{source if not isinstance(source, bytes) else 'the data'} is not a trace "
                "segment: it does not start with a HEADER record"
            )
        try:
            unpacker.skip()
        except msgpack.OutOfData:  # a killed writer's last record, cut short
            break
        pos = unpacker.tell()
    return [data[a:b] for a, b in zip(starts, [*starts[1:], len(data)], strict=True)]


def _is_header(data: bytes, pos: int) -> bool:
    """Whether the record at ``pos`` is a msgpack array whose first element is 0 (HEADER)."""
    first = data[pos]
    if 0x91 <= first <= 0x9F:  # fixarray of 1-15 elements
        kind_at = pos + 1
    elif first == 0xDC:  # array 16
        kind_at = pos + 3
    elif first == 0xDD:  # array 32
        kind_at = pos + 5
    else:
        return False
    return kind_at < len(data) and data[kind_at] == 0


class _MemoryStream:
    __slots__ = ("sink", "chunks", "info")

    def __init__(self, sink: MemorySink, info: TraceInfo) -> None:
        self.sink, self.info = sink, info
        self.chunks: list[bytes | bytearray] = []

    def write(self, data: bytes | bytearray) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.sink._closed(self)  # (joins the chunks into a new bytes: a bytearray is copied)

    def abort(self) -> None:
        self.chunks = []


#: Every live MemorySink, for a forked child to give each a lock of its own.
_memory_sinks: weakref.WeakSet[MemorySink] = weakref.WeakSet()


class MemorySink:
    """Keeps traces in memory (tests, or a buffer in front of another transport). Written in the
    handler's thread: ``traces`` holds a trace as soon as its execution has finished."""

    in_memory = True

    def __init__(self) -> None:
        self.traces: list[bytes] = []
        self._lock = threading.Lock()
        _memory_sinks.add(self)

    def _after_fork_in_child(self) -> None:
        """A new lock: the parent's may have been held by a thread that does not exist here
        (the child keeps its copy of the traces held so far)."""
        self._lock = threading.Lock()

    def open(self, info: TraceInfo) -> _MemoryStream:
        return _MemoryStream(self, info)

    def _closed(self, stream: _MemoryStream) -> None:
        with self._lock:
            self.traces.append(b"".join(stream.chunks))


@dataclasses.dataclass(frozen=True)
class RecorderStats:
    """A snapshot of a recorder's counters.

    Every recorded execution ends as exactly one of: written, discarded (an ``on-failure``
    success), dropped (the writer's queue was full), or lost to a sink error — once the writer
    is idle (after :meth:`Recorder.flush`), ``traces_started == traces_written +
    traces_discarded + traces_dropped + sink_errors``. ``queue_depth`` is the number of
    finished traces waiting for the writer, ``queue_bytes`` their encoded size.
    """

    traces_started: int = 0
    traces_written: int = 0
    traces_discarded: int = 0
    traces_dropped: int = 0
    sink_errors: int = 0
    encode_errors: int = 0
    #: Values recorded as opaque (type and repr only: not replayable). Each type is also logged
    #: once, with its name and the fix.
    opaque_values: int = 0
    queue_depth: int = 0
    queue_bytes: int = 0
    #: Of ``traces_dropped``, those dropped while the writer was held back by its CPU budget
    #: (``Recorder(writer_cpu_budget=)``): pausing, or still working off the backlog its pauses
    #: built up.
    traces_dropped_for_budget: int = 0


#: True on an interpreter running without the GIL (the free-threaded build, PEP 703, with the
#: GIL not turned back on: read once, after this module's imports, which may turn it on): the
#: two steps below that the GIL makes atomic are then taken under a lock. With the GIL, the
#: classes chosen here are the plain ones and the handler's path is unchanged.
_FREE_THREADED = not getattr(sys, "_is_gil_enabled", lambda: True)()


class _LockedCount:
    """``itertools.count`` whose ``next()`` is one step under a lock: without the GIL, two
    threads' ``next()`` of an ``itertools.count`` may return the same number (3.13t)."""

    __slots__ = ("_count", "_lock")

    def __init__(self) -> None:
        self._count = itertools.count()
        self._lock = threading.Lock()

    def __iter__(self) -> _LockedCount:
        return self

    def __next__(self) -> int:
        with self._lock:
            return next(self._count)


class _LockedRecords(bytearray):
    """A trace's ``records`` (see :class:`_Pending`) without the GIL: each step the handler and
    the writer take on it (the handler's ``+=``; the writer's ``bytes()``, ``del [:n]``;
    ``clear()``, ``len()``) is one step under the buffer's own lock, as the GIL makes each one
    C call atomic (the free-threaded build of 3.13 does not lock a ``bytearray``: a copy racing
    an append that moves the buffer would read freed memory)."""

    __slots__ = ("lock",)

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()

    # (typeshed's bytearray.__add__ returns a bytearray; += gives back the same object)
    def __iadd__(self, data: Any) -> _LockedRecords:  # type: ignore[misc]
        with self.lock:
            bytearray.__iadd__(self, data)
        return self

    def __bytes__(self) -> bytes:
        with self.lock, memoryview(self) as view:  # (released before the lock: no export left)
            return view.tobytes()

    def __delitem__(self, index: Any) -> None:
        with self.lock:
            bytearray.__delitem__(self, index)

    def clear(self) -> None:
        with self.lock:
            bytearray.clear(self)

    def __len__(self) -> int:
        with self.lock:
            return bytearray.__len__(self)


#: What ``_Counters.starts`` and a trace's ``records`` are made of: the plain types under the
#: GIL (nothing on the handler's path is added: the same calls, the same C steps), the locked
#: ones without it.
_Count: Callable[[], Iterator[int]] = _LockedCount if _FREE_THREADED else itertools.count
_Records: Callable[[], bytearray] = _LockedRecords if _FREE_THREADED else bytearray


class _Counters:
    """The recorder's counts, shared with its writer thread (which must not keep the recorder
    alive). Most are updated under one lock, a few times per execution, never held long. The
    counts of the hot paths take no lock: executions started (every one) and traces dropped
    (nearly every one, in the steady state of a service that outruns its writer) are each an
    ``itertools.count`` whose ``next()`` is one atomic step under the GIL (about 0.03 µs,
    against 0.16 µs for a round of the lock; without the GIL, ``_Count`` takes a lock of its
    own), read exactly by :meth:`read` under the lock."""

    __slots__ = (
        "starts",
        "drops",
        "budget_drops",
        "reads",
        "written",
        "discarded",
        "sink_errors",
        "encode_errors",
        "opaque",
        "queued_bytes",
        "lock",
        "quiet_until",
    )

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """All counts at zero and a new lock (also in a forked child: the parent's counts are
        the parent's, and its lock may have been held by a thread that does not exist here)."""
        #: Without the GIL each is a count of its own lock (``_Count``).
        self.starts = _Count()  # one next() per execution started
        self.drops = _Count()  # one next() per trace dropped
        self.budget_drops = _Count()  # and one more when the writer was held back
        #: For each of those, the ``next()`` calls that were reads (see :meth:`read`).
        self.reads: dict[str, int] = {"starts": 0, "drops": 0, "budget_drops": 0}
        self.written = self.discarded = 0
        self.sink_errors = self.encode_errors = self.opaque = 0
        self.queued_bytes = 0  # encoded bytes of the finished traces waiting for the writer
        self.lock = threading.Lock()
        #: For each kind of fault, the ``time.monotonic()`` before which it is not logged again:
        #: read without the lock (a fault on a hot path, a drop, costs one clock read and one
        #: comparison until it is due), written under it.
        self.quiet_until: dict[str, float] = {}

    def read(self, name: str) -> int:
        """The exact count of ``name`` (``"starts"``, ``"drops"`` or ``"budget_drops"``); called
        with ``lock`` held (reads are counted under it). A read takes a number too: every
        number taken before it was a count or an earlier read."""
        taken: int = next(getattr(self, name))
        reads = self.reads[name]
        self.reads[name] = reads + 1
        return taken - reads

    def started(self) -> int:
        """Executions started so far; called with ``lock`` held."""
        return self.read("starts")

    def log_fault(
        self, kind: str, message: str, *args: Any, exc_info: BaseException | bool = False
    ) -> None:
        """Log a fault, at most once per ``LOG_INTERVAL_S`` for each kind (the counts say the
        rest). Not due yet: one clock read, no lock."""
        now = _fault_clock()
        if now < self.quiet_until.get(kind, now):
            return
        with self.lock:  # due: one thread logs it, the others find it quiet again
            if now < self.quiet_until.get(kind, now):
                return
            self.quiet_until[kind] = now + LOG_INTERVAL_S
        log.warning(message, *args, exc_info=exc_info)


# Values that cannot change after they are returned: a session may keep a reference to them and
# encode them later (in the writer thread, or only if the execution fails). Anything else is
# encoded at once.
_IMMUTABLE: frozenset[type] = frozenset(
    {
        str,
        int,
        float,
        bool,
        type(None),
        bytes,
        complex,
        Decimal,
        uuid.UUID,
        _dt.datetime,
        _dt.date,
        _dt.time,
        _dt.timedelta,
    }
)
_MAX_DEPTH = 8

_NOT_KEPT: Any = object()

# _PROGRAMS_CODE: keeping and encoding a value calls the program's own code, which the handler
# never called (a property read as a dataclass field, a dict key's __hash__, a container's
# iteration, a __repr__). Whatever it raises, a SystemExit, GeneratorExit or CancelledError too,
# must not reach the handler: the value is encoded at once instead of kept, or marked (REDACTED,
# OPAQUE), or its record left out and counted as an encode error. Except KeyboardInterrupt: the
# user's Ctrl-C goes on (see text.safe_repr). A ``try`` itself costs nothing until it catches,
# but on the per-effect path keep such code out of effect() (see _StreamSession._keep).

#: ``_StreamSession.by_site`` when it holds nothing (never written to).
_NOTHING_SEEN: dict[Any, Any] = {}


def _kept(value: Any, depth: int = 0) -> Any:
    """What may be kept of ``value`` to encode later, or ``_NOT_KEPT``: the value itself when it
    cannot change (immutable scalars, enum members whose value cannot, and tuples, frozensets
    and frozen dataclasses holding only such values); a private copy of a plain dict or list
    (and a new tuple for a tuple holding one) whose contents can be kept (nothing else holds the
    copy, so nothing can change it); ``_NOT_KEPT`` for anything else (an object that could change, a
    subclass, too deep), which is then encoded at once.

    Each type's keeper is chosen (for a frozen dataclass: compiled) once, in ``_keepers``; the
    values are still looked at every time, because a frozen dataclass may hold a list."""
    if type(value) in _IMMUTABLE:
        return value
    return _keepers.get(type(value), _first_keep)(value, depth)


def _kept_or_not(value: Any) -> Any:
    """:func:`_kept`, and ``_NOT_KEPT`` when the program's code it calls raises (see
    _PROGRAMS_CODE): the value is then encoded at once, and marked there."""
    try:
        return _kept(value)
    except KeyboardInterrupt:
        raise
    except BaseException:
        return _NOT_KEPT


def _immutable(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` (and everything it holds) cannot change, so that a reference to it may
    be kept: what :func:`_kept` keeps as itself."""
    if type(value) in _IMMUTABLE:
        return True
    return _keepers.get(type(value), _first_keep)(value, depth) is value


def _keep_as_is(value: Any, depth: int) -> Any:
    return value


def _keep_never(value: Any, depth: int) -> Any:
    return _NOT_KEPT


def _keep_dict(value: dict[Any, Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return _NOT_KEPT
    # Copy first (one step, atomic under the GIL or the dict's own lock without it), then look
    # at the copy: another thread that changes the original meanwhile changes nothing here and
    # cannot make the walk fail.
    copy = value.copy()
    depth += 1
    for key, item in copy.items():
        # (``is str`` first: the common key and value, told apart without a set lookup or a
        # store of their type)
        if type(key) is not str and not _immutable(key, depth):
            return _NOT_KEPT
        if type(item) is not str:
            t = type(item)
            if t not in _IMMUTABLE:
                kept = _keepers.get(t, _first_keep)(item, depth)
                if kept is _NOT_KEPT:
                    return _NOT_KEPT
                if kept is not item:
                    copy[key] = kept  # an existing key: allowed while iterating
    return copy


def _keep_list(value: list[Any], depth: int) -> Any:
    if depth > _MAX_DEPTH:
        return _NOT_KEPT
    copy = value.copy()
    depth += 1
    for i, item in enumerate(copy):
        if type(item) not in _IMMUTABLE:
            kept = _keepers.get(type(item), _first_keep)(item, depth)
            if kept is _NOT_KEPT:
                return _NOT_KEPT
            copy[i] = kept
    return copy


def _keep_tuple(value: tuple[Any, ...], depth: int) -> Any:
    """The tuple itself when all it holds can be kept as itself, else a new tuple of what is
    kept of each item (a tuple holding a list)."""
    items = None
    for i, item in enumerate(value):
        if type(item) not in _IMMUTABLE:
            if depth > _MAX_DEPTH:
                return _NOT_KEPT
            kept = _keepers.get(type(item), _first_keep)(item, depth + 1)
            if kept is _NOT_KEPT:
                return _NOT_KEPT
            if kept is not item:
                if items is None:
                    items = list(value)
                items[i] = kept
    return value if items is None else tuple(items)


def _keep_frozenset(value: frozenset[Any], depth: int) -> Any:
    for item in value:
        if type(item) not in _IMMUTABLE and (depth > _MAX_DEPTH or not _immutable(item, depth + 1)):
            return _NOT_KEPT
    return value


#: The keepers of the built-in types, always in :data:`_keepers`.
_FIXED_KEEPERS: dict[type, Callable[[Any, int], Any]] = {
    **{t: _keep_as_is for t in _IMMUTABLE},
    dict: _keep_dict,
    list: _keep_list,
    tuple: _keep_tuple,
    frozenset: _keep_frozenset,
}
#: type -> its keeper, ``keep(value, depth) -> what may be kept`` (see :func:`_kept`): the fixed
#: ones and at most ``codec.MAX_CACHED_TYPES`` others (a class made per request must not stay).
_keepers: dict[type, Callable[[Any, int], Any]] = dict(_FIXED_KEEPERS)


def _first_keep(value: Any, depth: int) -> Any:
    """The keeper of a type seen for the first time: made, remembered, applied. The cache is
    replaced when full (not emptied in place: a reader meanwhile still finds the fixed ones)."""
    global _keepers
    t = type(value)
    keep = _new_keeper(t)
    _keepers = _codec.remember_beside(_keepers, _FIXED_KEEPERS, t, keep)
    return keep(value, depth)


def _new_keeper(t: type) -> Callable[[Any, int], Any]:
    params = getattr(t, "__dataclass_params__", None)
    if params is not None and params.frozen and dataclasses.is_dataclass(t):
        return _frozen_dataclass_keeper(t)
    if issubclass(t, enum.Enum):
        # A member is one object for the whole program, and so is its value: a list
        # (``GOLD = ["gold"]``) is that one list, which the handler may change before the writer
        # encodes it. An enum whose members all hold immutable scalars (the usual str or int:
        # decided once) is kept as is; any other, member by member.
        members = list(t.__members__.values())
        if all(type(m._value_) in _IMMUTABLE for m in members):
            return _keep_as_is
        return _keep_enum_member
    return _keep_never


def _keep_enum_member(value: enum.Enum, depth: int) -> Any:
    """A member of an enum some of whose members hold values that could change: the member
    itself when its value cannot change, else ``_NOT_KEPT`` (encoded at once, as it is at the
    effect)."""
    member_value = value._value_
    if type(member_value) in _IMMUTABLE or (
        depth <= _MAX_DEPTH and _immutable(member_value, depth + 1)
    ):
        return value
    return _NOT_KEPT


def _frozen_dataclass_keeper(t: type) -> Callable[[Any, int], Any]:
    """The keeper of a frozen dataclass: the instance itself when every field holds a value
    that can be kept as itself. Its fields cannot be set again, but may hold a mutable value
    (a list): so each instance's field values are looked at, by a function compiled for the
    type (:func:`_compile_frozen_keeper`: about 0.12 µs for four immutable scalar fields against
    0.4 µs for a loop over ``attrgetter``), or by that loop when the field names cannot be
    compiled."""
    names = tuple(f.name for f in dataclasses.fields(t))
    getter = operator.attrgetter(*names) if names else None

    def keep_each(value: Any, depth: int) -> Any:
        if getter is None:
            return value
        if depth > _MAX_DEPTH:
            return _NOT_KEPT
        items = getter(value)
        for item in items if len(names) > 1 else (items,):
            if type(item) not in _IMMUTABLE and not _immutable(item, depth + 1):
                return _NOT_KEPT
        return value

    if not names or not compilable_names(names):
        return keep_each

    def first(value: Any, depth: int) -> Any:
        """The keeper's first use: compiled for the field types of this first instance."""
        keep = _keepers[t] = _compile_frozen_keeper(names, value)
        return keep(value, depth)

    return first


def _compile_frozen_keeper(names: tuple[str, ...], first: Any) -> Callable[[Any, int], Any]:
    """A frozen dataclass's keeper, compiled from its field names only (identifiers, checked by
    the caller), as dataclasses compiles its ``__init__``. Its first test is for the exact
    field types of the type's first instance (``type(value.f) is str``: one identity test per
    field, about a third cheaper than a set lookup), when they are immutable scalars (later
    instances are usually alike). An instance unlike it goes on field by field, each field
    tested once: whether it holds an immutable scalar; if not, whether what it holds (a tuple,
    a frozen dataclass) is immutable throughout, as the uncompiled keeper decides (not past
    ``_MAX_DEPTH``); the first field that fails ends it (before, such an instance was tested
    for every field all at once, then again in the uncompiled keeper's loop)."""
    namespace: dict[str, Any] = {
        "immutable": _IMMUTABLE,
        "immutable_throughout": _immutable,
        "MAX_DEPTH": _MAX_DEPTH,
        "NOT_KEPT": _NOT_KEPT,
    }
    exact = []
    lines = []
    for i, n in enumerate(names):
        t = type(getattr(first, n, None))
        if t in _IMMUTABLE:
            namespace[f"T{i}"] = t
            exact.append(f"type(value.{n}) is T{i}")
        else:
            exact.append(f"type(value.{n}) in immutable")
        lines.append(
            f"    if type(value.{n}) not in immutable and (\n"
            f"        depth > MAX_DEPTH or not immutable_throughout(value.{n}, depth + 1)\n"
            f"    ):\n"
            f"        return NOT_KEPT\n"
        )
    if len(namespace) > 4:  # (an exact type: an ``and`` chain, no jump taken when it holds)
        lines.insert(0, f"    if {' and '.join(exact)}:\n        return value\n")
    lines.insert(0, "def keep(value, depth):\n")
    lines.append("    return value\n")
    exec("".join(lines), namespace)  # noqa: S102 -- the source is made of this type's field names only
    keep: Callable[[Any, int], Any] = namespace["keep"]
    return keep


_PYTHON = platform.python_version()


#: Trace ids come from a private generator: ``uuid.uuid4()`` reads ``os.urandom``, a system
#: call that releases the GIL (then waits to take it back) in the handler's thread, and the
#: module-level ``random`` may be seeded by the application (equal ids in every process).
_ids = random.Random()


#: Clear the version and variant bits of 128 random bits, then set version 4, RFC 4122 variant.
_ID_CLEAR = ((1 << 128) - 1) & ~((0xF000 << 64) | (0xC000 << 48))
_ID_SET = (0x4000 << 64) | (0x8000 << 48)


#: Trace ids are made _ID_BATCH at a time (one draw of random bits, one ``hex``) into
#: ``_id_pool``, and taken from it one by one: ``list.pop`` is atomic, so threads share the pool
#: without a lock (two threads refilling it at once both add fresh ids). A forked child empties
#: it (and reseeds ``_ids``): it must not repeat its parent's ids.
_ID_BATCH = 64
_ID_BATCH_CLEAR = sum(_ID_CLEAR << (128 * i) for i in range(_ID_BATCH))
_ID_BATCH_SET = sum(_ID_SET << (128 * i) for i in range(_ID_BATCH))
_id_pool: list[str] = []


def _trace_id() -> str:
    """32 hex digits laid out as a random (version 4) UUID, as the format asks. The interpreter
    asks for it in the handler's thread at the start of every recorded execution: taken from
    ``_id_pool`` (about 0.05 µs, against 0.27 µs to make one id alone)."""
    try:
        return _id_pool.pop()
    except IndexError:
        return _new_trace_ids()


def _new_trace_ids() -> str:
    """Refill ``_id_pool`` with _ID_BATCH - 1 new ids; returns one more."""
    bits = _ids.getrandbits(128 * _ID_BATCH) & _ID_BATCH_CLEAR | _ID_BATCH_SET
    digits = bits.to_bytes(16 * _ID_BATCH, "big").hex()
    _id_pool.extend(map(digits.__getitem__, _ID_SLICES))
    return digits[:32]


#: Where each id but the first lies in a batch's digits (cut by ``map``: a C loop).
_ID_SLICES = [slice(i, i + 32) for i in range(32, 32 * _ID_BATCH, 32)]


class Recorder:
    """Turns interpreter runs into traces; pass it as ``Interpreter(..., recorder=...)``.

    ``redact``: a :class:`Redactor`, a list of field-name patterns, or ``None`` for no redaction
    (the default redacts common secret names such as ``password``, ``token``, ``card_number``).
    ``max_queue``: finished traces that may wait for the writer, and ``max_queue_bytes`` (64 MiB)
    their encoded size; beyond either, new traces are dropped (counted in
    ``stats.traces_dropped``). ``flush_interval``: seconds after which the
    writer also writes the records of executions still running (what a ``kill -9`` can lose).
    Safe to share between threads and asyncio tasks: each execution has its own session.

    The writer thread is a good citizen when the service is overloaded: ``writer_cpu_budget``
    is the fraction of one CPU core it may use (0.1 by default, kept over about a second; None:
    no budget). Beyond it the writer pauses, its bounded queue fills and new traces are dropped
    and counted (``stats.traces_dropped_for_budget``) rather than taking the handlers' CPU (and,
    in CPython, their share of the GIL). :meth:`flush` and :meth:`close` ignore the budget: they
    write everything queued. ``writer_nice`` (Linux; 0 by default: unchanged): how much the
    writer thread lowers its own scheduling priority (a nice increment, that thread only), so
    that the OS runs other threads first when cores are short; beware that a low-priority
    thread holding the GIL makes the handler threads wait too.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        mode: str | Sampled = ALWAYS,
        redact: Redactor | list[str] | tuple[str, ...] | None = Redactor(),  # noqa: B008 -- Redactor is immutable, one shared default is safe
        meta: dict[str, Any] | None = None,
        max_queue: int = 1000,
        max_queue_bytes: int = MAX_QUEUE_BYTES,
        flush_interval: float = 0.05,
        writer_cpu_budget: float | None = WRITER_CPU_BUDGET,
        writer_nice: int = WRITER_NICE,
    ) -> None:
        if mode not in (ALWAYS, ON_FAILURE) and not isinstance(mode, Sampled):
            raise ValueError(
                f"unknown recording mode {mode!r}: use 'always', 'on-failure' or Sampled(rate)"
            )
        if max_queue < 1:
            raise ValueError(f"max_queue must be at least 1, got {max_queue}")
        if max_queue_bytes < 1:
            raise ValueError(f"max_queue_bytes must be at least 1, got {max_queue_bytes}")
        if not flush_interval > 0:
            raise ValueError(
                f"flush_interval must be a positive number of seconds, got {flush_interval}"
            )
        if writer_cpu_budget is not None and not 0 < writer_cpu_budget <= 1:
            raise ValueError(
                f"writer_cpu_budget must be a fraction of one CPU core in (0, 1] (or None for "
                f"no budget), got {writer_cpu_budget}"
            )
        if not 0 <= writer_nice <= 39:
            raise ValueError(
                f"writer_nice must be a nice increment from 0 (unchanged) to 39, got {writer_nice}"
            )
        self.writer_cpu_budget = writer_cpu_budget
        self.writer_nice = writer_nice
        self.sink = sink
        self.mode = mode
        self.redactor = (
            redact if isinstance(redact, Redactor) or redact is None else Redactor(redact)
        )
        self.meta = dict(meta or {})
        self.max_queue = max_queue
        self.max_queue_bytes = max_queue_bytes
        self.flush_interval = flush_interval
        self._defer_ns = int(flush_interval * 1e9)
        self._scratch = threading.local()
        self._counts = _Counters()
        self._in_memory = bool(getattr(sink, "in_memory", False))
        self._writer = _Writer(self)
        # The writer thread ends once the recorder is garbage (after writing what is pending).
        weakref.finalize(self, self._writer.request_stop)
        #: handler name -> its code's fingerprint, looked up once per trace: at most
        #: ``codec.MAX_CACHED_TYPES`` (handlers named per request must not grow it forever).
        self._fingerprints: dict[str, str] = {}

    # -- what users call ---------------------------------------------------------------------

    @property
    def stats(self) -> RecorderStats:
        c = self._counts
        with c.lock:
            # Read in the reverse order of counting (a drop for the budget is counted after its
            # drop, a drop after its start): a snapshot taken while threads drop never shows
            # more dropped for the budget than dropped, nor more dropped than started.
            dropped_for_budget = c.read("budget_drops")
            dropped = c.read("drops")
            return RecorderStats(
                traces_started=c.started(),
                traces_written=c.written,
                traces_discarded=c.discarded,
                traces_dropped=dropped,
                sink_errors=c.sink_errors,
                encode_errors=c.encode_errors,
                opaque_values=c.opaque,
                queue_depth=len(self._writer.done),
                queue_bytes=c.queued_bytes,
                traces_dropped_for_budget=dropped_for_budget,
            )

    def flush(self, timeout: float | None = None) -> bool:
        """Write every trace finished before this call (and what running executions have
        recorded so far), ignoring the writer's CPU budget; True when done within ``timeout``
        seconds (None: wait as long as it takes). Traces finished after the call are not
        waited for (under a load that never ends the wait would not either): they stay queued
        for the writer, as usual."""
        return self._writer.flush(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """:meth:`flush`, then stop the writer thread (a later trace starts it again). When
        traces finished after the call keep the writer busy, this returns without waiting for
        them: the writer goes on writing them, as for any later trace (and the exit flush
        writes whatever finished before exit began)."""
        return self._writer.stop(timeout)

    # -- what the interpreter calls ----------------------------------------------------------

    def begin(
        self, handler_name: str, input: Any, *, meta: dict[str, Any] | None = None
    ) -> _StreamSession | _FailureSession | None:
        """Start recording one execution; ``meta`` adds to this trace's header ``meta`` (the
        OpenTelemetry bridge puts the span's ids there). None: not recorded (not sampled, or
        dropped because the writer's queue is full), the handler runs unrecorded."""
        return self.begin_handler(None, input, meta, handler_name)

    def begin_handler(
        self,
        fn: Callable[..., Any] | None,
        input: Any,
        meta: dict[str, Any] | None = None,
        handler_name: str | None = None,
    ) -> _StreamSession | _FailureSession | None:
        """:meth:`begin` for the handler ``fn`` (what the interpreter calls), or for
        ``handler_name`` when given: ``fn``'s name is computed only for an execution that is
        recorded. One dropped because the writer's queue is full (nearly every one of a service
        that outruns its writer) is counted without it."""
        mode = self.mode
        counts = self._counts
        if mode != ALWAYS:
            if mode == ON_FAILURE:
                if handler_name is None:
                    handler_name = recorded_handler_name(fn)  # type: ignore[arg-type]
                next(counts.starts)
                return _FailureSession(self, handler_name, input, meta)
            if isinstance(mode, Sampled) and random.random() >= mode.rate:
                return None
        if self._in_memory or (
            len(self._writer.done) < self.max_queue and counts.queued_bytes < self.max_queue_bytes
        ):
            # (Registered with the writer, to be streamed while it runs, only once it has
            # records to stream: see _StreamSession._encode_head.)
            if handler_name is None:
                handler_name = recorded_handler_name(fn)  # type: ignore[arg-type]
            next(counts.starts)  # counted started (see _Counters), once the name is made
            return _StreamSession(self, handler_name, input, meta)
        # The writer is behind: the steady state of a service outrunning it. Started, then
        # dropped (the order stats reads them in reverse), no name made.
        next(counts.starts)
        self._dropped()
        return None

    # -- internals ---------------------------------------------------------------------------

    def _dropped(self) -> None:
        """Count a dropped trace, without a lock (see _Counters), and log it when due: this
        runs for nearly every execution of a service that outruns its writer, so until the
        log is due it costs two ``next()`` calls at most, a clock read and a comparison."""
        c = self._counts
        next(c.drops)
        if self._writer.held_back:
            next(c.budget_drops)
        now = _fault_clock()
        if now < c.quiet_until.get("dropped", now):
            return
        with c.lock:
            dropped = c.read("drops")
        c.log_fault(
            "dropped",
            "prodture: the trace writer is behind (%s is slow or stuck, or the writer is at its "
            "CPU budget: writer_cpu_budget=%s): %d traces dropped so far (max_queue=%d, "
            "max_queue_bytes=%d); handlers are unaffected",
            self.sink,
            self.writer_cpu_budget,
            dropped,
            self.max_queue,
            self.max_queue_bytes,
        )

    def _enqueue(self, trace: _Pending, size: int) -> bool:
        """Hand a finished trace of ``size`` encoded bytes to the writer, or drop it (False) when
        that would pass ``max_queue_bytes`` (a trace alone larger than the bound is still taken
        when nothing else waits, so that one big trace is not always lost)."""
        c = self._counts
        lock = c.lock
        lock.acquire()  # (not `with`: the lock's context manager costs 0.1 µs more per round)
        try:
            queued = c.queued_bytes
            fits = not queued or queued + size <= self.max_queue_bytes
            if fits:
                c.queued_bytes = queued + size
            else:
                # Given up on before it is counted, under the lock _sink_failed takes to test
                # and set ``broken`` too: a streamed write of this trace failing meanwhile
                # finds it given up on (not counted again), or was first (a sink error: not
                # counted as dropped). Each execution is counted once.
                counted = trace.broken
                trace.broken = True
        finally:
            lock.release()
        if not fits:
            if not counted:
                self._dropped()
            return False
        trace.size = size
        writer = self._writer
        writer.done.append(trace)
        if writer.sleeping:
            writer.wake()
        return True

    def _encoder(self) -> TraceEncoder:
        return TraceEncoder(self.redactor, on_opaque=self._opaque)

    def _scratch_encoder(self) -> TraceEncoder:
        """This thread's encoder for the header, input and outcome records, which (unlike
        effect records) do not depend on what a trace has defined before: one per thread is
        reused instead of a new one per trace."""
        try:
            encoder: TraceEncoder = self._scratch.encoder
        except AttributeError:
            encoder = self._scratch.encoder = self._encoder()
        return encoder

    def _opaque(self, type_name: str) -> None:
        """A value recorded as opaque (the codec logs each type once, with the fix)."""
        c = self._counts
        with c.lock:
            c.opaque += 1

    def _encode_failed(self, what: str, handler: str) -> None:
        c = self._counts
        with c.lock:
            c.encode_errors += 1
        self._counts.log_fault(
            "encode",
            "prodture: could not encode %s of %s; the record is left out, the handler is unaffected",
            what,
            handler,
            exc_info=True,
        )

    def _fingerprint(self, handler_name: str) -> str:
        cached = self._fingerprints.get(handler_name)
        if cached is None:
            fn = handlers.get(handler_name)
            fn = getattr(
                fn, "__wrapped__", fn
            )  # a route wrapper (prodture.fastapi): the user's code
            code = getattr(fn, "__code__", None)
            cached = code_fingerprint(code.co_filename) if code is not None else ""
            _codec.remember(self._fingerprints, handler_name, cached, _codec.MAX_CACHED_TYPES)
        return cached

    def _header(self, encoder: TraceEncoder, info: TraceInfo, meta: dict[str, Any] | None) -> bytes:
        return encoder.header(
            info.handler,
            trace_id=info.trace_id,
            started_at=info.started_at,
            fingerprint=self._fingerprint(info.handler),
            meta={**self.meta, **meta} if meta else self.meta,
            python=_PYTHON,
            prodture=__version__,
        )

    def _submit(self, trace: _Pending) -> None:
        """A finished trace (all its records encoded): to the writer, or dropped when its queue
        is full. A memory sink is written here and now."""
        if self._in_memory:
            self._writer.write_now(trace)
            return
        if len(self._writer.done) >= self.max_queue:
            self._dropped()
            return
        self._enqueue(trace, len(trace.records))


class _Pending:
    """A trace on its way to the sink: records in order, written by the writer thread.

    ``records``: the encoded records not yet written, one ``bytearray`` (see below);
    ``done`` is set after the last record is appended; ``broken`` by the writer when
    the sink failed (the handler then stops encoding), or in a forked child for a trace its
    parent began (the parent writes it). ``size``: encoded bytes counted in the queue.

    Why one ``bytearray`` and how two threads share it. The handler's thread appends each record
    with ``records += data``: one C call, under the GIL, so the writer never sees part of a
    record (no record is split across appends: each is encoded whole first). The attribute is
    never rebound to another object (``+=`` stores the same object back), so an append cannot
    land in a buffer the writer has already taken. While the execution runs, the writer takes
    what is there with ``data = bytes(records)`` and then ``del records[:len(data)]``, each one
    C call: the first copies a prefix of whole records (the length at that moment falls between
    two appends), the second removes exactly that prefix (the handler only ever adds at the
    end, and only the writer removes from the front), whatever was appended in between. The
    writer never holds a buffer of a running execution's ``records`` across a call that
    releases the GIL (``os.write`` does): while a buffer is exported, resizing the
    ``bytearray`` raises ``BufferError``, which would surface in the handler's append. Only a
    finished trace the writer owns (handed over by ``_enqueue``; nothing appends to it any
    more) is passed to a stream of ours as is, without a copy; other sinks get ``bytes``. A
    trace given up on (``finish()``'s drop, ``_sink_failed``) is cleared, also one C call; the
    handler appends nothing once ``broken`` is set (a record racing that check is let go with
    the trace). All of this needs each of those steps to be atomic, which the GIL makes them;
    on the free-threaded build (``sys._is_gil_enabled()`` False), ``records`` is a
    :class:`_LockedRecords`, which takes each one under a lock of its own (about 0.1 µs per
    step, there only), and ``_Counters.starts`` counts under a lock too.

    Measured against the deque of ``bytes`` it replaces (20,000 records of 91 bytes, writer
    CPU per record): a streaming pass 0.13-0.15 -> 0.04 µs, a finished trace 0.08 -> 0.02 µs
    (no ``popleft`` per record, no sum of their lengths, no join of 128 KiB slices: one copy of
    the bytes, or none); ``finish()``'s queued size, in the handler's thread, 0.022 -> 0.003
    µs (a length, not a sum); the handler's append costs 0.01-0.02 µs more (a buffer to grow),
    and its record's ``bytes`` is freed at once (91 bytes held per record instead of ~130).
    Memory: ``del`` from the front of a ``bytearray`` moves its start; once less than half its
    allocation is in use it is copied into an exact-size one, so a long execution's buffer
    holds about what it recorded since the writer's last pass, never the whole history."""

    __slots__ = (
        "recorder",
        "records",
        "done",
        "broken",
        "stream",
        "handler",
        "t0",
        "size",
        "generation",
        "_info",
        "trace_id",
    )

    def __init__(self, recorder: Recorder, handler: str, trace_id: str, t0: int) -> None:
        self.generation = _fork_generation
        self.recorder = recorder
        self.handler = handler
        #: When it started: ``time.perf_counter_ns()`` (the wall clock then is made from it when
        #: ``info`` is first needed, see :func:`_wall_ns_at`).
        self.t0 = t0
        self._info: TraceInfo | None = None
        #: This execution's trace id (the interpreter puts it in ``current_trace_id`` and on
        #: the outcome): only the id is made in the handler's thread, the rest of ``info`` (a
        #: datetime) when the writer or a header needs it.
        self.trace_id = trace_id
        self.size = 0
        self.records = _Records()
        self.done = False
        self.broken = False
        self.stream: TraceStream | None = None

    @property
    def info(self) -> TraceInfo:
        info = self._info
        if info is None:
            started_at = _started_at(_wall_ns_at(self.t0))
            info = self._info = TraceInfo(self.handler, self.trace_id, started_at)
        return info


_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def _wall_ns_at(t0: int) -> int:
    """The wall clock (``time.time_ns()``) when ``time.perf_counter_ns()`` read ``t0``: now
    minus the time elapsed since. A session reads one clock when it starts, not two (the
    ``started_at`` of a trace is needed only once it is written, or when it fails); both clocks
    advance at the same rate (an NTP slew adjusts both), so this is the wall clock at the start
    unless, between the start and this call (the writer's, maybe well after the execution
    ended), the wall clock was stepped (set by hand, a leap) or the machine was suspended (the
    monotonic clock stops then: ``started_at`` comes out later by that time, never after now)."""
    return time.time_ns() - (time.perf_counter_ns() - t0)


def _started_at(wall_ns: int) -> _dt.datetime:
    return _EPOCH + _dt.timedelta(microseconds=wall_ns // 1000)


class _StreamSession(_Pending):
    """One execution recorded in ``always`` / sampled mode.

    The handler's thread encodes only what could change later. The header, and an input,
    request, result or outcome that :func:`_kept` can keep (immutable values by reference, plain
    containers as private copies) are encoded by the writer thread once the execution has
    finished; anything else is encoded at once, after everything kept before it (records stay
    in order). Past
    ``flush_interval`` of running time or ``MAX_KEPT`` kept effects, everything is encoded at
    once, so that the writer can stream a long execution's records as they happen (what a
    ``kill -9`` can lose stays bounded).
    ``records`` always holds an in-order prefix of the trace; ``deferred`` what comes next.
    """

    __slots__ = (
        "encoder",
        "input",
        "head_pending",
        "deferred",
        "kept_bytes",
        "tail",
        "result",
        "result_ns",
        "defer_until",
        "meta",
        "common",
        "by_site",
    )

    def __init__(
        self,
        recorder: Recorder,
        handler_name: str,
        input: Any,
        meta: dict[str, Any] | None = None,
    ) -> None:
        t0 = time.perf_counter_ns()
        # _Pending.__init__, inline: this runs once per recorded execution, in the handler's
        # thread, and the call through super() costs as much as the assignments (keep in step).
        self.generation = _fork_generation
        self.recorder = recorder
        self.handler = handler_name
        self.t0 = t0
        self._info = None
        try:  # _trace_id(), inline (a call costs as much as taking the id from the pool)
            self.trace_id = _id_pool.pop()
        except IndexError:
            self.trace_id = _new_trace_ids()
        self.size = 0
        self.records = _Records()  # (see _Pending)
        self.done = False
        self.broken = False
        self.stream = None
        self.meta = meta
        self.encoder: TraceEncoder | None = None
        #: The encoder's common records (see TraceEncoder.common_records) once the header is
        #: encoded and nothing is kept unencoded (None until then, and while effects are
        #: kept): a successful effect's record encoder, looked up by effect() itself.
        self.common: dict[tuple[type, type, Any], tuple[Callable[..., Any], int, Any]] | None
        self.common = None
        #: The common record effect() used last at each site, for the next effect there to
        #: find by the site alone (see effect()): site -> (effect class, result class,
        #: ``common``'s entry for them). ``_NOTHING_SEEN`` (shared, always empty) until the
        #: first is found, and while effects are kept unencoded.
        self.by_site: dict[Any, tuple[type, type, tuple[Callable[..., bytes | None], int, Any]]]
        self.by_site = _NOTHING_SEEN
        #: effects that start before this may be kept unencoded (see flush_interval)
        self.defer_until = t0 + recorder._defer_ns
        #: the effects kept unencoded, flat: ``_DEFERRED`` items each (no tuple or EffectCall
        #: per effect outlives the call: fewer objects for the garbage collector to walk
        #: while the trace waits for the writer)
        self.deferred: list[Any] = []
        #: for each string or bytes kept (input, results, outcome): its length minus
        #: ``KEPT_VALUE_BYTES`` (it counts its length instead of the flat estimate)
        self.kept_bytes = 0
        self.tail: bytes | None = None  # the outcome record, when encoded by the handler
        #: a successful outcome's kept value and the duration, to encode later (``result_ns``
        #: is None when there is none)
        self.result: Any = None
        self.result_ns: int | None = None
        self.head_pending = True
        t = type(input)
        if t in _IMMUTABLE:
            self.input = input
            if t in _SIZED:
                self.kept_bytes = len(input) - KEPT_VALUE_BYTES
        else:
            self.input = _kept_or_not(input)
            if self.input is _NOT_KEPT:
                self.input = input
                self._encode_head()

    def _encoder(self) -> TraceEncoder:
        encoder = self.encoder
        if encoder is None:
            encoder = self.encoder = self.recorder._encoder()
        return encoder

    def _encode_head(self) -> None:
        """The header and input records, into ``records``.

        Called in the handler's thread before the execution ends (an input or effect that
        cannot be kept, or an effect past ``flush_interval``), the execution is registered with
        the writer here, which then writes its records every ``flush_interval`` while it runs.
        Only here: the header is always the first record, and until there is one the writer
        would have nothing to stream (the common short execution, all kept, is never
        registered: no dict insert and pop per execution)."""
        self.head_pending = False
        recorder = self.recorder
        if self.generation != _fork_generation:
            # Begun before a fork, in the child: the parent's trace, never registered with the
            # child's writer (it would stream it into a file of the parent's trace's name).
            self.broken = True
        elif not self.done and not recorder._in_memory:  # (done: the writer's complete())
            writer = recorder._writer
            writer.running[id(self)] = self
            if writer.sleeping:  # it may be waiting with no timeout, nothing having been running
                writer.wake()
        encoder = recorder._scratch_encoder()
        head = recorder._header(encoder, self.info, self.meta)
        try:
            head += encoder.input(self.input)
        except KeyboardInterrupt:
            raise
        except BaseException:  # (see _PROGRAMS_CODE)
            recorder._encode_failed("the input", self.handler)
        self.input = None
        self.records += head  # (one C call: see _Pending)

    def _encode_effect(
        self,
        seq: int,
        effect: Any,
        site: tuple[str, int, str] | None,
        ok: bool,
        value: Any,
        start: int,
        dur: int,
    ) -> None:
        if self.head_pending or self.deferred:
            self._encode_kept()
        encoder = self.encoder
        if encoder is None:
            encoder = self._encoder()
        # Nothing is pending before this effect now: the next ones may take effect()'s way.
        self.common = encoder.common_records()
        try:
            data = encoder.effect(seq, effect, ok, value, start - self.t0, dur, site)
        except KeyboardInterrupt:
            raise
        except BaseException:  # (see _PROGRAMS_CODE)
            self.recorder._encode_failed(f"effect #{seq}", self.handler)
            return
        self.records += data

    def _encode_kept(self) -> None:
        """Everything kept by reference so far, into ``records`` in order."""
        if self.head_pending:
            self._encode_head()
        if self.deferred:
            deferred, self.deferred = self.deferred, []
            encode = self._encode_effect
            for i in range(0, len(deferred), _DEFERRED):
                seq, effect, site, value, start, dur = deferred[i : i + _DEFERRED]
                encode(seq, effect, site, True, value, start, dur)

    def _keep(self, call: EffectCall, value: Any, start_ns: int, duration_ns: int) -> bool:
        """Keep a successful effect unencoded, for the writer to encode (see the class): True
        when kept, False when it must be encoded at once (something in it could change later).
        A method of its own, called for the first MAX_KEPT effects only: in effect() itself,
        this code and its ``try`` (see _PROGRAMS_CODE) cost every effect, kept or not, on 3.11
        (callgrind, handler's thread per effect of a 20,000-effect trace: 13,800 with them
        inline, 13,160 as a method; a 4-effect execution, all kept, costs ~1,600 more)."""
        effect = call.effect
        try:
            if _keepers.get(type(effect), _first_keep)(effect, 0) is effect:
                t = type(value)
                if t in _IMMUTABLE:
                    kept = value
                    if t in _SIZED:
                        self.kept_bytes += len(value) - KEPT_VALUE_BYTES
                else:
                    kept = _keepers.get(t, _first_keep)(value, 0)
                if kept is not _NOT_KEPT:
                    # (seq, effect, site, value, start, duration): see _DEFERRED
                    self.deferred += (call.seq, effect, call.site, kept, start_ns, duration_ns)
                    self.common = None  # (set again once what is kept is encoded)
                    self.by_site = _NOTHING_SEEN
                    return True
        except KeyboardInterrupt:
            raise
        except BaseException:  # (see _PROGRAMS_CODE) encoded at once
            pass
        return False

    def effect(
        self, call: EffectCall, ok: bool, value: Any, start_ns: int, duration_ns: int
    ) -> None:
        seq = call.seq
        # (A kept effect of a trace the writer has given up on, ``broken``, is let go at finish.)
        if ok and seq <= MAX_KEPT and start_ns < self.defer_until:
            if self._keep(call, value, start_ns, duration_ns):
                return
        if self.broken:
            return
        # Every effect's path once the first MAX_KEPT are kept: TraceEncoder.ok_effect's common
        # record, inline (one Python call per effect, the record encoder's): an effect of a
        # type, with a result of a type, at a site this trace has encoded together before.
        # An effect at a site usually has the effect and result classes of the last one there
        # (a loop's yield): ``by_site`` finds that record by the site alone and the two classes
        # are tested by identity, without making, hashing and comparing a key tuple (about 500
        # instructions fewer per effect, 3%, whether a loop yields at one site or several; a
        # cache of the last record only, tested by identity, saved 900 at one site but cost
        # 700 more at two alternating sites). Anything else goes ``common``'s way, then the
        # encoder's; a record that encoder refuses goes the encoder's way.
        effect = call.effect
        site = call.site
        try:
            seen = self.by_site.get(site)
        except TypeError:  # (an unhashable site) the encoder's way reports it
            seen = None
        if seen is not None and seen[0] is type(effect) and seen[1] is type(value) and ok:
            record, type_id, site_id = seen[2]
            data = record(effect, seq, type_id, value, start_ns - self.t0, duration_ns, site_id)
            if data is not None:
                self.records += data  # (one C call, the same object stored back: see _Pending)
                return
            refused = True  # (``common`` and the encoder are there: see by_site)
        else:
            common = self.common
            data = None
            refused = False
            if common and ok:  # (always empty without the accelerator: no look-up then)
                try:
                    found = common.get((type(effect), type(value), site))
                except Exception:  # (an unhashable site) the encoder's way reports it
                    found = None
                if found is not None:
                    record, type_id, site_id = found
                    data = record(
                        effect, seq, type_id, value, start_ns - self.t0, duration_ns, site_id
                    )
                    if data is None:
                        refused = True
                    else:
                        self._seen(site, type(effect), type(value), found)
            if data is None and (common is None or not ok or self.encoder is None):
                # (pending effects first)
                self._encode_effect(seq, effect, site, ok, value, start_ns, duration_ns)
                return
        if data is None:
            # ok_effect's general way, directly (without a 2nd try of a refused record)
            try:
                data = self.encoder._effect(  # type: ignore[union-attr]
                    seq, effect, True, value, start_ns - self.t0, duration_ns, site, not refused
                )
            except KeyboardInterrupt:
                raise
            except BaseException:  # (see _PROGRAMS_CODE)
                self.recorder._encode_failed(f"effect #{seq}", self.handler)
                return
        self.records += data  # (one C call, the same object stored back: see _Pending)

    def _seen(
        self,
        site: Any,
        effect_type: type,
        result_type: type,
        found: tuple[Callable[..., bytes | None], int, Any],
    ) -> None:
        """Remember the common record just used at ``site`` for the next effect there."""
        by_site = self.by_site
        if by_site is _NOTHING_SEEN:
            by_site = self.by_site = {}
        _codec.remember(by_site, site, (effect_type, result_type, found), _codec.MAX_CACHED_TYPES)

    def finish(self, outcome: Outcome) -> None:
        recorder = self.recorder
        in_memory = recorder._in_memory
        if not self.head_pending and not in_memory:  # registered by _encode_head
            recorder._writer.running.pop(id(self), None)
        if self.broken or self.generation != _fork_generation:
            return  # lost to a sink error, or begun before a fork: the parent writes it
        duration = time.perf_counter_ns() - self.t0
        if type(outcome) is Success:
            kept = outcome.value
            t = type(kept)
            if t not in _IMMUTABLE:
                try:
                    kept = _keepers.get(t, _first_keep)(kept, 0)
                except KeyboardInterrupt:
                    raise
                except BaseException:  # (see _PROGRAMS_CODE) encoded here, below
                    kept = _NOT_KEPT
            elif t in _SIZED:
                self.kept_bytes += len(kept) - KEPT_VALUE_BYTES
        else:
            kept = _NOT_KEPT
        if kept is not _NOT_KEPT:
            self.result = kept  # encoded by complete()
            self.result_ns = duration
        else:  # an outcome record does not depend on the others: encoded here, written last
            try:
                self.tail = _encode_outcome(recorder._scratch_encoder(), outcome, duration)
            except KeyboardInterrupt:
                raise
            except BaseException:  # (see _PROGRAMS_CODE)
                recorder._encode_failed("the outcome", self.handler)
        self.done = True
        if in_memory:
            recorder._writer.write_now(self)
            return
        if self.records or self.tail is not None:
            size = self._queued_size()
        else:  # _queued_size's common case (nothing encoded yet), inline
            kept = len(self.deferred) // _DEFERRED + self.head_pending + (kept is not _NOT_KEPT)
            size = kept * KEPT_VALUE_BYTES + self.kept_bytes
        if not recorder._enqueue(self, size):
            # Dropped (``broken`` is set): the writer removes what it may have streamed of it.
            self.records.clear()
            self.deferred = []
            self.input = self.result = self.result_ns = None
            self.tail = None
            writer = recorder._writer
            writer.dropped.append(self)
            if writer.sleeping:
                writer.wake()

    def _queued_size(self) -> int:
        """What this finished trace counts against ``max_queue_bytes``: its encoded records, and
        for each value kept to be encoded by the writer an estimate (a string's or bytes' length,
        else ``KEPT_VALUE_BYTES``; counted as they were kept) — measuring a kept container
        would cost the handler's thread the walk that keeping it was meant to save."""
        size = len(self.records)
        if self.tail is not None:
            size += len(self.tail)
        kept = len(self.deferred) // _DEFERRED + self.head_pending + (self.result_ns is not None)
        return size + kept * KEPT_VALUE_BYTES + self.kept_bytes

    def complete(self) -> None:
        """After finish(), in the thread that writes: encode what was kept, then the outcome."""
        self._encode_kept()
        tail, self.tail = self.tail, None
        duration = self.result_ns
        if duration is not None:
            value, self.result, self.result_ns = self.result, None, None
            try:
                tail = self.recorder._scratch_encoder().outcome(True, value, "", None, duration)
            except KeyboardInterrupt:
                raise
            except BaseException:  # (see _PROGRAMS_CODE)
                self.recorder._encode_failed("the outcome", self.handler)
                return
        if tail is not None:
            self.records += tail


#: Items per effect in ``_StreamSession.deferred``: seq, effect, site, value, start, duration.
_DEFERRED = 6


def _encode_outcome(encoder: TraceEncoder, outcome: Outcome, duration: int) -> bytes:
    if isinstance(outcome, Success):
        return encoder.outcome(True, outcome.value, "", None, duration)
    return encoder.outcome(False, outcome.error, outcome.traceback, outcome.effect_seq, duration)


class _FailureSession:
    """One execution recorded in ``on-failure`` mode.

    A success must cost next to nothing, so nothing is encoded while the handler runs unless it
    has to be: inputs and results :func:`_kept` can keep (immutable values by reference, plain
    containers as private copies) are encoded only if the execution fails; any other value (an
    object the handler may change later) is encoded at once, with every effect before it, in
    order."""

    __slots__ = (
        "recorder",
        "handler",
        "input",
        "input_record",
        "t0",
        "deferred",
        "encoder",
        "records",
        "_info",
        "_id",
        "meta",
        "discarded",
        "generation",
    )

    def __init__(
        self,
        recorder: Recorder,
        handler_name: str,
        input: Any,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.recorder = recorder
        self.meta = meta
        self.discarded = False
        self.generation = _fork_generation
        self._id: str | None = None
        self.handler = handler_name
        self.t0 = time.perf_counter_ns()  # (the wall clock: see info)
        self.deferred: list[tuple[EffectCall, bool, Any, int, int]] = []
        self.encoder: TraceEncoder | None = None
        self.records: list[bytes] = []
        self._info: TraceInfo | None = None
        self.input_record: bytes | None = None
        self.input = _kept_or_not(input)
        if self.input is _NOT_KEPT:
            self.input = input
            self.input_record = self._input_record()

    @property
    def info(self) -> TraceInfo:
        """Made when a failure is written (a success never needs more than the id)."""
        info = self._info
        if info is None:
            info = TraceInfo(
                self.handler, self.trace_id or _trace_id(), _started_at(_wall_ns_at(self.t0))
            )
            self._info = info
        return info

    @property
    def trace_id(self) -> str | None:
        """This execution's trace id; ``None`` once the trace is discarded (the handler
        succeeded). Only the id is made in the handler's thread at the start (about 1 µs)."""
        if self.discarded:
            return None
        trace_id = self._id
        if trace_id is None:
            trace_id = self._id = _trace_id()
        return trace_id

    def _encoder(self) -> TraceEncoder:
        encoder = self.encoder
        if encoder is None:
            encoder = self.encoder = self.recorder._encoder()
        return encoder

    def _input_record(self) -> bytes:
        try:
            return self.recorder._scratch_encoder().input(self.input)
        except KeyboardInterrupt:
            raise
        except BaseException:  # (see _PROGRAMS_CODE)
            self.recorder._encode_failed("the input", self.handler)
            return b""

    def _encode(self, call: EffectCall, ok: bool, value: Any, start: int, dur: int) -> None:
        encoder = self.encoder
        if encoder is None:
            encoder = self._encoder()
        try:
            data = encoder.effect(call.seq, call.effect, ok, value, start - self.t0, dur, call.site)
        except KeyboardInterrupt:
            raise
        except BaseException:  # (see _PROGRAMS_CODE)
            self.recorder._encode_failed(f"effect #{call.seq}", self.handler)
            return
        self.records.append(data)

    def _encode_deferred(self) -> None:
        deferred, self.deferred = self.deferred, []
        for item in deferred:
            self._encode(*item)

    def effect(
        self, call: EffectCall, ok: bool, value: Any, start_ns: int, duration_ns: int
    ) -> None:
        try:
            if ok and _immutable(call.effect):
                kept = _kept(value)
                if kept is not _NOT_KEPT:
                    self.deferred.append((call, ok, kept, start_ns, duration_ns))
                    return
        except KeyboardInterrupt:
            raise
        except BaseException:  # (see _PROGRAMS_CODE) encoded at once, below
            pass
        if self.deferred:
            self._encode_deferred()
        self._encode(call, ok, value, start_ns, duration_ns)

    def finish(self, outcome: Outcome) -> None:
        recorder = self.recorder
        if self.generation != _fork_generation:
            return  # begun before a fork: the parent's trace, not this process's
        if outcome.ok:
            self.discarded = True
            c = recorder._counts
            with c.lock:
                c.discarded += 1
            return
        duration = time.perf_counter_ns() - self.t0
        scratch = recorder._scratch_encoder()
        head = recorder._header(scratch, self.info, self.meta)
        input_record = self.input_record
        if input_record is None:
            input_record = self._input_record()
        self._encode_deferred()
        try:
            tail = _encode_outcome(scratch, outcome, duration)
        except KeyboardInterrupt:
            raise
        except BaseException:  # (see _PROGRAMS_CODE)
            recorder._encode_failed("the outcome", self.handler)
            tail = b""
        info = self.info
        trace = _Pending(recorder, self.handler, info.trace_id, self.t0)
        trace._info = info
        trace.records = bytearray(b"").join([head, input_record, *self.records, tail])
        trace.done = True
        recorder._submit(trace)


class _Marker(threading.Event):
    """A flush() waiting in the writer's queue for what was handed over before it: set once
    those are written; ``taken``: the writer's ``taken`` then (what it takes later was handed
    over after the flush). ``last``: the exit flush's, after which the writer takes nothing."""

    taken = -1
    last = False


_writers: weakref.WeakSet[_Writer] = weakref.WeakSet()
#: The writer publishes its counts (written, queued bytes) at least every this many traces.
_PUBLISH_EVERY = 32
#: A segment sink gets at most this many traces (or about this many bytes) per append: every
#: write releases the GIL, and taking it back behind busy handler threads costs the writer
#: about a millisecond, so the batch is what the writer finds queued, up to these.
_SEGMENT_BATCH = 1024
_SEGMENT_BATCH_BYTES = 4 * 1024 * 1024
#: Bumped in a forked child: a session begun before the fork (in the parent) is the parent's
#: trace, so the child neither finishes nor writes it.
_fork_generation = 0
#: After writing fewer than LINGER_BELOW traces, the writer waits LINGER_S (at most a tenth of
#: ``flush_interval``) for more before it sleeps until rung: under load, batches grow and the
#: GIL hand-offs to the writer thread per trace shrink (``benchmarks/bench_recorder.py``:
#: ``record_throughput_*writer_traces_per_wakeup``). Only with ``max_queue`` of at least
#: LINGER_MIN_QUEUE, which a few milliseconds of traces cannot fill.
LINGER_BELOW = 64
LINGER_S = 0.005
LINGER_MIN_QUEUE = 256
#: How long interpreter exit waits for each recorder's writer (a stuck sink must not hang exit).
EXIT_FLUSH_TIMEOUT_S = 10.0


class _Writer:
    """The recorder's background writer: opens streams, writes records, closes them.

    Handler threads hand it finished traces through ``done`` (a deque) and register running
    ones in ``running`` (a dict) so that it can write what long executions have recorded so
    far every ``flush_interval`` seconds. It sleeps on a lock when idle; ``wake()`` is a lock
    release, cheap enough to call from a handler. It holds no reference to its recorder: when
    the recorder is garbage the thread writes what is pending and ends.
    """

    def __init__(self, recorder: Recorder) -> None:
        self.sink = recorder.sink
        #: A segment sink's append (``DirectorySink(segment_bytes=...)``): whole finished
        #: traces are then written in batches, one write per batch, instead of a file each.
        self.append: (
            Callable[[list[tuple[TraceInfo, bytes | bytearray]]], list[OSError | None]] | None
        ) = (
            getattr(self.sink, "append_traces", None)
            if getattr(self.sink, "segment_bytes", None)
            else None
        )
        self.counts = recorder._counts
        self.interval = recorder.flush_interval
        #: CPU seconds per wall second the thread may use (None: no budget), and its burst.
        self.budget = recorder.writer_cpu_budget
        self.burst = (self.budget or 0.0) * WRITER_BUDGET_WINDOW_S
        self.nice = recorder.writer_nice
        #: Seconds to let finished traces gather after a small batch (see _loop); none with a
        #: small queue, which lingering could fill.
        self.linger = (
            min(LINGER_S, self.interval / 10) if recorder.max_queue >= LINGER_MIN_QUEUE else 0.0
        )
        self.done: collections.deque[_Pending | _Marker] = collections.deque()
        self.running: dict[int, _StreamSession] = {}
        #: Traces dropped when they finished (max_queue_bytes): the writer removes whatever it
        #: had already streamed of them.
        self.dropped: collections.deque[_Pending] = collections.deque()
        self._reset()
        _writers.add(self)

    def after_fork_in_child(self) -> None:
        """In a forked child: what the parent had queued or running is the parent's to write.
        Its open trace files are closed here (the descriptors only: the files are the parent's),
        its traces are never written by the child, and the child starts with its own thread,
        queue and counts."""
        for trace in [*self.done, *self.running.values(), *self.dropped]:
            if isinstance(trace, _Pending):
                trace.broken = True
                stream, trace.stream = trace.stream, None
                if isinstance(stream, _FileStream):
                    try:
                        os.close(stream.fd)
                    except OSError:
                        pass
        self.counts.reset()
        self._reset()

    def _reset(self) -> None:
        """Fresh thread state (at creation, and in a forked child, where the parent's writer
        thread does not exist)."""
        self.done.clear()
        self.running.clear()
        self.dropped.clear()
        # True whenever the thread may be waiting (or is not started): the next hand-off rings.
        self.sleeping = True
        self.thread: threading.Thread | None = None
        self.stopping = False
        #: The exit flush is answered: the thread has ended or is ending, and none starts again
        #: (see _close_all_at_exit).
        self.exited = False
        #: Traces taken from ``done`` so far (a flush's marker notes it when answered).
        self.taken = 0
        #: flush() calls waiting: the budget is ignored until they are answered.
        self.urgent = 0
        #: Paused for the budget, or working off the backlog a pause built up (cleared when
        #: the queue runs dry): drops meanwhile are counted as drops for the budget.
        self.held_back = False
        self._allowance = self.burst  # CPU seconds the thread may still use before pausing
        self._paced_at = self._paced_cpu = 0.0  # monotonic and thread time at the last check
        self.next_stream = 0.0  # when running executions are next streamed (monotonic)
        self._bell = threading.Lock()
        self._bell.acquire()
        #: Guards thread start, exit and ``urgent``. Reentrant: a flush() that finds no thread
        #: (none can be started at interpreter exit) drains the queue itself while holding it,
        #: and answering its marker takes it again (with a plain lock, exit hung there).
        self._lock = threading.RLock()

    # -- called from any thread --------------------------------------------------------------

    def wake(self) -> None:
        self.sleeping = False
        if self.thread is None or self.stopping:
            self._ensure_thread()
        self._ring()

    def _ring(self) -> None:
        try:
            self._bell.release()
        except RuntimeError:  # already rung
            pass

    def _ensure_thread(self) -> None:
        with self._lock:
            if self.exited:  # (see _close_all_at_exit) what is handed over now stays queued
                self.sleeping = True
                return
            self.stopping = False  # new work: a thread about to stop goes on instead
            if self.thread is not None:
                return
            thread = threading.Thread(target=self._loop, name="prodture-trace-writer", daemon=True)
            try:
                thread.start()
            except RuntimeError:  # interpreter shutdown: the caller writes (see flush)
                # (or no thread for now: a pids limit) the next hand-off rings, and tries again
                self.sleeping = True
                return
            self.thread = thread

    def request_stop(self) -> None:
        """End the thread once nothing is pending (without waiting for it)."""
        self.stopping = True
        self._ring()

    def flush(self, timeout: float | None) -> bool:
        if self.thread is None and not (self.done or self.running or self.dropped):
            return True  # nothing was ever handed over, or the thread ended with nothing left
        return self._flush(timeout)[0]

    def _flush(self, timeout: float | None, last: bool = False) -> tuple[bool, _Marker]:
        """flush(), and its marker, which tells how many traces the
        writer had taken from its queue when it answered (see stop()); ``last``: the exit's."""
        marker = _Marker()
        marker.last = last
        with self._lock:
            self.urgent += 1  # answered (and counted down) by _drain_done
        self.done.append(marker)
        self.wake()
        if self.thread is None:  # no thread could be started (interpreter exit): write here
            with self._lock:
                if self.thread is None:
                    # Up to this marker only: what later traces hand over (daemon threads
                    # still recording) is not waited for, or this would never return.
                    self._drain_done(until=marker)
        return marker.wait(timeout), marker

    def stop(self, timeout: float | None, at_exit: bool = False) -> bool:
        """flush(), then end the thread, unless traces handed over after this call keep it
        busy: they are not waited for (under a load that never ends, waiting for them never
        ended either); the thread goes on for them, asked to end once it runs dry (a later
        trace's hand-off cancels that, or starts a new thread). ``at_exit``: the thread ends
        once the flush is answered, whatever was handed over since, and none starts again."""
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.thread is None and not (self.done or self.running or self.dropped):
            self.exited = self.exited or at_exit
            return True
        flushed, marker = self._flush(timeout, last=at_exit)
        # Asked again until it ends: a trace finished meanwhile wakes the writer, and the wake
        # clears ``stopping`` (new work: see _ensure_thread), or starts a new thread; one
        # request then one join(None) waited for ever on a writer asleep with nothing to do.
        while True:
            thread = self.thread
            if thread is None:
                return flushed
            if flushed and at_exit:
                self.exited = True  # (already, when the writer thread answered the marker)
            elif flushed and (self.taken != marker.taken or self.done or self.dropped):
                # Work handed over after the flush: the writer goes on for it (stopping once
                # it runs dry, as asked below); this close is done.
                self.request_stop()
                return True
            self.request_stop()
            left = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
            thread.join(max(left, 0.0))
            if deadline is not None and time.monotonic() >= deadline:
                return flushed and self.thread is None

    # -- the writer thread -------------------------------------------------------------------

    def _loop(self) -> None:
        self._lower_priority()
        self._paced_at, self._paced_cpu = time.monotonic(), time.thread_time()
        self.next_stream = time.monotonic() + self.interval
        while True:
            drained = self._drain_done()
            if self.exited:  # the exit flush is answered: nothing more is taken or written
                with self._lock:
                    self.thread = None
                    self._end_segment()
                return
            self._stream_due()
            if drained:
                if drained < LINGER_BELOW and self.linger and not self.stopping:
                    # A small batch: let traces gather for a moment (not rung meanwhile: not
                    # `sleeping`; a flush() still rings) rather than waking for every few.
                    # Each wake-up and each write hands the GIL to this thread, and under
                    # load the handler threads pay for every hand-off.
                    self._bell.acquire(timeout=self.linger)
                continue
            if self.stopping:
                with self._lock:
                    # Marked asleep before the last look at the queue: a trace handed over
                    # after it rings (its wake() waits for this lock, then starts a thread).
                    self.sleeping = True
                    if self.stopping and not self.done and not self.dropped:
                        self.thread = None
                        self._end_segment()
                        return
                    self.sleeping = False
                continue
            # Sleep until a handler rings or running executions are due to be streamed.
            self.sleeping = True
            if self.done or self.dropped or self.stopping:  # rang between the drain and now
                self.sleeping = False
                continue
            timeout = max(self.next_stream - time.monotonic(), 0.0) if self.running else -1
            self._bell.acquire(timeout=timeout)
            self.sleeping = False

    def _end_segment(self) -> None:
        """The thread is ending: a segment sink closes this thread's segment."""
        if self.append is not None:
            try:
                self.sink.end_segment()  # type: ignore[attr-defined]
            except BaseException:
                pass

    def _drain_done(self, until: _Marker | None = None) -> int:
        """Write every finished trace waiting. The counts (written, queued bytes) are published
        every ``_PUBLISH_EVERY`` traces (one lock round per batch, not per trace; often enough
        for ``stats`` and the byte bound to follow a writer that never runs dry), at the end,
        and before any flush() marker is answered. ``until``: return once that marker is
        answered (a flush in a thread of the caller's, which must not go on for ever)."""
        done = self.done
        drained = 0
        written = freed = batch = 0
        write_trace = self.write_trace
        dropped = self.dropped
        append = self.append
        # segment sink: finished traces, encoded, for the next append
        whole: list[tuple[_Pending, tuple[TraceInfo, bytearray]]] = []
        whole_size = 0  # their queued bytes, freed once they are appended
        while dropped:
            write_trace(dropped.popleft())  # broken: removes what was streamed
        while True:
            try:
                item = done.popleft()
            except IndexError:
                break
            drained += 1
            if isinstance(item, _Marker):  # a flush() waiting for what came before
                if whole:
                    written += self._append_whole(whole)
                    freed += whole_size
                    whole, whole_size = [], 0
                self._publish(written, freed)
                written = freed = batch = 0
                try:
                    self._stream_running(force=True)
                finally:
                    with self._lock:
                        self.urgent -= 1
                    item.taken = self.taken
                    if item.last:
                        self.exited = True  # (before it is answered: stop() then sees it)
                    item.set()
                if item is until or item.last:
                    return drained
                continue
            self.taken += 1  # (see stop())
            if self.budget is not None and self._over_budget():
                if whole:  # on disk before the pause
                    written += self._append_whole(whole)
                    freed += whole_size
                    whole, whole_size = [], 0
                self._publish(written, freed)
                written = freed = batch = 0
                self._pause()
            if append is not None and item.stream is None and not item.broken:
                # Never streamed: appended whole, with others. Encoded now, one by one, so
                # that the budget check above sees each trace's encoding.
                entry = self._encode_whole(item)
                if entry is None:
                    freed += item.size
                else:
                    whole.append((item, entry))
                    whole_size += item.size
                if len(whole) == _SEGMENT_BATCH or whole_size >= _SEGMENT_BATCH_BYTES:
                    written += self._append_whole(whole)
                    freed += whole_size
                    whole, whole_size = [], 0
            else:
                freed += item.size
                try:
                    if write_trace(item):
                        written += 1
                except BaseException:
                    # A bug of ours, or a sink raising what is not an Exception (a cancelled
                    # asyncio upload's CancelledError), costs this trace only, never the writer
                    # thread: every later trace would wait for ever, and a flush() with them.
                    # (So does every sink call the writer thread makes; write_trace itself
                    # catches Exception only: it also runs in a handler's thread, whose
                    # KeyboardInterrupt must go on.)
                    self._sink_failed(item, item.stream)
            batch += 1
            if batch == _PUBLISH_EVERY:  # (a segment batch waiting is not written yet)
                self._publish(written, freed)
                written = freed = batch = 0
                while dropped:
                    write_trace(dropped.popleft())
                # Under sustained load this loop may never find the queue empty: running
                # executions are streamed from here too, when due (what a kill can lose).
                self._stream_due()
        if whole:
            written += self._append_whole(whole)
            freed += whole_size
        if drained:
            self._publish(written, freed)
        self.held_back = False  # caught up
        return drained

    # -- the CPU budget and priority (see Recorder) ---------------------------------------------

    def _lower_priority(self) -> None:
        """Lower this thread's scheduling priority by ``nice`` (Linux, where a nice value is
        per thread: the handler threads keep theirs); elsewhere nothing."""
        if not self.nice or not sys.platform.startswith("linux"):
            return
        try:
            me = threading.get_native_id()
            os.setpriority(
                os.PRIO_PROCESS, me, min(os.getpriority(os.PRIO_PROCESS, me) + self.nice, 19)
            )
        except OSError:  # a sandbox refusing it: the budget still holds
            pass

    def _over_budget(self) -> bool:
        """Charge the CPU this thread used since the last check against its allowance (which
        refills at ``budget`` per second, up to ``burst``); True when it is spent. A flush or a
        close in progress is not charged (they write everything, whatever the budget)."""
        now, cpu = time.monotonic(), time.thread_time()
        used = cpu - self._paced_cpu
        refill = (now - self._paced_at) * self.budget  # type: ignore[operator]
        self._paced_at, self._paced_cpu = now, cpu
        if self.urgent or self.stopping:
            return False
        self._allowance = min(self._allowance + refill, self.burst) - used
        return self._allowance < 0

    def _pause(self) -> None:
        """Sleep until the allowance is back to ``WRITER_PAUSE_S`` of budget; a flush() or a
        close() ends the pause at once (they ring the bell)."""
        self.held_back = True
        budget: float = self.budget  # type: ignore[assignment]
        until = time.monotonic() + WRITER_PAUSE_S - self._allowance / budget
        while not (self.urgent or self.stopping):
            left = until - time.monotonic()
            if left <= 0:
                break
            self._bell.acquire(timeout=left)

    def _encode_whole(self, trace: _Pending) -> tuple[TraceInfo, bytearray] | None:
        """Encode what a finished trace kept, for a segment append: its records as they are (a
        finished trace's, which nothing appends to any more: no copy); None when that failed
        (a bug of ours: that trace only, counted and logged as a sink error)."""
        try:
            if type(trace) is _StreamSession:
                trace.complete()
            return trace.info, trace.records
        except BaseException:
            self._sink_failed(trace, None)
            return None

    def _append_whole(self, whole: list[tuple[_Pending, tuple[TraceInfo, bytearray]]]) -> int:
        """Append these encoded finished traces to the segment sink in one write (one GIL
        hand-off for the batch, not three per trace). Returns how many are on disk; each one
        lost is counted and logged as a sink error."""
        if not whole:
            return 0
        try:
            results: list[OSError | None] | list[BaseException] = self.append(  # type: ignore[misc]
                [entry for _, entry in whole]
            )
        except BaseException as failure:
            results = [failure] * len(whole)
        written = 0
        for (trace, _), error in zip(whole, results, strict=True):
            if error is None:
                written += 1
            else:
                self._sink_failed(trace, None, error)
        return written

    def _publish(self, written: int, freed: int) -> None:
        c = self.counts
        with c.lock:
            c.written += written
            c.queued_bytes -= freed

    def _stream_due(self) -> None:
        """Stream running executions (see _stream_running) once ``interval`` has passed since
        the last time."""
        now = time.monotonic()
        if now >= self.next_stream:
            self._stream_running(force=False)
            self.next_stream = now + self.interval

    def _stream_running(self, *, force: bool) -> None:
        """Write what executions still running have recorded (those older than the interval)."""
        limit = time.perf_counter_ns() - int(self.interval * 1e9)
        for session in list(self.running.values()):
            if force or session.t0 <= limit:
                try:
                    self._write_records(session)
                except BaseException:
                    self._sink_failed(session, session.stream)

    def give_up_at_exit(self) -> int:
        """After the exit flush: the traces still queued (finished after it began) are counted
        as dropped and let go; how many."""
        lost = freed = 0
        done = self.done
        while True:
            try:
                item = done.popleft()
            except IndexError:
                break
            if isinstance(item, _Pending):
                item.broken = True
                lost += 1
                freed += item.size
                next(self.counts.drops)
            else:
                item.set()  # a flush() waiting in another thread: nothing more is written
        if lost:
            self._publish(0, freed)
        return lost

    def write_now(self, trace: _Pending) -> None:
        """Write a finished trace in the calling thread (a memory sink: in the handler's)."""
        if self.write_trace(trace):
            self._publish(1, 0)

    def write_trace(self, trace: _Pending) -> bool:
        """Write a finished trace's remaining records and close it; True when it is written
        (not counted here: the caller counts a batch at once)."""
        if trace.broken:
            # Dropped after the writer streamed part of it (max_queue_bytes): remove that part.
            # (A sink error has already closed its stream and counted the loss; a trace begun
            # before a fork was the parent's, and the child has closed its copy.)
            trace.records.clear()
            stream, trace.stream = trace.stream, None
            if stream is not None:
                _abort(stream)
            return False
        if type(trace) is _StreamSession:
            trace.complete()
        records = trace.records
        stream = trace.stream
        if records:
            # Finished and handed over: nothing appends to ``records`` any more, so a stream of
            # ours writes it as is (the common case, a whole trace at once: open, one write,
            # close); any other sink gets bytes, which it may keep.
            try:
                if stream is None:
                    stream = trace.stream = self.sink.open(trace.info)
                stream.write(
                    # (ours take any buffer: TraceStream's ``bytes`` is what other sinks get)
                    cast(bytes, records) if type(stream) in _BORROWING_STREAMS else bytes(records)
                )
            except Exception:
                self._sink_failed(trace, trace.stream)
                return False
        trace.stream = None
        try:
            if stream is not None:
                stream.close()
        except Exception:
            self._sink_failed(trace, None)
            return False
        records.clear()  # (a stream of ours is done with it once closed)
        return True

    def _write_records(self, trace: _Pending) -> None:
        """Write what a running execution has recorded so far: whole records, in order, in one
        write. The handler may be appending meanwhile (see ``_Pending``): the records are
        copied out and removed first (two C calls, no view of them kept), then written."""
        records = trace.records
        if trace.broken:
            records.clear()
            return
        if not records:
            return
        data = bytes(records)  # every whole record there now...
        del records[: len(data)]  # ...and exactly those: what was appended since stays
        try:
            stream = trace.stream
            if stream is None:
                stream = trace.stream = self.sink.open(trace.info)
            stream.write(data)
        except BaseException:
            self._sink_failed(trace, trace.stream)

    def _sink_failed(
        self, trace: _Pending, stream: TraceStream | None, error: BaseException | None = None
    ) -> None:
        # Already given up on (dropped when it finished, while this write of it was under way;
        # or lost before): counted then, and each execution is counted once. Tested and set
        # under the lock _enqueue's drop takes for the same (see there).
        c = self.counts
        with c.lock:
            counted = trace.broken
            trace.broken = True
            if not counted:
                c.sink_errors += 1
                errors = c.sink_errors
        trace.stream = None
        if stream is not None:
            _abort(stream)
        try:
            trace.records.clear()
        except BufferError:  # (a view of it still held somewhere: it is freed with the trace)
            pass
        if counted:
            return
        c.log_fault(
            "sink",
            "prodture: trace sink %r failed for %s (trace %s); %d traces lost to sink errors so "
            "far; handlers are unaffected",
            self.sink,
            trace.info.handler,
            trace.info.trace_id,
            errors,
            exc_info=error or True,
        )


#: Streams of ours that keep nothing they are given past ``close()``: a finished trace's
#: ``records`` is written to them as is, never copied into a ``bytes`` first.
_BORROWING_STREAMS = frozenset({_FileStream, _MemoryStream})


def _abort(stream: TraceStream) -> None:
    """Remove what a stream wrote (``abort()``), or at least close it."""
    try:
        abort = getattr(stream, "abort", None)
        if abort is not None:
            abort()
        else:
            stream.close()
    except BaseException:
        pass


def _close_all_at_exit() -> None:
    """A normal exit loses nothing finished before it: every writer writes what was handed over
    before this began (each within ``EXIT_FLUSH_TIMEOUT_S``: a stuck sink must not hang the
    exit), then its thread ends and none starts again. A trace finished after (a daemon thread
    still recording) is not written but counted as dropped and logged: a writer going on would
    be stopped by the interpreter's end wherever it was, leaving a file empty or cut short."""
    for writer in list(_writers):
        try:
            if not writer.stop(EXIT_FLUSH_TIMEOUT_S, at_exit=True):
                log.warning(
                    "prodture: the trace writer for %r did not finish within %.0f s at exit; "
                    "%d traces were not written",
                    writer.sink,
                    EXIT_FLUSH_TIMEOUT_S,
                    len(writer.done),
                )
            elif writer.thread is None:
                lost = writer.give_up_at_exit()
                if lost:
                    log.warning(
                        "prodture: %d traces finished during the exit flush (threads still "
                        "recording) were not written, nor are any finished later",
                        lost,
                    )
        except Exception:
            log.exception("prodture: writing pending traces at exit failed")


atexit.register(_close_all_at_exit)


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1
    _ids.seed()  # from os.urandom: a child must not repeat its parent's trace ids
    _id_pool.clear()  # (made by the parent)
    for writer in list(_writers):
        writer.after_fork_in_child()
    for sink in list(_memory_sinks):
        sink._after_fork_in_child()


_multiprocessing_hooked = False


def _before_fork() -> None:
    """A child that ``multiprocessing`` starts by forking ends with ``os._exit()``, which skips
    ``atexit``: ask multiprocessing (when in use) to write what such a child has pending when it
    ends, like any normal exit."""
    global _multiprocessing_hooked
    if _multiprocessing_hooked:
        return
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util.register_after_fork(_close_all_at_exit, _close_at_multiprocessing_exit)
        _multiprocessing_hooked = True


def _close_at_multiprocessing_exit(_: object) -> None:
    """In a child multiprocessing has just forked (its after-fork hooks run once its exit
    handlers are reset): its exit runs :func:`_close_all_at_exit`."""
    util = sys.modules["multiprocessing.util"]
    util.Finalize(None, _close_all_at_exit, exitpriority=0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
