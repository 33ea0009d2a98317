"""The interpreter: the three handler forms, errors thrown at the yield, Success / Failure, async."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import inspect
import sys
import types
import uuid
from typing import Any

import pytest

import prodture
from prodture import Command, Effect, Failure, Interpreter, Success, pipeline, runtime
from prodture.runtime import EffectCall, drive, handler_name, handlers, run_sync


@dataclasses.dataclass(frozen=True)
class Load(Effect, name="test_rt.Load"):
    key: str


@dataclasses.dataclass(frozen=True)
class Store(Effect, name="test_rt.Store"):
    key: str
    value: int


@dataclasses.dataclass(frozen=True)
class Unperformed(Effect, name="test_rt.Unperformed"):
    pass


class Boom(Exception):
    pass


class Abort(BaseException):
    pass


DB = {"a": 1, "b": 2}


def load(effect: Load) -> int:
    if effect.key not in DB:
        raise Boom(f"no key {effect.key}")
    return DB[effect.key]


def performers(log: list | None = None) -> dict:
    def store(effect: Store) -> str:
        if log is not None:
            log.append(effect)
        return f"stored {effect.key}"

    return {Load: load, Store: store}


def line_of(fn, marker: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    for i, text in enumerate(lines):
        if marker in text:
            return start + i
    raise AssertionError(marker)


# -- generator handlers ------------------------------------------------------------------------


def gen_handler(keys):
    total = 0
    for key in keys:
        total += yield Load(key)
    receipt = yield Store("total", total)
    return total, receipt


def test_generator_handler_receives_each_result_and_returns_success():
    """A generator handler gets every performer result at its yield and its return value is the Success value."""
    log: list = []
    outcome = Interpreter(performers(log)).run(gen_handler, ["a", "b"])
    assert outcome == Success((3, "stored total"))
    assert outcome.ok and log == [Store("total", 3)]


def catching_handler(key):
    try:
        value = yield Load(key)
    except Boom as error:
        value = f"fallback after {error}"
    yield Store("k", 0)
    return value


def test_performer_error_is_thrown_into_the_handler_at_the_yield():
    """An Exception raised by a performer is raised at the handler's yield, where the handler may catch it."""
    outcome = Interpreter(performers()).run(catching_handler, "missing")
    assert outcome == Success("fallback after no key missing")


def uncaught_handler(key):
    yield Load("a")
    yield Load(key)  # fails here
    return "unreachable"


def test_uncaught_performer_error_is_a_failure_naming_the_effect():
    """An uncaught performer error becomes Failure(error) with effect_seq = that effect's number and a user traceback."""
    outcome = Interpreter(performers()).run(uncaught_handler, "missing")
    assert isinstance(outcome, Failure) and not outcome.ok
    assert isinstance(outcome.error, Boom) and str(outcome.error) == "no key missing"
    assert outcome.effect_seq == 2
    assert f"line {line_of(uncaught_handler, '# fails here')}" in outcome.traceback
    assert "prodture/runtime.py" not in outcome.traceback
    assert outcome.traceback.rstrip().endswith("Boom: no key missing")


def own_error_handler(_):
    yield Load("a")
    raise ValueError("bad input")


def test_handler_own_error_is_a_failure_without_effect_seq():
    """A handler that raises by itself gives Failure with effect_seq None."""
    outcome = Interpreter(performers()).run(own_error_handler, None)
    assert isinstance(outcome, Failure) and isinstance(outcome.error, ValueError)
    assert outcome.effect_seq is None


def rewrapping_handler(_):
    try:
        yield Load("missing")
    except Boom as error:
        raise RuntimeError("wrapped") from error


def test_error_raised_while_handling_an_effect_error_has_no_effect_seq():
    """When the handler turns an effect error into another exception, the Failure is the handler's own (effect_seq None)."""
    outcome = Interpreter(performers()).run(rewrapping_handler, None)
    assert isinstance(outcome.error, RuntimeError) and outcome.effect_seq is None


def yields_a_number(_):
    yield Load("a")
    yield 42  # not an effect
    return "unreachable"


def test_yielding_a_non_effect_fails_with_the_line():
    """Yielding something that is not an Effect fails the handler with a TypeError naming the file and line."""
    outcome = Interpreter(performers()).run(yields_a_number, None)
    assert isinstance(outcome.error, TypeError)
    message = str(outcome.error)
    assert f"{__file__}:{line_of(yields_a_number, '# not an effect')} in yields_a_number" in message
    assert "42" in message and "wrap that I/O in an Effect" in message and "\n" not in message


def test_missing_performer_is_thrown_into_the_handler_with_the_fix():
    """An effect with no performer fails at its yield with a LookupError that says how to register one."""

    def h(_):
        yield Unperformed()

    outcome = Interpreter({}).run(h, None)
    assert isinstance(outcome.error, LookupError)
    assert "Unperformed" in str(outcome.error) and "performers=" in str(outcome.error)
    assert outcome.effect_seq == 1


def test_base_exception_from_a_performer_aborts_the_run():
    """A BaseException that is not an Exception (a divergence, a rewind) is not caught as a Failure: it aborts the run."""

    def abort(_):
        raise Abort()

    with pytest.raises(Abort):
        Interpreter({Load: abort}).run(catching_handler, "a")


def test_subclass_effect_uses_the_base_class_performer():
    """A performer registered for an effect class also performs its subclasses."""

    @dataclasses.dataclass(frozen=True)
    class SpecialLoad(Load, name="test_rt.SpecialLoad"):
        pass

    def h(_):
        return (yield SpecialLoad("b"))

    assert Interpreter(performers()).run(h, None) == Success(2)


def test_effect_call_site_is_the_yield_line():
    """Each EffectCall carries the handler's file, line and function of the yield."""
    calls: list[EffectCall] = []

    def perform(call: EffectCall):
        calls.append(call)
        return load(call.effect) if isinstance(call.effect, Load) else "ok"

    assert drive(gen_handler, ["a"], perform) == (1, "ok")
    assert [c.seq for c in calls] == [1, 2]
    assert calls[0].site == (__file__, line_of(gen_handler, "total += yield"), "gen_handler")
    assert calls[1].site == (__file__, line_of(gen_handler, "receipt = yield"), "gen_handler")


# -- async handlers ----------------------------------------------------------------------------


async def async_handler(keys):
    total = 0
    for key in keys:
        total += await Load(key)
    try:
        await Load("missing")
    except Boom:
        total += 100
    return total


def test_async_handler_awaits_effects_under_run():
    """An async def handler awaiting effects runs to completion under the synchronous Interpreter.run."""
    assert Interpreter(performers()).run(async_handler, ["a", "b"]) == Success(103)


def test_async_handler_under_run_async_with_async_performers():
    """run_async awaits awaitable performer results, and thrown errors reach the handler's except."""
    seen: list[str] = []

    async def async_load(effect: Load) -> int:
        await asyncio.sleep(0)
        seen.append(effect.key)
        return load(effect)

    outcome = asyncio.run(Interpreter({Load: async_load}).run_async(async_handler, ["a", "b"]))
    assert outcome == Success(103)
    assert seen == ["a", "b", "missing"]


def test_run_async_failure_names_the_effect():
    """run_async turns an uncaught async performer error into Failure with its effect_seq."""

    async def failing(effect: Load) -> int:
        await asyncio.sleep(0)
        raise Boom("gateway down")

    async def h(_):
        await Load("x")

    outcome = asyncio.run(Interpreter({Load: failing}).run_async(h, None))
    assert isinstance(outcome.error, Boom) and outcome.effect_seq == 1


async def awaits_a_non_effect(_):
    await Load("a")
    await asyncio.sleep(0)  # not an effect
    return "unreachable"


def test_awaiting_a_non_effect_names_the_handler_line():
    """Awaiting a non-effect (asyncio.sleep) fails with a one-line TypeError naming the handler's own line."""
    for outcome in (
        Interpreter(performers()).run(awaits_a_non_effect, None),
        asyncio.run(Interpreter(performers()).run_async(awaits_a_non_effect, None)),
    ):
        assert isinstance(outcome.error, TypeError)
        message = str(outcome.error)
        line = line_of(awaits_a_non_effect, "# not an effect")
        assert f" at {__file__}:{line} in awaits_a_non_effect" in message
        assert "not a prodture effect" in message and "\n" not in message


def test_run_async_accepts_generator_and_command_handlers():
    """run_async drives generator and Command handlers as well as coroutines."""
    interpreter = Interpreter(performers())
    assert asyncio.run(interpreter.run_async(gen_handler, ["b"])) == Success((2, "stored total"))
    assert asyncio.run(interpreter.run_async(price, "a")) == Success(10)


# -- pure functions returning Command ----------------------------------------------------------


def price(key):
    return Command(Load(key), then=lambda value: value * 10)


def save(amount):
    return Command(Store("price", amount), then=lambda receipt: (amount, receipt))


def test_command_handler_performs_effect_then_continues():
    """A pure function returning Command(effect, then) gets the effect performed and its continuation called."""
    assert Interpreter(performers()).run(price, "b") == Success(20)


def test_pipeline_composes_command_steps_in_order():
    """pipeline(step1, step2) feeds each step's final value to the next, performing effects in order."""
    log: list = []
    calls: list[int] = []
    handler = pipeline(price, save)

    def perform(call: EffectCall):
        calls.append(call.seq)
        return performers(log)[type(call.effect)](call.effect)

    assert drive(handler, "a", perform) == (10, "stored price")
    assert calls == [1, 2] and log == [Store("price", 10)]
    assert Interpreter(performers()).run(handler, "b") == Success((20, "stored price"))


def test_pipeline_passes_plain_values_through():
    """A pipeline step that returns a plain value (no Command) passes it straight to the next step."""
    handler = pipeline(lambda x: x + 1, price)
    assert Interpreter({Load: lambda e: int(e.key)}).run(handler, 4) == Success(50)


def test_command_on_error_handles_a_failed_effect():
    """Command.on_error receives the performer's error and its result continues the handler."""

    def h(key):
        return Command(
            Load(key),
            then=lambda v: v,
            on_error=lambda e: Command(Store("err", 0), then=lambda r: str(e)),
        )

    assert Interpreter(performers()).run(h, "missing") == Success("no key missing")


def test_command_without_on_error_fails_with_effect_seq():
    """A failed effect in a Command chain without on_error is a Failure naming that effect."""
    outcome = Interpreter(performers()).run(
        pipeline(price, lambda v: Command(Load("missing"))), "a"
    )
    assert isinstance(outcome.error, Boom) and outcome.effect_seq == 2


def test_command_site_is_where_the_command_was_built():
    """A Command's call site is the line of the pure function that built it."""
    calls: list[EffectCall] = []

    def perform(call):
        calls.append(call)
        return 1

    drive(price, "a", perform)
    assert calls[0].site == (__file__, line_of(price, "return Command"), "price")


# -- registration and built-ins ------------------------------------------------------------------


def test_handler_decorator_registers_under_module_qualname():
    """@prodture.handler registers a handler under module:qualname (or the given name)."""

    @prodture.handler
    def plain(_):
        return 1

    @prodture.handler(name="tests.custom")
    def named(_):
        return 2

    assert handlers[handler_name(plain)] is plain
    assert (
        handler_name(plain)
        == f"{__name__}:test_handler_decorator_registers_under_module_qualname.<locals>.plain"
    )
    assert handlers["tests.custom"] is named


def test_builtin_effects_have_production_performers():
    """Now, RandomInt, RandomFloat, NewUUID, GetEnv, MonotonicNow and Sleep work without any performer given."""

    def h(_):
        now = yield prodture.Now()
        n = yield prodture.RandomInt(3, 3)
        f = yield prodture.RandomFloat()
        u = yield prodture.NewUUID()
        env = yield prodture.GetEnv("PRODTURE_SURELY_UNSET_VAR", "dflt")
        mono = yield prodture.MonotonicNow()
        slept = yield prodture.Sleep(0)
        return now, n, f, u, env, mono, slept

    outcome = Interpreter().run(h, None)
    now, n, f, u, env, mono, slept = outcome.value
    assert isinstance(now, dt.datetime) and now.tzinfo is not None
    assert n == 3 and 0.0 <= f < 1.0 and isinstance(u, uuid.UUID) and u.version == 4
    assert env == "dflt" and isinstance(mono, float) and slept is None


def test_run_sync_wraps_the_result_as_an_outcome():
    """run_sync (replay's driver) returns Success or Failure like Interpreter.run."""
    assert run_sync(gen_handler, [], lambda call: "r") == Success((0, "r"))
    assert isinstance(run_sync(own_error_handler, None, lambda call: 1), Failure)


def test_sleep_under_run_async_does_not_block_the_event_loop():
    """`await Sleep(x)` under run_async sleeps with asyncio.sleep: another task keeps running
    while the handler sleeps (with time.sleep it could not run until the sleep ended)."""
    ticks: list[int] = []

    async def sleepy(_):
        before = len(ticks)
        await prodture.Sleep(0.2)
        return len(ticks) - before

    async def main():
        done = asyncio.Event()

        async def ticker():
            while not done.is_set():
                ticks.append(1)
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        outcome = await Interpreter().run_async(sleepy, None)
        done.set()
        await task
        return outcome

    outcome = asyncio.run(main())
    assert outcome.ok and outcome.value > 0, "the loop was blocked while the handler slept"


def test_a_performer_of_sleep_given_by_the_user_is_kept_under_run_async():
    """Only the built-in Sleep performer is swapped for the asyncio one."""
    slept: list[float] = []

    async def h(_):
        await prodture.Sleep(5)

    outcome = asyncio.run(
        Interpreter({prodture.Sleep: lambda e: slept.append(e.seconds)}).run_async(h, None)
    )
    assert outcome.ok and slept == [5]


class CallLog:
    """An observer that keeps every EffectCall it is told about."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str, tuple | None, bool]] = []

    def begin(self, handler_name, input):
        return self

    def effect(self, call, ok, value, start_ns, duration_ns):
        self.calls.append((call.seq, type(call.effect).__name__, call.site, ok))

    def finish(self, outcome):
        pass


@pytest.mark.parametrize(
    ("handler", "arg"),
    [(gen_handler, ["a", "b"]), (async_handler, ["a", "b"]), (pipeline(price, save), "a")],
)
def test_run_and_run_async_see_the_same_effect_calls(handler, arg):
    """One driver: run and run_async report the same numbers, effects and call sites (and the
    same outcome) for generator, coroutine and Command handlers."""
    seen = []
    for run in ("sync", "async"):
        log = CallLog()
        interpreter = Interpreter(performers(), recorder=log)
        if run == "sync":
            outcome = interpreter.run(handler, arg)
        else:
            outcome = asyncio.run(interpreter.run_async(handler, arg))
        assert outcome.ok, outcome
        seen.append((log.calls, outcome))
    assert seen[0] == seen[1]
    assert seen[0][0] and all(site is not None for _, _, site, _ in seen[0][0])


def test_a_command_of_something_not_an_effect_names_where_it_was_built():
    """Command(x) with x not an Effect fails with a TypeError naming the pure function's line."""

    def bad(_):
        not_an_effect: Any = "not an effect"  # what an untyped caller may pass
        return Command(not_an_effect)  # the line

    outcome = Interpreter(performers()).run(bad, None)
    assert isinstance(outcome.error, TypeError)
    assert f"{__file__}:{line_of(bad, '# the line')} in bad" in str(outcome.error)


SITES_SOURCE = {
    "generator": """\
def handler(_):
    a, b = (yield Load("one")), (yield Load("two"))
    yield Load("three")
""",
    "async": """\
async def handler(_):
    a, b = (await Load("one")), (await Load("two"))
    await Load("three")
""",
}


def _handler_compiled_as(form: str, filename: str, blank_lines_before: int = 0) -> Any:
    namespace: dict[str, Any] = {"Load": Load}
    source = "\n" * blank_lines_before + SITES_SOURCE[form]
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 -- the test's own source
    return namespace["handler"]


@pytest.mark.parametrize("form", ["generator", "async"])
def test_call_sites_stay_right_for_equal_code_in_two_files_and_a_reloaded_file(form):
    """Sites are remembered per yield: two yields on one line each name it; the same function
    in another file (an equal code object, its yields at the same offsets) names its own file;
    a file reloaded with its lines moved names the new lines, and the old code its own."""
    sites: list[Any] = []

    def perform(call: EffectCall) -> None:
        sites.append(call.site)

    first = _handler_compiled_as(form, "first.py")
    second = _handler_compiled_as(form, "second.py")
    reloaded = _handler_compiled_as(form, "first.py", blank_lines_before=2)
    for fn in (first, second, first, reloaded, first):
        drive(fn, None, perform)

    def expected(filename: str, shift: int = 0) -> list[tuple[str, int, str]]:
        return [(filename, 2 + shift, "handler")] * 2 + [(filename, 3 + shift, "handler")]

    assert sites == [
        *expected("first.py"),
        *expected("second.py"),
        *expected("first.py"),
        *expected("first.py", shift=2),
        *expected("first.py"),
    ]


@dataclasses.dataclass(frozen=True)
class At(Effect, name="test_rt.At"):
    """An effect that carries the site it was built at (the line that yields or awaits it)."""

    file: str
    line: int
    function: str


def _here() -> At:
    caller = sys._getframe(1)
    return At(caller.f_code.co_filename, caller.f_lineno, caller.f_code.co_name)


AT_SOURCE = """\
def handler(_):
    yield here()
    yield here(); yield here()
    yield from helper(2)

def helper(n):
    if n:
        yield from helper(n - 1)
    yield here()

async def async_handler(_):
    await here()
    await async_helper()
    await here()

async def async_helper():
    await here()
"""


def test_every_call_site_is_the_line_that_yields_it_however_code_objects_are_shared():
    """The call-site cache (per instruction offset, for one code object) never names a wrong
    site: a function made from another's ``__code__``, recursion through ``yield from``, an
    awaited helper, the same source compiled again with its lines moved, and more distinct code
    objects at the same offsets than the cache holds. Oracle: each effect names its own line."""
    wrong: list[tuple[Any, At]] = []

    def perform(call: EffectCall) -> None:
        e: Any = call.effect
        if call.site != (e.file, e.line, e.function):
            wrong.append((call.site, e))

    def compiled(filename: str, shift: int) -> dict[str, Any]:
        namespace: dict[str, Any] = {"here": _here}
        source = "\n" * shift + AT_SOURCE
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 -- the test's own source
        return namespace

    first = compiled("first.py", 0)
    twin = types.FunctionType(first["handler"].__code__, first, "twin")  # the same code object
    for i in range(runtime._MAX_SITES + 100):  # past the bound, at the same offsets
        namespace = first if i % 3 == 0 else compiled(f"f{i % 5000}.py", i % 7)
        for fn in (namespace["handler"], twin, namespace["async_handler"]):
            drive(fn, None, perform)
    assert wrong == []
