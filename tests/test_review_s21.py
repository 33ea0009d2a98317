"""Adversarial review of the recorder's writer (one bytearray of records per trace, stop()
asking again until the thread ends): what broke, each with the test that failed before its fix.

No test depends on timing: every wait has a timeout, so a bug fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import threading
import time
from typing import Any

import pytest

import prodture
from prodture import DirectorySink, Effect, Interpreter, Recorder, read_trace


@dataclasses.dataclass(frozen=True)
class Lookup(Effect, name="test_review_s21.Lookup"):
    key: str


def lookup(effect: Lookup) -> dict[str, str]:
    return {"key": effect.key}


@prodture.handler(name="test_review_s21:lookups")
def lookups(n: int):
    for i in range(n):
        yield Lookup(f"k{i}")
    return n


class Unkept:
    """An input that cannot be kept: the trace is encoded at once, so streamed while it runs."""


@prodture.handler(name="test_review_s21:long")
def long_execution(_: Unkept):
    """Three lookups, ``long-0`` to ``long-2``: its performers pause at ``long-1``."""
    for i in range(3):
        yield Lookup(f"long-{i}")
    return 3


class OnceCancelledSink:
    """A sink that uploads with an asyncio client: its first upload is cancelled at ``where``
    (``asyncio.CancelledError``, a ``BaseException``, as a cancelled ``await`` raises it), later
    ones work. A cancelled upload loses that trace, no other."""

    def __init__(self, where: str) -> None:
        self.where = where
        self.cancelled = False
        self.traces: list[bytes] = []

    def _maybe_cancel(self, where: str) -> None:
        if where == self.where and not self.cancelled:
            self.cancelled = True
            raise asyncio.CancelledError

    def open(self, info: Any) -> _UploadStream:
        self._maybe_cancel("open")
        return _UploadStream(self)


class _UploadStream:
    def __init__(self, sink: OnceCancelledSink) -> None:
        self.sink = sink
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sink._maybe_cancel("write")
        self.chunks.append(bytes(data))

    def close(self) -> None:
        self.sink._maybe_cancel("close")
        self.sink.traces.append(b"".join(self.chunks))

    def abort(self) -> None:
        self.sink._maybe_cancel("abort")
        self.chunks = []


def _flush_within(recorder: Recorder, seconds: float) -> bool | None:
    """``recorder.flush()`` without a timeout, in a thread joined within ``seconds``: its
    answer, or None when it was still waiting (it hung)."""
    answers: list[bool] = []
    flushing = threading.Thread(target=lambda: answers.append(recorder.flush()), daemon=True)
    flushing.start()
    flushing.join(seconds)
    return answers[0] if answers else None


@pytest.mark.parametrize("where", ["open", "write", "close"])
def test_a_sink_raising_a_base_exception_loses_that_trace_only_and_never_stops_the_writer(where):
    """A sink call that raises a ``BaseException`` that is not an ``Exception`` (a cancelled
    asyncio upload) lost that trace and killed the writer thread: every later trace waited in
    the queue for ever (then was dropped), ``flush()``/``close()`` without a timeout hung, and
    the loss was not counted. It must cost that one trace, counted as a sink error."""
    sink = OnceCancelledSink(where)
    recorder = Recorder(sink, writer_cpu_budget=None)
    interpreter = Interpreter({Lookup: lookup}, recorder=recorder)
    assert interpreter.run(lookups, 2) == prodture.Success(2)
    assert _flush_within(recorder, 30) is True, "flush() hung: the writer thread died"
    assert sink.cancelled
    for n in range(3, 8):
        assert interpreter.run(lookups, n) == prodture.Success(n)
    assert _flush_within(recorder, 30) is True, "flush() hung: the writer thread died"
    assert recorder.close(timeout=30)
    stats = recorder.stats
    assert stats.sink_errors == 1 and stats.traces_dropped == 0
    assert stats.traces_written == stats.traces_started - 1 == 5
    assert [read_trace(data).outcome.value for data in sink.traces] == list(range(3, 8))


def test_a_base_exception_while_streaming_a_running_execution_never_stops_the_writer():
    """The same from a running execution's records, streamed while it runs: the writer gives
    up that trace (counted) and goes on writing the others."""
    sink = OnceCancelledSink("write")
    recorder = Recorder(sink, writer_cpu_budget=None)
    streamed: list[bool | None] = []

    def lookup_then_flush(effect: Lookup) -> dict[str, str]:
        if effect.key == "long-1":  # the header and first records are encoded: stream them now
            streamed.append(_flush_within(recorder, 30))
        return lookup(effect)

    interpreter = Interpreter({Lookup: lookup_then_flush}, recorder=recorder)
    assert interpreter.run(long_execution, Unkept()) == prodture.Success(3)
    assert streamed == [True] and sink.cancelled
    interpreter = Interpreter({Lookup: lookup}, recorder=recorder)
    assert interpreter.run(lookups, 4) == prodture.Success(4)
    assert _flush_within(recorder, 30) is True, "flush() hung: the writer thread died"
    assert recorder.close(timeout=30)
    stats = recorder.stats
    assert stats.sink_errors == 1 and stats.traces_written == 1
    assert [read_trace(data).outcome.value for data in sink.traces] == [4]


def test_a_writer_thread_that_could_not_start_is_started_by_a_later_trace(tmp_path, monkeypatch):
    """``Thread.start()`` raising (``RuntimeError: can't start new thread``: a container at its
    pids limit for a moment) left the writer marked awake with no thread: no later hand-off
    rang it again, so every later trace waited in the queue until it was full, then all were
    dropped, for good (only a flush() started a thread). A later trace must start it."""
    recorder = Recorder(DirectorySink(tmp_path), writer_cpu_budget=None)
    interpreter = Interpreter({Lookup: lookup}, recorder=recorder)
    real_start = threading.Thread.start
    refused: list[str] = []

    def start_refused_once(thread: threading.Thread) -> None:
        if thread.name == "prodture-trace-writer" and not refused:
            refused.append(thread.name)
            raise RuntimeError("can't start new thread")
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start_refused_once)
    assert interpreter.run(lookups, 1) == prodture.Success(1)
    assert refused and recorder._writer.thread is None
    for n in range(2, 5):
        assert interpreter.run(lookups, n) == prodture.Success(n)
    deadline = time.monotonic() + 30  # (a bound on the wait, not a timing assert)
    while recorder.stats.traces_written < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.stats.traces_written == 4, "no writer thread: traces wait in the queue"
    assert recorder.close(timeout=30)
    assert sorted(read_trace(p).outcome.value for p in tmp_path.glob("*.prodtrace")) == [1, 2, 3, 4]


def test_a_trace_handed_over_while_the_writer_ends_is_still_written(tmp_path):
    """The writer thread ends (close(): nothing left) after one last look at its queue. A trace
    handed over between that look and the end found the writer still marked awake, so it did
    not ring it, and the writer ended: the trace waited in the queue with no thread, unwritten
    until some later trace or the process's exit (for ever, for a service that goes idle; a
    kill loses it). The look is made here to miss a trace handed over right then, every time."""
    recorder = Recorder(DirectorySink(tmp_path), writer_cpu_budget=None)
    interpreter = Interpreter({Lookup: lookup}, recorder=recorder)
    assert interpreter.run(lookups, 1).ok
    assert recorder.flush(timeout=30)
    writer = recorder._writer
    handed_over = threading.Event()
    raced: list[threading.Thread] = []

    class QueueLookedAtTooEarly(collections.deque):
        def append(self, item: Any) -> None:
            super().append(item)
            if not isinstance(item, threading.Event):
                handed_over.set()

        def __len__(self) -> int:
            n = super().__len__()
            if (
                not raced
                and writer.stopping
                and threading.current_thread().name == "prodture-trace-writer"
            ):
                # The writer's last look before it ends: a trace is handed over right after.
                run = threading.Thread(target=interpreter.run, args=(lookups, 2), daemon=True)
                raced.append(run)
                run.start()
                assert handed_over.wait(30)
            return n

        def __bool__(self) -> bool:  # (3.10's deque tests its truth without __len__)
            return self.__len__() > 0

    writer.done = QueueLookedAtTooEarly(writer.done)
    assert recorder.close(timeout=30)
    assert raced, "the writer never looked at its queue before ending"
    raced[0].join(30)
    deadline = time.monotonic() + 30  # (a bound on the wait, not a timing assert)
    while recorder.stats.traces_written < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert recorder.stats.traces_written == 2, "the trace waits in a queue no thread writes"
    assert recorder.close(timeout=30)
    assert sorted(read_trace(p).outcome.value for p in tmp_path.glob("*.prodtrace")) == [1, 2]


def test_a_long_execution_is_streamed_while_the_writer_never_runs_dry():
    """A running execution's records are written every ``flush_interval`` (what a kill can
    lose is bounded by it). The writer streamed them only once a pass over its queue found it
    empty, which under sustained load (a full queue: the CPU budget, a slow sink) may never
    happen: the long execution was not streamed at all, its records piling up in memory. Here
    each finished trace's write waits until another one is queued, so the queue never runs dry
    while the load lasts; the long execution waits (bounded) for its first records to reach
    the sink."""
    stop = threading.Event()
    streamed = threading.Event()
    recorder: Recorder

    class NeverDrySink:
        def open(self, info: Any) -> Any:
            if info.handler == "test_review_s21:long":
                return LongStream()
            deadline = time.monotonic() + 30  # (a bound only)
            while not recorder._writer.done and not stop.is_set():
                if time.monotonic() > deadline:
                    break
                time.sleep(0.0005)
            return ShortStream()

    class LongStream:
        def write(self, data: bytes) -> None:
            streamed.set()

        def close(self) -> None:
            pass

    class ShortStream:
        def write(self, data: bytes) -> None:
            pass

        def close(self) -> None:
            pass

    waited: list[bool] = []

    def lookup_waiting_to_be_streamed(effect: Lookup) -> dict[str, str]:
        if effect.key == "long-1":
            waited.append(streamed.wait(30))
        return lookup(effect)

    recorder = Recorder(NeverDrySink(), writer_cpu_budget=None, flush_interval=0.01)
    interpreter = Interpreter({Lookup: lookup_waiting_to_be_streamed}, recorder=recorder)

    def keep_recording() -> None:
        while not stop.is_set():
            if len(recorder._writer.done) < 100:  # a queue never full: nothing dropped
                interpreter.run(lookups, 1)
            else:
                time.sleep(0.0005)

    load = [threading.Thread(target=keep_recording, daemon=True) for _ in range(2)]
    for thread in load:
        thread.start()
    try:
        deadline = time.monotonic() + 30  # until the writer has a queue to work through
        while recorder.stats.traces_written < 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        outcome = interpreter.run(long_execution, Unkept())
    finally:
        stop.set()
        for thread in load:
            thread.join(30)
    assert outcome == prodture.Success(3)
    assert waited == [True], "the long execution was not streamed while the load lasted"
    assert recorder.close(timeout=30)


def test_a_trace_dropped_while_its_streamed_write_fails_is_counted_once():
    """Every recorded execution ends as exactly one of written, discarded, dropped or lost to a
    sink error (RecorderStats). A long execution dropped when it finished (the queue's bytes
    full) while the writer was streaming it, in a write that then failed, was counted twice:
    dropped, and a sink error."""
    writing, release = threading.Event(), threading.Event()

    class FailingLongStream:
        def write(self, data: bytes) -> None:
            writing.set()
            assert release.wait(30)
            raise OSError(28, "No space left on device")

        def close(self) -> None:
            pass

    class Sink(OnceCancelledSink):  # (never cancelled)
        def open(self, info: Any) -> Any:
            if info.handler == "test_review_s21:long":
                return FailingLongStream()
            return super().open(info)

    sink = Sink(where="never")
    recorder = Recorder(sink, writer_cpu_budget=None, flush_interval=0.01, max_queue_bytes=1)
    short = Interpreter({Lookup: lookup}, recorder=recorder)

    def lookup_once_streaming(effect: Lookup) -> dict[str, str]:
        if effect.key == "long-1":
            assert writing.wait(30)  # the writer is in the long execution's streamed write
            assert short.run(lookups, 1).ok  # queued behind it: the queue's bytes are full
        return lookup(effect)

    interpreter = Interpreter({Lookup: lookup_once_streaming}, recorder=recorder)
    try:
        assert interpreter.run(long_execution, Unkept()) == prodture.Success(3)
        assert recorder.stats.traces_dropped == 1  # the long one, when it finished
    finally:
        release.set()  # its streamed write now fails
    assert recorder.close(timeout=30)
    stats = recorder.stats
    assert stats.traces_started == 2 and stats.traces_written == 1
    assert stats.traces_dropped + stats.sink_errors == 1, stats
    assert [read_trace(data).outcome.value for data in sink.traces] == [1]
