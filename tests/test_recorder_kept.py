"""What a recorder keeps by reference (to encode later) must show in the trace as it was when the
effect returned or the handler started, whatever the handler or another thread changes later.

Each case returns a value from an effect (and passes one as the effect's argument and as the
handler's input), changes it after the effect, and checks the trace against a deep copy taken
when the value was handed over — in always mode (kept values encoded by the writer thread) and
on-failure mode (encoded only when the handler fails).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import glob
from collections.abc import Callable
from typing import Any

import pytest

import prodture
from prodture import ALWAYS, ON_FAILURE, DirectorySink, Effect, Interpreter, Recorder, read_trace
from prodture.recorder import _NOT_KEPT, _immutable, _kept


@prodture.register(name="test_kept.Box")
@dataclasses.dataclass(frozen=True)
class Box:
    label: str
    items: Any


@prodture.register(name="test_kept.SlotBox")
@dataclasses.dataclass(frozen=True, slots=True)
class SlotBox:
    label: str
    items: Any


@prodture.register(name="test_kept.Point")
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass(frozen=True)
class Lookup(Effect, name="test_kept.Lookup"):
    key: str
    payload: Any = None


class Color(enum.Enum):
    RED = "red"


def _change(value: Any) -> None:
    """Change every mutable thing reachable from ``value`` (lists, dicts, sets)."""
    if isinstance(value, list):
        for item in value:
            _change(item)
        value.append("changed")
    elif isinstance(value, dict):
        for item in value.values():
            _change(item)
        value["changed"] = True
    elif isinstance(value, set):
        value.add("changed")
    elif isinstance(value, (tuple, frozenset)):
        for item in value:
            _change(item)
    elif dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _change(getattr(value, f.name))


# Values that reach a session through every path: effect results, effect arguments, inputs.
CASES: dict[str, Callable[[], Any]] = {
    "frozen dataclass holding a list": lambda: Box("b", [1, 2]),
    "slots frozen dataclass holding a dict": lambda: SlotBox("s", {"k": [1]}),
    "frozen dataclass holding a frozen dataclass holding a list": lambda: Box(
        "outer", Box("inner", ["x"])
    ),
    "tuple holding a list": lambda: ("t", [1, {"k": "v"}]),
    "tuple holding a frozen dataclass holding a list": lambda: (Box("b", [1]),),
    "dict with a tuple key and a list value": lambda: {("a", 1): [1, 2], "p": Point(1, 2)},
    "list of frozen dataclasses holding lists": lambda: [Box("a", [1]), Box("b", [])],
    "dict holding a set": lambda: {"tags": {"a"}},
    "deeply nested lists": lambda: [[[[[[[[[[["deep"]]]]]]]]]]],
    "frozen dataclass of scalars": lambda: Point(3, 4),
    "frozenset of frozen dataclasses": lambda: frozenset({Point(1, 1), Point(2, 2)}),
}


@pytest.mark.parametrize("mode", [ALWAYS, ON_FAILURE])
@pytest.mark.parametrize("case", list(CASES))
def test_a_value_changed_after_it_was_handed_over_is_recorded_as_it_was(tmp_path, mode, case):
    make = CASES[case]
    returned, argument, given = make(), make(), make()
    expected = (copy.deepcopy(returned), copy.deepcopy(argument), copy.deepcopy(given))

    def handler(value):
        result = yield Lookup("first", argument)
        _change(result)
        _change(argument)
        _change(value)
        yield Lookup("second")
        if mode == ON_FAILURE:
            raise ValueError("fail, so that on-failure mode writes the trace")
        return result

    recorder = Recorder(DirectorySink(tmp_path), mode=mode)
    interpreter = Interpreter(
        {Lookup: lambda e: returned if e.key == "first" else None}, recorder=recorder
    )
    outcome = interpreter.run(handler, given)
    assert outcome.ok is (mode == ALWAYS)
    if mode == ALWAYS:
        _change(outcome.value)  # the caller changes the returned value too
    assert recorder.close(timeout=60)
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    trace = read_trace(path)
    assert trace.complete
    assert trace.input == expected[2]
    assert trace.effects[0].result == expected[0]
    assert trace.effects[0].request["payload"] == expected[1]
    if mode == ALWAYS:
        changed_once = copy.deepcopy(expected[0])
        _change(changed_once)
        assert trace.outcome.value == changed_once  # as the handler returned it


def test_only_values_that_cannot_change_are_kept_by_reference():
    """Immutable values are kept as themselves (no copy, no encoding in the handler's thread);
    plain containers as private copies; anything that could change, or is nested too deep to
    look at, is not kept (the session encodes it at once)."""
    value: Any
    for value in (
        "s",
        3,
        Point(1, 2),
        SlotBox("s", ("a", 1)),
        ("a", (1, Point(1, 2))),
        frozenset({Point(1, 1)}),
        Color.RED,
        Lookup("k", ("p",)),
    ):
        assert _kept(value) is value and _immutable(value), value
    for value in ({"a": 1}, [1, "b"], ("a", [1])):
        kept = _kept(value)
        assert kept == value and kept is not value and not _immutable(value), value
    inner = [1]
    nested = {"k": [inner]}
    kept = _kept(nested)
    inner.append(2)
    assert kept == {"k": [[1]]}

    class Plain:
        pass

    deep: Any = "bottom"
    for _ in range(20):
        deep = [deep]
    for value in (
        Box("b", [1]),
        SlotBox("s", {"k": 1}),
        Lookup("k", [1]),
        Box("c", {1}),
        {"k": Box("b", [1])},
        Plain(),
        set(),
        bytearray(b"x"),
        type("MyDict", (dict,), {})(a=1),
        deep,
    ):
        assert not _immutable(value), value
    for value in ({"k": Box("b", [1])}, [Plain()], deep, {("k", Plain()): 1}):
        assert _kept(value) is _NOT_KEPT, value


def test_a_frozen_dataclass_keeper_compiled_for_its_first_instance_still_looks_at_every_one():
    """A frozen dataclass's keeper is compiled for the field types of the type's first instance
    (an identity test per field); a later instance with other field types is still looked at
    field by field: kept when they are immutable too, not kept when one can change."""

    @dataclasses.dataclass(frozen=True)
    class Pair:
        name: Any
        count: Any

    first = Pair("a", 1)
    assert _kept(first) is first
    for kept_as_is in (Pair("b", 2), Pair(b"c", True), Pair(None, 2.5), Pair("d", Point(1, 2))):
        assert _kept(kept_as_is) is kept_as_is and _immutable(kept_as_is), kept_as_is
    for changeable in (Pair("e", [1]), Pair({"k": 1}, 2), Pair("f", Box("g", [2]))):
        assert _kept(changeable) is _NOT_KEPT and not _immutable(changeable), changeable

    @dataclasses.dataclass(frozen=True)
    class Holder:  # its first instance holds a list: compiled with no exact type for `items`
        label: str
        items: Any

    assert _kept(Holder("h", [1])) is _NOT_KEPT
    scalars = Holder("i", 3)
    assert _kept(scalars) is scalars
    assert _kept(Holder("j", {"k": 1})) is _NOT_KEPT


def test_a_compiled_frozen_keeper_looks_inside_what_a_later_instance_holds():
    """The compiled keeper's way for an instance unlike the first (a field of another type):
    a field holding a tuple or a frozen dataclass is looked at throughout, so a list anywhere
    inside makes the instance not kept (it would be written as it is at the end, not as it
    was), whichever field it is in; what holds only immutable values, however nested within
    the depth bound, is kept by reference; past the bound, nothing that needs looking into is
    kept."""

    @dataclasses.dataclass(frozen=True)
    class Triple:
        a: Any
        b: Any
        c: Any

    first = Triple("a", 1, 2.0)
    assert _kept(first) is first
    for changeable in (
        Triple("x", 1, (2, [3])),
        Triple((1, [2]), 1, 2.0),
        Triple("x", Box("y", (1, {"k": [2]})), 2.0),
        Triple(b"x", None, Triple("n", 1, Triple("m", 2, [3]))),
    ):
        assert _kept(changeable) is _NOT_KEPT and not _immutable(changeable), changeable
    for kept_as_is in (
        Triple("x", (1, ("y", Point(1, 2))), 2.0),
        Triple(Color.RED, frozenset({1, "z"}), Triple("n", (1, 2), None)),
    ):
        assert _kept(kept_as_is) is kept_as_is and _immutable(kept_as_is), kept_as_is
    nested: Any = 0
    for _ in range(20):  # deeper than the bound: not kept, though nothing in it can change
        nested = Triple("x", nested, (1,))
    assert _kept(nested) is _NOT_KEPT
    shallow = Triple("x", Triple("y", (1,), 2), (1,))
    assert _kept(shallow) is shallow


def test_a_dict_with_a_key_that_could_change_is_not_kept():
    """Dict keys are looked at as its values are: a ``str`` subclass key (an object with its
    own attributes) or a hashable object that could change makes the dict not kept."""

    class Name(str):
        pass

    class Key:
        pass

    value: dict[Any, Any]
    for value in ({Name("k"): 1}, {"a": "b", Key(): "c"}, {"a": 1, Name("z"): "s"}):
        assert _kept(value) is _NOT_KEPT, value
    for value in ({"a": "b", 1: 2, ("t", 1): Point(1, 2)}, {Color.RED: "r", b"k": None}):
        kept = _kept(value)
        assert kept == value and kept is not value, value
