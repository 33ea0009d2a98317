"""The recorder's writer: off the hot path, bounded, honest about what it loses.

A full disk (a real 256 KiB tmpfs), a slow sink, a stuck sink, a failing sink, an event loop that
must keep running, a normal exit that must lose nothing, and on-failure mode that must not pay
for success. No test depends on timing: "never waited on" is proven by a sink that blocks until
the handlers are done, or by counted drops.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import glob
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from prodture import (
    ALWAYS,
    ON_FAILURE,
    DirectorySink,
    Effect,
    Failure,
    Interpreter,
    MemorySink,
    Recorder,
    Success,
    read_trace,
)
from prodture.recorder import MAX_KEPT, _StreamSession
from prodture.trace import TraceFormatError


@dataclasses.dataclass(frozen=True)
class Fetch(Effect, name="test_writer.Fetch"):
    key: str


def fetch(effect: Fetch) -> dict:
    if effect.key.startswith("missing"):
        raise LookupError(f"no {effect.key}")
    return {"key": effect.key, "blob": effect.key * 200}


def two_fetches(keys):
    first = yield Fetch(keys[0])
    second = yield Fetch(keys[1])
    return [len(first["blob"]), len(second["blob"])]


def _descriptors_into(folder: Path) -> list[str]:
    """The targets of this process's open descriptors that lie under `folder`: a leaked trace
    file shows up here by name. (Counting every descriptor is not a leak check: other threads
    of the test process open and close descriptors of their own meanwhile.)"""
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between listdir and readlink
            continue
        if target.startswith(str(folder)):
            targets.append(target)
    return targets


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 256 KiB tmpfs (we are root in CI); skipped, visibly, where mounting is refused."""
    mount_point = tmp_path / "small-disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.parametrize("mode", [ALWAYS, ON_FAILURE])
def test_a_full_disk_leaks_no_descriptor_and_leaves_no_partial_trace(small_disk, mode):
    """300 executions onto a 256 KiB filesystem: every result is what the handler returned,
    failed traces are counted as sink errors, no descriptor stays open, and every file left on
    disk is a complete trace (failed ones are removed, never left empty or partial)."""
    recorder = Recorder(DirectorySink(small_disk), mode=mode)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    fails = mode == ON_FAILURE  # on-failure writes only failed executions: make them all fail
    keys = lambda i: [f"k{i:03d}-" + "x" * 5, ("missing" if fails else "y") + f"{i:03d}"]  # noqa: E731
    interpreter.run(two_fetches, keys(999))  # warm-up: the writer thread exists from here on
    assert recorder.flush(timeout=60)
    before = len(os.listdir("/proc/self/fd"))
    for i in range(300):
        outcome = interpreter.run(two_fetches, keys(i))
        if fails:
            assert isinstance(outcome, Failure) and str(outcome.error) == f"no missing{i:03d}"
            assert outcome.effect_seq == 2
        else:
            assert outcome == Success([len(keys(i)[0]) * 200, len(keys(i)[1]) * 200])
    assert recorder.close(timeout=60)
    assert _descriptors_into(small_disk) == [], "a failed trace left its descriptor open"
    # one descriptor per failed trace was the leak: 290 of them; allow for the test process's own
    assert len(os.listdir("/proc/self/fd")) <= before + 2
    stats = recorder.stats
    files = sorted(glob.glob(str(small_disk / "*.prodtrace")))
    assert stats.sink_errors > 0, "the disk never filled: make the traces bigger"
    assert stats.traces_written == len(files)
    assert stats.traces_started == (
        stats.traces_written + stats.sink_errors + stats.traces_dropped + stats.traces_discarded
    )
    for path in files:
        assert os.path.getsize(path) > 0, path
        trace = read_trace(path)
        assert trace.complete and not trace.truncated, path
        assert len(trace.effects) == 2


class SlowSink:
    """A sink whose every write takes 20 ms."""

    def __init__(self) -> None:
        self.traces: list[bytes] = []

    def open(self, info):
        return SlowStream(self)


class SlowStream:
    def __init__(self, sink: SlowSink) -> None:
        self.sink = sink
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        threading.Event().wait(0.02)
        self.chunks.append(data)

    def close(self) -> None:
        self.sink.traces.append(b"".join(self.chunks))


def test_a_slow_sink_drops_traces_instead_of_slowing_the_handler():
    """A sink taking 20 ms per write: the handler never waits for it. The queue stays within
    max_queue, the traces that do not fit are dropped and counted, and the rest are written."""
    sink = SlowSink()
    recorder = Recorder(sink, max_queue=8)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    depths = []
    for i in range(300):
        assert interpreter.run(two_fetches, [f"a{i}", f"b{i}"]).ok
        depths.append(recorder.stats.queue_depth)
    assert max(depths) <= 8
    assert recorder.stats.traces_dropped > 0, "the handler waited for the slow sink"
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.traces_written + stats.traces_dropped == 300 and stats.traces_written >= 8
    assert stats.sink_errors == 0 and stats.queue_depth == 0
    assert len(sink.traces) == stats.traces_written
    assert all(read_trace(data).complete for data in sink.traces)


class StuckSink:
    """A sink whose writes block until ``release`` is set (30 s at most, then it fails)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.traces: list[bytes] = []

    def open(self, info):
        return StuckStream(self)


class StuckStream:
    def __init__(self, sink: StuckSink) -> None:
        self.sink = sink
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self.sink.release.wait(timeout=30):
            raise TimeoutError("the sink was never released: a handler waited on it")
        self.chunks.append(data)

    def close(self) -> None:
        self.sink.traces.append(b"".join(self.chunks))


def test_threads_never_wait_on_a_stuck_sink():
    """The sink blocks until every execution has finished: possible only if no handler thread
    ever waits for it (otherwise the writes time out and count as sink errors)."""
    sink = StuckSink()
    recorder = Recorder(sink)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    outcomes = []

    def worker(t: int) -> None:
        for i in range(25):
            outcomes.append(interpreter.run(two_fetches, [f"t{t}", f"r{i}"]))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(outcomes) == 100 and all(o.ok for o in outcomes)
    sink.release.set()
    assert recorder.close(timeout=60)
    assert recorder.stats.sink_errors == 0 and recorder.stats.traces_written == 100


def test_run_async_never_blocks_the_loop_on_a_stuck_sink():
    """Under run_async the sink is released by a task on the same event loop, after every
    execution has finished: that task could not run if the loop ever waited on the sink. A
    ticker task makes progress while the executions run."""
    sink = StuckSink()
    recorder = Recorder(sink)

    async def slow_fetch(effect: Fetch) -> dict:
        await asyncio.sleep(0)
        return fetch(effect)

    interpreter = Interpreter({Fetch: slow_fetch}, recorder=recorder)
    events: list[str] = []

    async def run_one(i: int):
        outcome = await interpreter.run_async(two_fetches, [f"a{i}", f"b{i}"])
        events.append("run")
        return outcome

    async def ticker(stop: asyncio.Event) -> None:
        while not stop.is_set():
            events.append("tick")
            await asyncio.sleep(0)

    async def main():
        stop = asyncio.Event()
        tick_task = asyncio.ensure_future(ticker(stop))
        outcomes = await asyncio.gather(*(run_one(i) for i in range(20)))
        sink.release.set()  # the loop is free: release the sink from it
        stop.set()
        await tick_task
        return outcomes

    outcomes = asyncio.run(main())
    assert all(o.ok for o in outcomes)
    assert events.count("run") == 20 and "tick" in events[: events.index("run")]
    assert recorder.close(timeout=60)
    assert recorder.stats.sink_errors == 0 and recorder.stats.traces_written == 20
    assert len(sink.traces) == 20 and all(read_trace(data).complete for data in sink.traces)


class ExplodingSink:
    def open(self, info):
        raise OSError(28, "No space left on device")


def test_sink_faults_are_counted_each_and_logged_at_most_once_a_minute(caplog):
    """A failing sink: each lost trace is a sink error in stats, one warning is logged (with
    the count so far), not one per trace; the handler results are unchanged."""
    recorder = Recorder(ExplodingSink())
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    with caplog.at_level(logging.WARNING, logger="prodture.recorder"):
        for i in range(50):
            assert interpreter.run(two_fetches, [f"a{i}", "b"]).ok
        assert recorder.close(timeout=60)
    assert recorder.stats.sink_errors == 50 and recorder.stats.traces_written == 0
    warnings = [r for r in caplog.records if r.name == "prodture.recorder"]
    assert len(warnings) == 1 and "No space left on device" in caplog.text


EXIT_WITHOUT_CLOSE = textwrap.dedent(
    """
    import dataclasses, sys
    import prodture

    @dataclasses.dataclass(frozen=True)
    class Step(prodture.Effect, name="exiting.Step"):
        n: int

    @prodture.handler
    def steps(count):
        total = 0
        for n in range(count):
            total += yield Step(n)
        return total

    def main():
        # a local recorder: garbage by the time the interpreter exits
        recorder = prodture.Recorder(prodture.DirectorySink(sys.argv[1]), mode=sys.argv[2])
        interpreter = prodture.Interpreter({Step: lambda e: e.n}, recorder=recorder)
        for i in range(200):
            interpreter.run(steps, 50 + i % 3)
        print(recorder.stats.traces_started, flush=True)

    main()
    """
)


def test_a_normal_exit_writes_every_pending_trace(tmp_path):
    """A process that records 200 executions and exits without closing its recorder (which is
    garbage by then) still leaves all 200 traces, complete."""
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WITHOUT_CLOSE, str(tmp_path), ALWAYS],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "200"
    files = glob.glob(str(tmp_path / "*.prodtrace"))
    assert len(files) == 200
    assert all(read_trace(p).complete for p in files)


def test_flush_writes_pending_traces_itself_when_no_writer_thread_can_start(tmp_path):
    """At interpreter exit no thread can be started (``Thread.start`` raises, and the writer is
    left without one): flush() then writes what is pending in the calling thread and returns,
    instead of hanging (it drains while holding the writer's lock, which answering its own
    marker takes again)."""
    recorder = Recorder(DirectorySink(tmp_path))
    recorder._writer._ensure_thread = lambda: None  # type: ignore[method-assign]
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(3):
        assert interpreter.run(two_fetches, [f"a{i}", "b"]).ok
    assert recorder._writer.thread is None and recorder.stats.queue_depth == 3
    answers: list[bool] = []
    flushing = threading.Thread(
        target=lambda: answers.append(recorder.flush(timeout=30)), daemon=True
    )
    flushing.start()
    flushing.join(timeout=60)
    assert not flushing.is_alive(), "flush() hung with no writer thread"
    assert answers == [True] and recorder.stats.traces_written == 3
    assert len(glob.glob(str(tmp_path / "*.prodtrace"))) == 3


def test_close_ends_the_writer_when_a_trace_finishes_right_after_it_asked_the_writer_to_stop(
    tmp_path,
):
    """A handler finishing a trace while close() waits wakes the writer, and a wake clears the
    writer's ``stopping`` (new work): close(timeout=None) must still end, and write that trace
    (a single stop request then a join without timeout waited for ever)."""
    recorder = Recorder(DirectorySink(tmp_path))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    assert interpreter.run(two_fetches, ["a", "b"]).ok
    writer = recorder._writer
    request_stop = writer.request_stop
    raced: list[bool] = []

    def request_stop_then_a_trace_finishes() -> None:
        if raced:
            request_stop()
            return
        raced.append(True)
        # The race, made certain: holding the writer's lock keeps it from ending (it checks
        # ``stopping`` under the lock) while a trace finishes right after the request.
        # (A handler rings the writer when it finds it asleep: wake(), as it would then.)
        with writer._lock:
            request_stop()
            assert interpreter.run(two_fetches, ["c", "d"]).ok
            writer.wake()

    writer.request_stop = request_stop_then_a_trace_finishes  # type: ignore[method-assign]
    answers: list[bool] = []
    closing = threading.Thread(target=lambda: answers.append(recorder.close()), daemon=True)
    closing.start()
    closing.join(timeout=60)
    assert not closing.is_alive(), "close() hung: the writer slept with nothing to do"
    assert raced and answers == [True]
    assert recorder.stats.traces_written == 2
    assert len(glob.glob(str(tmp_path / "*.prodtrace"))) == 2


@dataclasses.dataclass(frozen=True)
class Price(Effect, name="test_writer.Price"):
    sku: str


def test_on_failure_records_values_as_they_were_returned_not_as_mutated_later():
    """on-failure mode keeps immutable values by reference but encodes a mutable one (a dict
    the handler then changes) at once: the trace shows what the performer returned."""

    def handler(order):
        cart = yield Fetch("cart")
        cart["key"] = "changed by the handler"
        order["status"] = "mutated"
        price = yield Price("sku-1")
        raise ValueError(f"refused at {price}")

    sink = MemorySink()
    recorder = Recorder(sink, mode=ON_FAILURE)
    performers: dict[type, Callable[[Any], Any]] = {Fetch: fetch, Price: lambda e: (e.sku, 12)}
    outcome = Interpreter(performers, recorder=recorder).run(handler, {"status": "new"})
    assert isinstance(outcome.error, ValueError)
    (data,) = sink.traces
    trace = read_trace(data)
    assert trace.input == {"status": "new"}
    assert trace.effects[0].result["key"] == "cart"
    assert trace.effects[1].result == ("sku-1", 12)
    assert [e.seq for e in trace.effects] == [1, 2] and trace.outcome.failed_effect is None
    assert recorder.stats.traces_written == 1


def test_on_failure_success_writes_nothing_and_failure_links_its_trace_id():
    """A success in on-failure mode is discarded; a failure is written whole, with the trace
    id the session reported while running (what an OpenTelemetry span links to)."""
    sink = MemorySink()
    recorder = Recorder(sink, mode=ON_FAILURE)
    session = recorder.begin("tests:h", {"n": 1})
    session.finish(Success(1))
    assert sink.traces == [] and recorder.stats.traces_discarded == 1
    session = recorder.begin("tests:h", {"n": 2})
    trace_id = session.info.trace_id
    assert uuid.UUID(trace_id).version == 4
    session.finish(Failure(RuntimeError("x")))
    (data,) = sink.traces
    assert read_trace(data).header.trace_id == trace_id


def test_a_cancelled_async_execution_still_ends_its_trace(tmp_path):
    """A run_async task cancelled mid-effect ends its trace (outcome: the cancellation)
    instead of leaving it open in the writer for ever."""
    recorder = Recorder(DirectorySink(tmp_path))
    started = asyncio.Event

    async def main():
        gate = started()

        async def hang(effect):
            gate.set()
            await asyncio.sleep(3600)

        interpreter = Interpreter({Fetch: hang}, recorder=recorder)
        task = asyncio.ensure_future(interpreter.run_async(two_fetches, ["a", "b"]))
        await gate.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert recorder.close(timeout=60)
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    trace = read_trace(path)
    assert trace.complete and not trace.outcome.ok
    assert "CancelledError" in trace.outcome.traceback
    assert recorder.stats.traces_written == 1


def test_flush_makes_every_finished_trace_readable(tmp_path):
    """flush() returns once every trace finished before it is on disk."""
    recorder = Recorder(DirectorySink(tmp_path))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(30):
        interpreter.run(two_fetches, [f"a{i}", "b"])
    assert recorder.flush(timeout=60)
    assert len(glob.glob(str(tmp_path / "*.prodtrace"))) == 30
    assert recorder.stats.traces_written == 30 and recorder.stats.queue_depth == 0


def test_memory_sink_traces_are_there_when_run_returns():
    """MemorySink never blocks, so it is written in the handler's thread: no flush needed."""
    sink = MemorySink()
    Interpreter({Fetch: fetch}, recorder=Recorder(sink)).run(two_fetches, ["a", "b"])
    assert len(sink.traces) == 1 and read_trace(sink.traces[0]).complete


def test_recorder_settings_are_checked():
    """max_queue and flush_interval must be positive: a clear error names the setting."""
    with pytest.raises(ValueError, match="max_queue"):
        Recorder(MemorySink(), max_queue=0)
    with pytest.raises(ValueError, match="flush_interval"):
        Recorder(MemorySink(), flush_interval=0)


def test_opaque_values_are_counted_in_stats_and_their_type_logged_once(caplog):
    """An input the codec cannot encode (here a plain class, as a pydantic model would be) is
    counted in stats.opaque_values for every execution; its type is logged once, with the fix."""

    class WriterTestModel:
        def __init__(self, event_id: str) -> None:
            self.event_id = event_id

        def __repr__(self) -> str:
            return f"WriterTestModel(event_id={self.event_id!r})"

    sink = MemorySink()
    recorder = Recorder(sink)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    with caplog.at_level(logging.WARNING):
        for i in range(3):
            assert interpreter.run(two_fetches, WriterTestModel(f"e{i}")).ok is False
    assert recorder.stats.opaque_values == 3 and recorder.stats.encode_errors == 0
    logged = [r.getMessage() for r in caplog.records if "WriterTestModel" in r.getMessage()]
    assert len(logged) == 1 and "fix:" in logged[0] and "@prodture.register" in logged[0]


def the_one_trace(sink: DirectorySink | MemorySink, folder: Path):
    """The one trace a closed recorder wrote into ``sink`` (a DirectorySink on ``folder``, or a
    MemorySink), read back."""
    if isinstance(sink, MemorySink):
        (data,) = sink.traces
        return read_trace(data)
    (path,) = glob.glob(str(folder / "*.prodtrace"))
    return read_trace(path)


@pytest.mark.parametrize("sink_kind", ["directory", "memory"])
def test_always_mode_keeps_immutable_values_and_encodes_mutable_ones_in_order(tmp_path, sink_kind):
    """always mode encodes immutable values later (in the writer) and mutable ones at once: the
    trace has every effect in order, each value as the performer returned it, even when the
    handler changes a returned dict afterwards."""

    def handler(order):
        first = yield Price("a")  # immutable: kept
        cart = yield Fetch("cart")  # mutable: encoded at once, after effect 1
        cart["key"] = "changed"
        order.append("mutated")
        second = yield Price("b")  # kept again
        return (first, second)  # an immutable outcome: encoded by the writer

    sink = DirectorySink(tmp_path) if sink_kind == "directory" else MemorySink()
    recorder = Recorder(sink)
    performers: dict[type, Callable[[Any], Any]] = {
        Fetch: fetch,
        Price: lambda e: (e.sku, len(e.sku)),
    }
    outcome = Interpreter(performers, recorder=recorder).run(handler, ["new"])
    assert outcome == Success((("a", 1), ("b", 1)))
    assert recorder.close(timeout=60)
    trace = the_one_trace(sink, tmp_path)
    assert trace.complete and trace.input == ["new"]
    age = datetime.datetime.now(datetime.timezone.utc) - trace.header.started_at
    assert datetime.timedelta(0) <= age < datetime.timedelta(minutes=10)
    assert uuid.UUID(trace.header.trace_id).version == 4
    assert [(e.seq, e.type, e.result) for e in trace.effects] == [
        (1, "test_writer.Price", ("a", 1)),
        (2, "test_writer.Fetch", {"key": "cart", "blob": "cart" * 200}),
        (3, "test_writer.Price", ("b", 1)),
    ]
    assert trace.outcome.value == (("a", 1), ("b", 1))


@pytest.mark.parametrize("sink_kind", ["directory", "memory"])
def test_kept_encoded_and_failed_effects_past_the_kept_limit_stay_in_order(tmp_path, sink_kind):
    """Effects kept to encode later, encoded at once (a mutable result), failed (encoded the
    general way) and, past the first MAX_KEPT, encoded by the common path, interleaved: the
    trace has each of them once, in order, with its own result."""

    def handler(n):
        got = []
        for i in range(1, n + 1):
            kind = i % 4
            try:
                if kind == 1:
                    got.append((yield Fetch(f"k{i}"))["key"])
                elif kind == 2:
                    yield Fetch(f"missing{i}")
                else:
                    got.append((yield Price(f"s{i}"))[0])
            except LookupError:
                got.append(None)
        return len(got)

    sink = DirectorySink(tmp_path) if sink_kind == "directory" else MemorySink()
    recorder = Recorder(sink)
    performers: dict[type, Callable[[Any], Any]] = {Fetch: fetch, Price: lambda e: (e.sku, 1)}
    n = 3 * MAX_KEPT
    assert Interpreter(performers, recorder=recorder).run(handler, n) == Success(n)
    assert recorder.close(timeout=60)
    trace = the_one_trace(sink, tmp_path)
    assert trace.complete and [e.seq for e in trace.effects] == list(range(1, n + 1))
    for e in trace.effects:
        kind = e.seq % 4
        if kind == 1:
            assert e.ok and e.result == {"key": f"k{e.seq}", "blob": f"k{e.seq}" * 200}
        elif kind == 2:
            assert not e.ok and e.request == {"key": f"missing{e.seq}"}
        else:
            assert e.ok and e.result == (f"s{e.seq}", 1)


class WritesSink:
    """Keeps each write of each trace apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def open(self, info):
        return self

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        pass


@pytest.mark.parametrize("sink_kind", ["directory", "writes"])
def test_a_running_execution_streamed_while_it_appends_is_written_whole_in_order_once(
    tmp_path, sink_kind
):
    """The handler appends records while the writer streams them (``flush()`` in a loop from
    another thread, the GIL handed over every few microseconds): each write holds whole records,
    and the file reads back complete, every record once, in order. At every 500th effect the
    handler waits for two more flushes, so that it is streamed many times whatever the timing.
    A writer that wrote the live buffer in place (``os.write`` lets the handler run meanwhile,
    and its append then fails: the record is lost) or removed more than it copied (an append
    in between is lost) fails here; so does one that wrote a record twice."""
    n = 6_000
    flushes = [0]
    flushed = threading.Condition()
    done = threading.Event()

    def perform(effect: Fetch) -> dict:
        if effect.key.endswith("00") and int(effect.key[1:]) % 500 == 0:
            with flushed:
                target = flushes[0] + 2
                assert flushed.wait_for(lambda: flushes[0] >= target, timeout=60)
        return {"key": effect.key}

    def many(count):
        for i in range(count):
            yield Fetch(f"k{i}")
        return count

    def flush_until_done() -> None:
        while not done.is_set():
            assert recorder.flush(timeout=60)
            with flushed:
                flushes[0] += 1
                flushed.notify_all()

    sink = WritesSink() if sink_kind == "writes" else DirectorySink(tmp_path)
    recorder = Recorder(sink, writer_cpu_budget=None)
    interpreter = Interpreter({Fetch: perform}, recorder=recorder)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    flusher = threading.Thread(target=flush_until_done)
    flusher.start()
    try:
        assert interpreter.run(many, n) == Success(n)
    finally:
        done.set()
        flusher.join(timeout=60)
        sys.setswitchinterval(switch)
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.encode_errors == 0 and stats.sink_errors == 0 and stats.traces_written == 1
    assert flushes[0] >= 2 * (n // 500)
    if sink_kind == "writes":
        # At least one write per checkpoint (k500 ... k5500: each waits for flushes after 500
        # new records), then the rest at the end; more when the flusher catches it between.
        assert len(sink.writes) >= n // 500
        for data in sink.writes:
            unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
            unpacker.feed(data)
            assert list(unpacker) and unpacker.tell() == len(data)  # whole records only
        trace = read_trace(b"".join(sink.writes))
    else:
        (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
        trace = read_trace(path)
    assert trace.complete and trace.outcome.value == n
    assert [e.seq for e in trace.effects] == list(range(1, n + 1))
    assert [e.request["key"] for e in trace.effects] == [f"k{i}" for i in range(n)]


def test_records_appended_between_the_writers_copy_and_its_removal_stay_for_the_next_write():
    """The writer takes a running execution's records in two steps, a copy and a removal; the
    handler's thread may append in between (a thread switch there is rare, so here it is made
    to happen every time: the records' removal first waits until the handler has appended one
    more). Every record is written once, in order, whole: the writer removes what it copied,
    not everything there (clearing would lose the record appended in between)."""
    from prodture.runtime import EffectCall

    want, appended_one, finished = threading.Event(), threading.Event(), threading.Event()

    class AppendedInBetween(bytearray):
        """Records whose removal by the writer waits for the handler to append one more."""

        def _handler_appends(self) -> None:
            if not finished.is_set():
                want.set()
                assert appended_one.wait(60)
                appended_one.clear()

        def __delitem__(self, key: Any) -> None:
            self._handler_appends()
            super().__delitem__(key)

        def clear(self) -> None:
            self._handler_appends()
            super().clear()

    sink = WritesSink()
    recorder = Recorder(sink, flush_interval=3600, writer_cpu_budget=None)
    session = recorder.begin("test:many", "input")
    assert isinstance(session, _StreamSession)
    session.records = AppendedInBetween()
    n = 2_000
    calls = [EffectCall(seq, Fetch(f"k{seq}"), None) for seq in range(1, n + 1)]
    in_between = [0]

    def take() -> None:
        write_records = recorder._writer._write_records
        while not finished.is_set():
            write_records(session)

    taker = threading.Thread(target=take, daemon=True)
    taker.start()
    i = 0
    while i < n:
        session.effect(calls[i], True, calls[i].seq, 0, 1)
        i += 1
        if i > MAX_KEPT + 1 and i % 10 == 0 and i < n:  # (records to take from here on)
            assert want.wait(60)  # the writer has copied what is there, and waits to remove
            want.clear()
            session.effect(calls[i], True, calls[i].seq, 0, 1)
            i += 1
            in_between[0] += 1
            appended_one.set()
    finished.set()
    appended_one.set()
    taker.join(timeout=60)
    assert not taker.is_alive()
    session.finish(Success("done"))
    assert recorder.close(timeout=60)
    assert recorder.stats.traces_written == 1 and recorder.stats.sink_errors == 0
    assert in_between[0] > 10 and len(sink.writes) > 10
    for data in sink.writes:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(data)
        assert list(unpacker) and unpacker.tell() == len(data)  # whole records only
    trace = read_trace(b"".join(sink.writes))
    assert trace.complete and [e.seq for e in trace.effects] == list(range(1, n + 1))
    assert [e.result for e in trace.effects] == list(range(1, n + 1))


def test_a_streamed_execution_holds_only_what_it_recorded_since_the_last_write(tmp_path):
    """The memory a long execution's records take: once the writer has streamed them, its
    buffer gives back what it had grown to (the allocation of a bytearray, ``sys.getsizeof``),
    instead of keeping the size of everything it ever recorded."""
    sizes: list[tuple[int, int]] = []

    def perform(effect: Fetch) -> dict:
        if effect.key == "measure":
            (session,) = recorder._writer.running.values()
            before = sys.getsizeof(session.records)
            assert recorder.flush(timeout=60)
            sizes.append((before, sys.getsizeof(session.records)))
        return {"key": effect.key, "blob": "x" * 1000}

    def long_run(_):
        for i in range(2_000):
            yield Fetch(f"k{i}")
        yield Fetch("measure")
        return "done"

    recorder = Recorder(DirectorySink(tmp_path), flush_interval=3600)
    assert Interpreter({Fetch: perform}, recorder=recorder).run(long_run, None).ok
    assert recorder.close(timeout=60)
    ((before, after),) = sizes
    assert before > 2_000_000 and after < 64 * 1024
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    trace = read_trace(path)
    assert trace.complete and len(trace.effects) == 2_001


@pytest.mark.parametrize("target", ["file", "segment"])
def test_a_failed_write_keeps_no_view_of_what_it_was_given(tmp_path, monkeypatch, target):
    """A short write and then a failure (a full disk): the error's traceback must not keep a
    view of the records it was given, or the trace's buffer of records could not be cleared or
    resized afterwards (``BufferError``)."""
    from prodture import recorder as recorder_module

    path = str(tmp_path / "trace")
    stream: Any = (
        recorder_module._FileStream(path, 0o600)
        if target == "file"
        else recorder_module._Segment(path, 0o600)
    )
    real_write = os.write
    calls: list[int] = []

    def write_some_then_fail(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[:10]))
        del data  # (os.write, in C, keeps no reference to its argument when it fails)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", write_some_then_fail)
    records = bytearray(b"r" * 100)
    with pytest.raises(OSError) as failure:
        (stream.write if target == "file" else stream.append)(records)
    monkeypatch.undo()
    assert failure.value.__traceback__ is not None and calls == [100, 90]
    records.clear()
    records += b"still usable"
    assert records == b"still usable"


def test_an_error_inside_the_writer_neither_stops_it_nor_hangs_flush(tmp_path, monkeypatch):
    """Whatever goes wrong while writing one trace (here: completing it raises) costs that
    trace only, counted as a sink error: the next traces are written and flush() returns."""
    from prodture import recorder as recorder_module

    real_complete = recorder_module._StreamSession.complete
    calls = []

    def complete_failing_once(self):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("a bug in the writer")
        real_complete(self)

    monkeypatch.setattr(recorder_module._StreamSession, "complete", complete_failing_once)
    recorder = Recorder(DirectorySink(tmp_path))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(3):
        assert interpreter.run(two_fetches, [f"a{i}", "b"]).ok
    assert recorder.flush(timeout=60)
    assert recorder.stats.sink_errors == 1 and recorder.stats.traces_written == 2
    assert len(glob.glob(str(tmp_path / "*.prodtrace"))) == 2


@pytest.mark.parametrize("mode", [ALWAYS, ON_FAILURE])
def test_nested_plain_containers_are_recorded_as_returned_though_changed_later(tmp_path, mode):
    """Plain dicts, lists and tuples are kept as private copies (encoded later): changing the
    original at any depth afterwards — input, result or returned value — does not change the
    trace."""
    returned = {"lines": [{"sku": "a", "qty": 1}], "tags": ("x", ["y"])}

    def handler(order):
        basket = yield Fetch("basket")
        basket["lines"][0]["qty"] = 99
        basket["tags"][1].append("z")
        order["items"][0]["n"] = -1
        answer = {"seen": [basket["lines"][0]["sku"]]}
        if mode == ON_FAILURE:
            raise ValueError("fail so that on-failure writes the trace")
        return answer

    recorder = Recorder(DirectorySink(tmp_path), mode=mode)
    interpreter = Interpreter({Fetch: lambda e: returned}, recorder=recorder)
    outcome = interpreter.run(handler, {"items": [{"n": 1}]})
    if mode == ALWAYS:
        outcome.value["seen"].append("changed by the caller")
    assert recorder.close(timeout=60)
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    trace = read_trace(path)
    assert trace.input == {"items": [{"n": 1}]}
    assert trace.effects[0].result == {"lines": [{"sku": "a", "qty": 1}], "tags": ("x", ["y"])}
    if mode == ALWAYS:
        assert trace.outcome.value == {"seen": ["a"]}


@pytest.mark.parametrize("first_records", ["encoded-at-once", "kept-then-past-flush-interval"])
def test_a_long_execution_is_streamed_to_its_file_while_it_runs(tmp_path, first_records):
    """What a kill -9 can lose stays bounded: an execution blocked in an effect has what it
    recorded before it on disk already, whether its first records were encoded at once (a set
    input, which could change) or kept and encoded once it ran past flush_interval (a tuple
    input, dict results: registered with the writer only then)."""
    gate = threading.Event()

    def perform(effect: Fetch) -> dict:
        if effect.key == "slow":
            time.sleep(0.02)  # at least that: the next effect starts past flush_interval
        elif effect.key == "blocked":
            assert gate.wait(60)
        return {"key": effect.key}

    def three_fetches(_):
        for key in ("slow", "then", "blocked"):
            yield Fetch(key)
        return "done"

    recorder = Recorder(DirectorySink(tmp_path), flush_interval=0.005)
    interpreter = Interpreter({Fetch: perform}, recorder=recorder)
    given = {"a-set"} if first_records == "encoded-at-once" else ("a", "tuple")
    outcomes: list[Any] = []
    running = threading.Thread(
        target=lambda: outcomes.append(interpreter.run(three_fetches, given))
    )
    running.start()
    try:
        for _ in range(6000):
            paths = glob.glob(str(tmp_path / "*.prodtrace"))
            try:
                streamed = read_trace(paths[0]) if paths else None
            except TraceFormatError:  # created, its first write not made yet
                streamed = None
            if streamed is not None and len(streamed.effects) == 2:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the blocked execution's first effects never reached its file")
        assert not streamed.complete and streamed.input == given
        assert [e.result for e in streamed.effects] == [{"key": "slow"}, {"key": "then"}]
    finally:
        gate.set()
        running.join(timeout=60)
    assert outcomes[0].ok and recorder.close(timeout=30)
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    trace = read_trace(path)
    assert trace.complete and [e.seq for e in trace.effects] == [1, 2, 3]
    assert recorder._writer.running == {}, "a finished execution stays registered"


@pytest.mark.parametrize("mode", [ALWAYS, ON_FAILURE])
def test_started_at_is_when_the_execution_started_not_when_its_trace_was_written(tmp_path, mode):
    """A session reads one clock at the start and works out the wall clock from it when the
    trace is written (after the execution ended): started_at still lies between the wall clock
    read before the run and the one read in its first effect, for a kept trace (always) and a
    failure (on-failure)."""
    seen: list[datetime.datetime] = []

    def perform(effect: Fetch) -> dict:
        seen.append(datetime.datetime.now(datetime.timezone.utc))
        time.sleep(0.05)  # the trace is written well after the start
        return {"key": effect.key}

    def fails(_):
        yield Fetch("a")
        raise ValueError("recorded on failure")

    recorder = Recorder(DirectorySink(tmp_path), mode=mode)
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    outcome = Interpreter({Fetch: perform}, recorder=recorder).run(fails, "in")
    assert isinstance(outcome, Failure) and recorder.close(timeout=30)
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    started_at = read_trace(path).header.started_at
    assert before <= started_at <= seen[0], (before, started_at, seen)


@pytest.mark.parametrize("mode", [ALWAYS, ON_FAILURE])
def test_traces_started_is_exact_while_threads_start_and_read_it(mode):
    """``traces_started`` is counted without a lock in the handler's thread: with threads
    starting executions and others reading ``stats`` all the while, every read lies between the
    executions finished before it and those started after it, reads never go backwards, and the
    count at the end is every execution."""
    recorder = Recorder(MemorySink(), mode=mode)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    threads, runs = 4, 300
    finished = [0] * threads
    errors: list[str] = []
    stop = threading.Event()

    def run(n: int) -> None:
        for i in range(runs):
            assert interpreter.run(two_fetches, [f"a{i}", f"b{i}"]).ok
            finished[n] += 1

    def read() -> None:
        last = 0
        while not stop.is_set():
            done_before = sum(finished)
            started = recorder.stats.traces_started
            if not done_before <= started <= threads * runs or started < last:
                errors.append(f"read {started} after {last}, with {done_before} finished")
            last = started

    readers = [threading.Thread(target=read) for _ in range(2)]
    workers = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in readers + workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    stats = recorder.stats
    assert stats.traces_started == threads * runs == stats.traces_started
    assert stats.traces_started == stats.traces_written + stats.traces_discarded
