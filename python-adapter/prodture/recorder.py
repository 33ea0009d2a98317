"""Recording: what the interpreter did, written as a trace, without ever changing the outcome.

``Interpreter(performers, recorder=Recorder(DirectorySink("traces")))`` records every execution.
Modes: :data:`ALWAYS`, :data:`ON_FAILURE` (kept in memory, written only when the handler fails) and
:class:`Sampled`. A sink that fails is counted in :attr:`Recorder.stats` and logged; the handler's
result is never affected. Secrets are removed at record time by a :class:`~prodture.trace.Redactor`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import logging
import os
import random
import re
import threading
import time
import uuid
from typing import Any, Protocol

from .runtime import EffectCall, Outcome, handlers
from .trace.codec import Redactor
from .trace.format import TraceEncoder, code_fingerprint

__all__ = [
    "Recorder",
    "RecorderStats",
    "Sink",
    "TraceStream",
    "DirectorySink",
    "MemorySink",
    "ALWAYS",
    "ON_FAILURE",
    "Sampled",
]

log = logging.getLogger("prodture.recorder")

ALWAYS = "always"
ON_FAILURE = "on-failure"


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
    """Where traces go. ``open`` is called once per recorded execution."""

    def open(self, info: TraceInfo) -> TraceStream: ...


class _FileStream:
    __slots__ = ("fd", "path")

    def __init__(self, path: str, file_mode: int) -> None:
        self.path = path
        # O_EXCL: never overwrite; O_APPEND + one write per record: a kill leaves whole records.
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, file_mode)

    def write(self, data: bytes) -> None:
        written = os.write(self.fd, data)
        if written != len(data):  # a short write (signal, full disk): finish the record
            view = memoryview(data)[written:]
            while view:
                view = view[os.write(self.fd, view) :]

    def close(self) -> None:
        os.close(self.fd)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class DirectorySink:
    """One file per execution in ``directory``: ``<UTC time>-<handler>-<id>.prodtrace``.

    Names sort by start time and never collide (the id is random and files are opened with
    ``O_EXCL``). Each record reaches the kernel as soon as it is written. Files are readable by
    their owner only (``file_mode=0o600``) because traces hold customer data, redaction or not.
    """

    def __init__(self, directory: str | os.PathLike[str], *, file_mode: int = 0o600) -> None:
        self.directory = os.fspath(directory)
        self.file_mode = file_mode
        os.makedirs(self.directory, exist_ok=True)

    def open(self, info: TraceInfo) -> _FileStream:
        stamp = info.started_at.strftime("%Y%m%dT%H%M%S.%fZ")
        short = _UNSAFE.sub("_", info.handler.rsplit(":", 1)[-1])[:40]
        name = f"{stamp}-{short}-{info.trace_id[:12]}.prodtrace"
        return _FileStream(os.path.join(self.directory, name), self.file_mode)


class _MemoryStream:
    __slots__ = ("sink", "chunks", "info")

    def __init__(self, sink: MemorySink, info: TraceInfo) -> None:
        self.sink, self.info, self.chunks = sink, info, []

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.sink._closed(self)


class MemorySink:
    """Keeps traces in memory (tests, or a buffer in front of another transport)."""

    def __init__(self) -> None:
        self.traces: list[bytes] = []
        self._lock = threading.Lock()

    def open(self, info: TraceInfo) -> _MemoryStream:
        return _MemoryStream(self, info)

    def _closed(self, stream: _MemoryStream) -> None:
        with self._lock:
            self.traces.append(b"".join(stream.chunks))


@dataclasses.dataclass
class RecorderStats:
    traces_started: int = 0
    traces_written: int = 0
    traces_discarded: int = 0
    sink_errors: int = 0
    encode_errors: int = 0


class Recorder:
    """Turns interpreter runs into traces; pass it as ``Interpreter(..., recorder=...)``.

    ``redact``: a :class:`Redactor`, a list of field-name patterns, or ``None`` for no redaction
    (the default redacts common secret names such as ``password``, ``token``, ``card_number``).
    Safe to share between threads and asyncio tasks: each execution has its own session.
    """

    def __init__(
        self,
        sink: Sink,
        *,
        mode: str | Sampled = ALWAYS,
        redact: Redactor | list[str] | tuple[str, ...] | None = Redactor(),  # noqa: B008 -- Redactor is immutable, one shared default is safe
        meta: dict[str, Any] | None = None,
    ) -> None:
        if mode not in (ALWAYS, ON_FAILURE) and not isinstance(mode, Sampled):
            raise ValueError(
                f"unknown recording mode {mode!r}: use 'always', 'on-failure' or Sampled(rate)"
            )
        self.sink = sink
        self.mode = mode
        self.redactor = (
            redact if isinstance(redact, Redactor) or redact is None else Redactor(redact)
        )
        self.meta = dict(meta or {})
        self.stats = RecorderStats()
        self._lock = threading.Lock()

    def _count(self, field: str) -> None:
        with self._lock:
            setattr(self.stats, field, getattr(self.stats, field) + 1)

    def begin(
        self, handler_name: str, input: Any, *, meta: dict[str, Any] | None = None
    ) -> _Session | None:
        """Start recording one execution; ``meta`` adds to this trace's header ``meta`` (the
        OpenTelemetry bridge puts the span's ids there)."""
        mode = self.mode
        if isinstance(mode, Sampled) and random.random() >= mode.rate:
            return None
        self._count("traces_started")
        return _Session(self, handler_name, input, buffered=(mode == ON_FAILURE), meta=meta)


class _Session:
    """One execution being recorded."""

    __slots__ = ("recorder", "encoder", "info", "stream", "buffer", "broken", "t0", "discarded")

    def __init__(
        self,
        recorder: Recorder,
        handler_name: str,
        input: Any,
        buffered: bool,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.recorder = recorder
        self.encoder = TraceEncoder(recorder.redactor)
        self.info = TraceInfo(handler_name, uuid.uuid4().hex, _dt.datetime.now(_dt.timezone.utc))
        self.stream: TraceStream | None = None
        self.buffer: list[bytes] | None = [] if buffered else None
        self.broken = False
        self.discarded = False
        self.t0 = time.perf_counter_ns()
        fn = handlers.get(handler_name)
        fn = getattr(fn, "__wrapped__", fn)  # a route wrapper (prodture.fastapi): the user's code
        fingerprint = (
            code_fingerprint(fn.__code__.co_filename)
            if fn is not None and hasattr(fn, "__code__")
            else ""
        )
        head = self.encoder.header(
            handler_name,
            trace_id=self.info.trace_id,
            started_at=self.info.started_at,
            fingerprint=fingerprint,
            meta={**recorder.meta, **meta} if meta else recorder.meta,
        )
        self._emit(head + self.encoder.input(input))

    @property
    def trace_id(self) -> str | None:
        """This execution's trace id; ``None`` once the trace is discarded (on-failure mode, and
        the handler succeeded)."""
        return None if self.discarded else self.info.trace_id

    def _emit(self, data: bytes) -> None:
        if self.broken:
            return
        if self.buffer is not None:
            self.buffer.append(data)
            return
        try:
            if self.stream is None:
                self.stream = self.recorder.sink.open(self.info)
            self.stream.write(data)
        except Exception:
            self._sink_failed()

    def _sink_failed(self) -> None:
        self.broken = True
        self.recorder._count("sink_errors")
        log.warning(
            "prodture: trace sink %r failed for %s (trace %s); this trace is dropped, the handler is unaffected",
            self.recorder.sink,
            self.info.handler,
            self.info.trace_id,
            exc_info=True,
        )

    def effect(
        self, call: EffectCall, ok: bool, value: Any, start_ns: int, duration_ns: int
    ) -> None:
        if self.broken:
            return
        try:
            data = self.encoder.effect(
                call.seq, call.effect, ok, value, start_ns - self.t0, duration_ns, call.site
            )
        except Exception:
            self.recorder._count("encode_errors")
            log.warning(
                "prodture: could not encode effect #%d of %s",
                call.seq,
                self.info.handler,
                exc_info=True,
            )
            return
        stream = self.stream
        if stream is not None:  # the common case: the sink is open, write straight through
            try:
                stream.write(data)
            except Exception:
                self._sink_failed()
            return
        self._emit(data)

    def finish(self, outcome: Outcome) -> None:
        if self.broken:
            return
        duration = time.perf_counter_ns() - self.t0
        if outcome.ok:
            data = self.encoder.outcome(True, outcome.value, "", None, duration)
        else:
            data = self.encoder.outcome(
                False, outcome.error, outcome.traceback, outcome.effect_seq, duration
            )
        if self.buffer is not None:
            if outcome.ok:
                self.recorder._count("traces_discarded")
                self.buffer = None
                self.discarded = True
                return
            chunks, self.buffer = self.buffer, None
            self._emit(b"".join(chunks) + data)
        else:
            self._emit(data)
        try:
            if self.stream is not None:
                self.stream.close()
        except Exception:
            self._sink_failed()
            return
        if not self.broken:
            self.recorder._count("traces_written")
