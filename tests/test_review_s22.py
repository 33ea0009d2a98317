"""Adversarial review of the recorder and the codec (session 22): what broke, each with the test
that failed before its fix. The promises checked: recording never changes a handler's result,
redacted values never reach the file, a reader can always read what a writer wrote, nothing a
user recorded is lost.

No test depends on timing: every wait has a generous bound, so a bug fails a test instead of
hanging it.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

import pytest

from prodture import DirectorySink, Effect, Interpreter, Recorder, read_trace
from prodture.trace import Redactor, codec, fastpack

SECRET = "hunter2-s22-do-not-leak"


@dataclasses.dataclass(frozen=True)
class Carry(Effect, name="test_review_s22.Carry"):
    value: Any


def _record(tmp_path: Any, value: Any, redact: Any = None, after: Any = None) -> tuple[Any, bytes]:
    """One execution whose effect returns ``value`` and which returns it too, recorded into a
    DirectorySink (``after(value)`` runs right after the effect): its outcome and file bytes."""

    def handler(arg: Any):
        result = yield Carry("x")
        if after is not None:
            after(result)
        return "done"

    kwargs = {} if redact is None else {"redact": redact}
    recorder = Recorder(DirectorySink(tmp_path), **kwargs)
    outcome = Interpreter({Carry: lambda e: value}, recorder=recorder).run(handler, None)
    assert recorder.close(timeout=60)
    (path,) = tmp_path.glob("*.prodtrace")
    return outcome, path.read_bytes()


# -- 1. a __repr__ raising a BaseException -----------------------------------------------------


class ReprExits:
    """An object the codec cannot encode, whose ``__repr__`` raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [SystemExit(3), GeneratorExit(), pytest.importorskip("asyncio").CancelledError()],
    ids=["SystemExit", "GeneratorExit", "CancelledError"],
)
def test_a_repr_raising_a_base_exception_gives_a_marked_placeholder(tmp_path, error):
    """Recording never changes a handler's result: an opaque value whose ``__repr__`` raises
    SystemExit, GeneratorExit or CancelledError (not Exceptions) while it is recorded with
    Redactor(opaque_repr=True) is recorded as a placeholder marking the failed repr; before, the
    exception came out of the recorder into the handler."""
    outcome, data = _record(tmp_path, ReprExits(error), redact=Redactor(opaque_repr=True))
    assert outcome.ok and outcome.value == "done"
    result = read_trace(data).effects[0].result
    assert isinstance(result, codec.Opaque) and result.type_name.endswith("ReprExits")
    assert result.repr == f"<ReprExits (repr failed: {type(error).__name__})>"


def test_a_ctrl_c_during_a_repr_still_interrupts_the_program(tmp_path):
    """Recording must not swallow the user's Ctrl-C: a KeyboardInterrupt raised while a repr is
    made (the signal arrived then: the handler's thread would have raised it at its next
    instruction anyway) goes on, as it would without the recorder."""

    def handler(arg: Any):
        yield Carry("x")
        return "done"

    recorder = Recorder(DirectorySink(tmp_path), redact=Redactor(opaque_repr=True))
    interpreter = Interpreter({Carry: lambda e: ReprExits(KeyboardInterrupt())}, recorder=recorder)
    with pytest.raises(KeyboardInterrupt):
        interpreter.run(handler, None)
    assert recorder.close(timeout=60)


# -- 2. an enum member holding a list ------------------------------------------------------------


class Tiers(enum.Enum):
    """An enum whose members' values are lists: the list can change after the member is used."""

    GOLD = ["gold"]
    SILVER = ["silver"]


def test_an_enum_member_holding_a_list_is_recorded_as_it_was_at_the_effect(tmp_path):
    """What the file holds is what the handler saw: an effect returns an enum member whose value
    is a list, and the handler changes that list right after; the trace still holds the value as
    the effect returned it. Before, the member was kept by reference (as if immutable) and encoded
    later by the writer, with the change."""
    try:
        outcome, data = _record(tmp_path, Tiers.GOLD, after=lambda m: m.value.append("changed"))
    finally:
        del Tiers.GOLD.value[1:]
    assert outcome.ok
    assert b"changed" not in data
    result = read_trace(data).effects[0].result
    # (a list value cannot be looked up among the members: read back as the recorded value)
    assert (result.type_name, result.fields) == (codec.type_name(Tiers), ["gold"])


# -- 3. a pair or key whose name is a memoryview -------------------------------------------------


@pytest.mark.parametrize("accelerated", [True, False], ids=["msgspec", "msgpack"])
@pytest.mark.parametrize("kind", ["memoryview", "bytes", "bytearray"])
def test_a_secret_pair_or_key_named_by_a_memoryview_is_redacted(
    tmp_path, kind, accelerated, monkeypatch
):
    """Redacted values never reach the file: a ``(name, value)`` pair (a tuple, a list) and a
    map key whose name is a ``memoryview`` of ``b"password"`` lose their value, as they do with a
    ``bytes`` or ``bytearray`` name (headers read from a buffer). Before, a memoryview name was
    not looked at and the secret was written."""
    monkeypatch.setattr(fastpack, "enabled", accelerated and fastpack.encode is not None)
    name = {"memoryview": memoryview, "bytes": bytes, "bytearray": bytearray}[kind](b"password")
    value: Any = {
        "tuple": (name, SECRET),
        "list": [name, SECRET],
        "headers": [(b"accept", b"text/html"), (name, SECRET.encode())],
    }
    if kind != "bytearray":  # (a bytearray is not hashable: never a key)
        value["map"] = {name: SECRET}
    outcome, data = _record(tmp_path, value, redact=Redactor())
    assert outcome.ok
    assert SECRET.encode() not in data
    assert read_trace(data).effects[0].result["headers"][0] == (b"accept", b"text/html")
