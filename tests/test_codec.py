"""The value codec: every supported type round-trips exactly; what it cannot carry stays inert."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import math
from decimal import Decimal
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import prodture
from prodture.trace import (
    REDACTED,
    Opaque,
    RecordedError,
    TraceFormatError,
    UnknownValue,
    decode_value,
    encode_value,
)
from prodture.trace.codec import MAX_DEPTH, ExtCode


@prodture.register(name="test_codec.Point")
@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    label: str
    extra: Any = None


@prodture.register(name="test_codec.Color")
class Color(enum.Enum):
    RED = "red"
    GREEN = 2


@prodture.register(name="test_codec.Level")
class Level(enum.IntEnum):
    LOW = 1
    HIGH = 9


@prodture.register(name="test_codec.AppError")
class AppError(Exception):
    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message, code)
        self.code = code


def same(a: Any, b: Any) -> bool:
    """Equal, with the same types all the way down (True is not 1, a tuple is not a list)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (
            a == b and math.copysign(1, a) == math.copysign(1, b)
        )
    if isinstance(a, Decimal):
        return str(a) == str(b)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (dt.datetime, dt.time)):
        return (
            a == b and a.utcoffset() == b.utcoffset()
            if not isinstance(a, dt.time)
            else (
                a.replace(tzinfo=None) == b.replace(tzinfo=None) and a.utcoffset() == b.utcoffset()
            )
        )
    if isinstance(a, AppError):
        return same(a.args, b.args) and a.code == b.code
    if dataclasses.is_dataclass(a):
        return all(same(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(a))
    return a == b


offsets = st.integers(-23 * 60, 23 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
tzs = st.none() | st.just(dt.timezone.utc) | offsets
hashable_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | st.uuids()
    | st.dates()
)
scalars = (
    hashable_scalars
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.decimals(allow_nan=True, allow_infinity=True)
    | st.datetimes(timezones=tzs)
    | st.times(timezones=tzs)
    | st.timedeltas()
    | st.sampled_from([Color.RED, Color.GREEN, Level.LOW, Level.HIGH, REDACTED])
)
hashables = st.recursive(
    hashable_scalars,
    lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
    max_leaves=6,
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8) | hashables, inner, max_size=4)
        | st.sets(hashables, max_size=4)
        | st.frozensets(hashables, max_size=4)
        | st.builds(Point, st.integers(-(2**63), 2**63 - 1), st.text(max_size=8), inner)
        | st.builds(AppError, st.text(max_size=20), st.integers(0, 999))
    ),
    max_leaves=20,
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values)
def test_every_supported_value_round_trips_exactly(value):
    """Any nesting of plain msgpack types, datetimes, Decimals, UUIDs, tuples, sets, registered dataclasses, enums and exceptions decodes to an equal value of the same type."""
    decoded = decode_value(encode_value(value))
    assert same(value, decoded), (value, decoded)


@settings(max_examples=300, deadline=None)
@given(values)
def test_encoding_is_deterministic_and_stable_under_reencoding(value):
    """Encoding a decoded value gives the same bytes again (sets are written sorted when their items sort)."""
    data = encode_value(value)
    assert encode_value(decode_value(data)) == data


def test_unregistered_dataclass_decodes_inert_and_reencodes_identically():
    """A dataclass whose type name is not registered decodes as UnknownValue(name, fields) and re-encodes to the same bytes."""

    @dataclasses.dataclass
    class Secretive:  # never registered; name is test_codec....<locals>.Secretive
        a: int

    data = encode_value([Secretive(1)])
    (decoded,) = decode_value(data)
    assert isinstance(decoded, UnknownValue) and decoded.fields == {"a": 1}
    assert decoded.type_name.endswith("Secretive")
    assert encode_value([decoded]) == data


def test_a_set_of_unregistered_frozen_dataclasses_is_read_back_not_refused():
    """A set can hold frozen dataclasses (hashable by their fields); one whose type is not
    registered decodes as UnknownValue holding its fields as a dict, and that must still be
    hashable, or the reader refuses what the writer wrote ("the file is corrupt")."""

    @dataclasses.dataclass(frozen=True)
    class Sku:  # never registered
        code: str

    for value in ({Sku("a"), Sku("b")}, frozenset({(1, Sku("c"))})):
        data = encode_value(value)
        decoded = decode_value(data)
        assert type(decoded) is type(value) and len(decoded) == len(value)
        assert encode_value(decoded) == data
    unknown = next(iter(decode_value(encode_value({Sku("a")}))))
    assert isinstance(unknown, UnknownValue) and unknown.fields == {"code": "a"}
    assert unknown == decode_value(encode_value(Sku("a")))


def test_a_recorded_set_view_of_unhashable_items_reads_back_as_opaque_not_corrupt(tmp_path):
    """A dict's items() is a Set whose items may be unhashable (list values); written as a SET
    the reader cannot rebuild it and would refuse the whole file as corrupt. It is recorded
    as an opaque value instead, counted, and the trace reads."""

    @prodture.handler(name="test:items_view")
    def items_view(_):
        return True
        yield  # a generator handler without effects

    view = {"a": [1], "b": [2]}.items()
    recorder = prodture.Recorder(prodture.DirectorySink(tmp_path), redact=None)
    interpreter = prodture.Interpreter({}, recorder=recorder)
    assert interpreter.run(items_view, {"view": view}).ok
    recorder.close()
    assert recorder.stats.opaque_values >= 1
    (path,) = tmp_path.glob("*.prodtrace")
    trace = prodture.read_trace(path)
    assert isinstance(trace.input["view"], Opaque)
    assert decode_value(encode_value({"a": (1,)}.items())) == {("a", (1,))}  # hashable: a set


def test_unregistered_exception_decodes_as_recorded_error():
    """An exception of an unregistered type decodes as RecordedError keeping its type name, message and args."""

    class Private(Exception):
        pass

    decoded = decode_value(encode_value(Private("nope", 3)))
    assert isinstance(decoded, RecordedError)
    assert (
        decoded.type_name.endswith("Private")
        and decoded.message == "('nope', 3)"
        and decoded.recorded_args == ("nope", 3)
    )
    assert encode_value(decoded) == encode_value(Private("nope", 3))


def test_builtin_exceptions_decode_as_themselves():
    """Built-in exceptions (KeyError, ValueError, TimeoutError...) decode as their own type with their args."""
    for error in (KeyError("k"), ValueError("v", 2), TimeoutError("t"), ZeroDivisionError()):
        decoded = decode_value(encode_value(error))
        assert type(decoded) is type(error) and decoded.args == error.args


def test_dataclass_field_added_since_recording_takes_its_default():
    """A registered dataclass decodes with the default of a field added after recording; a field it lost makes it UnknownValue."""
    data = msgpack.packb(
        msgpack.ExtType(ExtCode.OBJECT, msgpack.packb(["test_codec.Point", {"x": 1, "label": "a"}]))
    )
    assert decode_value(data) == Point(1, "a", None)
    data = msgpack.packb(
        msgpack.ExtType(
            ExtCode.OBJECT, msgpack.packb(["test_codec.Point", {"x": 1, "label": "a", "gone": 2}])
        )
    )
    assert decode_value(data) == UnknownValue("test_codec.Point", {"x": 1, "label": "a", "gone": 2})


def test_values_msgpack_cannot_carry_become_opaque():
    """Objects, ints beyond 64 bits, broken reprs and cycles are recorded as Opaque(type name, repr) without failing."""

    class NoRepr:
        def __repr__(self):
            raise RuntimeError("boom")

    cyclic: list = []
    cyclic.append(cyclic)
    decoded = [
        decode_value(encode_value(v)) for v in (object(), 2**64, -(2**63) - 1, NoRepr(), cyclic)
    ]
    assert all(isinstance(v, Opaque) for v in decoded)
    assert decoded[1].repr == str(2**64) and "repr failed: RuntimeError" in decoded[3].repr
    inside = decode_value(encode_value(["fine", (1, 2**70), {2**70}]))
    # Only the value that cannot be carried is opaque, not what holds it.
    big = Opaque("builtins.int", str(2**70))
    assert inside[0] == "fine" and inside[1] == (1, big) and inside[2] == {big}


def test_subclasses_of_plain_types_are_recorded_as_the_plain_type():
    """str/int/dict subclasses and datetime subclasses are recorded as their base type's value."""

    class MyStr(str):
        pass

    class FakeDatetime(dt.datetime):
        pass

    value = [MyStr("s"), collections.OrderedDict(a=1), FakeDatetime(2026, 1, 2, 3, 4, 5)]
    assert same(
        decode_value(encode_value(value)), ["s", {"a": 1}, dt.datetime(2026, 1, 2, 3, 4, 5)]
    )


def test_deeply_nested_values_stay_readable():
    """A value nested deeper than a reader accepts is written with its deep part Opaque, so the trace stays readable."""
    value: Any = "leaf"
    for _ in range(MAX_DEPTH * 2):
        value = (value,)
    decoded = decode_value(encode_value(value))
    depth = 0
    while isinstance(decoded, tuple):
        decoded, depth = decoded[0], depth + 1
    assert isinstance(decoded, Opaque) and 0 < depth < MAX_DEPTH


def test_unknown_ext_type_decodes_inert():
    """An ext type this reader does not know (from a newer writer) decodes as an inert Opaque placeholder."""
    decoded = decode_value(msgpack.packb([msgpack.ExtType(99, b"\x01\x02")]))
    assert decoded == [Opaque("ext99", "<unknown ext type 99, 2 bytes>")]


@pytest.mark.parametrize(
    "payload",
    [
        msgpack.ExtType(ExtCode.DECIMAL, b"not a number"),
        msgpack.ExtType(ExtCode.DATETIME, b"yesterday"),
        msgpack.ExtType(ExtCode.UUID, b"short"),
        msgpack.ExtType(ExtCode.TUPLE, b"\xc1"),
        msgpack.ExtType(ExtCode.OBJECT, msgpack.packb([1, 2])),
        msgpack.ExtType(ExtCode.ERROR, msgpack.packb("x")),
        msgpack.ExtType(ExtCode.TIMEDELTA, msgpack.packb([10**12, 0, 0])),
        msgpack.ExtType(ExtCode.DATE, b"\xff\xfe"),
    ],
)
def test_malformed_ext_payload_is_a_trace_format_error(payload):
    """A malformed ext payload raises TraceFormatError with a one-line message, never another exception."""
    with pytest.raises(TraceFormatError) as info:
        decode_value(msgpack.packb([payload]))
    assert "\n" not in str(info.value) and "malformed" in str(info.value)
