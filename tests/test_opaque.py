"""Values the codec cannot encode are loud: counted, logged once per type with the fix, shown as
opaque, refused by @prodture.register, and named by replay when they make it fail."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest

import prodture
from prodture import Effect, Interpreter, MemorySink, Recorder
from prodture.cli import main as cli_main
from prodture.replay import Replayer
from prodture.trace import Opaque, Redactor, TraceEncoder, read_trace
from prodture.trace.codec import OPAQUE_REPR_WITHHELD, opaque_paths


class Model:
    """Like a pydantic model: not a dataclass, so the codec can only keep its repr."""

    def __init__(self, event_id: str) -> None:
        self.event_id = event_id

    def __repr__(self) -> str:
        return f"Model(event_id={self.event_id!r})"


class OtherModel(Model):
    pass


@dataclasses.dataclass(frozen=True)
class Fetch(Effect, name="test_opaque.Fetch"):
    key: str


@prodture.handler(name="test_opaque:handle")
def handle(event):
    found = yield Fetch(event.event_id)
    return f"{event.event_id}:{found}"


def record(value: Any, redact: Any = Redactor()) -> bytes:  # noqa: B008 -- Redactor is immutable
    sink = MemorySink()
    recorder = Recorder(sink, redact=redact)
    assert Interpreter({Fetch: lambda e: "hit"}, recorder=recorder).run(handle, value).ok
    close = getattr(recorder, "close", None)
    if close is not None:
        close()
    return sink.traces[0]


def test_encoder_counts_opaque_values_and_calls_back():
    """TraceEncoder counts every value it records as opaque and tells on_opaque its type name (the recorder's stats hook)."""
    seen: list[str] = []
    encoder = TraceEncoder(on_opaque=seen.append)
    encoder.input({"a": Model("e1"), "b": [OtherModel("e2")], "n": 2**70})
    encoder.effect(1, Fetch("k"), True, Model("e3"), 0, 1, None)
    assert encoder.opaque_values == 4
    assert sorted(seen) == sorted(
        [f"{__name__}.Model", f"{__name__}.OtherModel", "builtins.int", f"{__name__}.Model"]
    )
    plain = TraceEncoder()
    plain.input({"a": [1, "x"]})
    assert plain.opaque_values == 0


def test_opaque_types_are_logged_once_each_with_name_and_fix(caplog):
    """The first opaque value of a type logs one warning naming the type and the fix; later ones of that type log nothing."""

    class Unloggable:
        pass

    with caplog.at_level(logging.WARNING, logger="prodture.codec"):
        encoder = TraceEncoder()
        for _ in range(3):
            encoder.input([Unloggable(), Unloggable()])
    warnings = [r.getMessage() for r in caplog.records if "Unloggable" in r.getMessage()]
    assert len(warnings) == 1
    assert "opaque" in warnings[0] and "@prodture.register" in warnings[0]
    assert "dataclass" in warnings[0]


def test_show_marks_opaque_values(capsys):
    """prodture show prints an opaque value as <opaque Type: repr>, never as if it were the value (its repr, recorded with Redactor(opaque_repr=True); by default its type name alone, the repr withheld)."""
    withheld = read_trace(record(Model("e1"))).input
    assert repr(withheld) == f"<opaque Model: {OPAQUE_REPR_WITHHELD}>"
    data = record(Model("e1"), Redactor(opaque_repr=True))
    trace = read_trace(data)
    assert isinstance(trace.input, Opaque)
    assert repr(trace.input) == "<opaque Model: Model(event_id='e1')>"
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "t.prodtrace")
        with open(path, "wb") as f:
            f.write(data)
        assert cli_main(["show", path]) == 0
    out = capsys.readouterr().out
    assert "input    <opaque Model: Model(event_id='e1')>" in out


def test_replay_failure_names_the_opaque_field():
    """Replaying a trace whose input was recorded opaque fails with a message naming the input, the type, and the fix (not a bare AttributeError about 'Opaque')."""
    trace = read_trace(record(Model("e1")))
    result = Replayer(trace, handle).run()
    assert result.divergence is not None
    message = result.divergence.message
    assert "input (" in message and "Model" in message and "opaque" in message
    assert "@prodture.register" in message
    with pytest.raises(AttributeError, match="recorded as an opaque repr"):
        trace.input.event_id  # noqa: B018 -- the access itself is what is tested


def test_opaque_paths_name_nested_places():
    """opaque_paths lists where a decoded value holds opaque placeholders."""
    value = {"items": [1, Opaque("m.Model", "Model()")], "x": Opaque("m.Other", "Other()")}
    assert opaque_paths(value, "effect #2 result") == [
        "effect #2 result['items'][1] (m.Model)",
        "effect #2 result['x'] (m.Other)",
    ]


def test_register_refuses_a_class_it_cannot_encode():
    """@prodture.register refuses a plain class (what a pydantic model is to the codec) with a one-line error naming the fix; dataclasses, enums and exceptions are accepted."""
    with pytest.raises(TypeError, match="cannot register .*Model.*dataclass") as info:
        prodture.register(Model)
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="put @prodture.register above @dataclass"):

        @dataclasses.dataclass
        @prodture.register(name="test_opaque.WrongOrder")
        class WrongOrder:
            a: int

    @prodture.register(name="test_opaque.Fine")
    @dataclasses.dataclass
    class Fine:
        a: int

    assert prodture.effects.registry.lookup("test_opaque.Fine") is Fine
