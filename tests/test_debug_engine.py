"""The step engine on its own: no DAP, no debugpy — a scripted presenter drives it."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from pathlib import Path
from typing import Any

import pytest

import prodture
from prodture.debug.contract import Command, Move, StopKind, StopPolicy
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


class _Calls:
    count = 0  # a class attribute: state re-runs cannot put back


@prodture.handler(name="tests.engine:stateful")
def stateful(request):
    _Calls.count += 1  # each run loops once less
    total = 0
    for i in range(4 - _Calls.count):
        total += i
    return total


SEEN: list = []
TALLY = 0


@prodture.handler(name="tests.engine:module_state")
def module_state(request):
    global TALLY
    for i in range(3):
        got = yield Fetch(i)
        SEEN.append(got)
        TALLY += got
    return len(SEEN)


@prodture.handler(name="tests.engine:shapes")
def shapes(request):
    got = yield Fetch(1)
    n = 0
    while n < 40:
        n += 1  # noqa: E701 - a one-line loop: its backward jumps stay on one line
    squares = [square(i) for i in range(4)]
    for j in range(3):
        n += accumulate([j, n])  # noqa: E701 - as above
    k = 0
    while True:
        k += 1
        if k > 5:
            break
    more = yield Fetch(2)
    return n + got + more + sum(squares) + k


@prodture.handler(name="tests.engine:bare_except")
def bare_except(request):
    values = []
    for i in range(3):
        try:
            got = yield Fetch(i)
        except:  # noqa: E722 - the point of the test: it also catches the engine's unwind
            got = -1
        values.append(got)
    return values


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
    recorder.close()  # the trace is written by the recorder's writer thread
    return read_trace(next(directory.glob("*.prodtrace")))


class Script:
    """A presenter that snapshots each stop and answers with the next scripted command."""

    def __init__(self, commands: list[Any]) -> None:
        self.commands = list(commands)
        self.stops: list[dict[str, Any]] = []
        self.engine: StepEngine | None = None

    def __call__(self, stop: Stop) -> tuple[str, Any]:
        frame = stop.frame
        self.stops.append(
            {
                "reason": stop.kind.value,
                "step": stop.step,
                "effect": stop.effect,
                "line": frame.f_lineno,
                "function": frame.f_code.co_name,
                "locals": {k: repr(v) for k, v in frame.f_locals.items()},
                "stack": [f.f_code.co_name for f in self.engine.user_frames(frame)]
                if self.engine
                else [],
                "divergence": stop.divergence.message if stop.divergence is not None else None,
                "exception": (stop.exception.type_name, stop.exception.message)
                if stop.exception is not None
                else None,
                "end": stop.end,
            }
        )
        if not self.commands:
            return ("terminate", None)
        command = self.commands.pop(0)
        return command if isinstance(command, tuple) else (command, None)


COMMANDS = {
    "next": Command.NEXT,
    "stepIn": Command.STEP_IN,
    "stepOut": Command.STEP_OUT,
    "continue": Command.CONTINUE,
    "stepBack": Command.STEP_BACK,
    "reverseContinue": Command.REVERSE_CONTINUE,
    "jumpToEffect": Command.JUMP_TO_EFFECT,
    "terminate": Command.TERMINATE,
}


def moves(present: Any) -> Any:
    """A presenter answering (name, arg) pairs, as the engine's Moves."""

    def answer(stop: Stop) -> Move:
        name, arg = present(stop)
        return Move(COMMANDS[name], arg)

    return answer


def engine_for(trace, fn, script: Script, **kwargs: Any) -> StepEngine:
    engine = StepEngine(trace, fn, moves(script), **kwargs)
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
    assert (
        back["line"] == target
        and back["locals"] == at_call["locals"]
        and back["step"] == at_call["step"]
    )
    assert into["function"] == "accumulate" and into["stack"] == ["accumulate", "walk"]
    assert (back1["line"], back1["step"], back1["locals"]) == (
        into["line"],
        into["step"],
        into["locals"],
    )
    assert back2["line"] == target and back2["stack"] == ["walk"]


def test_conditional_and_hit_count_breakpoints(tmp_path):
    """A condition filters breakpoint hits; a hit condition stops only from the Nth hit."""
    trace = record(tmp_path, walk, {"n": 6})
    script = Script(["continue", "continue"])
    engine = engine_for(trace, walk, script)
    engine.set_breakpoints(
        HERE, [Breakpoint(line_of(walk, "items.append(got)"), condition="i in (2, 4)")]
    )
    engine.run()
    assert [s["locals"]["i"] for s in script.stops[:2]] == ["2", "4"]
    script = Script(["continue"])
    engine = engine_for(trace, walk, script)
    engine.set_breakpoints(
        HERE, [Breakpoint(line_of(walk, "items.append(got)"), hit_condition=">= 5")]
    )
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
    # no earlier hit: back to the handler's first line, and there reverseContinue stays put
    assert [(s["reason"], s["line"], s["effect"]) for s in script.stops] == [
        ("breakpoint", line_of(walk, "result = accumulate"), 6),
        ("entry", line_of(walk, "items = []"), 0),
        ("entry", line_of(walk, "items = []"), 0),
    ]
    assert script.stops[1]["step"] == script.stops[2]["step"] == 1
    engine2_script = Script([("reverseContinue", None), ("reverseContinue", None)])
    engine2 = engine_for(trace, walk, engine2_script)
    engine2.set_breakpoints(HERE, [Breakpoint(line_of(walk, "result = accumulate"))])

    def swap(stop: Stop, original=engine2_script) -> tuple[str, Any]:
        if not original.stops:
            engine2.set_breakpoints(HERE, [Breakpoint(append, condition="i % 2 == 1")])
        return original(stop)

    engine2.presenter = moves(swap)
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
    engine.set_breakpoints(
        HERE, [Breakpoint(line_of(walk, "items.append(got)"), log_message="got {got} at {i}")]
    )
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
    _Calls.count = 0
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
    lines = [line_of(walk, t) for t in ("got = yield", "items.append", "if i % 2", "result =")] + [
        line_of(square, "y = x * x"),
        line_of(accumulate, "total += square"),
    ]
    seen: dict[int, tuple] = {}
    engine: StepEngine

    def present(stop: Stop) -> tuple[str, Any]:
        state = (
            stop.frame.f_lineno,
            sorted((k, repr(v)) for k, v in stop.frame.f_locals.items()),
            [(f.f_code.co_name, f.f_lineno) for f in engine.user_frames(stop.frame)],
        )
        assert seen.setdefault(stop.step, state) == state, f"step {stop.step} differs on a revisit"
        if engine.stops > 300:
            return ("terminate", None)
        options = (
            ["stepBack", "reverseContinue", "jump"]
            if stop.end
            else [
                "next",
                "stepIn",
                "stepOut",
                "stepBack",
                "continue",
                "reverseContinue",
                "breakpoints",
                "jump",
            ]
        )
        command = rng.choice(options)
        if command == "breakpoints":
            engine.set_breakpoints(
                HERE, [Breakpoint(line) for line in rng.sample(lines, rng.randint(0, 3))]
            )
            command = "continue" if not stop.end else "reverseContinue"
        if command == "jump":
            return ("jumpToEffect", rng.randint(1, 8))
        return (command, None)

    engine = StepEngine(trace, walk, moves(present), stop_on_entry=True)
    engine.run()
    assert len(seen) > 20


def test_revisited_step_shows_the_module_state_of_the_first_visit(tmp_path):
    """Module globals the handler mutates are put back before a re-run, so stepping back shows them as they were."""
    global TALLY
    trace = record(tmp_path, module_state, {})
    SEEN.clear()
    TALLY = 0
    printed: list[str] = []
    views: list[tuple[str, int]] = []
    script = Script(
        ["continue", "stepBack", "stepBack", "continue", "continue", "continue", "continue"]
    )

    def present(stop: Stop) -> tuple[str, Any]:
        views.append((repr(SEEN), TALLY))
        return script(stop)

    engine = engine_for(trace, module_state, script, output=printed.append)
    engine.presenter = moves(present)
    engine.set_breakpoints(HERE, [Breakpoint(line_of(module_state, "SEEN.append(got)"))])
    outcome = engine.run()
    first, second, back1, back2 = views[:4]
    assert (first, second) == (("[]", 0), ("[1]", 1))
    assert (
        back1 == back2 == ("[1]", 1)
    )  # the yield and for lines of i=1: SEEN as it was there, not [1, 1]
    assert outcome.ok and outcome.value == 3 and engine.divergence is None
    assert any("module-level state" in p and "SEEN" in p for p in printed)


def test_bare_except_around_yield_cannot_swallow_a_step_back(tmp_path):
    """A bare `except:` around the yield does not lose a step back: revisits match and the replay still reproduces."""
    trace = record(tmp_path, bare_except, {})
    yield_line = line_of(bare_except, "got = yield")
    script = Script(
        [
            "continue",
            "stepBack",
            "stepBack",
            "stepBack",
            "continue",
            "continue",
            "continue",
            "continue",
        ]
    )
    engine = engine_for(trace, bare_except, script)
    engine.set_breakpoints(HERE, [Breakpoint(yield_line)])
    outcome = engine.run()
    stops = script.stops
    assert stops[1]["locals"]["i"] == "1"
    by_step: dict[int, dict] = {}
    for s in stops:
        assert by_step.setdefault(s["step"], s)["locals"] == s["locals"]
    assert outcome is not None and outcome.ok and outcome.value == [1, 4, 7]
    assert engine.divergence is None and stops[-1]["end"]


def test_missing_effects_stop_at_the_end_with_the_replayers_message(tmp_path):
    """A handler that now returns before the recorded effects end stops on its return line with the divergence."""
    trace = record(tmp_path, walk, {"n": 3})
    short = dataclasses.replace(trace, input={"n": 2})
    script = Script(["stepBack"])
    engine_for(short, walk, script).run()
    end, back = script.stops[:2]
    assert end["reason"] == "divergence" and end["end"]
    assert (
        end["divergence"].startswith("effect #3: recorded ")
        and "finishes after 2 effects" in end["divergence"]
    )
    assert end["line"] == line_of(walk, "return result")
    assert back["line"] == line_of(walk, "result = accumulate(items)")


@pytest.mark.parametrize("seed", range(4))
def test_fast_forward_lands_on_the_same_state_in_one_line_loops_and_comprehensions(tmp_path, seed):
    """Revisits through one-line loops, comprehensions and loops without effects show the state of the first visit."""
    trace = record(tmp_path, shapes, {})
    rng = random.Random(seed)
    seen: dict[int, tuple] = {}
    reached_end: list[int] = []
    engine: StepEngine

    def present(stop: Stop) -> tuple[str, Any]:
        state = (
            stop.frame.f_lineno,
            sorted((k, repr(v)) for k, v in stop.frame.f_locals.items()),
            [(f.f_code.co_name, f.f_lineno) for f in engine.user_frames(stop.frame)],
        )
        assert seen.setdefault(stop.step, state) == state, f"step {stop.step} differs on a revisit"
        if engine.stops > 400:
            return ("terminate", None)
        if stop.end:
            reached_end.append(stop.step)
            return (rng.choice(["stepBack", "reverseContinue"]), None)
        if not reached_end:  # first every step once, forward; then back and forth at random
            return ("stepIn", None)
        return (rng.choice(["stepIn", "next", "stepBack", "stepBack", "stepOut"]), None)

    engine = StepEngine(trace, shapes, moves(present), stop_on_entry=True)
    engine.run()
    assert len(seen) > 100 and engine.stops > 400


# -- the issue-8 shapes: recorded errors thrown into delegating chains, pipelines, the end -------


def record_shape(tmp_path: Path, name: str) -> tuple[Any, prodture.Trace]:
    import oracle_shapes

    fn, request = oracle_shapes.SHAPES[name]
    directory = tmp_path / f"traces-{name}"
    recorder = prodture.Recorder(prodture.DirectorySink(directory))
    interpreter = prodture.Interpreter(oracle_shapes.PERFORMERS, recorder=recorder)
    if asyncio.iscoroutinefunction(fn):
        asyncio.run(interpreter.run_async(fn, request))
    else:
        interpreter.run(fn, request)
    recorder.close()  # the trace is written by the recorder's writer thread
    return fn, read_trace(next(directory.glob("*.prodtrace")))


FAILURES = StopPolicy(effect_failed=True, uncaught=True)


@pytest.mark.parametrize("shape", ["gen_yield_from", "async_helpers"])
def test_step_back_and_out_from_a_failed_effect_in_a_helper(tmp_path, shape):
    """From the failure of effect #2 inside the retrying helper (two deep), stepBack lands on the
    helper's previous line and stepOut returns to its caller; nothing warns."""
    import oracle_shapes

    fn, trace = record_shape(tmp_path, shape)
    helper = (
        oracle_shapes.retrying_charge
        if shape == "gen_yield_from"
        else oracle_shapes.retrying_charge_async
    )
    caller = oracle_shapes.pay_twice if shape == "gen_yield_from" else oracle_shapes.pay_twice_async
    warnings: list[str] = []
    script = Script(["stepBack", "continue", "stepOut", "next"])
    engine = engine_for(trace, fn, script, warn=warnings.append)
    engine.set_policy(FAILURES)
    engine.run()
    failed, back, failed_again, out, over = script.stops[:5]
    assert failed["reason"] == "effect failed" and failed["exception"] == (
        "Declined",
        "amount 3 refused",
    )
    assert failed["stack"][:2] == [helper.__name__, caller.__name__]
    assert back["function"] == helper.__name__ and back["line"] == line_of(helper, "try:")
    assert failed_again["step"] == failed["step"]
    assert out["function"] == caller.__name__ and out["line"] == line_of(caller, "try:")
    assert over["function"] == caller.__name__ and over["line"] == line_of(caller, "b = ")
    assert warnings == []


def test_jump_to_effect_stops_nowhere_on_the_way_and_is_disarmed(tmp_path):
    """A jump past failed effects and a breakpoint stops only at the target; afterwards the
    breakpoint and the effect-failed stops work as before."""
    import oracle_shapes

    fn, trace = record_shape(tmp_path, "gen_yield_from")
    script = Script([("jumpToEffect", 5), "continue", ("jumpToEffect", 2), "continue", "continue"])
    engine = engine_for(trace, fn, script, stop_on_entry=True)
    engine.set_policy(FAILURES)
    engine.set_breakpoints(
        oracle_shapes.__file__,
        [Breakpoint(line_of(oracle_shapes.retrying_charge, "pause = yield"))],
    )
    engine.run()
    entry, jumped, after, back, bp = script.stops[:5]
    assert (jumped["reason"], jumped["effect"]) == ("goto", 4)
    assert after["reason"] == "effect failed" and after["effect"] == 5
    assert (back["reason"], back["effect"]) == ("goto", 1)
    assert bp["reason"] == "effect failed" and bp["effect"] == 2
    assert script.stops[5]["reason"] == "breakpoint"


@pytest.mark.parametrize("shape", ["command_pipeline", "plain_command"])
def test_command_handlers_pause_at_the_end_of_the_replay(tmp_path, shape):
    """continue from a breakpoint in a pipeline step, and stepOut from the first step, reach an
    end-of-replay stop (on the last step's return) instead of ending the session."""
    import oracle_shapes

    fn, trace = record_shape(tmp_path, shape)
    first = oracle_shapes.load if shape == "command_pipeline" else oracle_shapes.plain_command
    script = Script(["continue", "stepBack", "stepOut"])
    engine = engine_for(trace, fn, script)
    engine.set_policy(StopPolicy(effect_failed=False))  # no stop at effect #2's failure
    engine.set_breakpoints(oracle_shapes.__file__, [Breakpoint(line_of(first, "wanted = order"))])
    outcome = engine.run()
    at_bp, end, back, end_again = script.stops[:4]
    assert at_bp["reason"] == "breakpoint"
    assert end["end"] and end["reason"] == "end" and end["effect"] >= 2
    assert not back["end"] and end_again["end"] and end_again["step"] == end["step"]
    assert outcome is None  # terminated at the end stop, not run past it


def test_end_of_replay_after_a_step_back_reports_the_real_exception(tmp_path):
    """The stop at the handler's final bare `raise` reports the handler's exception, also when it
    is reached again after stepBack (the re-run fast-forwards past where it was raised)."""
    fn, trace = record_shape(tmp_path, "own_raise")
    script = Script(["continue", "stepBack", "continue", "stepBack", "stepBack", "continue"])
    engine = engine_for(trace, fn, script)
    engine.set_policy(StopPolicy(uncaught=True))
    engine.run()
    ends = [s for s in script.stops if s["end"]]
    assert len(ends) == 3
    for end in ends:
        assert end["reason"] == StopKind.UNCAUGHT.value
        assert end["exception"] == ("PaymentDeclined", "amount must be greater than zero")
    assert engine.divergence is None


@pytest.mark.parametrize(
    "shape, receiver, amount",
    [("command_pipeline", "on_declined", 17), ("plain_command", "<lambda>", 15)],
)
def test_command_handlers_stop_where_the_recorded_error_arrives(tmp_path, shape, receiver, amount):
    """A Command / pipeline handler gets an effect's recorded error as the argument of the
    Command's on_error: with effect-failed stops on, continue stops there (before its first
    line) with the error's type and message, as a generator handler stops on its yield; step back
    and step in go around it as around any stop; with the filter off it does not stop."""
    fn, trace = record_shape(tmp_path, shape)
    script = Script(["continue", "stepIn", "stepBack", "continue"])
    engine = engine_for(trace, fn, script, stop_on_entry=True)
    engine.set_policy(FAILURES)
    engine.run()
    entry, failed, first_line, back, failed_again = script.stops[:5]
    assert failed["reason"] == StopKind.EFFECT_FAILED.value
    assert failed["exception"] == ("Declined", f"amount {amount} refused")
    assert (failed["function"], failed["effect"]) == (receiver, 2)
    assert failed["locals"]["error"] == f"Declined('amount {amount} refused')"
    assert (first_line["reason"], first_line["function"]) == ("step", receiver)
    assert first_line["step"] == failed["step"] + 1 and not first_line["end"]
    # back to a step before the failure (it comes after the line building the Command)
    assert back["reason"] == "step" and back["step"] <= failed["step"]
    assert failed_again["reason"] == StopKind.EFFECT_FAILED.value
    assert (failed_again["step"], failed_again["line"]) == (failed["step"], failed["line"])

    script = Script(["continue"])
    engine = engine_for(trace, fn, script, stop_on_entry=True)
    engine.set_policy(StopPolicy(effect_failed=False, uncaught=True))
    engine.run()
    assert [stop["reason"] for stop in script.stops] == ["entry", "end"]


def _load_order(order):
    import oracle_shapes

    return prodture.Command(oracle_shapes.Fetch(order["n"]), then=lambda value: value + 1)


def _charge_unguarded(value):
    import oracle_shapes

    # no on_error: a failure leaves the handler
    return prodture.Command(oracle_shapes.Charge(value * 2 + 1))


unguarded_pipeline = prodture.handler(
    prodture.pipeline(_load_order, _charge_unguarded), name="tests.engine:unguarded_pipeline"
)


def test_a_pipeline_failure_no_step_catches_is_reported_by_the_end_stop(tmp_path):
    """No on_error receives the recorded error (no user frame does): there is no effect-failed
    stop, and the end-of-replay stop reports the error as uncaught."""
    import oracle_shapes

    directory = tmp_path / "traces"
    recorder = prodture.Recorder(prodture.DirectorySink(directory))
    interpreter = prodture.Interpreter(oracle_shapes.PERFORMERS, recorder=recorder)
    interpreter.run(unguarded_pipeline, {"n": 2})
    recorder.close()
    trace = read_trace(next(directory.glob("*.prodtrace")))
    script = Script(["continue"])
    engine = engine_for(trace, unguarded_pipeline, script, stop_on_entry=True)
    engine.set_policy(FAILURES)
    engine.run()
    entry, end = script.stops
    assert (end["reason"], end["end"]) == (StopKind.UNCAUGHT.value, True)
    assert end["exception"] == ("Declined", "amount 17 refused")
    assert end["function"] == "_charge_unguarded"


class _Refunds:
    def refuse(self, error):
        note = f"refused: {error}"
        return note


def _charge_with_method(value):
    import oracle_shapes

    return prodture.Command(oracle_shapes.Charge(value * 2 + 1), on_error=_Refunds().refuse)


method_pipeline = prodture.handler(
    prodture.pipeline(_load_order, _charge_with_method), name="tests.engine:method_pipeline"
)


def test_a_bound_method_on_error_gets_the_effect_failed_stop(tmp_path):
    """The recorded error arrives as the second argument of a bound method: the stop is there."""
    import oracle_shapes

    directory = tmp_path / "traces"
    recorder = prodture.Recorder(prodture.DirectorySink(directory))
    interpreter = prodture.Interpreter(oracle_shapes.PERFORMERS, recorder=recorder)
    interpreter.run(method_pipeline, {"n": 2})
    recorder.close()
    trace = read_trace(next(directory.glob("*.prodtrace")))
    script = Script(["continue", "next", "continue"])
    engine = engine_for(trace, method_pipeline, script, stop_on_entry=True)
    engine.set_policy(FAILURES)
    engine.run()
    entry, failed, first_line, end = script.stops
    assert (failed["reason"], failed["function"]) == (StopKind.EFFECT_FAILED.value, "refuse")
    assert failed["exception"] == ("Declined", "amount 17 refused")
    assert failed["locals"]["error"] == "Declined('amount 17 refused')"
    assert first_line["line"] == line_of(_Refunds.refuse, "note = ")
    assert end["end"] and end["exception"] is None
