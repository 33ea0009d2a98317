"""The recorder's writer queue: bounded in bytes as well as traces, and safe across fork().

A process that forks (``os.fork()``, ``multiprocessing`` with the fork start method) copies the
recorder with its queue but not its writer thread. The child must get a writer, queue and counts
of its own, must never write (or finish) a trace its parent began, must not hang, and must write
its own traces even when multiprocessing ends it with ``os._exit()``. No test depends on timing:
the parent's writer is held inside its sink by a gate until the child is done.
"""

from __future__ import annotations

import dataclasses
import io
import multiprocessing
import os
import threading
import time
from pathlib import Path

import msgpack
import pytest

from prodture import DirectorySink, Effect, Interpreter, MemorySink, Recorder, read_trace

# A fork while other threads run is what this file tests; 3.12+ warns about it.
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")

FORK = multiprocessing.get_context("fork")


@dataclasses.dataclass(frozen=True)
class Fetch(Effect, name="test_fork.Fetch"):
    key: str


def fetch(effect: Fetch) -> dict:
    return {"key": effect.key, "blob": effect.key * 50}


def two_fetches(key):
    first = yield Fetch(key + "-a")
    second = yield Fetch(key + "-b")
    return [first["key"], second["key"]]


def set_input_two_fetches(keys):
    return (yield from two_fetches(min(keys)))


class GatedSink(DirectorySink):
    """A DirectorySink whose ``open`` blocks, in the process that made it, until ``gate`` is set
    (30 s at most): the parent's writer is held with traces queued behind it. In a forked
    child it does not block (the child's writer must work on its own)."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.owner = os.getpid()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def open(self, info):
        if os.getpid() == self.owner:
            self.entered.set()
            if not self.gate.wait(timeout=30):
                raise TimeoutError("the gate was never opened")
        return super().open(info)


class SlowChildSink(DirectorySink):
    """Slow (0.3 s per trace) only in a forked child, so that the child's traces are still
    queued when its work returns."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.owner = os.getpid()

    def open(self, info):
        if os.getpid() != self.owner:
            time.sleep(0.3)
        return super().open(info)


def _inputs(folder: Path) -> list[str]:
    traces = [read_trace(str(p)) for p in sorted(folder.glob("*.prodtrace"))]
    assert all(t.complete for t in traces)
    assert len({t.header.trace_id for t in traces}) == len(traces), "a trace id repeated"
    return sorted(t.input for t in traces)


def _child_records_and_checks(recorder: Recorder, interpreter: Interpreter) -> None:
    """In the child: two executions, counted and written by the child's own writer."""
    for i in range(2):
        assert interpreter.run(two_fetches, f"child-{i}").ok
    assert recorder.close(timeout=30), "the child's writer did not finish"
    stats = recorder.stats
    assert (stats.traces_started, stats.traces_written, stats.traces_dropped) == (2, 2, 0), stats
    assert stats.sink_errors == 0 and stats.queue_depth == 0 and stats.queue_bytes == 0, stats


def test_a_forked_child_has_its_own_writer_and_counts_and_never_writes_the_parents_traces(
    tmp_path: Path,
):
    sink = GatedSink(tmp_path)
    recorder = Recorder(sink)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(3):
        assert interpreter.run(two_fetches, f"parent-{i}").ok
    assert sink.entered.wait(timeout=30)  # the parent's writer is held inside the sink
    assert recorder.stats.traces_written == 0  # ... so all three are pending at the fork

    child = FORK.Process(target=_child_records_and_checks, args=(recorder, interpreter))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the child failed its checks or hung (see its stderr)"
    # The child wrote its own two traces and none of the three its parent has pending.
    assert _inputs(tmp_path) == ["child-0", "child-1"]

    sink.gate.set()
    assert recorder.close(timeout=30)
    stats = recorder.stats
    assert (stats.traces_started, stats.traces_written, stats.traces_dropped) == (3, 3, 0), stats
    assert _inputs(tmp_path) == ["child-0", "child-1", "parent-0", "parent-1", "parent-2"]


def _child_returns_without_close(interpreter: Interpreter) -> None:
    for i in range(2):
        assert interpreter.run(two_fetches, f"child-{i}").ok


def test_a_multiprocessing_child_writes_its_pending_traces_when_it_ends(tmp_path: Path):
    """multiprocessing ends a forked child with os._exit(), which skips atexit: the child's
    pending traces are written all the same, as at any normal exit."""
    recorder = Recorder(SlowChildSink(tmp_path))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    assert interpreter.run(two_fetches, "parent-0").ok
    assert recorder.flush(timeout=30)
    child = FORK.Process(target=_child_returns_without_close, args=(interpreter,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0
    assert _inputs(tmp_path) == ["child-0", "child-1", "parent-0"]


def test_a_fork_inside_an_execution_leaves_the_parents_trace_written_once(tmp_path: Path):
    """A performer forks after the writer has opened the running execution's file: the child
    continues the handler, but the trace is the parent's — the child writes nothing into it (it
    shares the descriptor), so the file holds each record once and one outcome."""
    recorder = Recorder(DirectorySink(tmp_path))
    parent = os.getpid()
    forked: list[int] = []

    def fetch_and_fork(effect: Fetch) -> dict:
        if effect.key.endswith("-a"):
            assert recorder.flush(timeout=30)  # the running trace's file is open now
            forked.append(os.fork())
        return fetch(effect)

    interpreter = Interpreter({Fetch: fetch_and_fork}, recorder=recorder)
    # A set input is encoded at once (it could change), so the flush above opens the file.
    outcome = interpreter.run(set_input_two_fetches, {"forked"})
    if os.getpid() != parent:  # the child: its own writer must not hang, then leave at once
        os._exit(0 if outcome.ok and recorder.close(timeout=30) else 1)
    _, status = os.waitpid(forked[0], 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert outcome.ok and recorder.close(timeout=30)
    [path] = tmp_path.glob("*.prodtrace")
    trace = read_trace(str(path))
    assert trace.complete and trace.input == {"forked"}
    assert [e.seq for e in trace.effects] == [1, 2]
    # Raw records (a reader may stop at the first OUTCOME): each is in the file once.
    records = msgpack.Unpacker(
        io.BytesIO(path.read_bytes()), strict_map_key=False, ext_hook=lambda code, data: None
    )
    kinds = [record[0] for record in records if record[0] in (0, 1, 4, 5)]
    assert kinds == [0, 1, 4, 4, 5], kinds
    assert recorder.stats.traces_written == 1


def test_the_queue_is_bounded_in_bytes_and_what_does_not_fit_is_dropped_and_counted(
    tmp_path: Path,
):
    """max_queue_bytes: with the writer held, the encoded bytes waiting never pass the bound
    (however many traces max_queue would allow); the rest are dropped and counted, and
    everything queued is written once the sink moves again."""
    sink = GatedSink(tmp_path)
    bound = 4096
    recorder = Recorder(sink, max_queue=10_000, max_queue_bytes=bound)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    queued = []
    for i in range(100):
        assert interpreter.run(two_fetches, f"key-{i:03d}").ok
        queued.append(recorder.stats.queue_bytes)
    stats = recorder.stats
    assert 0 < max(queued) <= bound, queued
    assert stats.traces_dropped > 50 and stats.queue_depth < 50, stats
    sink.gate.set()
    assert recorder.close(timeout=30)
    stats = recorder.stats
    assert stats.traces_written + stats.traces_dropped == 100 == stats.traces_started
    assert stats.queue_bytes == 0 and stats.queue_depth == 0 and stats.sink_errors == 0
    assert len(_inputs(tmp_path)) == stats.traces_written


class WatchingSink(GatedSink):
    """Notes the recorder's stats each time the (released) writer opens a trace."""

    recorder: Recorder

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.seen: list[tuple[int, int]] = []

    def open(self, info):
        stream = super().open(info)
        stats = self.recorder.stats
        self.seen.append((stats.traces_written, stats.queue_bytes))
        return stream


def test_stats_and_the_byte_bound_follow_a_writer_that_never_runs_dry(tmp_path: Path):
    """200 traces wait behind a held writer, then it writes them in one go: while it does, the
    written count rises and the queued bytes fall (a writer busy without pause must not keep
    the bytes it has written counted against max_queue_bytes, or every later trace is dropped)."""
    sink = WatchingSink(tmp_path)
    recorder = sink.recorder = Recorder(sink, max_queue=10_000)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(200):
        assert interpreter.run(two_fetches, f"key-{i:03d}").ok
    queued = recorder.stats.queue_bytes
    assert queued > 0
    sink.gate.set()
    assert recorder.close(timeout=60)
    written, remaining = sink.seen[-1]  # as the writer opened the last trace
    assert written >= 150 and remaining < queued / 4, sink.seen[-1]
    assert recorder.stats.traces_written == 200 and recorder.stats.queue_bytes == 0


class HandlerGatedSink(DirectorySink):
    """A DirectorySink that holds (until ``gate``) only the traces of handler ``held``."""

    def __init__(self, directory: Path, held: str) -> None:
        super().__init__(directory)
        self.held = held
        self.gate = threading.Event()
        self.entered = threading.Event()

    def open(self, info):
        if info.handler.endswith(self.held):
            self.entered.set()
            if not self.gate.wait(timeout=30):
                raise TimeoutError("the gate was never opened")
        return super().open(info)


def blocker(key):
    first = yield Fetch(key)
    return first["key"]


def test_a_trace_dropped_when_it_finishes_leaves_nothing_of_what_was_streamed(tmp_path: Path):
    """A long execution whose first records the writer has already streamed to its file, then
    finds the queue's byte bound full when it ends: it is dropped and counted, and its partial
    file is removed (never left behind as if it were a killed writer's trace)."""
    sink = HandlerGatedSink(tmp_path, held="blocker")
    recorder = Recorder(sink, max_queue_bytes=1500)

    def fetch_then_fill_the_queue(effect: Fetch) -> dict:
        if effect.key == "long-a":
            assert recorder.flush(timeout=30)  # the long trace's file is open, records in it
            assert len(list(tmp_path.glob("*.prodtrace"))) == 1

            def fill() -> None:
                for i in range(20):
                    assert interpreter.run(blocker, f"b{i}-" + "x" * 200).ok

            filler = threading.Thread(target=fill)
            filler.start()
            filler.join()
            assert sink.entered.wait(timeout=30)  # the writer is held on the first of them
        if effect.key == "long-b":  # encoded at once (a set could change): 2 KB to queue
            return {"key": effect.key, "blob": "y" * 2000, "tags": {"t"}}
        return fetch(effect)

    interpreter = Interpreter({Fetch: fetch_then_fill_the_queue}, recorder=recorder)
    outcome = interpreter.run(set_input_two_fetches, {"long"})
    assert outcome.ok, outcome
    sink.gate.set()
    assert recorder.close(timeout=30)
    stats = recorder.stats
    inputs = _inputs(tmp_path)
    assert all(isinstance(i, str) and i.startswith("b") for i in inputs), inputs
    assert stats.traces_written == len(inputs) >= 2
    assert stats.traces_dropped == 21 - stats.traces_written and stats.sink_errors == 0, stats
    assert stats.traces_started == 21


def _child_records_into_memory(sink: MemorySink, interpreter: Interpreter) -> None:
    """In the child: an execution recorded into the MemorySink the parent forked with."""
    before = len(sink.traces)
    assert interpreter.run(two_fetches, "child").ok
    assert len(sink.traces) == before + 1
    assert read_trace(sink.traces[-1]).input == "child"


def test_a_forked_child_records_into_a_memory_sink_whose_lock_a_parent_thread_held():
    sink = MemorySink()
    interpreter = Interpreter({Fetch: fetch}, recorder=Recorder(sink))
    assert interpreter.run(two_fetches, "parent").ok
    # A parent thread is inside the sink (holding its lock) at the fork: that thread does not
    # exist in the child, so the child must not wait for the lock it held.
    held, release = threading.Event(), threading.Event()

    def inside_the_sink() -> None:
        with sink._lock:
            held.set()
            release.wait(timeout=60)

    holder = threading.Thread(target=inside_the_sink)
    holder.start()
    try:
        assert held.wait(timeout=30)
        child = FORK.Process(target=_child_records_into_memory, args=(sink, interpreter))
        child.start()
        child.join(timeout=30)
        if child.exitcode is None:
            child.kill()
            child.join()
            pytest.fail("the child hung on the memory sink's lock, held by a parent thread")
        assert child.exitcode == 0, "the child failed its checks (see its stderr)"
    finally:
        release.set()
        holder.join()
    assert len(sink.traces) == 1  # the child's trace is the child's memory, not the parent's
    assert interpreter.run(two_fetches, "parent-again").ok
    assert [read_trace(t).input for t in sink.traces] == ["parent", "parent-again"]


def test_max_queue_bytes_must_be_positive(tmp_path: Path):
    with pytest.raises(ValueError, match="max_queue_bytes"):
        Recorder(DirectorySink(tmp_path), max_queue_bytes=0)


@dataclasses.dataclass
class Box:
    """A mutable result: never kept, so the session encodes at once what it had kept before."""

    key: str


def test_a_child_that_encodes_a_trace_its_parent_kept_unencoded_never_writes_it(tmp_path: Path):
    """The fork comes while the parent's execution has kept everything unencoded (no record yet,
    so not registered with the writer to be streamed). The child continues the handler, gets a
    result it must encode at once and flushes: the trace is the parent's — the child must not
    register it with its own writer and stream it (into a file of the parent's trace's name)."""
    recorder = Recorder(DirectorySink(tmp_path), flush_interval=30.0)
    parent = os.getpid()
    forked: list[int] = []

    def fetch_and_fork(effect: Fetch) -> object:
        if effect.key.endswith("-a"):
            forked.append(os.fork())
        if os.getpid() != parent:
            return Box(effect.key)  # encoded at once, with the head and what was kept
        return fetch(effect)

    def handler(key):
        first = yield Fetch(key + "-a")
        if os.getpid() != parent:
            recorder.flush(timeout=30)  # what running executions have recorded so far
        second = yield Fetch(key + "-b")
        return [str(first), str(second)]

    interpreter = Interpreter({Fetch: fetch_and_fork}, recorder=recorder)
    outcome = interpreter.run(handler, "kept")
    if os.getpid() != parent:
        os._exit(0 if outcome.ok and recorder.close(timeout=30) else 1)
    _, status = os.waitpid(forked[0], 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert outcome.ok and recorder.close(timeout=30)
    assert recorder.stats.sink_errors == 0 and recorder.stats.traces_written == 1
    [path] = tmp_path.glob("*.prodtrace")
    trace = read_trace(str(path))
    assert trace.complete and trace.input == "kept"
    assert [e.result["key"] for e in trace.effects] == ["kept-a", "kept-b"]


def test_a_forked_child_never_repeats_its_parents_trace_ids(tmp_path):
    """Trace ids are made in batches and handed out from a pool: a child forked with part of a
    batch left must make its own, not hand out the ids its parent hands out next."""
    recorder = Recorder(MemorySink())
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    assert interpreter.run(two_fetches, "before").trace_id  # a batch made: the pool is not empty
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        ids = [interpreter.run(two_fetches, f"c{i}").trace_id for i in range(5)]
        os.write(write_end, " ".join(map(str, ids)).encode())  # (small: one write)
        os._exit(0)
    os.close(write_end)
    parent_ids = {interpreter.run(two_fetches, f"p{i}").trace_id for i in range(5)}
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with os.fdopen(read_end, "rb") as pipe:
        child_ids = set(pipe.read().decode().split())
    assert len(child_ids) == 5 and len(parent_ids) == 5
    assert not child_ids & parent_ids, "the child handed out its parent's trace ids"
