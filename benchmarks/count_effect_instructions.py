"""Instructions per recorded effect on bench_foundation.py's recorder path, counted by valgrind's
callgrind: a measure of ``record_vs_otel``'s numerator that the machine's load does not move
(timings on a shared machine do).

    .venv/bin/python benchmarks/count_effect_instructions.py [--effects 20000]

Runs ``session.effect(call, True, RESULT, 1000, 2500)`` for bench_foundation.py's ``ChargeCard``
effect and ``Charge`` result on a session of a ``Recorder(DirectorySink(dir))``, then finish and
close, under callgrind, and prints ``instructions_per_effect_handler_thread: N`` (the thread that
calls ``effect``) and ``instructions_per_effect_all_threads: N`` (the writer's included): a run
of ``--effects`` effects minus a run of none (the calls made all the same), both after 200
warm-up effects in another trace and ``gc.freeze()``, over the number of effects. ``PYTHONHASHSEED=0`` is set, yet
counts of one tree still differ by up to ~200 instructions per effect between runs at 4,000
effects and ~100 at 20,000 (the writer thread's timing changes what the handler's thread does
to its buffer): use ``--effects 20000`` and repeat before trusting a difference under ~2%.
``PRODTURE_ACCELERATOR=0`` counts the msgpack-only path. Counting another checkout: copy this
script next to a symlink to that checkout's ``bench_foundation.py`` and run it with that
checkout's interpreter.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load_bench():  # noqa: ANN202 -- the benchmark module
    spec = importlib.util.spec_from_file_location("bench_foundation", HERE / "bench_foundation.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_foundation"] = bench
    spec.loader.exec_module(bench)
    return bench


def child(effects: int, run: bool) -> None:
    """The counted process: one trace of 200 effects (warm-up), then one of ``effects`` (of
    none, their calls made all the same, when not ``run``)."""
    bench = _load_bench()
    prodture = bench.prodture

    def trace(n: int, run: bool = True) -> None:
        calls = [bench.EffectCall(i, bench.EFFECT, bench.SITE) for i in range(1, n + 1)]
        if not run:
            calls = []
        with tempfile.TemporaryDirectory() as directory:
            recorder = bench.Recorder(bench.DirectorySink(directory))
            session = recorder.begin("bench:charge_many", n)
            effect = session.effect
            for call in calls:
                effect(call, True, bench.RESULT, 1000, 2500)
            session.finish(prodture.Success("done"))
            recorder.close()
            assert recorder.stats.encode_errors == 0 and recorder.stats.sink_errors == 0

    trace(200)
    gc.collect()
    gc.freeze()
    trace(effects, run)


def _totals(effects: int, run: bool) -> tuple[int, int]:
    """(the main thread's instructions, every thread's) of a child run."""
    from count_recorder_instructions import callgrind_threads  # (this script's directory)

    args = [__file__, "--child", "--effects", str(effects)] + ([] if run else ["--dry"])
    counts = callgrind_threads(args)
    return counts["-01"], sum(counts.values())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--effects", type=int, default=20000)
    parser.add_argument("--child", action="store_true")
    parser.add_argument("--dry", action="store_true", help="(child) make the calls, run none")
    args = parser.parse_args()
    if args.child:
        child(args.effects, not args.dry)
        return 0
    none = _totals(args.effects, False)
    some = _totals(args.effects, True)
    per = [(s - n) / args.effects for s, n in zip(some, none, strict=True)]
    print(f"instructions_per_effect_handler_thread: {per[0]:.0f}")
    print(f"instructions_per_effect_all_threads: {per[1]:.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
