"""Where the recorder's background writer spends its time, per trace.

    .venv/bin/python benchmarks/bench_writer.py [--traces 3000] [--dir DIR]

The workload is ``bench_recorder``'s checkout handler (4 effects, values kept for the writer to
encode). Traces are queued while the writer is held, then each part of the writer's work is
timed alone, in CPU time of the thread doing it (``time.thread_time``: kernel time included,
waiting for the GIL or the disk excluded). Prints ``name: value`` lines:

* ``writer_encode_us`` — encoding what the handler's thread kept for later (header, input,
  effects, outcome): the codec's work, done by the writer.
* ``writer_overhead_us`` — the writer's own Python work (queue, counts, stream objects, the
  file name), with a sink that does nothing.
* ``writer_file_us`` — creating, writing and closing one ``.prodtrace`` file in ``--dir``
  (``DirectorySink``) — the system calls; ``writer_append_us`` is the same bytes appended to one
  open file, what a segment file of many traces would cost instead; ``writer_segment_us`` the
  writer's own work per trace with ``DirectorySink(segment_bytes=...)`` (256 traces per append).
* ``trace_id_us`` — making an execution's trace id in the handler's thread (the interpreter asks
  for it at the start of every recorded execution).
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time

import bench_recorder as workload

from prodture.recorder import DirectorySink, Recorder, _trace_id
from prodture.runtime import Interpreter


class _NullStream:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class _NullSink:
    def open(self, info):
        return _NullStream()


def _queued(sink, n: int):
    """A recorder whose writer is held, with ``n`` finished traces queued."""
    recorder = Recorder(sink, max_queue=n + 1, **_big_byte_bound())
    interpreter = Interpreter(workload.FROZEN_PERFORMERS, recorder=recorder)
    interpreter.run(workload.checkout, "o-1")
    recorder.flush()
    writer = recorder._writer
    writer.stop(None)
    writer.wake = lambda: None  # the thread stays stopped: this process drains by hand
    for _ in range(n):
        interpreter.run(workload.checkout, "o-1")
    return recorder, writer


def _big_byte_bound() -> dict:
    import inspect

    params = inspect.signature(Recorder).parameters
    return {"max_queue_bytes": 1 << 40} if "max_queue_bytes" in params else {}


def _payload(trace) -> bytes | bytearray:
    """A completed trace's encoded bytes: its records (a bytearray; in older checkouts a deque
    of them, joined)."""
    records = trace.records
    return records if isinstance(records, bytearray) else b"".join(records)


def _cpu_per(n: int, fn) -> float:
    t0 = time.thread_time()
    fn()
    return (time.thread_time() - t0) / n * 1e6


def one_round(n: int, directory: str) -> dict[str, float]:
    out: dict[str, float] = {}
    recorder, writer = _queued(_NullSink(), n)
    items = list(writer.done)
    out["writer_encode_us"] = _cpu_per(n, lambda: [t.complete() for t in items])
    out["writer_overhead_us"] = _cpu_per(n, writer._drain_done)

    recorder, writer = _queued(DirectorySink(directory), n)
    items = list(writer.done)
    writer.done.clear()  # written by hand below (not again at exit)
    for t in items:
        t.complete()
        t.info  # noqa: B018 -- made here, so that only the sink's work is timed below
    payloads = [_payload(t) for t in items]
    sink = writer.sink

    def files() -> None:
        for t, data in zip(items, payloads, strict=True):
            stream = sink.open(t.info)
            stream.write(data)
            stream.close()

    out["writer_file_us"] = _cpu_per(n, files)
    segment = os.path.join(directory, "segment")

    def append() -> None:
        fd = os.open(segment, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        for data in payloads:
            os.write(fd, data)
        os.close(fd)

    out["writer_append_us"] = _cpu_per(n, append)

    # The same traces through DirectorySink(segment_bytes=...), 256 per append as the writer
    # batches them (encoding done before the clock starts, as for writer_file_us).
    recorder, writer = _queued(
        DirectorySink(os.path.join(directory, "seg"), segment_bytes=1 << 30), n
    )
    items = list(writer.done)
    writer.done.clear()
    for t in items:
        t.complete()
        t.info  # noqa: B018 -- made here, as above
    whole = [(t, (t.info, _payload(t))) for t in items]  # what _encode_whole hands on
    out["writer_segment_us"] = _cpu_per(
        n, lambda: [writer._append_whole(whole[i : i + 256]) for i in range(0, n, 256)]
    )
    writer.sink.end_segment()
    out["bytes_per_trace"] = statistics.mean(map(len, payloads))

    reps = 20_000
    gc.collect()
    gc.disable()  # a collection landing in one loop and not the other would swamp the difference
    t0 = time.thread_time()
    for _ in range(reps):
        pass
    bare = time.thread_time() - t0
    t0 = time.thread_time()
    for _ in range(reps):
        _trace_id()  # what a session makes when it starts
    out["trace_id_us"] = (time.thread_time() - t0 - bare) / reps * 1e6
    gc.enable()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="where files go (default: $TMPDIR)")
    args = parser.parse_args()
    rounds = []
    for _ in range(args.rounds):
        directory = tempfile.mkdtemp(prefix="prodture-benchwriter-", dir=args.dir)
        try:
            rounds.append(one_round(args.traces, directory))
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    for name in rounds[0]:
        print(f"{name}: {statistics.median(r[name] for r in rounds):.2f}")
    print(f"# on {args.dir or tempfile.gettempdir()}, {args.traces} traces", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
