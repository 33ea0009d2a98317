"""Exactness of the step engine against ground truth (see tests/step_oracle.py).

Each handler shape of tests/oracle_shapes.py is recorded for real, replayed headless under
``sys.settrace`` as ground truth, and then driven through the engine (no DAP) by scripted command
sequences and seeded random walks; every stop is compared with the reference model. The number
of states compared and of mismatches is printed at the end of the run (and appended as a JSON line
to ``$PRODTURE_ORACLE_REPORT`` when set).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import oracle_shapes as shapes
import prodture
import step_oracle as oracle
from prodture.trace import read_trace

USER_FILE = shapes.__file__
# Not a plain container: the engine puts back this module's plain containers (module state) before
# every re-run, which would copy the cached traces and ground truths each time.
STATE = types.SimpleNamespace(totals=oracle.Report(), cache={})


def line_of(fn: Any, text: str) -> int:
    lines, start = inspect.getsourcelines(fn)
    return start + next(i for i, line in enumerate(lines) if text in line)


# Breakpoint menus of the random walks: (line, condition or None).
MENUS: dict[str, list[tuple[Any, str, str | None]]] = {
    "gen_yield_from": [
        (shapes.retrying_charge, "pause = yield Fetch", None),
        (shapes.retrying_charge, "reason = str(e)", "attempts > 1"),
        (shapes.strict_charge, 'note = "declined"', None),
        (shapes.pay_twice, "return [a, b]", None),
        (shapes.gen_yield_from, "total = got", None),
    ],
    "async_helpers": [
        (shapes.retrying_charge_async, "pause = await Fetch", None),
        (shapes.strict_charge_async, 'note = "declined"', None),
        (shapes.pay_twice_async, "return [a, b]", None),
        (shapes.async_helpers, "total = got", None),
    ],
    "command_pipeline": [
        (shapes.price, "doubled = value", None),
        (shapes.on_declined, "fallback = ", None),
        (shapes.summarize, "words = receipt", None),
    ],
    "plain_command": [
        (shapes.plain_command, "wanted = order", None),
        (shapes.finish_command, "doubled = value", None),
    ],
    "gen_loop_caught": [
        (shapes.charge_or_note, "return f", None),
        (shapes.gen_loop_caught, "kept.append(receipt)", "amount > 4"),
        (shapes.gen_loop_caught, "return kept", None),
    ],
    "async_loop_caught": [
        (shapes.charge_or_note_async, "return f", None),
        (shapes.async_loop_caught, "kept.append(receipt)", "amount > 4"),
        (shapes.async_loop_caught, "return kept", None),
    ],
    "swallows": [
        (shapes.swallows, "kept.append(receipt)", None),
        (shapes.swallows, "pass", "amount > 3"),
        (shapes.swallows, "return kept", None),
    ],
    "closed_early": [
        (shapes.countdown, "closed = True", None),
        (shapes.helper_closed_early, "limit = -1", None),
        (shapes.closed_early, "firsts.append(value)", "value < 9"),
    ],
    "closed_delegating": [
        (shapes.relay, "limit = 0", None),
        (shapes.closed_delegating, "inner.close()", None),
        (shapes.closed_delegating, "return answer", None),
    ],
    "long_loop": [
        (shapes.long_loop, "acc += i % 7", "i % 9973 == 0"),
        (shapes.long_loop, "acc += yield Fetch", None),
        (shapes.long_loop, "return acc", None),
    ],
    "own_raise": [
        (shapes.validate, "raise PaymentDeclined", None),
        (shapes.own_raise, "receipt = None", None),
        (shapes.own_raise, "raise\n", None),
    ],
    "uncaught_effect_error": [
        (shapes.strict_charge, "raise\n", None),
        (shapes.uncaught_effect_error, "got = yield", None),
    ],
}


# Conditional breakpoints set together (in several code objects, or several lines of one): a
# reverse continue evaluates each at its earlier hits on one narrowed re-run.
CONDITIONS: dict[str, list[tuple[Any, str, str]]] = {
    "gen_yield_from": [
        (shapes.retrying_charge, "attempts += 1", "attempts == 1"),
        (shapes.retrying_charge, "reason = str(e)", "attempts >= 1"),
        (shapes.strict_charge, 'note = "declined"', "amount > 6"),
        (shapes.pay_twice, "a = yield from", "first > 2"),
    ],
    "async_helpers": [
        (shapes.retrying_charge_async, "attempts += 1", "attempts == 1"),
        (shapes.strict_charge_async, 'note = "declined"', "amount > 6"),
        (shapes.pay_twice_async, "return [a, b]", "len(b) > 3"),
    ],
    "command_pipeline": [
        (shapes.price, "doubled = value", "value > 3"),
        (shapes.on_declined, "fallback = ", "len(str(error)) > 100"),
        (shapes.summarize, "words = receipt", "len(receipt) > 5"),
    ],
    "gen_loop_caught": [
        (shapes.charge_or_note, "return f", "amount > 4"),
        (shapes.gen_loop_caught, "receipt = yield from", "amount > 3"),
    ],
    "async_loop_caught": [
        (shapes.charge_or_note_async, "return f", "amount > 4"),
        (shapes.async_loop_caught, "receipt = await", "amount > 3"),
    ],
    "swallows": [
        (shapes.swallows, "receipt = yield Charge(amount)", "amount % 2 == 0"),
        (shapes.swallows, "kept.append(receipt)", "len(kept) > 0"),
        (shapes.swallows, "pass", "amount > 3"),
    ],
    "closed_early": [
        (shapes.countdown, "yield n", "n % 2 == 0"),
        (shapes.helper_closed_early, "got = yield Fetch(limit)", "limit == 5"),
        (shapes.closed_early, "firsts.append(value)", "value < 9"),
    ],
    "long_loop": [
        (shapes.long_loop, "acc += i % 7", "i % 9973 == 0"),
        (shapes.long_loop, "if i % 10_000", "i % 8191 == 0"),
        (shapes.long_loop, "acc += yield Fetch", "i > 25_000"),
    ],
}


def menu(shape: str) -> list[tuple[int, str | None]]:
    return [(line_of(fn, text), condition) for fn, text, condition in MENUS[shape]]


def condition_menu(shape: str) -> list[tuple[int, str]]:
    return [(line_of(fn, text), condition) for fn, text, condition in CONDITIONS.get(shape, [])]


def conditions(shape: str) -> list[tuple[int, str]]:
    """Every (line, condition) of the shape's breakpoints: the ground truth evaluates them."""
    return [(line, c) for line, c in menu(shape) + condition_menu(shape) if c is not None]


def prepared(shape: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, Any]:
    """The shape's handler, its trace (recorded for real) and the ground truth, once per run."""
    cache = STATE.cache
    if shape not in cache:
        fn, request = shapes.SHAPES[shape]
        directory = tmp_path_factory.mktemp(f"oracle-{shape}")
        recorder = prodture.Recorder(prodture.DirectorySink(directory))
        interpreter = prodture.Interpreter(shapes.PERFORMERS, recorder=recorder)
        if asyncio.iscoroutinefunction(fn):
            asyncio.run(interpreter.run_async(fn, request))
        else:
            interpreter.run(fn, request)
        recorder.close()  # the trace is written by the recorder's writer thread
        trace = read_trace(next(Path(directory).glob("*.prodtrace")))
        truth = oracle.ground_truth(trace, fn, USER_FILE, conditions(shape))
        cache[shape] = (fn, trace, truth)
    return cache[shape]


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest):
    yield
    line = (
        f"step oracle (Python {sys.version.split()[0]}): {STATE.totals.compared} states compared, "
        f"{len(STATE.totals.mismatches)} mismatches"
    )
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    target = os.environ.get("PRODTURE_ORACLE_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "python": sys.version.split()[0],
                        "compared": STATE.totals.compared,
                        "mismatches": len(STATE.totals.mismatches),
                    }
                )
                + "\n"
            )


def check(session: oracle.Session) -> None:
    report = session.run()
    STATE.totals.add(report)
    assert report.compared > 0
    assert not report.mismatches, (
        f"{len(report.mismatches)} of {report.compared} compared states differ:\n"
        + "\n".join(report.mismatches[:15])
    )


SHAPE_NAMES = list(shapes.SHAPES)


def test_ground_truth_covers_every_shape(tmp_path_factory):
    """The shapes do what they are for: recorded errors thrown into frames, 100k+ steps, failures."""
    truths = {name: prepared(name, tmp_path_factory)[2] for name in SHAPE_NAMES}
    assert truths["long_loop"].last > 100_000
    for name in ("gen_yield_from", "async_helpers"):
        depths = {state.depth for state in truths[name].failed.values()}
        assert {2, 3} <= depths, (name, depths)  # errors thrown into helpers two deep and one deep
    for name in ("gen_loop_caught", "async_loop_caught"):
        # the helper catches the error thrown into it and returns (amounts 3, 5, 7): on 3.12+ the
        # handler resumes on its `yield from` / `await` line, a step of its own that a fast-forward
        # with sys.monitoring reaches on 3.13 only with PY_RESUME watched (fastforward.py)
        states = truths[name].states
        delegating = line_of(shapes.SHAPES[name][0], "receipt = ")
        resumed = [
            b
            for a, b in zip(states, states[1:], strict=False)
            if a.function != name and b.line == delegating
        ]
        assert len(resumed) == (3 if sys.version_info >= (3, 12) else 0), (name, resumed)
    for name, receiver in (("command_pipeline", "on_declined"), ("plain_command", "<lambda>")):
        # the recorded error arrives as the argument of the Command's on_error
        assert [state.function for state in truths[name].failed.values()] == [receiver], name
    assert truths["own_raise"].error == ("PaymentDeclined", "amount must be greater than zero")
    assert truths["uncaught_effect_error"].error == ("Declined", "amount 11 refused")


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_every_step_forward_then_back(shape, tmp_path_factory):
    """stepIn over every step to the end, then back and out: each state is the ground truth's."""
    fn, trace, truth = prepared(shape, tmp_path_factory)
    then = ["stepBack"] * 6 + ["stepOut", "next", "stepIn", "stepBack", "reverseContinue"]
    max_stops = truth.last + 40 if shape != "long_loop" else 3_000
    chooser = (
        oracle.walk_through(then)
        if shape != "long_loop"
        else oracle.scripted(
            ["stepIn"] * 200
            + [("jumpToEffect", 3), "stepIn", "stepBack", "stepBack", "continue"]
            + ["stepBack"] * 4
            + ["reverseContinue"]
        )
    )
    check(
        oracle.Session(f"{shape}/walk", trace, fn, truth, USER_FILE, chooser, max_stops=max_stops)
    )


@pytest.mark.parametrize("shape", SHAPE_NAMES)
def test_effect_failures_continue_step_back_and_out(shape, tmp_path_factory):
    """Continue from failure to failure; step back, out and over from each (recorded errors
    thrown into delegating chains); then jumps forward and back with breakpoints set."""
    fn, trace, truth = prepared(shape, tmp_path_factory)
    commands: list[Any] = []
    for _ in range(len(truth.failed) + 1):
        commands += ["continue", "stepBack", "stepOut", "stepBack", "next", "next", "continue"]
    check(
        oracle.Session(f"{shape}/failures", trace, fn, truth, USER_FILE, oracle.scripted(commands))
    )
    effects = len(truth.effect_steps)
    jumps: list[Any] = [("breakpoints", set(menu(shape)[:2]))]
    for n in [*range(1, effects + 1), *range(effects, 0, -1)]:
        jumps += [("jumpToEffect", n), "continue", "stepBack"]
    jumps += [("jumpToEffect", effects), "continue", "continue", "reverseContinue"]
    check(oracle.Session(f"{shape}/jumps", trace, fn, truth, USER_FILE, oracle.scripted(jumps)))


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPE_NAMES)
@pytest.mark.parametrize("seed", range(6))
def test_random_walks(shape, seed, tmp_path_factory):
    """Seeded random walks of next / stepIn / stepOut / stepBack / continue / reverseContinue /
    jumpToEffect / breakpoint changes, with and without effect-failed stops."""
    fn, trace, truth = prepared(shape, tmp_path_factory)
    walk = oracle.random_walk(seed, menu(shape))
    stops = 40 if shape == "long_loop" else 120
    session = oracle.Session(
        f"{shape}/seed{seed}",
        trace,
        fn,
        truth,
        USER_FILE,
        walk,
        effect_failed=seed % 3 != 2,
        max_stops=stops,
    )
    check(session)


@pytest.mark.parametrize("shape", list(CONDITIONS))
def test_reverse_continue_over_several_conditional_breakpoints(shape, tmp_path_factory):
    """Conditional breakpoints in several code objects (or on several lines of one) set at the end
    of the replay, so no condition was evaluated yet: each reverseContinue evaluates them all at
    their earlier hits (one narrowed re-run) and lands on the latest true one, then on the start;
    forward again, they stop where they are true."""
    fn, trace, truth = prepared(shape, tmp_path_factory)
    pair = condition_menu(shape)
    assert sum(1 for c in pair if truth.condition_true[c]) >= 2, "two conditions are true somewhere"
    assert any(not truth.condition_true[c] >= _hits(truth, c[0]) for c in pair), (
        "some condition is false at a hit"
    )
    backward = ["reverseContinue"] * (sum(len(truth.condition_true[c]) for c in pair) + 1)
    commands: list[Any] = [
        "continue",
        ("breakpoints", set(pair)),
        *backward,
        "continue",
        "continue",
        ("breakpoints", set(pair[:2])),
        "stepBack",
        "reverseContinue",
        ("breakpoints", set(pair[1:])),
        "reverseContinue",
        "continue",
    ]
    stops = 60 if shape == "long_loop" else 200
    check(
        oracle.Session(
            f"{shape}/conditions",
            trace,
            fn,
            truth,
            USER_FILE,
            oracle.scripted(commands),
            effect_failed=False,  # the first continue runs to the end of the replay
            max_stops=stops,
        )
    )


def _hits(truth: oracle.GroundTruth, line: int) -> set[int]:
    return {k for k, state in enumerate(truth.states, 1) if state.line == line}


def test_step_back_onto_a_yield_from_resumed_by_a_thrown_error(tmp_path_factory):
    """Step back onto the `yield from` line the handler resumes on once the delegate caught the
    recorded error thrown into it (the step after the delegate's return): the stop is there."""
    fn, trace, truth = prepared("gen_yield_from", tmp_path_factory)
    commands: list[Any] = ["stepIn"] * 33 + ["stepBack"] * 3
    check(
        oracle.Session(
            "gen_yield_from/yield-from-after-throw",
            trace,
            fn,
            truth,
            USER_FILE,
            oracle.scripted(commands),
        )
    )


def test_step_back_onto_a_yield_from_resumed_by_close(tmp_path_factory):
    """Step back onto the `yield from` line a delegating generator passes through again while
    it is closed early (close() throws GeneratorExit into it there): the stop is there."""
    fn, trace, truth = prepared("closed_delegating", tmp_path_factory)
    delegating = line_of(shapes.relay, "got = yield from")
    closing = max(k for k, state in enumerate(truth.states, 1) if state.line == delegating)
    commands: list[Any] = ["stepIn"] * closing + ["stepBack"] * 3
    check(
        oracle.Session(
            "closed_delegating/yield-from-on-close",
            trace,
            fn,
            truth,
            USER_FILE,
            oracle.scripted(commands),
        )
    )


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(CONDITIONS))
@pytest.mark.parametrize("seed", range(4))
def test_random_walks_with_several_conditional_breakpoints(shape, seed, tmp_path_factory):
    """Seeded random walks whose breakpoint changes pick among the shape's conditional
    breakpoints only (0 to 3 at once, in one or several code objects)."""
    fn, trace, truth = prepared(shape, tmp_path_factory)
    walk = oracle.random_walk(seed + 100, condition_menu(shape))
    check(
        oracle.Session(
            f"{shape}/conditions-seed{seed}",
            trace,
            fn,
            truth,
            USER_FILE,
            walk,
            effect_failed=seed % 2 == 0,
            max_stops=40 if shape == "long_loop" else 120,
        )
    )
