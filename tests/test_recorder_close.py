"""close() and flush() under a load that never ends, and a trace counted exactly once when its
drop and a failed streamed write of it race.

No test depends on timing: every wait has a generous bound, so a bug fails a test instead of
hanging it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import prodture
from prodture import DirectorySink, Interpreter, Recorder, read_trace

# The effect and handlers of the writer review tests (a handler of n lookups; a long execution
# of three, streamed while it runs).
from test_review_s21 import Lookup, Unkept, long_execution, lookup, lookups


def _in_thread(call: Any, seconds: float = 60) -> list[Any]:
    """``call()`` in a daemon thread joined within ``seconds``: [its result], or [] when it
    did not return (a hang fails the test instead of hanging it)."""
    answers: list[Any] = []
    thread = threading.Thread(target=lambda: answers.append(call()), daemon=True)
    thread.start()
    thread.join(seconds)
    return answers


def test_close_returns_while_threads_record_without_pause_and_loses_nothing(tmp_path):
    """close() promised to write traces finished during the close too: under a load that never
    ends it never returned. It returns once what was finished before the call is written; what
    finishes later is written by the writer, which goes on (or the next close), and every
    execution is accounted for."""
    recorder = Recorder(DirectorySink(tmp_path), writer_cpu_budget=None)
    interpreter = Interpreter({Lookup: lookup}, recorder=recorder)
    stop = threading.Event()
    results: list[list[int]] = []

    def record_until_stopped() -> None:
        mine: list[int] = []
        results.append(mine)
        while not stop.is_set():
            mine.append(interpreter.run(lookups, 3).value)

    workers = [threading.Thread(target=record_until_stopped, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        before = _in_thread(lambda: recorder.flush(timeout=60))
        assert before == [True]
        for call in (recorder.close, recorder.flush, recorder.close):
            assert _in_thread(call) == [True], f"{call.__name__}() did not return under load"
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    assert not any(worker.is_alive() for worker in workers)
    assert recorder.close(timeout=60)
    stats = recorder.stats
    ran = sum(len(mine) for mine in results)
    assert all(value == 3 for mine in results for value in mine)
    assert stats.traces_started == ran
    assert stats.traces_started == (
        stats.traces_written + stats.traces_discarded + stats.traces_dropped + stats.sink_errors
    ), stats
    assert stats.sink_errors == 0 and stats.queue_depth == 0 and stats.queue_bytes == 0
    files = sorted(tmp_path.glob("*.prodtrace"))
    assert len(files) == stats.traces_written > 0
    assert all(read_trace(path).outcome.value == 3 for path in files)


def test_flush_without_a_writer_thread_returns_while_threads_record_without_pause(tmp_path):
    """At interpreter exit no writer thread can start, and flush() writes in the calling thread;
    daemon threads still recording kept handing it traces, and it drained until the queue was
    empty: never, under a load that never ends. It stops at its own marker."""
    recorder = Recorder(DirectorySink(tmp_path), writer_cpu_budget=None)
    recorder._writer._ensure_thread = lambda: None  # type: ignore[method-assign]
    interpreter = Interpreter({Lookup: lookup}, recorder=recorder)
    stop = threading.Event()
    ran: list[int] = []

    def record_until_stopped() -> None:
        while not stop.is_set():
            ran.append(interpreter.run(lookups, 2).value)

    workers = [threading.Thread(target=record_until_stopped, daemon=True) for _ in range(3)]
    for worker in workers:
        worker.start()
    try:
        assert _in_thread(lambda: recorder.flush(timeout=60)) == [True], "flush() hung"
        assert _in_thread(lambda: recorder.close(timeout=60)) == [True], "close() hung"
    finally:
        stop.set()
        for worker in workers:
            worker.join(60)
    assert recorder.flush(timeout=60)  # what was handed over since, written here too
    stats = recorder.stats
    assert stats.traces_started == len(ran) and stats.queue_depth == 0
    assert stats.traces_started == stats.traces_written + stats.traces_dropped, stats
    files = sorted(tmp_path.glob("*.prodtrace"))
    assert len(files) == stats.traces_written > 0
    assert all(read_trace(path).outcome.value == 2 for path in files)


def test_close_waits_for_what_finished_before_it(tmp_path):
    """What finished before close() is on disk when it returns (the writer asleep or not)."""
    recorder = Recorder(DirectorySink(tmp_path), writer_cpu_budget=None)
    interpreter = Interpreter({Lookup: lookup}, recorder=recorder)
    for n in range(5):
        assert interpreter.run(lookups, n).ok
    assert _in_thread(recorder.close) == [True]
    assert recorder._writer.thread is None  # nothing handed over since: the thread ended
    assert sorted(read_trace(p).outcome.value for p in tmp_path.glob("*.prodtrace")) == [
        0,
        1,
        2,
        3,
        4,
    ]


def test_a_trace_dropped_while_its_streamed_write_fails_in_between_is_counted_once(caplog):
    """A finished trace dropped (the queue's bytes full) was counted as dropped before it was
    marked given up on: a streamed write of it failing in between counted it again, as a sink
    error. Forced here: the drop's log line (written right after the count) lets the blocked
    write fail, and waits until the writer has looked at the trace."""
    writing, release, aborted = threading.Event(), threading.Event(), threading.Event()
    traces: list[bytes] = []

    class Stream:
        def __init__(self, failing: bool) -> None:
            self.failing = failing
            self.data = bytearray()

        def write(self, data: bytes) -> None:
            if self.failing:
                writing.set()
                assert release.wait(60)
                raise OSError(28, "No space left on device")
            self.data += data

        def close(self) -> None:
            traces.append(bytes(self.data))

        def abort(self) -> None:
            aborted.set()

    class Sink:
        def open(self, info: Any) -> Stream:
            return Stream(failing=info.handler == "test_review_s21:long")

    class FailTheWriteWhenDropped(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "traces dropped so far" in record.getMessage():
                release.set()  # the streamed write fails now...
                assert aborted.wait(60)  # ...and the writer has decided how to count it

    recorder = Recorder(Sink(), writer_cpu_budget=None, flush_interval=3600, max_queue_bytes=1)
    short = Interpreter({Lookup: lookup}, recorder=recorder)
    flushes: list[threading.Thread] = []

    def lookup_streamed(effect: Lookup) -> dict[str, str]:
        if effect.key == "long-1":
            # A flush streams the running execution: its write blocks until released.
            flushing = threading.Thread(target=recorder.flush, daemon=True)
            flushes.append(flushing)
            flushing.start()
            assert writing.wait(60)
            assert short.run(lookups, 1).ok  # queued behind it: the queue's bytes are full
        return lookup(effect)

    handler = FailTheWriteWhenDropped()
    logger = logging.getLogger("prodture")
    logger.addHandler(handler)
    try:
        interpreter = Interpreter({Lookup: lookup_streamed}, recorder=recorder)
        assert interpreter.run(long_execution, Unkept()) == prodture.Success(3)
    finally:
        logger.removeHandler(handler)
        release.set()
    assert release.is_set() and aborted.is_set()
    assert recorder.close(timeout=60)
    flushes[0].join(60)
    stats = recorder.stats
    assert stats.traces_started == 2 and stats.traces_written == 1
    assert stats.traces_dropped + stats.sink_errors == 1, stats
    assert [read_trace(data).outcome.value for data in traces] == [1]
