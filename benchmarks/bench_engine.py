"""Benchmarks of the step engine alone (no DAP, no debugpy): what the per-line tracer costs.

    python benchmarks/bench_engine.py [--steps N] [--repeat N]

Prints one line per figure, ``name: value`` (median of repeated runs; min and samples follow):

- ``engine_forward_ns_per_step``  replay a ~1M-step handler under the engine with no breakpoint
                                  (start → end-of-replay stop), divided by the steps: the per-line
                                  tracer and history recording
- ``engine_bp_scan_ns_per_step``  the same with a breakpoint on a line the loop never reaches
                                  (a location set to test on every line)
- ``engine_stepback_end_ms``      from the end-of-replay stop, one step back (a re-run with one
                                  code object watched)
- ``engine_next_us``              ``next`` in the loop: one stop to the next

The handler is in this file (user code); its trace is recorded into a temp dir with the real
``Recorder`` and ``DirectorySink``.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import prodture
from prodture.debug.contract import Command, Move
from prodture.debug.engine import Breakpoint, StepEngine
from prodture.trace import read_trace

HERE = str(Path(__file__).resolve())


@dataclasses.dataclass(frozen=True)
class Tick(prodture.Effect, name="bench.engine.Tick"):
    i: int


@prodture.handler(name="bench.engine:crunch")
def crunch(request):
    total = 0
    for i in range(request["n"]):
        total += i & 7
        if i % request["every"] == 0:
            total += yield Tick(i)
    if total < 0:
        total = -total  # NEVER: a line the loop never reaches
    return total


def record(directory: Path, n: int) -> Any:
    recorder = prodture.Recorder(prodture.DirectorySink(directory))
    interpreter = prodture.Interpreter({Tick: lambda e: 1}, recorder=recorder)
    interpreter.run(crunch, {"n": n, "every": 1000})
    recorder.close()
    return read_trace(next(directory.glob("*.prodtrace")))


def line_of(text: str) -> int:
    for number, line in enumerate(Path(HERE).read_text().splitlines(), 1):
        if text in line and "line_of(" not in line:
            return number
    raise LookupError(text)


def forward(trace: Any, breakpoint_line: int | None) -> tuple[float, int]:
    """Seconds from the start to the end-of-replay stop, and the steps."""
    seen: dict[str, Any] = {}

    def presenter(stop: Any) -> Move:
        seen["at"] = time.perf_counter()
        seen["step"] = stop.step
        return Move(Command.CONTINUE)

    engine = StepEngine(trace, crunch, presenter)
    if breakpoint_line is not None:
        engine.set_breakpoints(HERE, [Breakpoint(breakpoint_line)])
    start = time.perf_counter()
    engine.run()
    return seen["at"] - start, seen["step"]


def stepback_at_end(trace: Any) -> float:
    marks: list[float] = []

    def presenter(stop: Any) -> Move:
        marks.append(time.perf_counter())
        if stop.end and len(marks) == 1:
            return Move(Command.STEP_BACK)
        return Move(Command.TERMINATE)

    StepEngine(trace, crunch, presenter).run()
    return marks[1] - marks[0]


def next_in_loop(trace: Any, count: int) -> list[float]:
    marks: list[float] = []

    def presenter(stop: Any) -> Move:
        marks.append(time.perf_counter())
        return Move(Command.NEXT) if len(marks) <= count else Move(Command.TERMINATE)

    engine = StepEngine(trace, crunch, presenter)
    engine.set_breakpoints(HERE, [Breakpoint(line_of("total += i & 7"))])
    engine.run()
    return [b - a for a, b in zip(marks[1:], marks[2:], strict=False)]


def report(name: str, samples: list[float], unit: str) -> None:
    print(
        f"{name}: {statistics.median(samples):.1f} (median of {len(samples)}, min {min(samples):.1f}"
        f" {unit})",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000, help="about how many line steps")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"python: {sys.version.split()[0]} prodture {Path(prodture.__file__).parent}", flush=True)
    with tempfile.TemporaryDirectory(prefix="prodture-bench-engine-") as tmp:
        trace = record(Path(tmp), args.steps // 3)  # ~3 line steps an iteration
        never = line_of("# NEVER")
        for name, line in (
            ("engine_forward_ns_per_step", None),
            ("engine_bp_scan_ns_per_step", never),
        ):
            samples = []
            for _ in range(args.repeat):
                seconds, steps = forward(trace, line)
                samples.append(seconds / steps * 1e9)
            report(name, samples, f"ns a step, {steps:,} steps")
        report(
            "engine_stepback_end_ms",
            [stepback_at_end(trace) * 1e3 for _ in range(args.repeat)],
            "ms",
        )
        report("engine_next_us", [s * 1e6 for s in next_in_loop(trace, 200)], "us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
