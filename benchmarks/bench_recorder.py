"""Recorder benchmarks: what recording costs the service that runs it.

    .venv/bin/python benchmarks/bench_recorder.py [--rounds 5] [--throughput-only] [--pairs N]

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
  ``DirectorySink``) / without: 8 threads and an asyncio loop of 100 tasks running the same
  handler at once, in the steady state of a service that outruns its writer. The workload runs
  without a break while the interpreter it uses is switched, window after window (``--window``
  0.4 s each): unrecorded, a treatment, unrecorded, the next treatment... (``--pairs`` windows
  of each treatment, 12 by default, 25 with ``--throughput-only``). A recorded window has a
  fresh ``Recorder`` and is measured once its queue is full (the first trace dropped, then
  0.1 s); it is closed (everything queued written) before the next unrecorded window starts.
  Each treatment window is compared with the mean of its two unrecorded neighbours (a linear
  drift of the machine's load cancels); printed: the median of those ratios and ``*_iqr``, its
  interquartile range. Goal >= 0.8. (Until this change the figure came from one run of 10,000
  executions with a fresh recorder after one unrecorded run: its queue of 1,000 traces was
  still filling for most of the run, so about 11% of executions were recorded instead of the
  steady state's 1-2%; two rounds on the same tree read 0.77 and 1.11.)
* ``record_throughput_aa_ratio`` — the control: the same windows with an unrecorded interpreter
  as the treatment; its median (near 1) and ``*_iqr`` are the noise floor of the figures above.
* ``record_throughput_cpu_ratio`` — the process's CPU seconds per execution, unrecorded /
  recorded, in the same windows (``record_throughput_aa_cpu_ratio``: its control): what
  recording costs in CPU, which other processes' load disturbs less than wall time. The
  throughput ratio is exactly ``record_throughput_util_ratio`` (the process's CPU per wall
  second, recorded / unrecorded: below 1 when recording leaves cores idle, e.g. threads
  waiting for the GIL) times the CPU ratio.
* Where the loss goes, ``ratio = util_ratio * (1 - loss_in_thread - loss_writer)``:
  ``record_throughput_loss_writer`` is the writer thread's CPU / the process's in the recorded
  windows (also ``record_throughput_writer_cpu_share``; ``record_throughput_writer_cpu_core`` is
  its CPU / wall time, which ``Recorder(writer_cpu_budget=)`` bounds),
  ``record_throughput_loss_in_thread`` the handler threads' extra CPU per execution
  (``record_throughput_thread_extra_us``) / the recorded CPU per execution,
  ``record_throughput_loss_util`` is ``1 - util_ratio``. ``record_throughput_drop_cost_us`` and
  ``record_throughput_record_cost_us`` are single-thread costs (handler-thread CPU per
  execution beyond unrecorded) of an execution whose trace is dropped at ``begin`` (a recorder
  whose sink stalls) and of one recorded; ``record_throughput_loss_in_thread_explained`` is the
  in-thread loss they account for at the windows' fractions ``record_throughput_dropped`` (of
  the executions the recorder saw begin in the window, dropped, nearly all at ``begin``) and
  ``record_throughput_recorded`` (encoded in the thread; the two add up to 1);
  the rest of ``loss_in_thread`` is contention between threads. ``record_throughput_written``
  is the fraction the writer wrote meanwhile, ``record_throughput_sys_extra_us`` the extra
  kernel CPU per execution, ``record_throughput_writer_us_per_exec`` the writer's CPU per
  execution.
* Three regimes. This process runs on one core at a time (the threads take turns holding the
  GIL: about 1.0 core used, little system time); or, when the machine has a second core free,
  on more than one (a thread that releases the GIL lets another run on the other core, and
  taking it back is a futex hand-off between cores: 1.3-1.4 cores, a third of it system time,
  3-5x the CPU per execution); or crowded, on less than a core, when other processes take more
  than the other core (throughput then follows their load). It flips between them as other
  processes' load comes and goes. A window is "multi" above ``MULTI_CORE_UTIL`` (1.15) cores
  used, "crowded" below ``CROWDED_UTIL`` (0.85), else "one". Every ratio above compares only
  treatment windows whose two unrecorded neighbours ran in the same regime (a pair across a
  flip measures the flip, 2-4x, not recording); ``*_one_core``, ``*_multi_core`` and
  ``*_crowded_core`` are the ratios within each regime, ``record_throughput_windows_compared``
  the fraction of windows compared, ``record_throughput_<regime>_core_windows`` how they
  split, ``record_throughput_<regime>_core_others_cores`` the median cores the rest of the
  machine used meanwhile (from ``/proc/stat``): "multi" is the regime of a quiet machine, "one"
  that of a machine whose other core is busy, and the least noisy.
* ``record_throughput_ratio_all_written`` — ``threads * per_thread + tasks`` executions
  recorded with a queue that never drops, timed until every trace is on disk (the total cost
  of recording everything, writer included) / the same unrecorded, median of ``--rounds``.
* ``--recorder-option NAME=VALUE`` passes a ``Recorder`` option to every throughput run (e.g.
  ``writer_cpu_budget=None``); ``--show-windows`` prints each window on stderr.
* ``record_throughput_writer_*`` — the writer thread's profile in the all-written run, per trace
  written (:class:`WriterProfile`): awake (wall time not sleeping for work), CPU, wait (awake
  minus CPU: the GIL, or the disk), and within those the encoding of kept values and the sink's
  system calls (each as CPU and wait); ``traces_per_wakeup`` is traces per sleep of the writer.
* ``record_throughput_*_segments`` — the same windows and runs into
  ``DirectorySink(segment_bytes=...)`` (only for a checkout that has it). Its writer counts
  traces written per appended batch (up to 1,024), so in a 0.4 s window
  ``record_throughput_written_segments`` can read 0: ``record_throughput_recorded_segments``
  is what it writes in the steady state.
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
import logging
import math
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
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


def simulate_free_encoding() -> Callable[[], None]:
    """The writer's encoding of kept values replaced by appending one trace of this handler,
    encoded once here: what the writer would cost with an encoder near zero (not the recorder's
    behaviour: every trace written is then the same bytes). Returns what undoes it."""
    import prodture.recorder as rec_mod

    sink = MemorySink()
    Interpreter(SQLITE_PERFORMERS, recorder=Recorder(sink)).run(checkout, "o-1")
    (payload,) = sink.traces

    # What complete() lets go of; the names differ between checkouts (the session has slots,
    # so a name it lacks cannot be set: that one is skipped).
    released = (
        ("deferred", []),
        ("head_pending", False),
        ("tail", None),
        ("input", None),
        ("result", None),
        ("result_ns", None),
        ("success", None),
    )

    def complete(self) -> None:
        for name, value in released:
            try:
                setattr(self, name, value)
            except AttributeError:
                pass
        if isinstance(self.records, bytearray):  # (a checkout whose records are one buffer)
            self.records[:] = payload
        else:
            self.records.clear()
            self.records.append(payload)

    session = rec_mod._StreamSession
    original = session.__dict__["complete"]
    session.complete = complete

    def undo() -> None:
        session.complete = original

    return undo


# -- record_throughput_ratio ------------------------------------------------------------------

#: Whether this checkout's DirectorySink can append to segment files (older ones cannot: their
#: ``*_segments`` figures are left out).
SEGMENTS = "segment_bytes" in inspect.signature(DirectorySink).parameters
SEGMENT_BYTES = 64 * 1024 * 1024
#: Recorder options for the throughput runs (``--recorder-option name=value``), e.g.
#: ``writer_cpu_budget=None`` to measure a writer without its CPU budget.
RECORDER_OPTIONS: dict[str, object] = {}


class Workload:
    """The throughput workload, running without a break: ``threads`` threads and an asyncio loop
    (in its own thread) with ``tasks`` tasks at a time, each execution run by whichever
    interpreter ``current`` holds when it starts. Switching ``current`` switches every thread
    within one execution (the loop's tasks within one task), with no thread started or joined
    and no barrier between windows: the windows compared differ in the interpreter only.
    :meth:`pause` parks every thread between two executions (while a window's recorder is
    closed: no execution is then in flight, and the close does not compete with them)."""

    def __init__(self, threads: int, tasks: int) -> None:
        self.current = Interpreter(SQLITE_PERFORMERS)
        #: executions finished, one counter per thread (the last one the loop's): each is
        #: written by its own thread only, and read (summed) by the main thread.
        self.counts = [0] * (threads + 1)
        self.stopping = False
        self.paused = False
        self.running = threading.Event()
        self.running.set()
        self.parked = 0
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._worker, args=(i,), daemon=True) for i in range(threads)
        ]
        self.threads.append(threading.Thread(target=self._loop_thread, args=(tasks,), daemon=True))

    def _park(self) -> None:
        with self._lock:
            self.parked += 1
        self.running.wait()
        with self._lock:
            self.parked -= 1

    def _worker(self, i: int) -> None:
        counts = self.counts
        while not self.stopping:
            if self.paused:
                self._park()
                continue
            self.current.run(checkout, "o-1")
            counts[i] += 1

    def _loop_thread(self, tasks: int) -> None:
        counts, last = self.counts, len(self.counts) - 1

        async def task() -> None:
            while not self.stopping:
                if self.paused:
                    self._park()  # blocks the loop's thread: its other tasks wait too
                    continue
                await self.current.run_async(checkout, "o-2")
                counts[last] += 1

        async def main() -> None:
            await asyncio.gather(*(task() for _ in range(tasks)))

        asyncio.run(main())

    def pause(self, timeout: float = 30.0) -> None:
        """Park every thread between two executions; returns once all are parked."""
        self.running.clear()
        self.paused = True
        deadline = time.perf_counter() + timeout
        while self.parked < len(self.threads):
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.parked} of {len(self.threads)} threads parked")
            time.sleep(0.001)

    def resume(self, interpreter: Interpreter) -> None:
        self.current = interpreter
        self.paused = False
        self.running.set()

    def __enter__(self) -> Workload:
        for th in self.threads:
            th.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping = True
        self.paused = False
        self.running.set()
        for th in self.threads:
            th.join()

    def executions(self) -> int:
        return sum(self.counts)


@dataclasses.dataclass
class Window:
    """What one measured window of the workload did."""

    execs: int  # executions finished
    wall: float  # seconds
    cpu: float  # the process's CPU seconds (all threads)
    sys_cpu: float  # of which in the kernel (system calls: the GIL's futexes, files, SQLite's)
    writer_cpu: float  # the recorder's writer thread's CPU seconds (0 unrecorded)
    started: int  # executions the recorder saw begin (0 unrecorded)
    recorded: int  # traces encoded in the handlers' threads (begun and not dropped)
    dropped: int  # traces dropped at begin (queue full)
    written: int  # traces the writer wrote
    others: float  # cores the rest of the machine used meanwhile (and the hypervisor stole)

    @property
    def rate(self) -> float:
        return self.execs / self.wall

    @property
    def cpu_per_exec(self) -> float:
        return self.cpu / self.execs

    @property
    def handler_cpu_per_exec(self) -> float:
        return (self.cpu - self.writer_cpu) / self.execs


def _counters(recorder: Recorder | None) -> tuple[int, int, int, float]:
    if recorder is None:
        return 0, 0, 0, 0.0
    s = recorder.stats
    return s.traces_started, s.traces_dropped, s.traces_written, _writer_cpu(recorder)


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy() -> float:
    """CPU seconds all cores have spent busy (or stolen by the hypervisor) since boot; 0 where
    there is no /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / _TICK  # user .. steal (guest time is inside user)


def measure_window(workload: Workload, recorder: Recorder | None, seconds: float) -> Window:
    """Count what the workload does in the next ``seconds`` (it runs whatever it runs).

    The recorder's counters are read right next to the executions finished, with nothing that
    releases the GIL in between (``/proc/stat`` is read outside: each of its system calls hands
    the GIL to the handler threads for a switch interval, ~5 ms, and drops counted during those
    hand-offs but not their executions once read ``dropped`` 1.07 of the window's executions).
    The fractions dropped and recorded are of the executions the recorder saw start in the
    same two reads (``started``), so they add up to 1."""
    m0 = _machine_busy()
    started0, dropped0, written0, writer0 = _counters(recorder)
    n0, c0, w0, k0 = workload.executions(), time.process_time(), time.perf_counter(), os.times()
    time.sleep(seconds)
    n1, c1, w1, k1 = workload.executions(), time.process_time(), time.perf_counter(), os.times()
    started1, dropped1, written1, writer1 = _counters(recorder)
    m1 = _machine_busy()
    dropped = dropped1 - dropped0
    return Window(
        n1 - n0,
        w1 - w0,
        c1 - c0,
        k1.system - k0.system,
        writer1 - writer0,
        started1 - started0,
        started1 - started0 - dropped,
        dropped,
        written1 - written0,
        max(0.0, (m1 - m0) - (c1 - c0)) / (w1 - w0),
    )


#: Seconds an unrecorded window waits after the switch (executions still running under the
#: previous interpreter finish; the previous recorder's close and its files' removal are done).
SETTLE_S = 0.1
#: A recorded window starts measuring once its recorder's queue is full (the first trace dropped:
#: the steady state of a service that outruns its writer), plus SETTLE_S; at most this long.
FILL_TIMEOUT_S = 2.0


class Treatment:
    """One kind of window compared with the unrecorded one: a fresh interpreter (and recorder)
    per window, switched in, settled, measured, switched out and closed. Its figures are printed
    with ``suffix`` after ``record_throughput_<figure>``."""

    def __init__(
        self,
        name: str,
        suffix: str,
        workdir: str,
        sink_options: dict | None,
        recorder_options: dict | None = None,
        free_encoding: bool = False,
    ) -> None:
        self.name = name  # "recorded", "segments", ..., or "aa" (unrecorded again: the control)
        self.suffix = suffix
        self.workdir = workdir
        self.sink_options = sink_options  # None: no recorder
        self.recorder_options = {**RECORDER_OPTIONS, **(recorder_options or {})}
        self.free_encoding = free_encoding  # simulate_free_encoding() during its windows
        self.windows: list[Window] = []
        self.plain_before: list[Window] = []  # the unrecorded window right before each
        self.plain_after: list[Window] = []  # and right after

    def run_window(self, workload: Workload, seconds: float, index: int) -> Window:
        recorder = None
        directory = os.path.join(self.workdir, f"{self.name}-{index}")
        undo = simulate_free_encoding() if self.free_encoding else None
        try:
            if self.sink_options is None:
                workload.current = Interpreter(SQLITE_PERFORMERS)
                time.sleep(SETTLE_S)
            else:
                recorder = Recorder(
                    DirectorySink(directory, **self.sink_options), **self.recorder_options
                )
                workload.current = Interpreter(SQLITE_PERFORMERS, recorder=recorder)
                deadline = time.perf_counter() + FILL_TIMEOUT_S
                while _stat(recorder, "traces_dropped") == 0 and time.perf_counter() < deadline:
                    time.sleep(0.01)
                time.sleep(SETTLE_S)
            window = measure_window(workload, recorder, seconds)
            if recorder is not None:
                workload.pause()
                # writes what is queued, uncontended (~0.1 s); never waits for good
                if not recorder.close(timeout=60):
                    raise RuntimeError(f"a window's recorder did not close: {recorder.stats}")
                shutil.rmtree(directory, ignore_errors=True)
            workload.resume(Interpreter(SQLITE_PERFORMERS))
        finally:
            if undo is not None:
                undo()
        return window


def plain_window(workload: Workload, seconds: float) -> Window:
    workload.current = Interpreter(SQLITE_PERFORMERS)
    time.sleep(SETTLE_S)
    return measure_window(workload, None, seconds)


def windowed_throughput(args, workdir: str, treatments: list[Treatment]) -> None:
    """Unrecorded windows alternating with the treatments' windows, in turn:
    U T1 U T2 U T3 U T1 U ...; each treatment window is compared with the mean of the two
    unrecorded windows around it (a linear drift of the machine's load cancels). The recorder's
    "writer is behind" warning (once per recorder, so once per window) is silenced meanwhile:
    dropping is what these windows measure."""
    quiet = logging.getLogger("prodture.recorder")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        _windows(args, treatments)
    finally:
        quiet.setLevel(level)


def _windows(args, treatments: list[Treatment]) -> None:
    with Workload(args.threads, max(1, args.tasks // 20)) as workload:
        plain_window(workload, args.window)  # warm-up: threads started, connections made
        previous = plain_window(workload, args.window)
        for i in range(args.pairs):
            for treatment in treatments:
                window = treatment.run_window(workload, args.window, i)
                after = plain_window(workload, args.window)
                if args.show_windows:
                    print(
                        f"# {treatment.name} {i}: {_show(window)} | after: {_show(after)}",
                        file=sys.stderr,
                    )
                treatment.windows.append(window)
                treatment.plain_before.append(previous)
                treatment.plain_after.append(after)
                previous = after


class _NullStream:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


class StalledSink:
    """A sink whose first ``open`` waits until ``release`` is set: its recorder's queue stays
    full, so that every later execution's trace is dropped at ``Recorder.begin``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.opened = threading.Event()

    def open(self, info) -> _NullStream:
        self.opened.set()
        self.release.wait()
        return _NullStream()


def in_thread_costs(workdir: str, n: int = 2000, repeats: int = 5) -> tuple[float, float, float]:
    """One thread, the throughput workload's handler (SQLite): handler-thread CPU µs per
    execution unrecorded, and what recording adds per execution whose trace is dropped at
    ``begin`` (the queue full), and per execution recorded (encoded in the thread; written by
    the writer in between batches, see :func:`thread_cpu_per_exec`). Alternated, medians."""
    plain = Interpreter(SQLITE_PERFORMERS)
    stalled = StalledSink()
    dropping_rec = Recorder(stalled, max_queue=1)
    dropping = Interpreter(SQLITE_PERFORMERS, recorder=dropping_rec)
    dropping.run(checkout, "o-1")  # the writer takes it and stalls in open
    stalled.opened.wait(5)
    dropping.run(checkout, "o-1")  # queued: the queue is full from now on
    rec = Recorder(DirectorySink(os.path.join(workdir, "in-thread")), **RECORDER_OPTIONS)
    recording = Interpreter(SQLITE_PERFORMERS, recorder=rec)
    plain_us, drop_us, record_us = [], [], []
    try:
        for _ in range(repeats):
            p, _ = thread_cpu_per_exec(plain, None, n)
            d, _ = thread_cpu_per_exec(dropping, None, n)
            r, _ = thread_cpu_per_exec(recording, rec, n)
            plain_us.append(p * 1e6)
            drop_us.append((d - p) * 1e6)
            record_us.append((r - p) * 1e6)
        started = _stat(dropping_rec, "traces_started")
        assert _stat(dropping_rec, "traces_dropped") == started - 2, dropping_rec.stats
    finally:
        stalled.release.set()
        _close(dropping_rec)
        _close(rec)
        shutil.rmtree(os.path.join(workdir, "in-thread"), ignore_errors=True)
    med = statistics.median
    return med(plain_us), med(drop_us), med(record_us)


def _show(w: Window) -> str:
    return (
        f"{w.rate:.0f}/s, {w.cpu_per_exec * 1e6:.1f} µs CPU/exec "
        f"({w.sys_cpu / w.execs * 1e6:.1f} sys, writer {w.writer_cpu / w.execs * 1e6:.1f}), "
        f"{w.cpu / w.wall:.2f} cores (others {w.others:.2f}), recorded {w.recorded}, "
        f"dropped {w.dropped}"
    )


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q2, q3


#: This process runs in one of three regimes, and flips between them from one window to the
#: next as the rest of the machine's load changes. On one core at a time (the handler threads
#: take turns holding the GIL: about 1.0 core used, little system time); on more than one when a
#: second core is free (a thread that releases the GIL, around SQLite's calls and every system
#: call, lets another run on the other core, and taking it back is a futex hand-off between
#: cores: measured here 1.3-1.4 cores used, a third of it system time, 3-5x the CPU per
#: execution); or crowded, on less than one core, when other processes take more than the other
#: core (throughput then follows their load). A window is "multi" above MULTI_CORE_UTIL cores
#: used, "crowded" below CROWDED_UTIL, "one" in between.
MULTI_CORE_UTIL = 1.15
CROWDED_UTIL = 0.85
#: A figure compares only the treatment windows whose two unrecorded neighbours ran in the same
#: regime as they did: a pair across a flip measures the flip (2-4x), not recording.
REGIMES = ("one", "multi", "crowded")


@dataclasses.dataclass
class PairFigures:
    """Per window of a treatment, against the mean of its two unrecorded neighbours."""

    ratio: list[float]  # executions per second, treatment / unrecorded
    cpu_ratio: list[float]  # process CPU per execution, unrecorded / treatment
    util_ratio: list[float]  # process CPU per wall second, treatment / unrecorded
    thread_extra_us: list[float]  # handler threads' CPU per execution, treatment - unrecorded
    writer_us: list[float]  # the writer's CPU per execution
    sys_extra_us: list[float]  # the process's kernel CPU per execution, treatment - unrecorded
    writer_share: list[float]  # writer CPU / process CPU
    writer_core: list[float]  # writer CPU / wall
    recorded: list[float]  # fraction of the window's executions encoded in the handlers' threads
    dropped: list[float]  # fraction of the window's executions dropped (at begin, mostly)
    written: list[float]  # fraction written by the writer during the window
    plain_rate: list[float]
    rate: list[float]
    plain_cpu_us: list[float]  # process CPU µs per execution, unrecorded
    cpu_us: list[float]  # the same, treatment
    others: list[float]  # cores the rest of the machine used, the most of the three windows


def regime(w: Window) -> str:
    cores = w.cpu / w.wall
    return "multi" if cores > MULTI_CORE_UTIL else "crowded" if cores < CROWDED_UTIL else "one"


def pair_figures(t: Treatment, only: str | None = None) -> PairFigures:
    """The figures of ``t``'s windows whose neighbours ran in the same regime as they did (and,
    with ``only``, in that regime)."""
    f = PairFigures(*([] for _ in dataclasses.fields(PairFigures)))
    for w, a, b in zip(t.windows, t.plain_before, t.plain_after, strict=True):
        r = regime(w)
        if not r == regime(a) == regime(b) or only not in (None, r):
            continue
        plain_rate = (a.rate + b.rate) / 2
        plain_cpu = (a.cpu_per_exec + b.cpu_per_exec) / 2
        plain_util = (a.cpu / a.wall + b.cpu / b.wall) / 2
        f.ratio.append(w.rate / plain_rate)
        f.cpu_ratio.append(plain_cpu / w.cpu_per_exec)
        f.util_ratio.append((w.cpu / w.wall) / plain_util)
        f.thread_extra_us.append((w.handler_cpu_per_exec - plain_cpu) * 1e6)
        f.writer_us.append(w.writer_cpu / w.execs * 1e6)
        plain_sys = (a.sys_cpu / a.execs + b.sys_cpu / b.execs) / 2
        f.sys_extra_us.append((w.sys_cpu / w.execs - plain_sys) * 1e6)
        f.writer_share.append(w.writer_cpu / max(w.cpu, 1e-9))
        f.writer_core.append(w.writer_cpu / w.wall)
        begun = max(w.started, 1)  # (the recorder's own count: see measure_window)
        f.recorded.append(w.recorded / begun)
        f.dropped.append(w.dropped / begun)
        f.written.append(w.written / w.execs)
        f.plain_rate.append(plain_rate)
        f.rate.append(w.rate)
        f.plain_cpu_us.append(plain_cpu * 1e6)
        f.cpu_us.append(w.cpu_per_exec * 1e6)
        f.others.append(max(w.others, a.others, b.others))
    return f


def _spread(name: str, values: list[float]) -> None:
    """``name: median`` and ``name_iqr: q3 - q1`` (nan when there are no values)."""
    q1, m, q3 = _quartiles(values) if values else (math.nan,) * 3
    print(f"{name}: {m:.3f}")
    print(f"{name}_iqr: {q3 - q1:.3f}")


def _med(values: list[float]) -> float:
    return statistics.median(values) if values else math.nan


def print_windowed(treatments: list[Treatment], costs: tuple[float, float, float]) -> None:
    med = _med
    _plain_thread_us, drop_us, record_us = costs
    print(f"record_throughput_drop_cost_us: {drop_us:.2f}")
    print(f"record_throughput_record_cost_us: {record_us:.2f}")
    by_name = {t.name: pair_figures(t) for t in treatments}
    regimes = {r: {t.name: pair_figures(t, r) for t in treatments} for r in REGIMES}
    for t in treatments:
        if t.sink_options is None:
            continue
        name, suffix, f = t.name, t.suffix, by_name[t.name]
        _spread(f"record_throughput_ratio{suffix}", f.ratio)
        _spread(f"record_throughput_cpu_ratio{suffix}", f.cpu_ratio)
        print(f"record_throughput_util_ratio{suffix}: {med(f.util_ratio):.3f}")
        print(f"record_throughput_recorded{suffix}: {med(f.recorded):.4f}")
        print(f"record_throughput_dropped{suffix}: {med(f.dropped):.4f}")
        print(f"record_throughput_written{suffix}: {med(f.written):.4f}")
        print(f"record_throughput_writer_cpu_share{suffix}: {med(f.writer_share):.3f}")
        print(f"record_throughput_writer_cpu_core{suffix}: {med(f.writer_core):.3f}")
        print(f"record_throughput_thread_extra_us{suffix}: {med(f.thread_extra_us):.2f}")
        print(f"record_throughput_writer_us_per_exec{suffix}: {med(f.writer_us):.2f}")
        print(f"record_throughput_sys_extra_us{suffix}: {med(f.sys_extra_us):.2f}")
        # Where the executions per second went: ratio = util_ratio * cpu_ratio exactly, and
        # 1 / cpu_ratio = 1 + (thread extra + writer) / unrecorded CPU per execution, so
        # ratio = util_ratio * (1 - loss_in_thread - loss_writer).
        loss_thread = [e / c for e, c in zip(f.thread_extra_us, f.cpu_us, strict=True)]
        loss_writer = [e / c for e, c in zip(f.writer_us, f.cpu_us, strict=True)]
        print(f"record_throughput_loss_in_thread{suffix}: {med(loss_thread):.3f}")
        print(f"record_throughput_loss_writer{suffix}: {med(loss_writer):.3f}")
        print(f"record_throughput_loss_util{suffix}: {1 - med(f.util_ratio):.3f}")
        # the in-thread loss the single-thread costs account for (drops and recorded traces at
        # this window's rates); the rest of thread_extra is paid to contention (GIL hand-offs,
        # caches shared with the writer)
        explained = [
            (d * drop_us + r * record_us) / c
            for d, r, c in zip(f.dropped, f.recorded, f.cpu_us, strict=True)
        ]
        print(f"record_throughput_loss_in_thread_explained{suffix}: {med(explained):.3f}")
        _print_regimes(regimes, name, f"record_throughput_ratio{suffix}")
        print(
            f"# {name}: ratio quartiles {_fmt(f.ratio)}, cpu ratio {_fmt(f.cpu_ratio)}; "
            f"{med(f.plain_rate):.0f}/s unrecorded ({med(f.plain_cpu_us):.1f} µs CPU per "
            f"execution), {med(f.rate):.0f}/s recorded ({med(f.cpu_us):.1f} µs); "
            f"{len(f.ratio)} of {len(t.windows)} windows compared "
            f"({', '.join(f'{len(regimes[r][name].ratio)} {r}-core' for r in REGIMES)})",
            file=sys.stderr,
        )
    aa = by_name.get("aa")
    if aa is not None:
        _spread("record_throughput_aa_ratio", aa.ratio)
        _spread("record_throughput_aa_cpu_ratio", aa.cpu_ratio)
        print(f"record_throughput_aa_util_ratio: {med(aa.util_ratio):.3f}")
        _print_regimes(regimes, "aa", "record_throughput_aa_ratio")
        print(
            f"# aa (unrecorded vs unrecorded): ratio quartiles {_fmt(aa.ratio)}, "
            f"cpu ratio {_fmt(aa.cpu_ratio)}",
            file=sys.stderr,
        )
    compared = sum(len(f.ratio) for f in by_name.values())
    total = sum(len(t.windows) for t in treatments)
    print(f"record_throughput_windows_compared: {compared / max(total, 1):.2f}")
    for r in REGIMES:
        in_regime = [x for f in regimes[r].values() for x in f.others]
        print(f"record_throughput_{r}_core_windows: {len(in_regime) / max(compared, 1):.2f}")
        print(f"record_throughput_{r}_core_others_cores: {med(in_regime):.3f}")


def _print_regimes(regimes: dict[str, dict[str, PairFigures]], name: str, figure: str) -> None:
    """``figure`` (a ratio) and its CPU companion over each regime's windows
    (``*_one_core``, ``*_multi_core``, ``*_crowded_core``)."""
    cpu_figure = figure.replace("_ratio", "_cpu_ratio", 1)
    for r in REGIMES:
        f = regimes[r][name]
        _spread(f"{figure}_{r}_core", f.ratio)
        _spread(f"{cpu_figure}_{r}_core", f.cpu_ratio)


def _fmt(values: list[float]) -> str:
    q1, m, q3 = _quartiles(values)
    return f"{q1:.3f}/{m:.3f}/{q3:.3f}"


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
    """The unrecorded throughput of a whole run, measured right before each recorded one."""
    gc.collect()
    return throughput(Interpreter(SQLITE_PERFORMERS), args.threads, args.per_thread, args.tasks)


@dataclasses.dataclass
class AllWrittenRound:
    ratio_all: float  # recorded with a queue that never drops, timed until all is on disk
    profile: dict[str, float]  # the writer's time per trace in that run


def all_written_round(args, directory: str, sink_options: dict) -> AllWrittenRound:
    """One round of ``record_throughput_ratio_all_written*`` into
    ``DirectorySink(directory, **sink_options)``: ``threads * per_thread + tasks`` executions
    recorded with a queue that never drops, timed until every trace is written (what recording
    everything costs in total, writer included), after an unrecorded run of the same work."""
    total = args.threads * args.per_thread + args.tasks
    rec = Recorder(
        DirectorySink(os.path.join(directory, "all"), **sink_options),
        max_queue=10**7,
        **RECORDER_OPTIONS,
    )
    tp_plain_all = plain_throughput(args)
    profile = WriterProfile(rec)
    tp_all = throughput(
        Interpreter(SQLITE_PERFORMERS, recorder=rec),
        args.threads,
        args.per_thread,
        args.tasks,
        until_written=rec,
    )
    assert _stat(rec, "traces_written") == total, rec.stats
    profile.uninstall()
    shutil.rmtree(directory, ignore_errors=True)
    return AllWrittenRound(tp_all / tp_plain_all, profile.per_trace_us(total))


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
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of the overhead and all-written figures"
    )
    parser.add_argument("--execs", type=int, default=3000, help="executions per round (overhead)")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument(
        "--per-thread", type=int, default=1000, help="executions per thread (all-written runs)"
    )
    parser.add_argument(
        "--tasks",
        type=int,
        default=2000,
        help="asyncio tasks (all-written runs; the windows keep tasks/20 running at once)",
    )
    parser.add_argument(
        "--pairs",
        type=int,
        default=None,
        help="recorded windows (and as many of each other kind) in the windowed throughput "
        "(default 12; 25 with --throughput-only)",
    )
    parser.add_argument(
        "--window", type=float, default=0.4, help="seconds each throughput window is measured"
    )
    parser.add_argument(
        "--budgets",
        type=lambda v: [None if b.strip() == "none" else float(b) for b in v.split(",")],
        default=[],
        metavar="B1,B2",
        help="also windows recorded with these writer_cpu_budget values (none: no budget), "
        "side by side with the others (figures suffixed _budget_0_05 ...)",
    )
    parser.add_argument(
        "--free-encoding-windows",
        action="store_true",
        help="also windows recorded under --simulate-free-encoding (a simulation), side by "
        "side with the others (figures suffixed _free_encoding)",
    )
    parser.add_argument(
        "--show-windows", action="store_true", help="each throughput window on stderr"
    )
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
    if args.pairs is None:
        args.pairs = 25 if args.throughput_only else 12
    for option in args.recorder_option:
        name, _, value = option.partition("=")
        RECORDER_OPTIONS[name.strip()] = ast.literal_eval(value.strip())
    if args.work_us:
        t0 = time.perf_counter()
        _busy(100_000)
        WORK[0] = int(100_000 * args.work_us * 1e-6 / (time.perf_counter() - t0))

    if args.simulate_free_encoding:
        simulate_free_encoding()  # for good
    workdir = tempfile.mkdtemp(prefix="prodture-benchrec-", dir=args.dir)
    try:
        plain = Interpreter(FROZEN_PERFORMERS)
        assert plain.run(checkout, "o-1").ok
        # the throughput windows, side by side: recorded (one file per trace), unrecorded again
        # (the control), and (when the sink has them) recorded into segment files
        treatments = [
            Treatment("recorded", "", workdir, {}),
            Treatment("aa", "_aa", workdir, None),
        ]
        if SEGMENTS:
            treatments.append(
                Treatment("segments", "_segments", workdir, {"segment_bytes": SEGMENT_BYTES})
            )
        for budget in args.budgets:
            tag = "none" if budget is None else str(budget).replace(".", "_")
            treatments.append(
                Treatment(
                    f"budget={budget}", f"_budget_{tag}", workdir, {}, {"writer_cpu_budget": budget}
                )
            )
        if args.free_encoding_windows:
            treatments.append(Treatment("free encoding", "_free_encoding", workdir, {}, None, True))
        costs = in_thread_costs(workdir)
        windowed_throughput(args, workdir, treatments)

        overhead, onf, onf_dicts, ratio_all = [], [], [], []
        profiles: list[dict[str, float]] = []
        seg_profiles: list[dict[str, float]] = []
        seg_ratio_all: list[float] = []
        detail: dict[str, list[float]] = {
            k: [] for k in ("plain", "recorded", "writer", "file", "always_mem", "on_failure")
        }
        for r in range(args.rounds):
            gc.collect()
            if not args.throughput_only:  # in-thread overhead, side by side
                overhead_round(args, plain, workdir, r, overhead, detail)
            # everything written, timed until on disk: one file per trace, then segments
            one = all_written_round(args, os.path.join(workdir, f"tp-{r}"), {})
            ratio_all.append(one.ratio_all)
            profiles.append(one.profile)
            if SEGMENTS:  # DirectorySink(segment_bytes): many traces per file
                many = all_written_round(
                    args, os.path.join(workdir, f"seg-{r}"), {"segment_bytes": SEGMENT_BYTES}
                )
                seg_ratio_all.append(many.ratio_all)
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
        print_windowed(treatments, costs)
        print(f"record_throughput_ratio_all_written: {med(ratio_all):.3f}")
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
            print(f"record_throughput_ratio_all_written_segments: {med(seg_ratio_all):.3f}")
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
            f"{med(detail['always_mem']):.1f} µs, on-failure success {med(detail['on_failure']):.1f} µs",
            file=sys.stderr,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
