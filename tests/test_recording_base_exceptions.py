"""Recording never changes a handler's result, whatever the program's own code raises while the
recorder calls it: the iteration of a container, a ``__hash__``, a property read as a dataclass
field. A ``SystemExit``, ``GeneratorExit`` or ``asyncio.CancelledError`` (BaseExceptions, not
Exceptions) raised there gives a marked placeholder in the trace (never the value as is: nothing
of it was checked) and the handler's outcome is what it is without recording. Only
``KeyboardInterrupt`` (the user's Ctrl-C, raised wherever the signal found the thread) goes on.

The offending code runs only once ``ARMED`` is set, which each test sets after building its
values (a dict's keys are hashed as it is built), so that the handler itself never runs it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from prodture import DirectorySink, Effect, Interpreter, Recorder, read_trace
from prodture.trace import codec

#: The error the program's code raises, once armed (None: it raises nothing).
ARMED: list[BaseException] = []


def _raise_if_armed() -> None:
    if ARMED:
        raise ARMED[0]


@pytest.fixture(autouse=True)
def _disarm() -> Iterator[None]:
    yield
    ARMED.clear()


@dataclasses.dataclass(frozen=True)
class Carry(Effect, name="test_recording_base_exceptions.Carry"):
    value: Any


class RaisingMapping(Mapping[str, Any]):
    """A Mapping whose iteration (``__iter__``, hence ``items()``) raises."""

    def __getitem__(self, key: str) -> Any:
        return 1

    def __len__(self) -> int:
        return 1

    def __iter__(self) -> Iterator[str]:
        _raise_if_armed()
        return iter(["a"])


class RaisingList(list[Any]):
    """A list subclass whose iteration raises."""

    def __iter__(self) -> Iterator[Any]:
        _raise_if_armed()
        return super().__iter__()


@dataclasses.dataclass(frozen=True)
class RaisingHashKey:
    """A dict key (immutable, kept by reference) whose ``__hash__`` raises once armed."""

    n: int

    def __hash__(self) -> int:
        _raise_if_armed()
        return self.n


@dataclasses.dataclass
class Reading:
    """A dataclass whose ``amount`` field is a property, which raises once armed."""

    amount: int = 0


@dataclasses.dataclass(frozen=True)
class FrozenReading:
    """A frozen dataclass (kept by reference) whose ``amount`` field is a property."""

    amount: int = 0


def _amount(self: Any) -> int:
    _raise_if_armed()
    return 7


def _set_amount(self: Any, value: int) -> None:
    pass


Reading.amount = property(_amount, _set_amount)  # type: ignore[assignment]
FrozenReading.amount = property(_amount, _set_amount)  # type: ignore[assignment]


#: name -> what makes the value (with, for the key case, a list value: a private copy is kept)
SHAPES: dict[str, Any] = {
    "mapping-iter": lambda: RaisingMapping(),
    "list-iter": lambda: RaisingList([1, 2]),
    "dict-key-hash": lambda: {RaisingHashKey(1): [1], "password": "x"},
    "dataclass-property": lambda: Reading(3),
    "frozen-dataclass-property": lambda: FrozenReading(3),
}
#: The shapes whose value cannot be read at all: recorded as a placeholder. (A dict whose key's
#: hash raises is read without hashing it by the encoder without a redactor: recorded whole.)
UNREADABLE = {"mapping-iter", "list-iter", "dataclass-property", "frozen-dataclass-property"}

ERRORS = {
    "SystemExit": lambda: SystemExit(3),
    "GeneratorExit": lambda: GeneratorExit(),
    "CancelledError": lambda: asyncio.CancelledError(),
}


def _handler(fail: bool, request: Any = "x", returned: Any = "done") -> Any:
    def handler(arg: Any):
        yield Carry(request)
        if fail:
            raise ValueError("failed after the effect")
        return returned

    return handler


def _placed(value: Any, where: str) -> tuple[Any, Any]:
    """The effect's request and the handler's return value, with ``value`` where it goes."""
    return (value if where == "request" else "x", value if where == "outcome" else "done")


def _summary(outcome: Any) -> Any:
    if outcome.ok:  # (by identity: the program's == may raise too)
        return ("ok", id(outcome.value))
    return ("failed", type(outcome.error), outcome.error.args)


def _placeholders(value: Any) -> list[Any]:
    """The REDACTED and opaque markers in a decoded value."""
    if isinstance(value, (codec.Redacted, codec.Opaque)):
        return [value]
    if isinstance(value, codec.UnknownValue):
        return _placeholders(value.fields)
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _placeholders(k) + _placeholders(v)]
    if isinstance(value, (list, tuple, set, frozenset)):
        return [p for v in value for p in _placeholders(v)]
    return []


def _recorded(trace: Any, where: str) -> Any:
    if where == "input":
        return trace.input
    if where == "request":
        return trace.effects[0].values
    if where == "outcome":
        return trace.outcome.value
    return trace.effects[0].result


def _run(
    tmp_path: Any, shape: str, error: BaseException, where: str, mode: str, redact: bool
) -> None:
    fail = mode == "on-failure"
    value = SHAPES[shape]()
    ARMED.append(error)
    handler = _handler(fail, *_placed(value, where))
    result = value if where == "result" else "ok"
    performers: dict[type, Any] = {Carry: lambda e: result}
    unrecorded = Interpreter(performers).run(handler, value if where == "input" else None)

    kwargs: dict[str, Any] = {"mode": mode}
    if not redact:
        kwargs["redact"] = None
    recorder = Recorder(DirectorySink(tmp_path), **kwargs)
    interpreter = Interpreter(performers, recorder=recorder)
    outcome = interpreter.run(handler, value if where == "input" else None)
    assert _summary(outcome) == _summary(unrecorded)
    # The writer goes on: a later execution's trace is written too.
    later = interpreter.run(_handler(fail), "later")
    assert recorder.close(timeout=60)

    traces = sorted(
        (read_trace(p) for p in tmp_path.glob("*.prodtrace")), key=lambda t: t.input == "later"
    )
    assert [t.input == "later" for t in traces] == [False, True]
    assert later.trace_id is not None
    trace = traces[0]
    assert trace.complete
    recorded = _recorded(trace, where)
    if (shape in UNREADABLE or redact) and not (fail and where == "outcome"):
        assert _placeholders(recorded), recorded


PARAMS = [
    pytest.param(shape, where, id=f"{shape}-{where}")
    for shape in SHAPES
    for where in ("input", "request", "result", "outcome")
]


@pytest.mark.parametrize("error_name", list(ERRORS))
@pytest.mark.parametrize(("shape", "where"), PARAMS)
@pytest.mark.parametrize("mode", ["always", "on-failure"])
@pytest.mark.parametrize("redact", [True, False], ids=["redact", "no-redact"])
def test_a_base_exception_from_the_programs_code_gives_a_placeholder(
    tmp_path, shape, where, mode, redact, error_name
):
    """The handler's outcome is what it is without recording, the trace reads back with the value
    marked as a placeholder, and a later trace is written."""
    _run(tmp_path, shape, ERRORS[error_name](), where, mode, redact)


def _run_async(interpreter: Interpreter, handler: Any, arg: Any) -> Any:
    """The summary of ``run_async``'s outcome, or of what it raised."""
    try:
        return _summary(asyncio.run(interpreter.run_async(handler, arg)))
    except BaseException as error:  # noqa: BLE001 -- compared with the run without recording
        return ("raised", type(error))


@pytest.mark.parametrize(("shape", "where"), PARAMS)
@pytest.mark.parametrize("redact", [True, False], ids=["redact", "no-redact"])
def test_a_cancelled_error_from_the_programs_code_under_run_async(tmp_path, shape, where, redact):
    """Under ``run_async`` a CancelledError raised by the program's code called by the recorder is
    not the task's cancellation: the handler runs to its end as it does without recording."""
    if where == "outcome" and shape.endswith("dataclass-property"):
        pytest.skip(
            "asyncio.run makes the repr of its task's result, which reads the property: it "
            "raises there with or without the recorder (and breaks the next asyncio.run)"
        )
    value = SHAPES[shape]()
    ARMED.append(asyncio.CancelledError())
    handler = _handler(False, *_placed(value, where))
    result = value if where == "result" else "ok"
    performers: dict[type, Any] = {Carry: lambda e: result}
    arg = value if where == "input" else None
    kwargs: dict[str, Any] = {} if redact else {"redact": None}
    recorder = Recorder(DirectorySink(tmp_path), **kwargs)
    unrecorded = _run_async(Interpreter(performers), handler, arg)
    assert _run_async(Interpreter(performers, recorder=recorder), handler, arg) == unrecorded
    assert recorder.close(timeout=60)
    (path,) = tmp_path.glob("*.prodtrace")
    trace = read_trace(path)
    recorded = _recorded(trace, where)
    if shape in UNREADABLE or redact:
        assert _placeholders(recorded), recorded


def test_a_kept_value_whose_property_raises_in_the_writer_thread(tmp_path):
    """A frozen dataclass is kept by reference and encoded by the writer thread after the
    execution; its property raising SystemExit there (armed by the handler after the effect)
    gives a placeholder, and the writer goes on to write the next trace."""

    def handler(arg: Any):
        yield Carry("x")
        ARMED.append(SystemExit(5))
        return "done"

    recorder = Recorder(DirectorySink(tmp_path), redact=None)
    interpreter = Interpreter({Carry: lambda e: FrozenReading(3)}, recorder=recorder)
    assert interpreter.run(handler, None).ok
    assert recorder.flush(timeout=60)
    ARMED.clear()
    assert interpreter.run(_handler(False), "later").ok
    assert recorder.close(timeout=60)
    traces = [read_trace(p) for p in tmp_path.glob("*.prodtrace")]
    assert sorted(t.input == "later" for t in traces) == [False, True]
    (first,) = [t for t in traces if t.input != "later"]
    assert first.complete and _placeholders(first.effects[0].result)


@pytest.mark.parametrize(("shape", "where"), PARAMS)
@pytest.mark.parametrize("redact", [True, False], ids=["redact", "no-redact"])
def test_a_ctrl_c_from_the_programs_code_still_interrupts_the_program(
    tmp_path, shape, where, redact
):
    """The user's Ctrl-C is not swallowed: a KeyboardInterrupt raised by the program's code that
    the recorder calls goes on (wherever it is raised in the handler's thread)."""
    value = SHAPES[shape]()
    if shape == "dict-key-hash" and not redact:
        pytest.skip("nothing hashes the key then (see UNREADABLE)")
    ARMED.append(KeyboardInterrupt())
    kwargs: dict[str, Any] = {} if redact else {"redact": None}
    recorder = Recorder(DirectorySink(tmp_path), **kwargs)
    result = value if where == "result" else "ok"
    performers: dict[type, Any] = {Carry: lambda e: result}
    interpreter = Interpreter(performers, recorder=recorder)
    with pytest.raises(KeyboardInterrupt):
        handler = _handler(False, *_placed(value, where))
        interpreter.run(handler, value if where == "input" else None)
    assert recorder.close(timeout=60)


@dataclasses.dataclass(frozen=True)
class Charge(Effect, name="test_recording_base_exceptions.Charge"):
    """An effect whose ``amount`` field is a property (which its performer never reads)."""

    amount: int = 0


Charge.amount = property(_amount, _set_amount)  # type: ignore[assignment]


@pytest.mark.parametrize("error_name", list(ERRORS))
@pytest.mark.parametrize("mode", ["always", "on-failure"])
def test_an_effect_whose_field_raises_is_left_out_and_counted(tmp_path, mode, error_name):
    """An effect's request whose field (a property) raises SystemExit, GeneratorExit or
    CancelledError when read cannot be encoded: its record is left out and counted as an encode
    error (``stats.encode_errors``); the handler's outcome is what it is without recording."""
    fail = mode == "on-failure"

    def handler(arg: Any):
        for amount in (5, 6):  # (the second at the same site: the session's other way)
            result = yield Charge(amount)
        if fail:
            raise ValueError("failed after the effect")
        return result

    performers: dict[type, Any] = {Charge: lambda e: "charged"}
    ARMED.append(ERRORS[error_name]())
    unrecorded = Interpreter(performers).run(handler, None)
    recorder = Recorder(DirectorySink(tmp_path), mode=mode)
    interpreter = Interpreter(performers, recorder=recorder)
    outcome = interpreter.run(handler, None)
    assert _summary(outcome) == _summary(unrecorded)
    assert interpreter.run(_handler(fail), "later").trace_id is not None
    assert recorder.close(timeout=60)
    assert recorder.stats.encode_errors == 2
    traces = [read_trace(p) for p in tmp_path.glob("*.prodtrace")]
    assert sorted(t.input == "later" for t in traces) == [False, True]
    (first,) = [t for t in traces if t.input != "later"]
    assert first.complete and first.effects == []


def test_a_ctrl_c_from_an_effects_field_still_interrupts_the_program(tmp_path):
    """The user's Ctrl-C raised by an effect's property as the recorder reads it goes on."""

    def handler(arg: Any):
        yield Charge(5)
        return "done"

    ARMED.append(KeyboardInterrupt())
    recorder = Recorder(DirectorySink(tmp_path))
    performers: dict[type, Any] = {Charge: lambda e: "charged"}
    with pytest.raises(KeyboardInterrupt):
        Interpreter(performers, recorder=recorder).run(handler, None)
    assert recorder.close(timeout=60)
