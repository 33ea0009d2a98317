"""DirectorySink(segment_bytes=...): many whole traces appended to one segment file.

Each trace in a segment must read back whole and self-contained with ``read_trace``; a full disk
(a real 256 KiB tmpfs) must leave segments of whole traces only, no empty segment and no open
descriptor; an execution that runs past ``flush_interval`` is still streamed while it runs, into
a file of its own. No test depends on timing.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import glob
import os
import stat
import threading
from pathlib import Path

import pytest

from prodture import (
    DirectorySink,
    Effect,
    Interpreter,
    MemorySink,
    Recorder,
    Success,
    read_trace,
)
from prodture.recorder import TraceInfo, segment_traces
from prodture.trace.codec import TraceFormatError
from test_recorder_writer import _descriptors_into, small_disk  # noqa: F401 -- a fixture


@dataclasses.dataclass(frozen=True)
class Fetch(Effect, name="test_segments.Fetch"):
    key: str


GATE: dict[str, threading.Event] = {}


def fetch(effect: Fetch) -> dict:
    gate = GATE.get(effect.key)
    if gate is not None:
        assert gate.wait(timeout=60), "the test never opened the gate"
    if effect.key.startswith("slow"):  # a set: mutable, so recorded (and written) at once
        return {"key": effect.key, "blob": effect.key * 200, "tags": {"slow"}}
    return {"key": effect.key, "blob": effect.key * 200}


def two_fetches(keys):
    first = yield Fetch(keys[0])
    second = yield Fetch(keys[1])
    return [len(first["blob"]), len(second["blob"])]


def _segment_inputs(folder: Path) -> list:
    """Every trace in the segments of ``folder`` (each checked whole), by input."""
    inputs = []
    for path in sorted(glob.glob(str(folder / "*.prodtraces"))):
        assert os.path.getsize(path) > 0, f"an empty segment was left behind: {path}"
        for data in segment_traces(path):
            trace = read_trace(data)
            assert trace.complete and not trace.truncated, path
            assert len(trace.effects) == 2
            inputs.append(trace.input)
    return inputs


def test_segments_hold_whole_traces_that_read_back_one_by_one(tmp_path: Path):
    """8 threads x 40 executions into segments of about 8 KiB: every trace is in exactly one
    segment, whole; nothing is written as a file per trace; segments are owner-only.
    (``flush_interval`` is an hour: on a busy machine an execution may outlive the default
    50 ms, and an execution still running then is streamed to a file of its own, by design.)"""
    recorder = Recorder(DirectorySink(tmp_path, segment_bytes=8 * 1024), flush_interval=3600)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)

    def work(t: int) -> None:
        for i in range(40):
            assert interpreter.run(two_fetches, [f"t{t}-{i}", "b"]).ok

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert recorder.close(timeout=60)
    assert recorder.stats.traces_written == 320 and recorder.stats.sink_errors == 0
    assert glob.glob(str(tmp_path / "*.prodtrace")) == []
    segments = glob.glob(str(tmp_path / "*.prodtraces"))
    assert len(segments) > 1, "segments were never rotated at segment_bytes"
    for path in segments:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    inputs = _segment_inputs(tmp_path)
    assert sorted(map(tuple, inputs)) == sorted(
        (f"t{t}-{i}", "b") for t in range(8) for i in range(40)
    )
    # Traces that share a segment are each self-contained: type records are not shared.
    ids = [read_trace(d).header.trace_id for p in segments for d in segment_traces(p)]
    assert len(set(ids)) == 320


def test_a_batch_handed_over_at_once_fills_segments_of_about_segment_bytes(tmp_path: Path):
    """A writer that fell behind (a busy machine, its CPU budget) hands the sink hundreds of
    finished traces in one batch: they are split into segments of about ``segment_bytes``
    (each closed once the next trace would not fit; a bigger trace alone), not one segment of
    them all, and every trace reads back whole, in order."""
    memory = MemorySink()
    recorder = Recorder(memory)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(100):
        assert interpreter.run(two_fetches, [f"batch-{i:03d}", "b"]).ok
    big = interpreter.run(two_fetches, ["x" * 60, "b"])  # a trace over 8 KiB: its own segment
    assert big.ok and recorder.close(timeout=60)
    traces = [read_trace(data) for data in memory.traces]
    sizes = [len(data) for data in memory.traces]
    assert max(sizes) > 8 * 1024 > sorted(sizes)[-2] > 0
    start = _dt.datetime(2026, 12, 1, tzinfo=_dt.timezone.utc)
    batch: list[tuple[TraceInfo, bytes | bytearray]] = [
        (TraceInfo(t.handler, t.header.trace_id, start + _dt.timedelta(seconds=i)), data)
        for i, (t, data) in enumerate(zip(traces, memory.traces, strict=True))
    ]
    sink = DirectorySink(tmp_path, segment_bytes=8 * 1024)
    assert sink.append_traces(batch) == [None] * len(batch)
    segments = sorted(glob.glob(str(tmp_path / "*.prodtraces")))  # (named by their first's start)
    assert len(segments) >= sum(sizes) // (8 * 1024)
    read_back = []
    for path in segments:
        held = segment_traces(path)
        assert os.path.getsize(path) <= 8 * 1024 or len(held) == 1, (path, len(held))
        read_back += held
    assert read_back == [bytes(data) for data in memory.traces]


def test_a_full_disk_leaves_segments_of_whole_traces_only(small_disk):  # noqa: F811 -- fixture
    """300 executions into segments on a 256 KiB filesystem: every result is what the handler
    returned, each lost trace is a counted sink error, every trace counted as written is whole
    in a segment, no segment is empty or ends in part of a trace, no descriptor stays open."""
    # One segment larger than the disk: the disk fills in the middle of it, where a failed
    # append must be cut back to the last whole trace.
    recorder = Recorder(DirectorySink(small_disk, segment_bytes=1 << 20))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(300):
        keys = [f"k{i:03d}-xxxxx", f"y{i:03d}"]
        assert interpreter.run(two_fetches, keys) == Success([len(keys[0]) * 200, 800])
    assert recorder.close(timeout=60)
    stats = recorder.stats
    assert stats.sink_errors > 0, "the disk never filled: make the traces bigger"
    assert stats.traces_started == stats.traces_written + stats.sink_errors
    inputs = _segment_inputs(small_disk)
    assert len(inputs) == stats.traces_written
    assert _descriptors_into(small_disk) == [], "a segment's descriptor was left open"
    assert glob.glob(str(small_disk / "*.prodtrace")) == []


def test_an_execution_running_past_flush_interval_is_streamed_into_a_file_of_its_own(
    tmp_path: Path,
):
    """Segments hold finished traces only: a long execution's records are written while it
    runs (what a kill -9 can lose stays bounded), in a .prodtrace file of its own."""
    recorder = Recorder(DirectorySink(tmp_path, segment_bytes=1 << 20), flush_interval=0.01)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    GATE["slow-b"] = gate = threading.Event()
    try:
        long = threading.Thread(target=interpreter.run, args=(two_fetches, ["slow-a", "slow-b"]))
        long.start()
        # The first effect's record reaches its own file while the execution is blocked.
        for _ in range(6000):
            files = glob.glob(str(tmp_path / "*.prodtrace"))
            try:
                if files and read_trace(files[0]).effects:
                    break
            except TraceFormatError:  # created, its first write not made yet: an empty file
                pass
            threading.Event().wait(0.01)
        else:
            pytest.fail("the running execution was never streamed to a file of its own")
        for i in range(5):
            assert interpreter.run(two_fetches, [f"quick-{i}", "b"]).ok
        gate.set()
        long.join(timeout=60)
    finally:
        gate.set()
        del GATE["slow-b"]
    assert recorder.close(timeout=60)
    (own,) = glob.glob(str(tmp_path / "*.prodtrace"))
    trace = read_trace(own)
    assert trace.complete and trace.input == ["slow-a", "slow-b"]
    assert sorted(i[0] for i in _segment_inputs(tmp_path)) == [f"quick-{i}" for i in range(5)]


def test_segment_traces_splits_a_killed_writers_segment_and_refuses_other_data(tmp_path):
    recorder = Recorder(DirectorySink(tmp_path, segment_bytes=1 << 20))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(3):
        interpreter.run(two_fetches, [f"a{i}", "b"])
    assert recorder.close(timeout=60)
    (path,) = glob.glob(str(tmp_path / "*.prodtraces"))
    data = Path(path).read_bytes()
    cut = segment_traces(data[:-5])  # a writer killed inside the last record
    assert [read_trace(t).complete for t in cut] == [True, True, False]
    assert read_trace(cut[2]).input == ["a2", "b"]
    with pytest.raises(ValueError, match="not a trace segment"):
        segment_traces(data[len(cut[0]) + 1 :])


def test_segment_bytes_must_be_positive(tmp_path: Path):
    with pytest.raises(ValueError, match="segment_bytes must be a positive size"):
        DirectorySink(tmp_path, segment_bytes=0)


def _child_records_into_segments(recorder: Recorder, interpreter: Interpreter) -> None:
    for i in range(2):
        assert interpreter.run(two_fetches, [f"child-{i}", "b"]).ok
    assert recorder.close(timeout=30)
    assert recorder.stats.traces_written == 2, recorder.stats


# A fork while the writer thread runs is what this tests; 3.12+ warns about it.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_child_appends_to_a_segment_of_its_own(tmp_path: Path):
    """The parent's segment is open at the fork: the child never appends to it (nor cuts it
    back); it starts its own, and both read back whole."""
    import multiprocessing

    recorder = Recorder(DirectorySink(tmp_path, segment_bytes=1 << 20))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for i in range(2):
        assert interpreter.run(two_fetches, [f"parent-{i}", "b"]).ok
    assert recorder.flush(timeout=60)  # the parent's segment exists and stays open
    (parents,) = glob.glob(str(tmp_path / "*.prodtraces"))
    child = multiprocessing.get_context("fork").Process(
        target=_child_records_into_segments, args=(recorder, interpreter)
    )
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the child failed its checks or hung (see its stderr)"
    assert interpreter.run(two_fetches, ["parent-2", "b"]).ok
    assert recorder.close(timeout=60)
    in_parents = [read_trace(t).input[0] for t in segment_traces(parents)]
    assert in_parents == ["parent-0", "parent-1", "parent-2"]
    assert sorted(i[0] for i in _segment_inputs(tmp_path)) == [
        "child-0",
        "child-1",
        "parent-0",
        "parent-1",
        "parent-2",
    ]


def test_prodture_split_writes_each_trace_of_a_segment_as_a_file_the_tools_open(tmp_path, capsys):
    """A segment cannot be opened as one trace (the reader says to split it); ``prodture split``
    writes one ``.prodtrace`` per trace, each readable, and never writes one twice."""
    from prodture.cli import main

    recorder = Recorder(DirectorySink(tmp_path / "rec", segment_bytes=1 << 20))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    for n in range(5):
        assert interpreter.run(two_fetches, [f"a{n}", f"b{n}"]).ok
    recorder.close()
    (segment,) = glob.glob(str(tmp_path / "rec" / "*.prodtraces"))
    with pytest.raises(TraceFormatError, match="holds several traces.*prodture split"):
        read_trace(segment)

    out = tmp_path / "split"
    assert main(["split", segment, "--out", str(out)]) == 0
    assert "5 traces written" in capsys.readouterr().out
    files = sorted(out.glob("*.prodtrace"))
    assert len(files) == 5
    traces = [read_trace(f) for f in files]
    assert sorted(t.input[0] for t in traces) == [f"a{n}" for n in range(5)]
    assert all(
        f.name == f"{t.header.trace_id}.prodtrace" for f, t in zip(files, traces, strict=True)
    )
    assert all(stat.S_IMODE(os.stat(f).st_mode) == 0o600 for f in files)

    assert main(["split", segment, "--out", str(out)]) == 0
    again = capsys.readouterr().out
    assert "0 traces written" in again and "(5 already there)" in again
    assert main(["split", str(files[0]), "--out", str(tmp_path / "x")]) == 0  # one trace: one file
    assert main(["split", str(tmp_path / "missing.prodtraces")]) == 2
    assert "cannot read" in capsys.readouterr().err
