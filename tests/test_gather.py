"""prodture.gather: several effects at once, recorded and replayed as one deterministic effect;
the diagnostics that point to it (bare asyncio.gather) and to run_async (async performers)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

import prodture
from prodture import Effect, Interpreter, MemorySink, Recorder, Replayer, read_trace


@dataclasses.dataclass(frozen=True)
class Lookup(Effect, name="test_gather.Lookup"):
    key: str


class NotFound(Exception):
    pass


prodture.register(NotFound, name="test_gather.NotFound")


def make_performer(log: list[str]):
    async def lookup(effect: Lookup) -> str:
        log.append(f"start {effect.key}")
        # b finishes first: completion order is not the result order
        await asyncio.sleep(0.05 if effect.key == "a" else 0)
        log.append(f"end {effect.key}")
        if effect.key == "missing":
            raise NotFound(effect.key)
        return effect.key.upper()

    return lookup


async def both(keys):
    a, b = await prodture.gather(Lookup(keys[0]), Lookup(keys[1]))
    return a + b


async def caught(keys):
    try:
        return await prodture.gather(*(Lookup(k) for k in keys))
    except NotFound as e:
        return f"not found: {e}"


def test_gather_runs_effects_concurrently_and_records_one_effect():
    """Both lookups start before either ends; results come in argument order; the trace has one
    All effect with both requests and the list of results, and replays without performers."""
    log: list[str] = []
    sink = MemorySink()
    interp = Interpreter({Lookup: make_performer(log)}, recorder=Recorder(sink))
    outcome = asyncio.run(interp.run_async(both, ["a", "b"]))
    assert outcome.ok and outcome.value == "AB"
    assert log[:2] == ["start a", "start b"] and log.index("end b") < log.index("end a")
    trace = read_trace(sink.traces[0])
    assert [e.type for e in trace.effects] == ["prodture.All"]
    assert trace.effects[0].result == ["A", "B"]
    assert Replayer(trace, both).run().reproduced
    # changed code that gathers other effects diverges at that effect

    async def other(keys):
        return await prodture.gather(Lookup("a"), Lookup("c"))

    diverged = Replayer(trace, other).run()
    assert not diverged.reproduced and diverged.divergence.effect_seq == 1


def test_a_failing_effect_fails_the_gather_after_all_finish_and_replays():
    log: list[str] = []
    sink = MemorySink()
    interp = Interpreter({Lookup: make_performer(log)}, recorder=Recorder(sink))
    outcome = asyncio.run(interp.run_async(caught, ["a", "missing"]))
    assert outcome.ok and outcome.value == "not found: missing"
    assert "end a" in log  # the slow one was not abandoned
    trace = read_trace(sink.traces[0])
    assert not trace.effects[0].ok and isinstance(trace.effects[0].error, NotFound)
    assert Replayer(trace, caught).run().reproduced


def test_gather_under_run_performs_sync_performers_in_order():
    outcome = Interpreter({Lookup: lambda e: e.key * 2}).run(both, ["x", "y"])
    assert outcome.ok and outcome.value == "xxyy"


def test_gather_refuses_non_effects():
    with pytest.raises(TypeError, match="pass the effect values themselves"):
        prodture.gather(Lookup("a"), "b")  # type: ignore[arg-type]


def test_bare_asyncio_gather_points_to_prodture_gather(recwarn):
    """asyncio.gather of effects fails with an error naming prodture.gather, and leaves no
    'exception was never retrieved' behind."""

    async def bare(keys):
        return await asyncio.gather(Lookup("a"), Lookup("b"))

    async def main():
        outcome = await Interpreter({Lookup: make_performer([])}).run_async(bare, None)
        await asyncio.sleep(0.01)
        return outcome

    outcome = asyncio.run(main())
    assert not outcome.ok and isinstance(outcome.error, TypeError)
    assert "prodture.gather(" in str(outcome.error)
    assert "test_gather.py" in str(outcome.error)


def test_run_with_an_async_performer_says_to_use_run_async():
    """Interpreter.run given an async performer fails with a message naming run_async (recorded
    or not), instead of "'coroutine' object is not subscriptable"."""

    def sync_handler(key):
        value = yield Lookup(key)
        return value["x"]

    for recorder in (None, Recorder(MemorySink())):
        outcome = Interpreter({Lookup: make_performer([])}, recorder=recorder).run(
            sync_handler, "a"
        )
        assert not outcome.ok and "run_async" in str(outcome.error)


def test_speculative_replay_answers_gathered_effects_with_their_own_stubs():
    """After a divergence, a gather of new effects is answered by each effect's stub."""
    sink = MemorySink()
    interp = Interpreter({Lookup: make_performer([])}, recorder=Recorder(sink))
    asyncio.run(interp.run_async(both, ["a", "b"]))
    trace = read_trace(sink.traces[0])

    async def changed(keys):
        a, b = await prodture.gather(Lookup("x"), prodture.RandomInt(1, 6))
        return f"{a}{b}"

    stubs: dict[type | str, Callable[[Any], Any]] = {"test_gather.Lookup": lambda e: e.key * 2}
    result = Replayer(trace, changed, mode="speculative", stubs=stubs).run()
    assert result.outcome.ok and result.outcome.value.startswith("xx")
    again = Replayer(trace, changed, mode="speculative", stubs=stubs).run()
    assert again.outcome.value == result.outcome.value  # the default RandomInt is deterministic
    missing = Replayer(trace, changed, mode="speculative").run()
    assert missing.outcome is None and missing.divergence.kind == "no-stub"


def test_gathered_default_sleeps_under_run_async_leave_the_event_loop_free():
    """The default Sleep of a gathered effect sleeps with asyncio.sleep under run_async: another
    task runs while the handler waits (a blocking time.sleep would run it only afterwards)."""
    order: list[str] = []

    async def napping(_):
        await prodture.gather(prodture.Sleep(0.01), prodture.Sleep(0.01))
        order.append("gathered")

    async def other():
        order.append("other task")

    async def main():
        task = asyncio.create_task(other())
        outcome = await Interpreter(recorder=Recorder(MemorySink())).run_async(napping, None)
        await task
        return outcome

    assert asyncio.run(main()).ok
    assert order == ["other task", "gathered"]
