"""Hostile and corrupt traces: refused with TraceFormatError / ReplayError, and nothing they name ever runs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import sys
import textwrap
import tracemalloc

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prodture
from prodture import Effect, Interpreter, MemorySink, Recorder
from prodture.replay import Replayer, ReplayError, load_trace
from prodture.trace import Opaque, RecordedError, TraceFormatError, UnknownValue, codec, read_trace
from prodture.trace.codec import ExtCode, new_packer
from prodture.trace.format import FORMAT_VERSION, RecordKind


@dataclasses.dataclass(frozen=True)
class Ping(Effect, name="test_hostile.Ping"):
    n: int


@prodture.register(name="test_hostile.Triple")
@dataclasses.dataclass(frozen=True)
class Triple:
    """Rebuilt by the reader's fast path for registered dataclasses (charged at flat rates)."""

    a: str
    b: str
    c: str


def pinging(count):
    for n in range(count):
        yield Ping(n)
    return "pong"


def _record() -> bytes:
    sink = MemorySink()
    Interpreter(
        {Ping: lambda e: {"n": e.n, "when": dt.date(2026, 1, e.n + 1)}}, recorder=Recorder(sink)
    ).run(pinging, 4)
    return sink.traces[0]


RECORDED = _record()


def recorded() -> bytes:
    return RECORDED


def ext(code: int, payload) -> msgpack.ExtType:
    return msgpack.ExtType(code, payload if isinstance(payload, bytes) else msgpack.packb(payload))


def trace_naming(handler: str, value) -> bytes:
    packer = new_packer()
    body = {
        "format": "prodture-trace",
        "version": FORMAT_VERSION,
        "handler": handler,
        "trace_id": "evil",
        "started_at": None,
        "fingerprint": "",
        "python": "",
        "prodture": "",
        "meta": {},
    }
    return b"".join(
        packer.pack(r)
        for r in [
            [RecordKind.HEADER, body],
            [RecordKind.INPUT, value],
            [RecordKind.TYPE, 0, "os.system", ["command"]],
            [
                RecordKind.EFFECT,
                1,
                0,
                ["touch /tmp/pwned"],
                False,
                ext(ExtCode.ERROR, ["os.system", ["x"], {}, "m"]),
                0,
                0,
                None,
            ],
            [RecordKind.OUTCOME, True, value, "", None, 0],
        ]
    )


@pytest.fixture()
def booby_trapped(tmp_path, monkeypatch):
    """A module that creates a file when imported, and functions/classes that create one when called."""
    module = "booby_trap_" + os.urandom(4).hex()
    marker_import = tmp_path / "imported"
    marker_call = tmp_path / "called"
    (tmp_path / f"{module}.py").write_text(
        textwrap.dedent(f"""
        import dataclasses, enum
        open({str(marker_import)!r}, "w").close()

        def make_file(*args, **kwargs):
            open({str(marker_call)!r}, "w").close()

        class Trap(Exception):
            def __new__(cls, *args):
                make_file()
                return super().__new__(cls)

        class Side:
            def __init__(self, *args, **kwargs):
                make_file()
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no pyproject.toml here or above /tmp allowing anything
    monkeypatch.delenv("PRODTURE_MODULES", raising=False)
    return module, marker_import, marker_call


def test_trace_naming_unregistered_code_runs_nothing(booby_trapped, tmp_path):
    """A trace whose handler, effect types, value types and error types name a module's functions and classes imports nothing and calls nothing."""
    module, marker_import, marker_call = booby_trapped
    value = [
        ext(ExtCode.OBJECT, [f"{module}.make_file", {"a": 1}]),
        ext(ExtCode.OBJECT, [f"{module}.Side", {"a": 1}]),
        ext(ExtCode.OBJECT, ["os.system", "touch /tmp/pwned"]),
        ext(ExtCode.ERROR, [f"{module}.Trap", ["x"], {"with_traceback": 1}, "boom"]),
    ]
    path = tmp_path / "evil.prodtrace"
    for handler in (f"{module}:make_file", "os:system"):
        path.write_bytes(trace_naming(handler, value))
        trace = read_trace(path)
        obj1, obj2, obj3, error = trace.input
        assert (
            isinstance(obj1, UnknownValue)
            and isinstance(obj2, UnknownValue)
            and isinstance(obj3, UnknownValue)
        )
        assert isinstance(error, RecordedError) and error.type_name == f"{module}.Trap"
        assert (
            isinstance(trace.effects[0].error, RecordedError)
            and trace.effects[0].type == "os.system"
        )
        with pytest.raises(ReplayError) as info:
            Replayer.from_file(path, cwd=str(tmp_path))
        assert "not a registered handler" in str(info.value) and "\n" not in str(info.value)
    assert module not in sys.modules
    assert not marker_import.exists() and not marker_call.exists()


def test_allowed_module_still_resolves_only_dataclasses_enums_and_exceptions(booby_trapped):
    """Even in a module the user allowed (and imported), a trace can only name dataclasses, enums and exceptions: functions and plain classes stay inert."""
    module, marker_import, marker_call = booby_trapped
    __import__(module)
    marker_import.unlink()
    value = [
        ext(ExtCode.OBJECT, [f"{module}.make_file", {"a": 1}]),
        ext(ExtCode.OBJECT, [f"{module}.Side", ["x"]]),
        ext(ExtCode.OBJECT, [f"{module}.dataclasses.dataclass", {}]),
        ext(ExtCode.ERROR, [f"{module}.Trap", ["x"], {}, "boom"]),
    ]
    decoded = codec.decode_value(msgpack.packb(value), allowed_modules=[module])
    assert all(isinstance(v, UnknownValue) for v in decoded[:3])
    assert type(decoded[3]).__name__ == "Trap" and decoded[3].args == (
        "x",
    )  # rebuilt without its __new__
    assert not marker_call.exists() and not marker_import.exists()


def test_explicit_handler_that_is_not_registered_is_refused_without_running(monkeypatch, tmp_path):
    """--handler os:system is refused as not registered, and os.system is never called."""
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    path = tmp_path / "t.prodtrace"
    path.write_bytes(trace_naming("os:system", None))
    with pytest.raises(
        ReplayError, match="not a registered handler; decorate it with @prodture.handler"
    ):
        Replayer.from_file(path, handler="os:system", cwd=str(tmp_path))
    with pytest.raises(ReplayError, match="not a registered handler"):
        load_trace(path, cwd=str(tmp_path))
    assert calls == []


def test_recorded_error_attributes_cannot_shadow_methods():
    """A recorded exception's attributes never replace its methods or properties (with_traceback, args)."""
    data = msgpack.packb(
        ext(
            ExtCode.ERROR,
            ["builtins.ValueError", ["x"], {"with_traceback": 1, "args": [9], "code": 3}, "x"],
        )
    )
    error = codec.decode_value(data)
    assert type(error) is ValueError and error.args == ("x",) and vars(error)["code"] == 3
    assert callable(error.with_traceback)


def _refused_or_prefix(data: bytes):
    try:
        trace = read_trace(data)
    except TraceFormatError as e:
        assert "\n" not in str(e)
        return None
    assert not trace.complete or not trace.truncated
    return trace


@pytest.mark.parametrize(
    "tail",
    [
        b"\xdb\xff\xff\xff\xff",  # str32 of 4 GiB
        b"\xc6\xff\xff\xff\xff",  # bin32 of 4 GiB
        b"\xdd\xff\xff\xff\xff",  # array32 of 4 billion items
        b"\xdf\xff\xff\xff\xff",  # map32 of 4 billion pairs
        b"\xc9\xff\xff\xff\xff\x05",  # ext32 of 4 GiB
        b"\x95\x04\x05\x00\x91\xdd\x7f\xff\xff\xff",  # an effect whose request claims 2 billion values
    ],
)
def test_huge_declared_lengths_allocate_nothing(tail):
    """A length or count larger than the file is a truncated tail (complete=False), never a large allocation or a hang."""
    base = recorded()
    cut = [end for _, end in __import__("prodture").trace.TraceReader(base).raw_records()][3]
    tracemalloc.start()
    try:
        for data in (base[:cut] + tail, tail):
            trace = _refused_or_prefix(data)
            if trace is not None:
                assert trace.truncated and not trace.complete
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 1024 * 1024


@pytest.mark.parametrize(
    "kind, depth", [("arrays", 2000), ("arrays", 100_000), ("ext", 65), ("ext", 500)]
)
def test_deep_nesting_is_refused(kind, depth):
    """Arrays nested thousands deep, or ext values nested beyond the limit, raise TraceFormatError (no RecursionError)."""
    base = recorded()
    header_end = next(iter(__import__("prodture").trace.TraceReader(base).raw_records()))[1]
    if kind == "arrays":
        payload = b"\x91" * depth + b"\xc0"
    else:
        payload = msgpack.packb(1)
        for _ in range(depth):
            payload = msgpack.packb(ext(ExtCode.TUPLE, b"\x91" + payload))
    data = base[:header_end] + b"\x92\x01" + payload
    with pytest.raises(TraceFormatError) as info:
        read_trace(data)
    assert "nested" in str(info.value)


def test_nesting_within_the_limit_is_read():
    """Ext values nested up to the documented limit (64) are read."""
    payload = msgpack.packb(1)
    for _ in range(codec.MAX_DEPTH):
        payload = msgpack.packb(ext(ExtCode.TUPLE, b"\x91" + payload))
    value = codec.decode_value(payload)
    for _ in range(codec.MAX_DEPTH):
        (value,) = value
    assert value == 1


def _input_trace(value: bytes) -> bytes:
    """The recorded trace's header, then an input record holding ``value`` (msgpack bytes)."""
    base = recorded()
    header_end = next(iter(__import__("prodture").trace.TraceReader(base).raw_records()))[1]
    return base[:header_end] + b"\x92\x01" + value


def _triples_and_tuples(depth: int) -> bytes:
    """1 inside ``depth`` ext values, alternately a registered dataclass (the reader decodes
    those inline) and a tuple (decoded by the general ext decoder)."""
    payload = msgpack.packb(1)
    for level in range(depth):
        if level % 2:
            payload = msgpack.packb(ext(ExtCode.TUPLE, b"\x91" + payload))
        else:
            fields = b"\x83\xa1a" + payload + b"\xa1b\xa1x\xa1c\xa1y"
            body = b"\x92" + msgpack.packb("test_hostile.Triple") + fields
            payload = msgpack.packb(ext(ExtCode.OBJECT, body))
    return payload


def test_nesting_through_inline_objects_and_tuples_shares_one_limit():
    """The reader's inline OBJECT decoder and the general ext decoder count one nesting level:
    64 alternating levels read, 65 are refused with the same error as 65 tuples."""
    value = read_trace(_input_trace(_triples_and_tuples(codec.MAX_DEPTH))).input
    for level in reversed(range(codec.MAX_DEPTH)):
        if level % 2:
            (value,) = value
        else:
            assert type(value) is Triple and (value.b, value.c) == ("x", "y")
            value = value.a
    assert value == 1
    with pytest.raises(TraceFormatError) as mixed:
        read_trace(_input_trace(_triples_and_tuples(codec.MAX_DEPTH + 1)))
    assert f"value nested deeper than {codec.MAX_DEPTH} levels" in str(mixed.value)
    assert "\n" not in str(mixed.value)


@pytest.mark.parametrize(
    "payload",
    [
        ["test_hostile.Triple", {"a": "1", "b": "2", "c": "3"}],  # inline: exact fields
        ["test_hostile.Triple", {"a": "1", "b": "2"}],  # a missing field without a default
        ["test_hostile.Triple", {"a": "1", "b": "2", "c": "3", "d": "4"}],  # an extra field
        [
            "test_hostile.Triple",
            {"a": [1, {"k": ()}], "b": {"m": [2]}, "c": ext(ExtCode.DECIMAL, b"1.5")},
        ],
        ["test_hostile.Triple", {1: "1", "b": "2", "c": "3"}],  # a key that is no field name
        ["test_hostile.Triple", ["a", "b", "c"]],  # fields not a map
        ["no.such.Type", {"a": 1}],
        [7, {"a": 1}],  # a name that is not a string
        ["test_hostile.Triple"],  # not a pair
    ],
)
def test_inline_object_decoding_matches_the_general_decoder(payload):
    """An OBJECT value read by a trace reader (decoded inline when it names a dataclass whose
    fields it holds exactly) is what decode_value makes of it, or the same error."""
    packed = msgpack.packb(ext(ExtCode.OBJECT, payload))
    try:
        expected = codec.decode_value(packed)
    except TraceFormatError as e:
        with pytest.raises(TraceFormatError) as info:
            read_trace(_input_trace(packed))
        assert str(e) in str(info.value)
        return
    value = read_trace(_input_trace(packed)).input
    assert type(value) is type(expected) and value == expected


def test_every_truncation_is_a_prefix_or_a_clear_error():
    """Cutting a trace at every byte offset yields either a one-line TraceFormatError or a readable prefix of the effects."""
    data = recorded()
    full = read_trace(data)
    prefixes = 0
    for cut in range(len(data)):
        trace = _refused_or_prefix(data[:cut])
        if trace is None:
            continue
        prefixes += 1
        assert not trace.complete
        assert trace.effects == full.effects[: len(trace.effects)]
    assert prefixes > len(data) // 2


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_random_corruption_raises_only_trace_format_error(data):
    """Bit flips, inserted and deleted bytes anywhere in a trace raise TraceFormatError or read as a trace, never anything else."""
    original = bytearray(recorded())
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "set"]))
        at = data.draw(st.integers(0, len(original) - 1))
        if op == "flip":
            original[at] ^= 1 << data.draw(st.integers(0, 7))
        elif op == "insert":
            original[at:at] = data.draw(st.binary(min_size=1, max_size=5))
        elif op == "delete":
            del original[at : at + data.draw(st.integers(1, 5))]
        else:
            original[at] = data.draw(st.sampled_from([0xC1, 0xDD, 0xDF, 0xC9, 0xD4, 0x00, 0xFF]))
    try:
        read_trace(bytes(original))
    except TraceFormatError as e:
        assert "\n" not in str(e)


def test_opaque_and_unknown_ext_never_become_live_objects():
    """Unknown ext codes and opaque values stay placeholders, whatever names they carry."""
    decoded = codec.decode_value(
        msgpack.packb([ext(77, b"os.system"), ext(ExtCode.OPAQUE, ["os.system", "rm -rf /"])])
    )
    assert decoded == [
        Opaque("ext77", "<unknown ext type 77, 9 bytes>"),
        Opaque("os.system", "rm -rf /"),
    ]


def _flood(item: bytes, size: int = 1_000_000) -> bytes:
    """A valid header, then an INPUT record holding an array of as many ``item`` as fit."""
    head = msgpack.packb(
        [RecordKind.HEADER, {"format": "prodture-trace", "version": 1, "handler": "m:f"}]
    )
    count = (size - len(head)) // len(item)
    return head + b"\x92\x01\xdd" + count.to_bytes(4, "big") + item * count


def _small_records_of_short_strings(size: int = 1_000_000) -> bytes:
    """Records small enough to be decoded whole, each full of 2-item arrays of 1-char strings."""
    pair = b"\x92" + (b"\xa2" + "\u0101".encode()) * 2
    parts = [
        msgpack.packb(
            [RecordKind.HEADER, {"format": "prodture-trace", "version": 1, "handler": "m:f"}]
        ),
        msgpack.packb([RecordKind.INPUT, None]),
        msgpack.packb([RecordKind.TYPE, 0, "x.Y", []]),
    ]
    seq = 1
    while sum(map(len, parts)) < size:
        parts.append(
            b"\x99\x04"
            + msgpack.packb(seq)
            + b"\x00\x90\xc3\xdc"
            + (2000).to_bytes(2, "big")
            + pair * 2000
            + b"\x00\x00\xc0"
        )
        seq += 1
    return b"".join(parts)


def _effects_of_short_values(item: bytes, fields: int, size: int = 1_000_000) -> bytes:
    """Well-formed effect records, each with ``fields`` request values of ``item`` and a None
    result: the records a reader decodes on its fast path (charged at flat rates)."""
    parts = [
        msgpack.packb(
            [RecordKind.HEADER, {"format": "prodture-trace", "version": 1, "handler": "m:f"}]
        ),
        msgpack.packb([RecordKind.INPUT, None]),
        msgpack.packb([RecordKind.TYPE, 0, "x.Y", [f"f{i}" for i in range(fields)]]),
    ]
    seq = 1
    while sum(map(len, parts)) < size:
        parts.append(
            b"\x99\x04"
            + msgpack.packb(seq)
            + b"\x00\xdc"
            + fields.to_bytes(2, "big")
            + item * fields
            + b"\xc3\xc0\x00\x00\xc0"
        )
        seq += 1
    return b"".join(parts)


@pytest.mark.parametrize(
    "name, data",
    [
        ("effects of 8 short strings", _effects_of_short_values(b"\xa2" + "\u0101".encode(), 8)),
        (
            "effects of 1000 short strings",
            _effects_of_short_values(b"\xa2" + "\u0101".encode(), 1000),
        ),
        (
            "effects of registered objects of short strings",
            _effects_of_short_values(
                msgpack.packb(
                    ext(
                        ExtCode.OBJECT,
                        msgpack.packb(
                            ["test_hostile.Triple", {"a": "\u0101", "b": "\u0101", "c": "\u0101"}]
                        ),
                    )
                ),
                8,
            ),
        ),
        ("empty maps", _flood(b"\x80")),
        ("empty arrays", _flood(b"\x90")),
        ("1-char non-Latin strings", _flood(b"\xa2" + "\u0101".encode())),
        ("empty sets", _flood(bytes([0xD4, ExtCode.SET, 0x90]))),
        ("unregistered objects", _flood(bytes([0xD6, ExtCode.OBJECT, 0x92, 0xA1, 88, 0x80]))),
        (
            "a tuple ext of empty maps",
            msgpack.packb(
                [RecordKind.HEADER, {"format": "prodture-trace", "version": 1, "handler": "m:f"}]
            )
            + b"\x92\x01"
            + msgpack.packb(
                ext(ExtCode.TUPLE, b"\xdd" + (900_000).to_bytes(4, "big") + b"\x80" * 900_000)
            ),
        ),
        ("small records of short strings", _small_records_of_short_strings()),
    ],
)
def test_memory_is_bounded_by_a_multiple_of_the_file_size(name, data):
    """Files built to allocate the most per byte (millions of empty maps, short strings, tiny ext values, in one record or many) are read or refused within the documented bound (protocol/trace-format.md §5.4): peak <= (16 + 2) x the file size + 4 MiB."""
    from prodture.trace.format import READ_MEMORY_BASE, READ_MEMORY_FACTOR

    assert READ_MEMORY_FACTOR <= 16
    tracemalloc.start()
    try:
        try:
            trace = read_trace(data)
        except TraceFormatError as e:
            assert "\n" not in str(e)
            trace = None
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    del trace
    assert peak <= (READ_MEMORY_FACTOR + 2) * len(data) + 4 * READ_MEMORY_BASE, (
        name,
        peak / len(data),
    )


def test_dense_legitimate_values_are_not_refused():
    """A trace whose input is a list of 200,000 small ints (1 byte each) and whose effects return short lists reads normally: the budget counts what is allocated, not a fixed cost per item."""
    sink = MemorySink()
    Interpreter({Ping: lambda e: [e.n, e.n + 1]}, recorder=Recorder(sink)).run(
        pinging_input, list(range(100)) * 2000
    )
    trace = read_trace(sink.traces[0])
    assert trace.complete and len(trace.input) == 200_000 and len(trace.effects) == 4


def pinging_input(numbers):
    for n in range(4):
        yield Ping(n)
    return len(numbers)
