"""The path of a dropped execution: in the steady state of a service that outruns its writer,
nearly every execution's trace is dropped at ``Recorder.begin``, so that path takes no lock.

What must still hold: ``stats`` counts every drop exactly (and every drop while the writer was
held back by its budget), even with many threads dropping at once and ``stats`` read meanwhile;
a snapshot never shows more dropped than started; the "writer is behind" fault is logged at
most once per ``LOG_INTERVAL_S`` (a replaced clock, no sleeps); a forked child starts from zero;
and a dropped execution runs exactly like an unrecorded one. No test depends on timing: the
writer is held inside its sink by an event until the test lets it go.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import prodture.recorder as recorder_module
from prodture import Effect, Interpreter, Recorder, handler
from prodture.recorder import LOG_INTERVAL_S
from prodture.runtime import current_trace_id

BEHIND = "the trace writer is behind"


@dataclasses.dataclass(frozen=True)
class Add(Effect, name="test_drop_path.Add"):
    n: int


@handler(name="test_drop_path.add_twice")
def add_twice(n):
    a = yield Add(n)
    b = yield Add(a)
    return {"result": b, "trace_id": current_trace_id.get()}


class _NullStream:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class HeldSink:
    """A sink whose first ``open`` waits until ``release`` is set: the writer is held with the
    first trace, the next one fills a queue of one, and every later trace is dropped."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.opened = threading.Event()
        self.opens = 0

    def open(self, info) -> _NullStream:
        self.opens += 1
        self.opened.set()
        if not self.release.wait(timeout=60):
            raise TimeoutError("the test never released the sink")
        return _NullStream()


class Performed:
    """The ``Add`` performer, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, effect: Add) -> int:
        with self._lock:
            self.calls += 1
        return effect.n + 1


@pytest.fixture
def held() -> Iterator[tuple[HeldSink, Recorder, Interpreter, Performed]]:
    """A recorder whose queue is full (its writer held in the sink): every trace begun from now
    on is dropped at ``begin``. Started: 2 (one in the sink, one queued)."""
    sink = HeldSink()
    recorder = Recorder(sink, max_queue=1)
    performed = Performed()
    interpreter = Interpreter({Add: performed}, recorder=recorder)
    with _quiet():  # (the first drop's warning: tests that count warnings capture their own)
        assert interpreter.run(add_twice, 0).ok
        assert sink.opened.wait(timeout=60), "the writer never took the first trace"
        assert interpreter.run(add_twice, 0).ok  # queued: the queue is full from now on
    stats = recorder.stats
    assert (stats.traces_started, stats.traces_dropped, stats.queue_depth) == (2, 0, 1), stats
    try:
        yield sink, recorder, interpreter, performed
    finally:
        sink.release.set()
        assert recorder.close(timeout=60)


class _quiet:
    def __enter__(self) -> None:
        self.logger = logging.getLogger("prodture.recorder")
        self.level = self.logger.level
        self.logger.setLevel(logging.ERROR)

    def __exit__(self, *exc: object) -> None:
        self.logger.setLevel(self.level)


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Threads switched as often as CPython allows, so that drops from several threads and
    ``stats`` reads interleave at every step they can."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def _in_threads(count: int, work: Callable[[int], object]) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            start.wait()
            work(i)
        except BaseException as error:  # reported by the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
        assert not t.is_alive(), "a dropping thread hung"
    assert not errors, errors


@contextlib.contextmanager
def _reading_stats(recorder: Recorder) -> Iterator[list[Any]]:
    """Another thread reads ``recorder.stats`` without a pause meanwhile: the snapshots, in
    the order they were taken."""
    stop = threading.Event()
    snapshots: list[Any] = []

    def read_stats() -> None:
        while not stop.is_set():
            snapshots.append(recorder.stats)

    reader = threading.Thread(target=read_stats)
    reader.start()
    try:
        yield snapshots
    finally:
        stop.set()
        reader.join(timeout=60)
    assert snapshots, "stats was never read meanwhile"


THREADS = 8
PER_THREAD = 1500


def test_drops_from_many_threads_are_counted_exactly_while_stats_is_read(held, busy_switching):
    """8 threads drop 1,500 traces each while another thread reads ``stats`` without a pause:
    every snapshot has dropped <= started, and at the end every drop is counted, no more, no
    less; once the writer moves, every trace started is written or dropped."""
    sink, recorder, interpreter, performed = held

    def drop(i: int) -> None:
        for n in range(PER_THREAD):
            outcome = interpreter.run(add_twice, n)
            assert outcome.ok and outcome.value["result"] == n + 2, outcome

    with _quiet(), _reading_stats(recorder) as snapshots:
        _in_threads(THREADS, drop)
    dropped = THREADS * PER_THREAD
    stats = recorder.stats
    assert stats.traces_started == 2 + dropped, stats
    assert stats.traces_dropped == dropped, stats
    assert stats.traces_dropped_for_budget == 0, stats
    for s in snapshots:
        assert s.traces_dropped <= s.traces_started - 2, s
    assert [s.traces_dropped for s in snapshots] == sorted(s.traces_dropped for s in snapshots)
    assert performed.calls == 2 * (2 + dropped)  # every execution ran its effects once

    sink.release.set()
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.traces_written == 2 and stats.sink_errors == stats.traces_discarded == 0, stats
    assert stats.traces_started == stats.traces_written + stats.traces_dropped, stats


def test_drops_while_the_writer_is_held_back_are_counted_for_the_budget_exactly(
    held, busy_switching
):
    """Drops while the writer is held back by its CPU budget are counted twice (dropped, and
    dropped for the budget), exactly, from many threads; drops after it caught up only once."""
    sink, recorder, interpreter, _ = held
    recorder._writer.held_back = True  # (what _Writer._pause sets: the writer is held anyway)
    with _quiet(), _reading_stats(recorder) as snapshots:
        _in_threads(THREADS, lambda i: [interpreter.run(add_twice, n) for n in range(500)])
        recorder._writer.held_back = False
        _in_threads(THREADS, lambda i: [interpreter.run(add_twice, n) for n in range(100)])
    for s in snapshots:
        assert s.traces_dropped_for_budget <= s.traces_dropped <= s.traces_started - 2, s
    stats = recorder.stats
    assert stats.traces_dropped_for_budget == THREADS * 500, stats
    assert stats.traces_dropped == THREADS * 600, stats
    assert stats.traces_started == 2 + THREADS * 600, stats


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _behind(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if BEHIND in r.getMessage()]


def test_the_writer_is_behind_is_logged_at_most_once_per_interval_with_the_count_so_far(
    monkeypatch, caplog
):
    """Many threads dropping log one warning, with the count of drops so far; not again until
    ``LOG_INTERVAL_S`` has passed on the clock (however many drops), then once more."""
    clock = FakeClock()
    monkeypatch.setattr(recorder_module, "_fault_clock", clock)
    sink = HeldSink()
    recorder = Recorder(sink, max_queue=1)
    interpreter = Interpreter({Add: Performed()}, recorder=recorder)
    try:
        with caplog.at_level(logging.WARNING, logger="prodture.recorder"):
            assert interpreter.run(add_twice, 0).ok
            assert sink.opened.wait(timeout=60)
            assert interpreter.run(add_twice, 0).ok  # queued: full from now on
            assert _behind(caplog) == []
            assert interpreter.run(add_twice, 0).ok  # the first drop: logged at once
            assert len(_behind(caplog)) == 1 and "1 traces dropped so far" in _behind(caplog)[0]

            _in_threads(THREADS, lambda i: [interpreter.run(add_twice, n) for n in range(200)])
            logged_at = clock.now
            clock.now = logged_at + LOG_INTERVAL_S - 0.001  # not yet
            _in_threads(THREADS, lambda i: [interpreter.run(add_twice, n) for n in range(200)])
            assert len(_behind(caplog)) == 1, _behind(caplog)

            clock.now = logged_at + LOG_INTERVAL_S  # due: exactly one of the threads logs it
            _in_threads(THREADS, lambda i: [interpreter.run(add_twice, n) for n in range(200)])
            messages = _behind(caplog)
            assert len(messages) == 2, messages
            # the count so far when it was logged: every drop before (1 + 2 * 1,600) and some
            # of the threads' drops after the clock moved
            count = int(re.search(r"(\d+) traces dropped so far", messages[1]).group(1))
            assert 1 + 2 * THREADS * 200 < count <= 1 + 3 * THREADS * 200, messages[1]
            assert recorder.stats.traces_dropped == 1 + 3 * THREADS * 200
    finally:
        sink.release.set()
        assert recorder.close(timeout=60)


def test_other_faults_are_logged_on_their_own_interval(monkeypatch, caplog):
    """Each kind of fault has its own interval: drops logged do not silence a failing sink."""
    clock = FakeClock()
    monkeypatch.setattr(recorder_module, "_fault_clock", clock)
    counts = recorder_module._Counters()
    with caplog.at_level(logging.WARNING, logger="prodture.recorder"):
        for _ in range(3):
            counts.log_fault("dropped", "dropped %d", 1)
            counts.log_fault("sink", "sink %d", 2)
        assert [r.getMessage() for r in caplog.records] == ["dropped 1", "sink 2"]
        clock.now += LOG_INTERVAL_S
        counts.log_fault("sink", "sink %d", 3)
        counts.log_fault("sink", "sink %d", 4)
    assert [r.getMessage() for r in caplog.records] == ["dropped 1", "sink 2", "sink 3"]


def test_a_dropped_execution_runs_exactly_like_an_unrecorded_one(held):
    """Dropped: the same result, each effect performed once, no trace id in the handler or on
    the outcome, the same as an interpreter without a recorder."""
    _, recorder, interpreter, performed = held
    plain_performed = Performed()
    plain = Interpreter({Add: plain_performed})
    with _quiet():
        dropped_outcome = interpreter.run(add_twice, 5)
    plain_outcome = plain.run(add_twice, 5)
    assert recorder.stats.traces_dropped == 1
    assert dropped_outcome.value == plain_outcome.value == {"result": 7, "trace_id": None}
    assert dropped_outcome.trace_id is None and plain_outcome.trace_id is None
    assert plain_performed.calls == 2 and performed.calls == 2 * 3


def _child_counts_from_zero(recorder: Recorder, interpreter: Interpreter, out: int) -> None:
    """In a forked child: the counts start at zero, and its first drop is logged even though
    the parent logged one a moment ago (the child's own faults, from its own start)."""
    stats = recorder.stats
    result = [stats.traces_started, stats.traces_dropped, stats.traces_dropped_for_budget]
    logged: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            logged.append(record.getMessage())

    logger = logging.getLogger("prodture.recorder")
    logger.addHandler(Keep())
    logger.setLevel(logging.WARNING)
    # The child's writer is its own (the parent's sink held no trace of the child's): a queue
    # of one, filled by hand, is full for the child's next execution.
    recorder._writer.done.append(recorder_module._Pending(recorder, "x", "id", 0))
    interpreter.run(add_twice, 1)
    recorder._writer.done.clear()
    stats = recorder.stats
    result += [stats.traces_started, stats.traces_dropped, sum(BEHIND in m for m in logged)]
    os.write(out, repr(result).encode())


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() only")
def test_a_forked_child_counts_drops_from_zero_and_logs_its_own(held, caplog):
    _, recorder, interpreter, _ = held
    with caplog.at_level(logging.WARNING, logger="prodture.recorder"):
        for n in range(10):
            interpreter.run(add_twice, n)
    recorder._writer.held_back = True
    with _quiet():
        interpreter.run(add_twice, 0)
    recorder._writer.held_back = False
    assert len(_behind(caplog)) == 1
    stats = recorder.stats
    assert (stats.traces_dropped, stats.traces_dropped_for_budget) == (11, 1)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            os.close(read)
            _child_counts_from_zero(recorder, interpreter, write)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, reported
    # started, dropped, for budget at the fork; then after one drop of its own, and its warning
    assert reported == repr([0, 0, 0, 1, 1, 1])
    stats = recorder.stats  # the parent's are its own still
    assert (stats.traces_dropped, stats.traces_dropped_for_budget) == (11, 1)


class NamedOnDemand:
    """A handler (``add_twice``) that counts every look-up of its name (what
    ``recorded_handler_name`` reads: ``__prodture_handler__``, then module and qualified name)."""

    def __init__(self) -> None:
        self.name_lookups = 0

    def __call__(self, n: int) -> Any:
        return add_twice(n)

    def __getattr__(self, attribute: str) -> Any:
        if attribute in ("__prodture_handler__", "__qualname__"):
            self.name_lookups += 1
            return "test_drop_path.add_twice" if attribute == "__prodture_handler__" else None
        raise AttributeError(attribute)


def test_a_dropped_execution_makes_no_handler_name_and_a_recorded_one_does(held):
    """The decision to drop comes before the handler's name is made (in the steady state of
    an overloaded service nearly every execution is dropped, and a name costs more than the
    rest of the drop); a recorded execution still makes it, and its trace carries it."""
    sink, recorder, interpreter, performed = held
    fn = NamedOnDemand()
    with _quiet():
        dropped = interpreter.run(fn, 5)
    assert dropped.value == Interpreter({Add: Performed()}).run(add_twice, 5).value
    assert dropped.trace_id is None
    assert fn.name_lookups == 0
    stats = recorder.stats
    assert (stats.traces_started, stats.traces_dropped) == (3, 1), stats
    sink.release.set()
    assert recorder.flush(timeout=60)
    recorded = interpreter.run(fn, 5)
    assert recorded.ok and recorded.trace_id is not None and fn.name_lookups == 1
    assert recorder.flush(timeout=60)  # (a queue of one: room for the next)
    session = recorder.begin("test_drop_path.add_twice", 5)  # the named form still works
    assert session is not None and session.info.handler == "test_drop_path.add_twice"
    session.finish(recorded)
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.traces_started == 5 and stats.traces_written == 4, stats


def test_an_observer_with_only_begin_is_still_given_the_handlers_name():
    """Observers written to the protocol's ``begin(handler_name, input)`` (no ``meta``, no
    ``begin_handler``) are called as before; a recorder set after the interpreter was made is
    used with its own ``begin_handler``."""

    class Session:
        trace_id = None

        def __init__(self) -> None:
            self.effects: list[Any] = []
            self.outcome: Any = None

        def effect(self, call: Any, ok: bool, value: Any, start_ns: int, duration_ns: int) -> None:
            self.effects.append(value)

        def finish(self, outcome: Any) -> None:
            self.outcome = outcome

    class OnlyBegin:
        def __init__(self) -> None:
            self.begun: list[tuple[str, Any, Session]] = []

        def begin(self, handler_name: str, input: Any) -> Session:
            session = Session()
            self.begun.append((handler_name, input, session))
            return session

    observer = OnlyBegin()
    interpreter = Interpreter({Add: Performed()}, recorder=observer)
    outcome = interpreter.run(add_twice, 1)
    assert outcome.value == {"result": 3, "trace_id": None}
    ((name, given, session),) = observer.begun
    assert (name, given, session.effects, session.outcome) == (
        "test_drop_path.add_twice",
        1,
        [2, 3],
        outcome,
    )
    sink = recorder_module.MemorySink()
    interpreter.recorder = Recorder(sink)
    assert interpreter.run(add_twice, 1).ok
    assert len(observer.begun) == 1 and len(sink.traces) == 1
