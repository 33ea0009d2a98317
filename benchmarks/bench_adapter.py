"""Benchmarks of the debug adapter, end to end through DAP (``python -m prodture.adapter`` on stdio).

    python benchmarks/bench_adapter.py [--python PY] [--repeat N] [--only GROUPS]

Prints the measured interpreter first, then one line per figure, ``name: value`` (median of
repeated runs; p95, sample count, where it was measured and the goal follow in parentheses):

- ``launch_first_stop_s``   adapter spawn → initialize → launch → breakpoint → configurationDone →
                            first ``stopped`` (the checkout example's failing trace, breakpoint on
                            the ChargeCard line); goal ≤ 0.5 s
- ``pipelined_variables_ms`` two ``variables`` requests (Locals and Globals) sent together while
                            paused at the checkout breakpoint → both answers (as nvim-dap and VS
                            Code send them); goal ≤ 5 ms
- ``next_ms``               forward ``next`` request → ``stopped``; goal ≤ 5 ms
- ``stepback_1k_ms``, ``stepback_100k_ms``, ``stepback_1m_ms``
                            ``stepBack`` request → ``stopped`` about 1k / 100k / 1M line steps into a
                            handler; goals ≤ 10 / 50 / 20 ms (1M: raised from 300 once step back was exact)
- ``reverse_continue_100k_ms``  ``reverseContinue`` at ~100k steps back to the previous breakpoint
                            hit ~4k steps earlier (so ~96k steps are re-executed); goal ≤ 60 ms
- ``stepback_10m_ms``       ``stepBack`` about 10M line steps into a handler; goal ≤ 50 ms
- ``cond_bp_first_stop_300k_s``  configurationDone → first stop at a conditional breakpoint on a
                            line hit 50k times in a ~300k-step handler, true only near its end;
                            goal ≤ 0.5 s
- ``cond_reverse_continue_300k_s``  from there, the condition changed to be true only at the
                            11th hit, ``reverseContinue`` (every hit in between is evaluated);
                            goal ≤ 0.5 s
- ``cond2_reverse_continue_300k_s``  the same with a second conditional breakpoint (another line
                            of the loop, also hit 50k times): ``reverseContinue`` evaluates both
                            conditions at every earlier hit; goal ≤ 0.5 s
- ``forward_slowdown``      replaying the ~1M-step trace under the adapter with no breakpoints
                            (configurationDone → end-of-replay stop) ÷ plain headless replay with
                            ``prodture.replay.Replayer`` in the same interpreter

The synthetic handler and its trace are made in a temp dir with the real ``prodture.Interpreter``,
``Recorder`` and ``DirectorySink``; the handler module is listed in a temp ``pyproject.toml``
(``[tool.prodture] modules``). ``--python`` chooses the interpreter of the adapter, the debuggee, the
recording and the baseline (default: the current one); the DAP client (``tests/dap_client.py``)
runs in the current interpreter.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHECKOUT = ROOT / "examples" / "checkout"
CHARGE_LINE = 18  # examples/checkout/checkout/service.py: charge = yield ChargeCard(...)


def _load_dap_client() -> Any:
    spec = importlib.util.spec_from_file_location(
        "prodture_tests_dap_client", ROOT / "tests" / "dap_client.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


dap_client = _load_dap_client()
DapClient = dap_client.DapClient

# ---------------------------------------------------------------------------------------------
# the synthetic handler: a loop of user code with an effect every EVERY iterations

ITERATIONS = 250_000  # ~4 line steps per iteration: ~1M steps
EVERY = 1_000
MARKS = [250, 25_000, 249_900]  # the MARK line runs once at each: ~1k, ~100k, ~1M steps in
REVERSE_MARK = 24_000  # an earlier breakpoint hit for reverse continue from ~100k (~4k steps back)
DEEP_ITERATIONS = 2_500_000  # ~10M steps; the MARK line runs once, near the end
DEEP_MARK = 2_499_900
SCAN_ITERATIONS = 50_000  # 6 line steps per iteration: ~300k steps, the COND line hit 50k times
SCAN_LATE = "i == 49_990"  # the first stop: true at one hit near the end
SCAN_EARLY = "i == 10"  # then reverse continue to the 11th hit
SCAN2_LATE = "i == -1"  # cond2: a second conditional breakpoint, never true on the way forward
SCAN2_EARLY = "i == 5"  # then true at its 6th hit, before the COND line's 11th: not the target

HANDLER_MODULE = '''\
"""Synthetic handler for bench_adapter.py."""
import dataclasses

import prodture


@dataclasses.dataclass(frozen=True)
class Tick(prodture.Effect, name="bench.Tick"):
    i: int


@prodture.handler
def crunch(request):
    n = request["n"]
    every = request["every"]
    marks = set(request["marks"])
    acc = 0
    hit = None
    for i in range(n):
        acc += i * 3 % 7
        if i in marks:
            hit = i  # MARK
        if i % every == 0:
            acc += yield Tick(i)
    return {"acc": acc, "hit": hit}


@prodture.handler
def scan(request):
    total = 0
    for i in range(request["n"]):
        a = i * 7 % 11
        b = a + i % 3  # PAIR
        c = b * 2
        total += a - c  # COND
        if i % request["every"] == 0:
            total += yield Tick(i)
    return total
'''

RECORD = """\
import json, sys
sys.path.insert(0, sys.argv[1])
import prodture
import benchmod
sink = prodture.DirectorySink(sys.argv[2])
interpreter = prodture.Interpreter({benchmod.Tick: lambda e: e.i % 5}, recorder=prodture.Recorder(sink))
outcome = interpreter.run(getattr(benchmod, sys.argv[3]), json.loads(sys.argv[4]))
assert outcome.ok, outcome
"""

BASELINE = """\
import json, sys, time
from prodture.replay import Replayer
replayer = Replayer.from_file(sys.argv[1], cwd=sys.argv[2])
times = []
for _ in range(int(sys.argv[3])):
    start = time.perf_counter()
    result = replayer.run()
    times.append(time.perf_counter() - start)
    assert result.reproduced, result.divergence
print(json.dumps(times))
"""


def line_of(marker: str) -> int:
    return next(n for n, line in enumerate(HANDLER_MODULE.splitlines(), 1) if marker in line)


def make_synthetic(python: str, work: Path) -> Path:
    """The project dir of the synthetic handlers."""
    project = work / "synthetic"
    project.mkdir()
    (project / "benchmod.py").write_text(HANDLER_MODULE)
    (project / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["benchmod"]\n')
    return project


def record_synthetic(python: str, project: Path, name: str, handler: str, request: Any) -> Path:
    """The trace of one run of ``benchmod.<handler>(request)``."""
    traces = project.parent / f"traces-{name}"
    subprocess.run(
        [python, "-c", RECORD, str(project), str(traces), handler, json.dumps(request)],
        check=True,
        cwd=project,
        timeout=600,
    )
    [trace] = traces.glob("*.prodtrace")
    return trace


def record_checkout(python: str, work: Path) -> tuple[Path, Path]:
    """(example copy, failing trace): the checkout example run for real."""
    example = work / "checkout"
    shutil.copytree(
        CHECKOUT, example, ignore=shutil.ignore_patterns("traces", "var", "__pycache__")
    )
    traces = work / "checkout-traces"
    subprocess.run(
        [python, "run_orders.py", "--traces", str(traces)],
        cwd=example,
        check=True,
        capture_output=True,
        timeout=120,
    )
    probe = subprocess.run(
        [
            python,
            "-c",
            "import glob, json, sys, prodture; print(json.dumps([p for p in sorted(glob.glob(sys.argv[1] + "
            "'/*.prodtrace')) if not prodture.read_trace(p).outcome.ok]))",
            str(traces),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    [failing] = json.loads(probe.stdout)
    return example, Path(failing)


# ---------------------------------------------------------------------------------------------
# measuring


SHOW_SAMPLES = False


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def report(
    name: str,
    values: list[float],
    unit_scale: float,
    goal: float | None,
    where: str = "",
    digits: int = 1,
) -> None:
    scaled = [v * unit_scale for v in values]
    median = statistics.median(scaled)
    verdict = ""
    if goal is not None:
        verdict = f"; goal <= {goal:g}: {'met' if median <= goal else 'NOT met'}"
    at = f", {where}" if where else ""
    print(
        f"{name}: {median:.{digits}f} (median of {len(scaled)}, p95 {p95(scaled):.{digits}f}, "
        f"min {min(scaled):.{digits}f}{at}{verdict})",
        flush=True,
    )
    if SHOW_SAMPLES:
        print(f"  samples in order: {', '.join(f'{v:.{digits}f}' for v in scaled)}", flush=True)


def timed_stop(client: Any, command: str, arguments: Any = None) -> tuple[float, dict[str, Any]]:
    """Seconds from sending ``command`` to the ``stopped`` event it causes."""
    client.drain("stopped")
    client.drain("prodture/position")
    start = time.perf_counter()
    client.send(command, arguments if arguments is not None else {"threadId": client.thread_id()})
    stop = client.wait_event("stopped", 120)
    elapsed = time.perf_counter() - start
    stop = stop["body"]
    stop["position"] = client.wait_event("prodture/position", 30)["body"]
    return elapsed, stop


def start_session(
    python: str,
    trace: Path,
    cwd: Path,
    breakpoints: dict[Path, list[int]],
    filters: list[str] | None = None,
) -> Any:
    client = DapClient.start(python)
    client.initialize()
    client.launch(trace=str(trace), cwd=str(cwd))
    for path, lines in breakpoints.items():
        client.set_breakpoints(str(path), lines)
    client.request("setExceptionBreakpoints", {"filters": filters or []})
    return client


def bench_launch(python: str, example: Path, failing: Path, repeat: int) -> None:
    service = example / "checkout" / "service.py"
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        client = DapClient.start(python)
        try:
            client.initialize()
            client.launch(trace=str(failing), cwd=str(example))
            client.set_breakpoints(str(service), [CHARGE_LINE])
            client.request("setExceptionBreakpoints", {"filters": []})
            client.configuration_done()
            stop = client.stopped()
            times.append(time.perf_counter() - start)
            assert stop["reason"] == "breakpoint" and stop["position"]["line"] == CHARGE_LINE, stop
        finally:
            client.close()
    report(
        "launch_first_stop_s",
        times,
        1,
        0.5,
        "checkout failing trace, breakpoint on ChargeCard",
        digits=3,
    )


def bench_pipelined(python: str, example: Path, failing: Path, repeat: int) -> None:
    service = example / "checkout" / "service.py"
    client = start_session(python, failing, example, {service: [CHARGE_LINE]})
    times = []
    try:
        client.configuration_done()
        client.stopped()
        scopes = client.scopes()
        refs = [s["variablesReference"] for s in scopes if s["name"] in ("Locals", "Globals")]
        assert len(refs) == 2, scopes
        for _ in range(max(4 * repeat, 30)):
            start = time.perf_counter()
            seqs = [client.send("variables", {"variablesReference": ref}) for ref in refs]
            for seq in seqs:
                assert client.response(seq)["body"]["variables"], seq
            times.append(time.perf_counter() - start)
    finally:
        client.close()
    report(
        "pipelined_variables_ms",
        times,
        1000,
        5,
        "Locals + Globals sent together at the checkout breakpoint",
    )


def bench_stepping(python: str, project: Path, trace: Path, mark_line: int, repeat: int) -> None:
    module = project / "benchmod.py"
    client = start_session(python, trace, project, {module: [mark_line]})
    nexts: list[float] = []
    stepbacks: dict[int, tuple[list[float], int]] = {}
    reverse: list[float] = []
    try:
        client.configuration_done()
        stop = client.stopped()  # first hit of MARK
        reverse_step = target_step = 0
        for index, mark in enumerate(MARKS):
            if mark == MARKS[1]:  # the REVERSE_MARK hit comes first
                _, stop = timed_stop(client, "continue")
                target_step = stop["position"]["step"]
            if index:
                _, stop = timed_stop(client, "continue")
            step = stop["position"]["step"]
            assert stop["position"]["line"] == mark_line, stop
            samples: list[float] = []
            for _ in range(repeat):
                elapsed, back = timed_stop(client, "stepBack")
                assert back["position"]["step"] < step, (back, step)
                samples.append(elapsed)
                elapsed, fwd = timed_stop(client, "next")
                assert fwd["position"]["step"] == step and fwd["position"]["line"] == mark_line, (
                    fwd,
                    step,
                )
                nexts.append(elapsed)
            stepbacks[mark] = (samples, step)

            if mark == MARKS[1]:
                for _ in range(max(3, repeat // 2)):
                    elapsed, back = timed_stop(client, "reverseContinue")
                    assert back["position"]["step"] == target_step, (back, target_step)
                    reverse.append(elapsed)
                    _, fwd = timed_stop(client, "continue")
                    assert fwd["position"]["step"] == step, (fwd, step)
                reverse_step = step
        # plain forward steps inside the loop
        for _ in range(3 * repeat):
            elapsed, _ = timed_stop(client, "next")
            nexts.append(elapsed)
    finally:
        client.close()

    report("next_ms", nexts, 1000, 5, "forward next in the loop")
    for (_mark, (samples, step)), (name, goal) in zip(
        sorted(stepbacks.items()),
        [("stepback_1k_ms", 10), ("stepback_100k_ms", 50), ("stepback_1m_ms", 20)],
        strict=False,
    ):
        report(name, samples, 1000, goal, f"from step {step:,}")
    report(
        "reverse_continue_100k_ms",
        reverse,
        1000,
        60,
        f"from step {reverse_step:,} to step {target_step:,}",
    )


def bench_stepback_deep(python: str, project: Path, trace: Path, repeat: int) -> None:
    mark_line = line_of("# MARK")
    client = start_session(python, trace, project, {project / "benchmod.py": [mark_line]})
    samples = []
    try:
        client.configuration_done()
        stop = client.stopped(timeout=600)
        step = stop["position"]["step"]
        assert stop["position"]["line"] == mark_line and step > 9_900_000, stop
        for _ in range(repeat):
            elapsed, back = timed_stop(client, "stepBack")
            assert back["position"]["step"] < step, (back, step)
            samples.append(elapsed)
            _, fwd = timed_stop(client, "next")
            assert fwd["position"]["step"] == step, (fwd, step)
    finally:
        client.close()
    report("stepback_10m_ms", samples, 1000, 50, f"from step {step:,}")


def bench_conditional(python: str, project: Path, trace: Path, repeat: int) -> None:
    cond_line = line_of("# COND")
    module = str(project / "benchmod.py")
    first: list[float] = []
    reverse: list[float] = []
    steps = (0, 0)

    def condition(client: Any, text: str) -> None:
        client.request(
            "setBreakpoints",
            {"source": {"path": module}, "breakpoints": [{"line": cond_line, "condition": text}]},
        )

    for session in range(repeat):
        client = start_session(python, trace, project, {})
        try:
            condition(client, SCAN_LATE)
            client.drain("stopped")
            start = time.perf_counter()
            client.configuration_done()
            stop = client.stopped(timeout=600)
            first.append(time.perf_counter() - start)
            assert stop["reason"] == "breakpoint" and stop["position"]["line"] == cond_line, stop
            for _ in range(3 if session == 0 else 1):
                condition(client, SCAN_EARLY)
                elapsed, back = timed_stop(client, "reverseContinue")
                assert back["reason"] == "breakpoint", back
                assert back["position"]["line"] == cond_line, back
                assert back["position"]["step"] < stop["position"]["step"] // 100, (back, stop)
                reverse.append(elapsed)
                steps = (stop["position"]["step"], back["position"]["step"])
                condition(client, SCAN_LATE)
                _, again = timed_stop(client, "continue")
                assert again["position"]["step"] == stop["position"]["step"], (again, stop)
        finally:
            client.close()
    hits = f"{SCAN_ITERATIONS:,} hits of the line"
    report(
        "cond_bp_first_stop_300k_s",
        first,
        1,
        0.5,
        f"stop at step {steps[0]:,}, {hits}",
        digits=3,
    )
    report(
        "cond_reverse_continue_300k_s",
        reverse,
        1,
        0.5,
        f"from step {steps[0]:,} to step {steps[1]:,}",
        digits=3,
    )


def bench_conditional_pair(python: str, project: Path, trace: Path, repeat: int) -> None:
    """cond2_reverse_continue_300k_s: reverse continue over two conditional breakpoints."""
    lines = (line_of("# COND"), line_of("# PAIR"))
    module = str(project / "benchmod.py")
    reverse: list[float] = []
    steps = (0, 0)

    def conditions(client: Any, texts: tuple[str, str]) -> None:
        client.request(
            "setBreakpoints",
            {
                "source": {"path": module},
                "breakpoints": [
                    {"line": line, "condition": text}
                    for line, text in zip(lines, texts, strict=True)
                ],
            },
        )

    for session in range(repeat):
        client = start_session(python, trace, project, {})
        try:
            conditions(client, (SCAN_LATE, SCAN2_LATE))
            client.drain("stopped")
            client.configuration_done()
            stop = client.stopped(timeout=600)
            assert stop["reason"] == "breakpoint" and stop["position"]["line"] == lines[0], stop
            for _ in range(3 if session == 0 else 1):
                conditions(client, (SCAN_EARLY, SCAN2_EARLY))
                elapsed, back = timed_stop(client, "reverseContinue")
                assert back["reason"] == "breakpoint", back
                assert back["position"]["line"] == lines[0], back
                assert back["position"]["step"] < stop["position"]["step"] // 100, (back, stop)
                reverse.append(elapsed)
                steps = (stop["position"]["step"], back["position"]["step"])
                conditions(client, (SCAN_LATE, SCAN2_LATE))
                _, again = timed_stop(client, "continue")
                assert again["position"]["step"] == stop["position"]["step"], (again, stop)
        finally:
            client.close()
    report(
        "cond2_reverse_continue_300k_s",
        reverse,
        1,
        0.5,
        f"from step {steps[0]:,} to step {steps[1]:,}, two conditional breakpoints",
        digits=3,
    )


def bench_forward(python: str, project: Path, trace: Path, repeat: int) -> None:
    under_adapter = []
    for _ in range(repeat):
        client = start_session(python, trace, project, {})
        try:
            start = time.perf_counter()
            client.configuration_done()
            stop = client.stopped(timeout=600)
            under_adapter.append(time.perf_counter() - start)
            assert stop["position"]["nextEffect"] is None, stop  # the end-of-replay pause
        finally:
            client.close()
    out = subprocess.run(
        [python, "-c", BASELINE, str(trace), str(project), str(repeat)],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    plain = json.loads(out.stdout)
    ratio = statistics.median(under_adapter) / statistics.median(plain)
    print(
        f"forward_slowdown: {ratio:.1f} (adapter, no breakpoints {statistics.median(under_adapter):.3f} s "
        f"vs headless Replayer {statistics.median(plain):.3f} s, medians of {repeat}, ~1M steps)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter under test (default: this one)"
    )
    parser.add_argument(
        "--repeat", type=int, default=9, help="samples per figure (launch and forward: fewer)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (printed)")
    parser.add_argument("--samples", action="store_true", help="also print every sample, in order")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated groups to run (launch, pipelined, stepping, conditional, deep, "
        "forward); default: all",
    )
    args = parser.parse_args(argv)
    global SHOW_SAMPLES
    SHOW_SAMPLES = args.samples
    python = shutil.which(args.python) or args.python

    version = subprocess.run(
        [
            python,
            "-c",
            "import sys, debugpy; print(sys.version.split()[0], 'debugpy', debugpy.__version__)",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"python: {version} ({python})", flush=True)
    print(
        f"loadavg_1m: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores; figures are noisy when this is high)",
        flush=True,
    )

    work = Path(tempfile.mkdtemp(prefix="prodture-bench-"))
    try:
        groups = set(filter(None, args.only.split(","))) or {
            "launch",
            "pipelined",
            "stepping",
            "conditional",
            "deep",
            "forward",
        }
        example, failing = record_checkout(python, work)
        project = make_synthetic(python, work)
        if "launch" in groups:
            bench_launch(python, example, failing, args.repeat)
        if "pipelined" in groups:
            bench_pipelined(python, example, failing, args.repeat)
        if groups & {"stepping", "forward"}:
            marks = sorted(MARKS + [REVERSE_MARK])
            trace = record_synthetic(
                python, project, "1m", "crunch", {"n": ITERATIONS, "every": EVERY, "marks": marks}
            )
        if "stepping" in groups:
            bench_stepping(python, project, trace, line_of("# MARK"), args.repeat)
        if "conditional" in groups:
            scan = record_synthetic(
                python, project, "scan", "scan", {"n": SCAN_ITERATIONS, "every": EVERY}
            )
            bench_conditional(python, project, scan, max(3, args.repeat // 3))
            bench_conditional_pair(python, project, scan, max(3, args.repeat // 3))
        if "deep" in groups:
            deep = record_synthetic(
                python,
                project,
                "10m",
                "crunch",
                {"n": DEEP_ITERATIONS, "every": EVERY * 10, "marks": [DEEP_MARK]},
            )
            bench_stepback_deep(python, project, deep, max(3, args.repeat // 2))
        if "forward" in groups:
            bench_forward(python, project, trace, max(3, args.repeat // 3))
        print(f"loadavg_1m_end: {os.getloadavg()[0]:.2f}", flush=True)
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
