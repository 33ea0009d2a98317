"""Recorder benchmarks: what recording costs the service that runs it.

    .venv/bin/python benchmarks/bench_recorder.py [--rounds 5]

The workload is a checkout-like handler with 4 effects (load a cart, reserve stock, charge a
card, send a receipt). For the per-execution costs the performers answer from memory (the cost
of recording is then not hidden by the effects); for the throughput they run against a real
in-memory SQLite database, one connection per thread (``--work-us`` adds that much CPU work to
each execution, standing for the service's own code: 0 by default). Every ratio is measured
side by side, contender after contender in each round, and the median over rounds is printed.
Prints ``name: value`` lines on stdout (details go to stderr):

* ``record_exec_overhead_us`` — the in-thread cost of recording one execution, beyond running it:
  CPU time of the handler's thread (``time.thread_time``) per execution recorded in ``always``
  mode into a ``DirectorySink``, minus the same unrecorded. Runs in batches of 100 followed by a
  ``flush()`` so that no trace is dropped (drops would make recording look cheaper). Goal <= 15.
* ``record_throughput_ratio`` — executions per second with recording (``always``, a
  ``DirectorySink``) / without: 8 threads and an asyncio loop of tasks running at once, same
  work. Goal >= 0.8. ``record_throughput_dropped`` is the fraction of recorded executions whose
  trace was dropped because the writer was behind (a dropped trace costs less than a written one,
  so read the ratio together with it), ``record_throughput_written`` the fraction written. ``record_throughput_ratio_all_written`` is the same run
  with a queue that never drops, timed until every trace is on disk: the total cost.
* ``record_throughput_writer_cpu_share`` — in the run that drops, the writer thread's CPU time
  / the whole process's (``record_throughput_writer_cpu_core``: / wall time, a fraction of one
  core): the share of the machine recording's writer took from the handlers (its budget,
  ``Recorder(writer_cpu_budget=)``, bounds the second). ``--recorder-option NAME=VALUE`` passes
  a ``Recorder`` option to every throughput run (e.g. ``writer_cpu_budget=None``).
* ``record_throughput_writer_*`` — the writer thread's profile in the all-written run, per trace
  written (:class:`WriterProfile`): awake (wall time not sleeping for work), CPU, wait (awake
  minus CPU: the GIL, or the disk), and within those the encoding of kept values and the sink's
  system calls (each as CPU and wait); ``traces_per_wakeup`` is traces per sleep of the writer.
* ``record_throughput_*_segments`` — the same runs into ``DirectorySink(segment_bytes=...)``
  (only for a checkout that has it).
* ``--simulate-free-encoding`` — a simulation, not a measurement: the writer appends one
  pre-encoded trace instead of encoding, to show its own share (queue, files, GIL) if encoding
  were near zero. ``PRODTURE_TREE`` times another checkout's package with this script;
  ``benchmarks/compare_recorder.sh`` runs two checkouts round after round and prints medians.
* ``record_on_failure_success_ratio`` — wall time of a successful execution in ``on-failure``
  mode / the same in ``always`` mode into a ``MemorySink``. Goal <= 0.3.
  ``record_on_failure_success_ratio_dicts`` is the same when the effects return dicts (mutable
  values, which on-failure mode must encode at once).
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import dataclasses
import gc
import inspect
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

#: PRODTURE_TREE: the python-adapter directory to measure (default: this checkout's), so that the
#: same benchmark can time another checkout side by side (see benchmarks/compare_recorder.sh).
sys.path.insert(
    0,
    os.environ.get("PRODTURE_TREE")
    or str(Path(__file__).resolve().parent.parent / "python-adapter"),
)

import prodture  # noqa: E402
from prodture import (  # noqa: E402
    ALWAYS,
    ON_FAILURE,
    DirectorySink,
    Effect,
    Interpreter,
    MemorySink,
    Recorder,
)


@dataclasses.dataclass(frozen=True)
class LoadCart(Effect, name="benchrec.LoadCart"):
    cart_id: str


@dataclasses.dataclass(frozen=True)
class Reserve(Effect, name="benchrec.Reserve"):
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class ChargeCard(Effect, name="benchrec.ChargeCard"):
    card_token: str
    amount: Decimal


@dataclasses.dataclass(frozen=True)
class SendReceipt(Effect, name="benchrec.SendReceipt"):
    email: str
    order_id: str


@prodture.register(name="benchrec.Cart")
@dataclasses.dataclass(frozen=True)
class Cart:
    cart_id: str
    sku: str
    quantity: int
    total: Decimal


@prodture.register(name="benchrec.Charge")
@dataclasses.dataclass(frozen=True)
class Charge:
    charge_id: str
    amount: Decimal


CART = Cart("cart-1842", "sku-77", 2, Decimal("58.99"))
CHARGE = Charge("ch_4b4d33b8e46f", Decimal("58.99"))

FROZEN_PERFORMERS = {
    LoadCart: lambda e: CART,
    Reserve: lambda e: True,
    ChargeCard: lambda e: CHARGE,
    SendReceipt: lambda e: "msg-1",
}
DICT_PERFORMERS = {
    LoadCart: lambda e: {"cart_id": e.cart_id, "sku": "sku-77", "quantity": 2, "total": "58.99"},
    Reserve: lambda e: {"reserved": True},
    ChargeCard: lambda e: {"charge_id": "ch_4b4d33b8e46f", "amount": "58.99"},
    SendReceipt: lambda e: {"message_id": "msg-1"},
}

WORK = [0]  # loop iterations of CPU work per execution (--work-us)

_db = threading.local()


def _conn() -> sqlite3.Connection:
    """This thread's in-memory SQLite shop (each thread its own, as a connection pool gives)."""
    conn = getattr(_db, "conn", None)
    if conn is None:
        conn = _db.conn = sqlite3.connect(":memory:")
        conn.executescript(
            "CREATE TABLE carts (id TEXT PRIMARY KEY, sku TEXT, quantity INT, total TEXT);"
            "CREATE TABLE stock (sku TEXT PRIMARY KEY, quantity INT);"
            "CREATE TABLE charges (id INTEGER PRIMARY KEY, token TEXT, amount TEXT);"
            "CREATE TABLE receipts (id INTEGER PRIMARY KEY, email TEXT, order_id TEXT);"
        )
        conn.executemany(
            "INSERT INTO carts VALUES (?, 'sku-77', 2, '58.99')",
            [(f"cart-o-{i}",) for i in range(1, 3)],
        )
        conn.execute("INSERT INTO stock VALUES ('sku-77', 1000000000)")
    return conn


def _load_cart(e: LoadCart) -> Cart:
    row = (
        _conn()
        .execute("SELECT id, sku, quantity, total FROM carts WHERE id = ?", (e.cart_id,))
        .fetchone()
    )
    return Cart(row[0], row[1], row[2], Decimal(row[3]))


def _reserve(e: Reserve) -> bool:
    conn = _conn()
    conn.execute("UPDATE stock SET quantity = quantity - ? WHERE sku = ?", (e.quantity, e.sku))
    return True


def _charge(e: ChargeCard) -> Charge:
    cursor = _conn().execute(
        "INSERT INTO charges (token, amount) VALUES (?, ?)", (e.card_token, str(e.amount))
    )
    return Charge(f"ch_{cursor.lastrowid}", e.amount)


def _send_receipt(e: SendReceipt) -> str:
    cursor = _conn().execute(
        "INSERT INTO receipts (email, order_id) VALUES (?, ?)", (e.email, e.order_id)
    )
    return f"msg-{cursor.lastrowid}"


#: The throughput workload: the same handler against a real (in-memory) SQLite database.
SQLITE_PERFORMERS = {
    LoadCart: _load_cart,
    Reserve: _reserve,
    ChargeCard: _charge,
    SendReceipt: _send_receipt,
}


def _busy(n: int) -> int:
    x = 0
    for i in range(n):
        x += i
    return x


@prodture.handler(name="benchrec:checkout")
def checkout(order_id):
    cart = yield LoadCart("cart-" + order_id)
    yield Reserve("sku-77", 2)
    charge = yield ChargeCard("tok_visa_4242", Decimal("58.99"))
    if WORK[0]:
        _busy(WORK[0])
    yield SendReceipt("ada@example.com", order_id)
    return {"order_id": order_id, "charge": charge if isinstance(charge, str) else "ok", "n": cart}


def _flush(recorder: Recorder) -> None:
    flush = getattr(recorder, "flush", None)
    if flush is not None:
        flush()


def _close(recorder: Recorder) -> None:
    close = getattr(recorder, "close", None)
    if close is not None:
        close()


def _stat(recorder: Recorder, name: str) -> int:
    return getattr(recorder.stats, name, 0)


# -- record_exec_overhead_us ------------------------------------------------------------------


def _writer_cpu(recorder: Recorder | None) -> float:
    """CPU seconds used so far by the recorder's writer thread (0 when it has none)."""
    thread = getattr(getattr(recorder, "_writer", None), "thread", None)
    if thread is None or thread.ident is None:
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    except (AttributeError, OSError):  # not Linux / the thread ended
        return 0.0


def thread_cpu_per_exec(
    interpreter: Interpreter, recorder: Recorder | None, n: int
) -> tuple[float, float]:
    """(handler-thread CPU seconds, writer-thread CPU seconds) per execution, in batches of 100
    with a flush in between."""
    run = interpreter.run
    total = writer = 0.0
    done = 0
    while done < n:
        batch = min(100, n - done)
        w0 = _writer_cpu(recorder)
        t0 = time.thread_time()
        for _ in range(batch):
            run(checkout, "o-1")
        total += time.thread_time() - t0
        done += batch
        if recorder is not None:
            _flush(recorder)
            writer += _writer_cpu(recorder) - w0
    return total / n, writer / n


def file_cpu_us(directory: str, n: int = 300) -> float:
    """CPU µs to create, write (600 bytes) and close one file in ``directory``, as the sink does:
    what one trace costs the writer thread in system calls alone on this file system."""
    os.makedirs(directory, exist_ok=True)
    t0 = time.thread_time()
    for i in range(n):
        fd = os.open(
            os.path.join(directory, f"probe-{i}"),
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
            0o600,
        )
        os.write(fd, b"x" * 600)
        os.close(fd)
    elapsed = time.thread_time() - t0
    shutil.rmtree(directory, ignore_errors=True)
    return elapsed / n * 1e6


# -- where the writer's time goes --------------------------------------------------------------


class WriterProfile:
    """Times a recorder's writer thread from the inside, per trace written: its CPU time, the
    wall time it is awake (not sleeping for work), and within that the encoding of kept values
    (``_StreamSession.complete``) and the sink's system calls (open, write, close), each as
    wall and CPU time of the writer thread. Wall minus CPU while awake is time spent waiting:
    for the GIL (the other threads hold it; every system call releases it and must take it back)
    or for the disk. Installed before the writer thread starts; costs a few µs per trace."""

    def __init__(self, recorder: Recorder) -> None:
        import prodture.recorder as rec_mod

        self.t = dict.fromkeys(
            ("cpu", "wall", "sleep", "enc_wall", "enc_cpu", "sys_wall", "sys_cpu"), 0.0
        )
        self.wakeups = 0
        writer = recorder._writer
        self.writer = writer
        t = self.t
        profile = self

        loop = writer._loop

        def timed_loop() -> None:
            c0, w0 = time.thread_time(), time.perf_counter()
            try:
                loop()
            finally:
                t["cpu"] += time.thread_time() - c0
                t["wall"] += time.perf_counter() - w0

        writer._loop = timed_loop

        class Bell:
            def __init__(self, lock) -> None:
                self.lock = lock

            def acquire(self, blocking=True, timeout=-1):
                w0 = time.perf_counter()
                try:
                    return self.lock.acquire(blocking, timeout)
                finally:
                    t["sleep"] += time.perf_counter() - w0
                    profile.wakeups += 1

            def release(self):
                return self.lock.release()

        writer._bell = Bell(writer._bell)

        def timed(key: str, fn):
            def call(*args):
                w0, c0 = time.perf_counter(), time.thread_time()
                try:
                    return fn(*args)
                finally:
                    t[key + "_wall"] += time.perf_counter() - w0
                    t[key + "_cpu"] += time.thread_time() - c0

            return call

        session = rec_mod._StreamSession
        self._restore = (session, session.__dict__["complete"])
        session.complete = timed("enc", session.complete)

        class Stream:
            def __init__(self, stream) -> None:
                self.stream = stream
                self.write = timed("sys", stream.write)
                self.close = timed("sys", stream.close)
                if hasattr(stream, "abort"):
                    self.abort = stream.abort

        class Sink:
            def __init__(self, sink) -> None:
                self.sink = sink
                self._open = timed("sys", sink.open)

            def open(self, info):
                return Stream(self._open(info))

        writer.sink = Sink(writer.sink)
        if getattr(writer, "append", None) is not None:  # a segment sink: batches appended
            writer.append = timed("sys", writer.append)

    def uninstall(self) -> None:
        cls, complete = self._restore
        cls.complete = complete

    def per_trace_us(self, traces: int) -> dict[str, float]:
        t = self.t
        awake = t["wall"] - t["sleep"]
        return {
            "cpu": t["cpu"] / traces * 1e6,
            "awake": awake / traces * 1e6,
            "wait": (awake - t["cpu"]) / traces * 1e6,
            "enc_cpu": t["enc_cpu"] / traces * 1e6,
            "enc_wait": (t["enc_wall"] - t["enc_cpu"]) / traces * 1e6,
            "sys_cpu": t["sys_cpu"] / traces * 1e6,
            "sys_wait": (t["sys_wall"] - t["sys_cpu"]) / traces * 1e6,
            "batch": traces / max(self.wakeups, 1),
        }


def simulate_free_encoding() -> None:
    """The writer's encoding of kept values replaced by appending one trace of this handler,
    encoded once here: what the writer would cost with an encoder near zero (not the recorder's
    behaviour: every trace written is then the same bytes)."""
    import prodture.recorder as rec_mod

    sink = MemorySink()
    Interpreter(SQLITE_PERFORMERS, recorder=Recorder(sink)).run(checkout, "o-1")
    (payload,) = sink.traces

    def complete(self) -> None:
        self.deferred = []
        self.head_pending = False
        self.success = self.tail = self.input = None
        self.records.clear()
        self.records.append(payload)

    rec_mod._StreamSession.complete = complete


# -- record_throughput_ratio ------------------------------------------------------------------

#: Whether this checkout's DirectorySink can append to segment files (older ones cannot: their
#: ``*_segments`` figures are left out).
SEGMENTS = "segment_bytes" in inspect.signature(DirectorySink).parameters
SEGMENT_BYTES = 64 * 1024 * 1024
#: Recorder options for the throughput runs (``--recorder-option name=value``), e.g.
#: ``writer_cpu_budget=None`` to measure a writer without its CPU budget.
RECORDER_OPTIONS: dict[str, object] = {}


def throughput(
    interpreter: Interpreter,
    threads: int,
    per_thread: int,
    tasks: int,
    until_written: Recorder | None = None,
) -> float:
    """Executions per second: ``threads`` threads running ``per_thread`` each while an asyncio
    loop (in its own thread) runs ``tasks`` tasks, 100 at a time (and, with ``until_written``,
    until that recorder has written every trace)."""
    barrier = threading.Barrier(threads + 2)

    def worker() -> None:
        barrier.wait()
        run = interpreter.run
        for _ in range(per_thread):
            run(checkout, "o-1")

    async def loop_main() -> None:
        for start in range(0, tasks, 100):
            await asyncio.gather(
                *(interpreter.run_async(checkout, "o-2") for _ in range(min(100, tasks - start)))
            )

    def loop_thread() -> None:
        barrier.wait()
        asyncio.run(loop_main())

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    pool.append(threading.Thread(target=loop_thread))
    for th in pool:
        th.start()
    barrier.wait()
    t0 = time.perf_counter()
    for th in pool:
        th.join()
    if until_written is not None:
        _close(until_written)
    elapsed = time.perf_counter() - t0
    return (threads * per_thread + tasks) / elapsed


def plain_throughput(args) -> float:
    """The unrecorded throughput, measured right before each recorded contender (the kernel
    may still be writing back the previous contender's files: both then share that load)."""
    gc.collect()
    return throughput(Interpreter(SQLITE_PERFORMERS), args.threads, args.per_thread, args.tasks)


@dataclasses.dataclass
class ThroughputRound:
    ratio: float  # recorded / unrecorded executions per second (drops allowed)
    dropped: float  # fraction of recorded executions whose trace was dropped
    written: float  # fraction written
    ratio_all: float  # the same with a queue that never drops, timed until all is on disk
    profile: dict[str, float]  # the writer's time per trace in the all-written run
    plain: float  # unrecorded executions per second
    recorded: float  # recorded executions per second (drops allowed)
    writer_share: float  # the writer thread's CPU / the process's CPU, in the dropping run
    writer_core: float  # the writer thread's CPU / wall time (fraction of one core), same run


def throughput_round(args, directory: str, sink_options: dict) -> ThroughputRound:
    """One round of ``record_throughput_*`` into ``DirectorySink(directory, **sink_options)``:
    recorded with the default queue (traces dropped when the writer is behind), then with a queue
    that never drops, timed until every trace is written (what recording everything costs in
    total, writer included); each after an unrecorded run of the same work."""
    total = args.threads * args.per_thread + args.tasks

    def run(recorder: Recorder, until_written: bool) -> float:
        return throughput(
            Interpreter(SQLITE_PERFORMERS, recorder=recorder),
            args.threads,
            args.per_thread,
            args.tasks,
            until_written=recorder if until_written else None,
        )

    rec = Recorder(
        DirectorySink(os.path.join(directory, "dropping"), **sink_options), **RECORDER_OPTIONS
    )
    tp_plain = plain_throughput(args)
    p0, w0 = time.process_time(), time.perf_counter()
    tp_rec = run(rec, until_written=False)
    process_cpu, wall = time.process_time() - p0, time.perf_counter() - w0
    writer_cpu = _writer_cpu(rec)  # its thread started in this run (before the close)
    _close(rec)
    shutil.rmtree(os.path.join(directory, "dropping"), ignore_errors=True)
    dropped = _stat(rec, "traces_dropped") / total
    written = _stat(rec, "traces_written") / total
    rec = Recorder(
        DirectorySink(os.path.join(directory, "all"), **sink_options),
        max_queue=10**7,
        **RECORDER_OPTIONS,
    )
    tp_plain_all = plain_throughput(args)
    profile = WriterProfile(rec)
    tp_all = run(rec, until_written=True)
    assert _stat(rec, "traces_written") == total, rec.stats
    profile.uninstall()
    shutil.rmtree(directory, ignore_errors=True)
    return ThroughputRound(
        tp_rec / tp_plain,
        dropped,
        written,
        tp_all / tp_plain_all,
        profile.per_trace_us(total),
        tp_plain,
        tp_rec,
        writer_cpu / max(process_cpu, 1e-9),
        writer_cpu / wall,
    )


# -- record_on_failure_success_ratio ----------------------------------------------------------


def wall_per_exec(interpreter: Interpreter, n: int) -> float:
    run = interpreter.run
    t0 = time.perf_counter()
    for _ in range(n):
        run(checkout, "o-1")
    return (time.perf_counter() - t0) / n


def overhead_round(args, plain, workdir, r, overhead, detail) -> None:
    rec = Recorder(DirectorySink(os.path.join(workdir, f"ovh-{r}")))
    recorded = Interpreter(FROZEN_PERFORMERS, recorder=rec)
    t_plain, _ = thread_cpu_per_exec(plain, None, args.execs)
    t_rec, t_writer = thread_cpu_per_exec(recorded, rec, args.execs)
    _close(rec)
    assert _stat(rec, "sink_errors") == 0 and _stat(rec, "traces_dropped") == 0, rec.stats
    overhead.append((t_rec - t_plain) * 1e6)
    detail["plain"].append(t_plain * 1e6)
    detail["recorded"].append(t_rec * 1e6)
    detail["writer"].append(t_writer * 1e6)
    detail["file"].append(file_cpu_us(os.path.join(workdir, f"probe-{r}")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--execs", type=int, default=3000, help="executions per round (overhead)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--per-thread", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--work-us", type=float, default=0.0)
    parser.add_argument(
        "--simulate-free-encoding",
        action="store_true",
        help="a simulation, not a measurement of the recorder: the writer appends one "
        "pre-encoded trace instead of encoding what the handler kept (what is left is the "
        "writer's own share: queue, files, GIL)",
    )
    parser.add_argument(
        "--throughput-only",
        action="store_true",
        help="only the record_throughput_* figures and the writer's profile",
    )
    parser.add_argument(
        "--recorder-option",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Recorder option for the throughput runs (a Python literal), e.g. "
        "writer_cpu_budget=None or writer_nice=0; repeatable",
    )
    parser.add_argument(
        "--dir", default=None, help="where the traces go (default: a new directory in $TMPDIR)"
    )
    args = parser.parse_args()
    for option in args.recorder_option:
        name, _, value = option.partition("=")
        RECORDER_OPTIONS[name.strip()] = ast.literal_eval(value.strip())
    if args.work_us:
        t0 = time.perf_counter()
        _busy(100_000)
        WORK[0] = int(100_000 * args.work_us * 1e-6 / (time.perf_counter() - t0))

    if args.simulate_free_encoding:
        simulate_free_encoding()
    workdir = tempfile.mkdtemp(prefix="prodture-benchrec-", dir=args.dir)
    try:
        plain = Interpreter(FROZEN_PERFORMERS)
        assert plain.run(checkout, "o-1").ok
        overhead, ratio, dropped, onf, onf_dicts, ratio_all = [], [], [], [], [], []
        written: list[float] = []
        writer_share: list[float] = []  # writer thread CPU / process CPU (dropping run)
        writer_core: list[float] = []  # writer thread CPU / wall (dropping run)
        profiles: list[dict[str, float]] = []
        seg_profiles: list[dict[str, float]] = []
        seg: dict[str, list[float]] = {
            "ratio": [],
            "dropped": [],
            "ratio_all": [],
            "writer_share": [],
        }
        detail: dict[str, list[float]] = {
            k: []
            for k in (
                "plain",
                "recorded",
                "writer",
                "file",
                "always_mem",
                "on_failure",
                "plain_tp",
                "rec_tp",
            )
        }
        for r in range(args.rounds):
            gc.collect()
            if not args.throughput_only:  # in-thread overhead, side by side
                overhead_round(args, plain, workdir, r, overhead, detail)
            # throughput, side by side: one file per trace, then (when the sink has them) segments
            one = throughput_round(args, os.path.join(workdir, f"tp-{r}"), {})
            ratio.append(one.ratio)
            dropped.append(one.dropped)
            written.append(one.written)
            ratio_all.append(one.ratio_all)
            writer_share.append(one.writer_share)
            writer_core.append(one.writer_core)
            profiles.append(one.profile)
            detail["plain_tp"].append(one.plain)
            detail["rec_tp"].append(one.recorded)
            if SEGMENTS:  # DirectorySink(segment_bytes): many traces per file
                many = throughput_round(
                    args, os.path.join(workdir, f"seg-{r}"), {"segment_bytes": SEGMENT_BYTES}
                )
                seg["ratio"].append(many.ratio)
                seg["dropped"].append(many.dropped)
                seg["ratio_all"].append(many.ratio_all)
                seg["writer_share"].append(many.writer_share)
                seg_profiles.append(many.profile)
            if args.throughput_only:
                continue
            # on-failure success vs always-to-memory, frozen results then dicts
            for performers, out in ((FROZEN_PERFORMERS, onf), (DICT_PERFORMERS, onf_dicts)):
                always = Interpreter(performers, recorder=Recorder(MemorySink(), mode=ALWAYS))
                on_failure = Interpreter(
                    performers, recorder=Recorder(MemorySink(), mode=ON_FAILURE)
                )
                t_always = wall_per_exec(always, args.execs)
                t_onf = wall_per_exec(on_failure, args.execs)
                out.append(t_onf / t_always)
                if performers is FROZEN_PERFORMERS:
                    detail["always_mem"].append(t_always * 1e6)
                    detail["on_failure"].append(t_onf * 1e6)

        med = statistics.median
        print(f"record_throughput_ratio: {med(ratio):.3f}")
        print(f"record_throughput_dropped: {med(dropped):.3f}")
        print(f"record_throughput_written: {med(written):.3f}")
        print(f"record_throughput_ratio_all_written: {med(ratio_all):.3f}")
        print(f"record_throughput_writer_cpu_share: {med(writer_share):.3f}")
        print(f"record_throughput_writer_cpu_core: {med(writer_core):.3f}")
        writer_figures = (
            ("awake", "writer_awake_us_per_trace"),
            ("cpu", "writer_cpu_us_per_trace"),
            ("wait", "writer_wait_us_per_trace"),
            ("enc_cpu", "writer_encode_cpu_us"),
            ("enc_wait", "writer_encode_wait_us"),
            ("sys_cpu", "writer_syscall_cpu_us"),
            ("sys_wait", "writer_syscall_wait_us"),
            ("batch", "writer_traces_per_wakeup"),
        )
        for key, name in writer_figures:
            print(f"record_throughput_{name}: {med(p[key] for p in profiles):.1f}")
        if SEGMENTS:
            print(f"record_throughput_ratio_segments: {med(seg['ratio']):.3f}")
            print(f"record_throughput_dropped_segments: {med(seg['dropped']):.3f}")
            print(f"record_throughput_ratio_all_written_segments: {med(seg['ratio_all']):.3f}")
            print(f"record_throughput_writer_cpu_share_segments: {med(seg['writer_share']):.3f}")
            for key, name in writer_figures:
                print(f"record_throughput_segments_{name}: {med(p[key] for p in seg_profiles):.1f}")
        if args.throughput_only:
            return 0
        print(f"record_exec_overhead_us: {med(overhead):.2f}")
        print(f"record_on_failure_success_ratio: {med(onf):.3f}")
        print(f"record_on_failure_success_ratio_dicts: {med(onf_dicts):.3f}")
        print(
            f"# per execution (median): unrecorded {med(detail['plain']):.1f} µs thread CPU, "
            f"recorded {med(detail['recorded']):.1f} µs (+ writer thread {med(detail['writer']):.1f} µs, "
            f"of which creating+writing+closing a file {med(detail['file']):.1f} µs on {workdir}); "
            "always-to-memory "
            f"{med(detail['always_mem']):.1f} µs, on-failure success {med(detail['on_failure']):.1f} µs; "
            f"throughput {med(detail['plain_tp']):.0f}/s unrecorded, {med(detail['rec_tp']):.0f}/s "
            f"recorded ({args.threads} threads x {args.per_thread} + {args.tasks} asyncio tasks, "
            f"work {args.work_us} µs)",
            file=sys.stderr,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
