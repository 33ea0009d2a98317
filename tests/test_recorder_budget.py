"""The writer thread as a good citizen under overload: a CPU budget and, on request, a lower
scheduling priority for that thread only.

A sink that burns 5 ms of the writer thread's CPU per trace stands for an expensive writer; a
handler loop that runs until the bounded queue overflows stands for a saturating producer. No
test depends on timing: drops are awaited by count, and a budget that held back a flush would
make that flush take hours (its 60 s timeout fails), not a few milliseconds more.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prodture import DirectorySink, Effect, Interpreter, Recorder, handler, read_trace
from prodture.recorder import segment_traces


@dataclasses.dataclass(frozen=True)
class Ping(Effect, name="test_budget.Ping"):
    n: int


@handler
def ping_twice(n):
    a = yield Ping(n)
    b = yield Ping(n + 1)
    return a + b


PERFORMERS: dict[type, Callable[[Any], Any]] = {Ping: lambda e: e.n * 2}


class CpuHungrySink(DirectorySink):
    """A DirectorySink whose every trace costs the writer thread 5 ms of CPU before it is
    written (as an expensive encoder or file system would)."""

    def open(self, info):
        return CpuHungryStream(super().open(info))


class CpuHungryStream:
    def __init__(self, stream) -> None:
        self.stream = stream
        self.close = stream.close
        self.abort = stream.abort

    def write(self, data: bytes) -> None:
        end = time.thread_time() + 0.005
        while time.thread_time() < end:
            pass
        self.stream.write(data)


class CpuHungrySegments(DirectorySink):
    """Segment files whose every append costs the writer thread 5 ms of CPU per trace."""

    def append_traces(self, traces):
        end = time.thread_time() + 0.005 * len(traces)
        while time.thread_time() < end:
            pass
        return super().append_traces(traces)


def _run_until(
    interpreter: Interpreter, recorder: Recorder, counter: str, limit: int = 200_000
) -> int:
    """Executions until ``recorder.stats.<counter>`` is above 0; how many ran."""
    for i in range(limit):
        assert interpreter.run(ping_twice, i).ok
        if getattr(recorder.stats, counter):
            return i + 1
    raise AssertionError(f"{counter} still 0 after {limit} executions: the writer kept up")


def _readable(folder: Path) -> int:
    files = glob.glob(str(folder / "*.prodtrace"))
    for path in files:
        trace = read_trace(path)
        assert trace.complete and len(trace.effects) == 2, path
    return len(files)


def test_a_writer_over_its_budget_drops_and_counts_yet_flush_and_close_write_all_queued(tmp_path):
    """1 % of a core for a writer whose traces cost 5 ms each: the writer pauses, the bounded
    queue fills, new traces are dropped and counted as dropped for the budget, and the handlers
    run on. flush() then writes every trace queued, ignoring the budget (paced, it would need
    about half a second per trace), and so does close() for traces queued after that."""
    recorder = Recorder(CpuHungrySink(tmp_path), max_queue=20, writer_cpu_budget=0.01)
    interpreter = Interpreter(PERFORMERS, recorder=recorder)
    ran = _run_until(interpreter, recorder, "traces_dropped_for_budget")
    stats = recorder.stats
    assert stats.traces_dropped_for_budget <= stats.traces_dropped
    queued_or_written = stats.traces_written + stats.queue_depth
    assert queued_or_written >= 1

    assert recorder.flush(timeout=60), "flush() waited for the writer's budget"
    stats = recorder.stats
    assert stats.queue_depth == 0
    assert stats.traces_written >= queued_or_written
    assert stats.traces_started == ran
    assert stats.traces_written + stats.traces_dropped == ran and stats.sink_errors == 0

    for i in range(10):  # queued behind a writer that is over its budget again
        assert interpreter.run(ping_twice, i).ok
    assert recorder.close(timeout=60), "close() waited for the writer's budget"
    stats = recorder.stats
    assert stats.queue_depth == 0
    assert stats.traces_written + stats.traces_dropped == ran + 10
    assert _readable(tmp_path) == stats.traces_written


def test_a_segment_writer_over_its_budget_drops_and_counts_yet_flush_writes_all_queued(tmp_path):
    """The same with segment files (traces appended in batches): drops are counted for the
    budget, flush() appends every queued trace, and each one in the segments is whole."""
    sink = CpuHungrySegments(tmp_path, segment_bytes=1 << 20)
    recorder = Recorder(sink, max_queue=20, writer_cpu_budget=0.01)
    interpreter = Interpreter(PERFORMERS, recorder=recorder)
    ran = _run_until(interpreter, recorder, "traces_dropped_for_budget")
    queued_or_written = recorder.stats.traces_written + recorder.stats.queue_depth
    assert recorder.flush(timeout=60), "flush() waited for the writer's budget"
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.queue_depth == 0 and stats.sink_errors == 0
    assert stats.traces_written >= queued_or_written
    assert stats.traces_written + stats.traces_dropped == ran
    traces = [t for path in glob.glob(str(tmp_path / "*.prodtraces")) for t in segment_traces(path)]
    assert len(traces) == stats.traces_written
    for data in traces:
        trace = read_trace(data)
        assert trace.complete and len(trace.effects) == 2


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
# Python 3.12+ warns on any fork of a threaded process; forking one is what this test is about
# (as tests/test_recorder_fork.py does)
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_child_forked_while_the_writer_is_held_back_has_its_own_writer_and_counts(tmp_path):
    """Forked while the parent's writer is over its budget: the child's writer starts afresh
    (its counts at zero, none of the parent's pauses or drops), writes its own traces on close,
    and the parent's flush still writes what the parent had queued."""
    recorder = Recorder(CpuHungrySink(tmp_path), max_queue=20, writer_cpu_budget=0.01)
    interpreter = Interpreter(PERFORMERS, recorder=recorder)
    ran = _run_until(interpreter, recorder, "traces_dropped_for_budget")
    pid = os.fork()
    if pid == 0:  # the child: report through the exit code only
        ok = False
        try:
            ok = recorder.stats == type(recorder.stats)()
            ok = ok and all(interpreter.run(ping_twice, 1000 + i).ok for i in range(2))
            ok = ok and recorder.close(timeout=30)
            stats = recorder.stats
            ok = ok and (stats.traces_started, stats.traces_written, stats.traces_dropped) == (
                2,
                2,
                0,
            )
        finally:
            os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's writer or counts were wrong"
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.traces_written + stats.traces_dropped == ran and stats.queue_depth == 0
    assert _readable(tmp_path) == stats.traces_written + 2


def test_without_a_budget_no_drop_is_counted_for_it(tmp_path):
    """The same overload with ``writer_cpu_budget=None``: traces are still dropped (the writer
    is behind) but none is counted as dropped for a budget."""
    recorder = Recorder(CpuHungrySink(tmp_path), max_queue=20, writer_cpu_budget=None)
    interpreter = Interpreter(PERFORMERS, recorder=recorder)
    ran = _run_until(interpreter, recorder, "traces_written")  # the writer is at work
    ran += _run_until(interpreter, recorder, "traces_dropped")
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.traces_dropped > 0 and stats.traces_dropped_for_budget == 0
    assert stats.traces_written + stats.traces_dropped == ran
    assert _readable(tmp_path) == stats.traces_written


def test_a_writer_within_its_budget_writes_everything(tmp_path):
    """The default budget costs a light load nothing: a few cheap traces are all written."""
    recorder = Recorder(DirectorySink(tmp_path))
    interpreter = Interpreter(PERFORMERS, recorder=recorder)
    for i in range(50):
        assert interpreter.run(ping_twice, i).ok
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.traces_written == 50 and stats.traces_dropped == 0
    assert _readable(tmp_path) == 50


def _nice(native_id: int) -> int:
    return os.getpriority(os.PRIO_PROCESS, native_id)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_writer_nice_lowers_the_writer_threads_priority_only(tmp_path):
    """``writer_nice=5``: the writer thread runs 5 nice levels lower; the thread that runs the
    handlers (and the process's other threads) keep their priority."""
    main_before = _nice(threading.get_native_id())
    recorder = Recorder(DirectorySink(tmp_path), writer_nice=5)
    assert Interpreter(PERFORMERS, recorder=recorder).run(ping_twice, 1).ok
    assert recorder.flush(timeout=60)
    writer = recorder._writer.thread
    assert writer is not None and writer.native_id is not None
    assert _nice(writer.native_id) == min(main_before + 5, 19)
    assert _nice(threading.get_native_id()) == main_before
    other = []
    probe = threading.Thread(target=lambda: other.append(_nice(threading.get_native_id())))
    probe.start()
    probe.join()
    assert other == [main_before]
    assert recorder.close(timeout=60)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice is Linux's")
def test_by_default_the_writer_keeps_the_process_priority(tmp_path):
    main_before = _nice(threading.get_native_id())
    recorder = Recorder(DirectorySink(tmp_path))
    assert Interpreter(PERFORMERS, recorder=recorder).run(ping_twice, 1).ok
    assert recorder.flush(timeout=60)
    writer = recorder._writer.thread
    assert writer is not None and writer.native_id is not None
    assert _nice(writer.native_id) == main_before
    assert recorder.close(timeout=60)


def test_budget_and_nice_settings_are_checked():
    """A clear error names the setting and its range."""
    for bad in (0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"writer_cpu_budget must be a fraction"):
            Recorder(DirectorySink.__new__(DirectorySink), writer_cpu_budget=bad)
    for bad in (-1, 40):
        with pytest.raises(ValueError, match=r"writer_nice must be"):
            Recorder(DirectorySink.__new__(DirectorySink), writer_nice=bad)
