"""Instructions the handler's thread executes per execution, counted by valgrind's callgrind: a
noise-free check of the in-thread cost of recording (timings on a shared machine are not).

    .venv/bin/python benchmarks/count_recorder_instructions.py [--execs 2000] [--async]

Runs bench_recorder.py's checkout handler (4 effects, answered from memory) under callgrind,
once per mode, and prints ``instructions_per_exec_<mode>: N`` (the main thread's count of a run
of N executions minus that of a run of none, both after 200 warm-up executions and
``gc.freeze()``, divided by N: start-up and a full collection that happens in one run and not
in another left out, which made the count jump by ~12k per execution between runs) and ``record_overhead_instructions: N`` (always minus unrecorded). Modes: ``plain`` (no
recorder), ``always`` (a ``DirectorySink`` whose writer never runs: what it would write is
dropped every 100 executions, so no writer thread interleaves with the count), ``on_failure``
(a ``MemorySink``, every execution succeeds), ``dropped`` (``always`` into a ``DirectorySink``
whose queue is full from the first execution on, ``max_queue=1``, its writer never run: every
counted execution's trace is dropped at ``Recorder.begin``, the steady state of a service that
outruns its writer; ``drop_overhead_instructions`` is dropped minus unrecorded).
``--modes plain,dropped`` counts only those. ``PYTHONHASHSEED=0`` makes each count repeat to
within a few instructions per execution; ``PRODTURE_TREE`` counts another checkout's package.
"""

from __future__ import annotations

import argparse
import gc
import glob
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODES = ("plain", "always", "on_failure", "dropped")


def _load_bench():  # noqa: ANN202 -- the benchmark module
    spec = importlib.util.spec_from_file_location("bench_recorder", HERE / "bench_recorder.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_recorder"] = bench
    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        spec.loader.exec_module(bench)
    finally:
        sys.argv = argv
    return bench


def child(mode: str, execs: int, use_async: bool) -> None:
    """The counted process: 200 warm-up executions, then ``execs`` in batches of 100."""
    bench = _load_bench()
    handler = bench.checkout
    if use_async:

        async def checkout_async(order_id):  # the same handler as async def
            cart = await bench.LoadCart("cart-" + order_id)
            await bench.Reserve("sku-77", 2)
            charge = await bench.ChargeCard("tok_visa_4242", bench.Decimal("58.99"))
            await bench.SendReceipt("ada@example.com", order_id)
            return {"order_id": order_id, "charge": charge, "n": cart}

        handler = bench.prodture.handler(checkout_async, name="benchrec:checkout_async")
    recorder = None
    if mode in ("always", "dropped"):
        max_queue = 1 if mode == "dropped" else 100_000
        recorder = bench.Recorder(bench.DirectorySink(tempfile.mkdtemp()), max_queue=max_queue)
        writer = recorder._writer
        writer.sleeping = False  # never rung: the writer thread never starts
        writer.wake = lambda: None
    elif mode == "on_failure":
        recorder = bench.Recorder(bench.MemorySink(), mode=bench.ON_FAILURE)
    run = bench.Interpreter(bench.FROZEN_PERFORMERS, recorder=recorder).run

    def batch(n: int) -> None:
        for _ in range(n):
            run(handler, "o-1")
        if mode == "always":  # what the writer would have taken (dropped: nothing is queued)
            recorder._writer.done.clear()
            recorder._counts.queued_bytes = 0

    if mode == "dropped":  # its one warning ("the trace writer is behind") is expected
        logging.getLogger("prodture.recorder").setLevel(logging.ERROR)
    for _ in range(2):
        batch(100)
    if mode == "dropped":  # the first trace fills the queue; the rest (and the warning) dropped
        stats = recorder.stats
        assert stats.queue_depth == 1 and stats.traces_dropped == 199, stats
    gc.collect()
    gc.freeze()  # what start-up and warm-up made is never walked by a collection in the count
    for _ in range(execs // 100):
        batch(100)


def count(mode: str, execs: int, use_async: bool) -> float:
    """Instructions per execution: a run of ``execs`` minus a run of none, over ``execs``."""
    return (_total(mode, execs, use_async) - _total(mode, 0, use_async)) / execs


def callgrind_threads(args: list[str]) -> dict[str, int]:
    """Instructions per thread (by callgrind's file suffix: ``-01`` is the main thread) of
    ``python args`` under callgrind; run once before, so .pyc files are written first."""
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    subprocess.run([sys.executable, *args], env=env, check=True)  # .pyc files written first
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            ["valgrind", "--tool=callgrind", "--separate-threads=yes",
             f"--callgrind-out-file={out}/cg.out", sys.executable, *args],
            env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        counts = {}
        for path in glob.glob(f"{out}/cg.out*"):
            with open(path) as lines:
                for line in lines:
                    if line.startswith(("summary:", "totals:")):
                        counts[path[path.rindex("-") :]] = int(line.split()[1])
                        break
    if "-01" not in counts:
        raise RuntimeError("callgrind wrote no summary for the main thread")
    return counts


def _total(mode: str, execs: int, use_async: bool) -> int:
    args = [__file__, "--child", mode, "--execs", str(execs)] + (["--async"] if use_async else [])
    return callgrind_threads(args)["-01"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--execs", type=int, default=2000)
    parser.add_argument("--async", dest="use_async", action="store_true")
    parser.add_argument("--child", choices=MODES)
    parser.add_argument(
        "--modes",
        type=lambda v: v.split(","),
        default=["plain", "always", "on_failure", "dropped"],
        help=f"the modes to count, comma-separated (of: {', '.join(MODES)})",
    )
    args = parser.parse_args()
    if args.child:
        child(args.child, args.execs, args.use_async)
        return 0
    unknown = set(args.modes) - set(MODES)
    if unknown:
        parser.error(f"unknown modes {sorted(unknown)}: use {', '.join(MODES)}")
    counts = {mode: count(mode, args.execs, args.use_async) for mode in args.modes}
    for mode, n in counts.items():
        print(f"instructions_per_exec_{mode}: {n:.0f}")
    if "plain" in counts and "always" in counts:
        print(f"record_overhead_instructions: {counts['always'] - counts['plain']:.0f}")
    if "plain" in counts and "dropped" in counts:
        print(f"drop_overhead_instructions: {counts['dropped'] - counts['plain']:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
