"""The step engine on its own: no DAP, no debugpy — a scripted presenter drives it."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

import prodture
from prodture.debug.engine import Breakpoint, StepEngine, Stop
from prodture.trace import read_trace

HERE = str(Path(__file__).resolve())


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="tests.engine.Fetch"):
    n: int


def square(x):
    y = x * x
    return y


def accumulate(values):
    total = 0
    for v in values:
        total += square(v)
    return total


@prodture.handler(name="tests.engine:walk")
def walk(request):
    items = []
    for i in range(request["n"]):
        got = yield Fetch(i)
        items.append(got)
        if i % 2:
            items[-1] = accumulate([got, i])
    result = accumulate(items)
    return result


async def fetch_and_add(k):
    a = await Fetch(k)
    return a + 1


@prodture.handler(name="tests.engine:async_walk")
async def async_walk(request):
    x = await Fetch(1)
    y = await fetch_and_add(2)
    z = x + y
    return z


_calls = {"count": 0}


@prodture.handler(name="tests.engine:stateful")
def stateful(request):
    _calls["count"] += 1  # module-level state: each run loops once less
    total = 0
    for i in range(4 - _calls["count"]):
        total += i
    return total


def line_of(fn: Any, text: str) -> int:
    import inspect

    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


def record(tmp_path: Path, fn: Any, request: Any) -> prodture.Trace:
    directory = tmp_path / f"traces-{fn.__name__}"
    recorder = prodture.Recorder(prodture.DirectorySink(directory))
    interpreter = prodture.Interpreter({Fetch: lambda e: e.n * 3 + 1}, recorder=recorder)
    if asyncio.iscoroutinefunction(fn):
        asyncio.run(interpreter.run_async(fn, request))
    else:
        interpreter.run(fn, request)
    return read_trace(next(directory.glob("*.prodtrace")))


class Script:
    """A presenter that snapshots each stop and answers with the next scripted command."""

    def __init__(self, commands: list[Any]) -> None:
        self.commands = list(commands)
        self.stops: list[dict[str, Any]] = []
        self.engine: StepEngine | None = None

    def __call__(self, stop: Stop) -> tuple[str, Any]:
        frame = stop.frame
        self.stops.append({
            "reason": stop.reason, "step": stop.step, "effect": stop.effect, "line": frame.f_lineno,
            "function": frame.f_code.co_name, "locals": {k: repr(v) for k, v in frame.f_locals.items()},
            "stack": [f.f_code.co_name for f in self.engine.user_frames(frame)] if self.engine else [],
            "text": stop.text, "end": stop.end,
        })
        if not self.commands:
            return ("terminate", None)
        command = self.commands.pop(0)
        return command if isinstance(command, tuple) else (command, None)


def engine_for(trace, fn, script: Script, **kwargs: Any) -> StepEngine:
    engine = StepEngine(trace, fn, script, **kwargs)
    script.engine = engine
    return engine


def test_next_over_yield_binds_the_recorded_result(tmp_path):
    """next over `got = yield Fetch(i)` lands on the next handler line with got bound to the recorded result."""
    trace = record(tmp_path, walk, {"n": 2})
    script = Script(["next", "next"])
    engine_for(trace, walk, script, stop_on_entry=True).run()
    first, on_yield, after = script.stops
    assert first["reason"] == "entry" and first["line"] == line_of(walk, "items = []")
    assert on_yield["line"] == line_of(walk, "for i in range")
    assert after["line"] == line_of(walk, "got = yield")
    script = Script(["next"])
    engine = engine_for(trace, walk, script)
    engine.set_breakpoints(HERE, [Breakpoint(line_of(walk, "got = yield"))])
    engine.run()
    assert script.stops[1]["line"] == line_of(walk, "items.append(got)")
    assert script.stops[1]["locals"]["got"] == "1" and script.stops[1]["effect"] == 1


def test_step_back_goes_to_the_previous_step_at_the_same_or_outer_depth(tmp_path):
    """From a handler line after a nested call, stepBack skips the callee's lines; from the callee's first line it leaves it."""
    trace = record(tmp_path, walk, {"n": 2})
    target = line_of(walk, "result = accumulate(items)")
    script = Script(["next", "stepBack", "stepIn", "stepIn", "stepBack", "stepBack"])
    engine = engine_for(trace, walk, script)
    engine.set_breakpoints(HERE, [Breakpoint(target)])
    engine.run()
    at_call, after_call, back, into, deeper, back1, back2 = script.stops
    assert after_call["line"] == line_of(walk, "return result")
    assert back["line"] == target and back["locals"] == at_call["locals"] and back["step"] == at_call["step"]
    assert into["function"] == "accumulate" and into["stack"] == ["accumulate", "walk"]
    assert (back1["line"], back1["step"], back1["locals"]) == (into["line"], into["step"], into["locals"])
    assert back2["line"] == target and back2["stack"] == ["walk"]


def test_conditional_and_hit_count_breakpoints(tmp_path):
    """A condition filters breakpoint hits; a hit condition stops only from the Nth hit."""
    trace = record(tmp_path, walk, {"n": 6})
    script = Script(["continue", "continue"])
    engine = engine_for(trace, walk, script)
    engine.set_breakpoints(HERE, [Breakpoint(line_of(walk, "items.append(got)"), condition="i in (2, 4)")])
    engine.run()
    assert [s["locals"]["i"] for s in script.stops[:2]] == ["2", "4"]
    script = Script(["continue"])
    engine = engine_for(trace, walk, script)
    engine.set_breakpoints(HERE, [Breakpoint(line_of(walk, "items.append(got)"), hit_condition=">= 5")])
    engine.run()
    assert script.stops[0]["locals"]["i"] == "4"


def test_reverse_continue_evaluates_conditions_on_the_way_back(tmp_path):
    """reverseContinue stops at the latest earlier hit whose condition was true there."""
    trace = record(tmp_path, walk, {"n": 6})
    append = line_of(walk, "items.append(got)")
    script = Script(["reverseContinue", "reverseContinue"])
    engine = engine_for(trace, walk, script)
    engine.set_breakpoints(HERE, [Breakpoint(line_of(walk, "result = accumulate"))])
    engine.run()
    assert len(script.stops) == 3
    engine2_script = Script([("reverseContinue", None), ("reverseContinue", None)])
    engine2 = engine_for(trace, walk, engine2_script)
    engine2.set_breakpoints(HERE, [Breakpoint(line_of(walk, "result = accumulate"))])

    def swap(stop: Stop, original=engine2_script) -> tuple[str, Any]:
        if not original.stops:
            engine2.set_breakpoints(HERE, [Breakpoint(append, condition="i % 2 == 1")])
        return original(stop)

    engine2.presenter = swap
    engine2.run()
    _, first_back, second_back = engine2_script.stops
    assert first_back["line"] == append and first_back["locals"]["i"] == "5"
    assert second_back["locals"]["i"] == "3"


def test_log_point_prints_without_stopping(tmp_path):
    """A log point formats {expressions} in the frame and sends them to output without a stop."""
    trace = record(tmp_path, walk, {"n": 3})
    printed: list[str] = []
    script = Script([])
    engine = engine_for(trace, walk, script, output=printed.append)
    engine.set_breakpoints(HERE, [Breakpoint(line_of(walk, "items.append(got)"), log_message="got {got} at {i}")])
    engine.run()
    assert printed == ["got 1 at 0\n", "got 4 at 1\n", "got 7 at 2\n"]
    assert all(s["end"] for s in script.stops)


def test_async_handler_steps_over_await(tmp_path):
    """In an async handler, next over `x = await Effect(...)` lands on the next line with x bound."""
    trace = record(tmp_path, async_walk, {})
    script = Script(["next", "next", "stepBack"])
    engine_for(trace, async_walk, script, stop_on_entry=True).run()
    entry, after_x, after_y, back = script.stops
    assert after_x["line"] == line_of(async_walk, "y = await") and after_x["locals"]["x"] == "4"
    assert after_y["locals"]["y"] == "8"
    assert back["line"] == after_x["line"] and back["locals"] == after_x["locals"]


def test_jump_to_effect_pauses_before_the_effect_is_performed(tmp_path):
    """jumpToEffect N stops on the line that yields effect N with N-1 effects performed, forward and back."""
    trace = record(tmp_path, walk, {"n": 5})
    script = Script([("jumpToEffect", 4), ("jumpToEffect", 2), ("jumpToEffect", 5)])
    engine_for(trace, walk, script, stop_on_entry=True).run()
    _, four, two, five = script.stops
    assert (four["reason"], four["effect"], four["locals"]["i"]) == ("goto", 3, "3")
    assert (two["effect"], two["locals"]["i"]) == (1, "1")
    assert (five["effect"], five["locals"]["i"]) == (4, "4")


def test_history_is_compact(tmp_path):
    """The per-step history costs at most 12 bytes a step (location + depth), one entry per step."""
    trace = record(tmp_path, walk, {"n": 3})
    engine = engine_for(trace, walk, Script([]))
    engine.run()
    assert engine.hist_loc.itemsize + engine.hist_depth.itemsize <= 12
    assert len(engine.hist_loc) == len(engine.hist_depth) == engine.step


def test_non_deterministic_handler_is_reported(tmp_path):
    """A handler whose loop depends on module-level state gets a warning when a re-run cannot reach the step."""
    trace = record(tmp_path, stateful, {})
    _calls["count"] = 0
    warnings: list[str] = []
    script = Script(["stepBack"])
    engine_for(trace, stateful, script, warn=warnings.append).run()
    assert script.stops[0]["end"]
    assert any("not deterministic" in w for w in warnings)


@pytest.mark.parametrize("seed", range(10))
def test_random_walk_revisits_are_identical(tmp_path, seed):
    """Random walks of every command: each revisit of a step index shows the same line, locals and stack."""
    trace = record(tmp_path, walk, {"n": 8})
    rng = random.Random(seed)
    lines = [line_of(walk, t) for t in ("got = yield", "items.append", "if i % 2", "result =")] + \
            [line_of(square, "y = x * x"), line_of(accumulate, "total += square")]
    seen: dict[int, tuple] = {}
    engine: StepEngine

    def present(stop: Stop) -> tuple[str, Any]:
        state = (stop.frame.f_lineno, sorted((k, repr(v)) for k, v in stop.frame.f_locals.items()),
                 [(f.f_code.co_name, f.f_lineno) for f in engine.user_frames(stop.frame)])
        assert seen.setdefault(stop.step, state) == state, f"step {stop.step} differs on a revisit"
        if engine.stops > 300:
            return ("terminate", None)
        options = ["stepBack", "reverseContinue", "jump"] if stop.end else \
            ["next", "stepIn", "stepOut", "stepBack", "continue", "reverseContinue", "breakpoints", "jump"]
        command = rng.choice(options)
        if command == "breakpoints":
            engine.set_breakpoints(HERE, [Breakpoint(line) for line in rng.sample(lines, rng.randint(0, 3))])
            command = "continue" if not stop.end else "reverseContinue"
        if command == "jump":
            return ("jumpToEffect", rng.randint(1, 8))
        return (command, None)

    engine = StepEngine(trace, walk, present, stop_on_entry=True)
    engine.run()
    assert len(seen) > 20
