"""The trace file format v1 as the reader enforces it (protocol/trace-format.md)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest

import prodture
from prodture import Effect, Interpreter, MemorySink, Recorder
from prodture.trace import (
    FORMAT_VERSION,
    TraceEncoder,
    TraceFormatError,
    TraceReader,
    code_fingerprint,
    read_trace,
)
from prodture.trace.codec import new_packer
from prodture.trace.format import HEADER_PREFIX_BYTES, RecordKind, read_header


@dataclasses.dataclass(frozen=True)
class Tick(Effect, name="test_fmt.Tick"):
    n: int


def ticking(count):
    total = 0
    for n in range(count):
        total += yield Tick(n)
    return total


def recorded(count: int = 3) -> bytes:
    sink = MemorySink()
    Interpreter({Tick: lambda e: e.n * 2}, recorder=Recorder(sink)).run(ticking, count)
    return sink.traces[0]


def records(data: bytes) -> list:
    return [r for r, _ in TraceReader(data).raw_records()]


def pack(*items) -> bytes:
    packer = new_packer()
    return b"".join(packer.pack(item) for item in items)


def header(**changes) -> list:
    body = {
        "format": "prodture-trace",
        "version": FORMAT_VERSION,
        "handler": "mod:fn",
        "trace_id": "t1",
        "started_at": dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        "fingerprint": "",
        "python": "3.11",
        "prodture": "0.1.0",
        "meta": {},
    }
    body.update(changes)
    return [RecordKind.HEADER, {k: v for k, v in body.items() if v is not ...}]


GOOD = [
    header(),
    [RecordKind.INPUT, {"x": 1}],
    [RecordKind.TYPE, 0, "test_fmt.Tick", ["n"]],
    [RecordKind.SITE, 0, "h.py", 3, "fn"],
    [RecordKind.EFFECT, 1, 0, [0], True, 0, 10, 5, 0],
    [RecordKind.OUTCOME, True, "done", "", None, 99],
]


def test_checkout_failing_trace_reads_as_recorded(checkout_traces):
    """The $0 charge trace has its header, input, four effects with call sites, the recorded PaymentDeclined, and a Failure naming effect #3."""
    trace = read_trace(checkout_traces["failing"])
    service = Path(trace.effects[0].site[0])
    assert (
        trace.header.handler == "checkout.service:place_order"
        and trace.header.version == FORMAT_VERSION
    )
    assert trace.header.fingerprint == code_fingerprint(str(service)) != ""
    assert trace.header.started_at.tzinfo is not None and len(trace.header.trace_id) == 32
    assert trace.input["promo"] == "FREE100" and trace.complete
    assert [e.short_type for e in trace.effects] == [
        "LoadCart",
        "ApplyPromo",
        "ChargeCard",
        "SaveOrder",
    ]
    charge = trace.effects[2]
    assert charge.request["amount"] == Decimal("0.00") and not charge.ok
    assert type(charge.error).__name__ in ("PaymentDeclined", "RecordedError")
    assert "amount must be greater than zero" in str(charge.error)
    assert service.name == "service.py" and charge.site[2] == "place_order"
    assert (
        trace.outcome.ok is False
        and trace.outcome.failed_effect == 3
        and trace.failed_effect is charge
    )


def test_types_and_sites_are_interned_once():
    """An effect type and a call site are each defined by one TYPE / SITE record however often they recur."""
    kinds = [r[0] for r in records(recorded(50))]
    assert kinds.count(RecordKind.TYPE) == 1 and kinds.count(RecordKind.SITE) == 1
    assert kinds.count(RecordKind.EFFECT) == 50
    assert kinds[:2] == [RecordKind.HEADER, RecordKind.INPUT] and kinds[-1] == RecordKind.OUTCOME


def test_reader_accepts_path_bytes_and_stream(tmp_path):
    """A trace reads the same from a path, from bytes and from a binary stream."""
    data = recorded()
    path = tmp_path / "t.prodtrace"
    path.write_bytes(data)
    traces = [read_trace(path), read_trace(data), read_trace(io.BytesIO(data))]
    assert all(t.effects == traces[0].effects and t.outcome == traces[0].outcome for t in traces)
    assert traces[0].source == str(path)


@pytest.mark.parametrize(
    "value",
    [
        tuple(range(70_000)),  # uint16 values whose first byte (0x80-0x9f) looks like a header
        tuple(-i for i in range(70_000)),
        {"columns": [tuple(range(40_000)), tuple(float(i) / 7 for i in range(40_000))]},
        tuple(str(i) * (i % 5) for i in range(60_000)),
    ],
    ids=["uint16", "negative", "columns", "strings"],
)
def test_a_large_value_cut_at_any_read_chunk_boundary_reads_back(value):
    """A record or ext payload above the streaming threshold is read a chunk at a time; a value
    cut by a chunk's end is finished, never re-read from a byte inside it (the ids of a
    100,000-event book once made every fetched trace of that size unreadable)."""
    sink = MemorySink()

    def load(_):
        result = yield Tick(0)
        return len(result) if isinstance(result, tuple) else 0

    recorder = Recorder(sink)
    Interpreter({Tick: lambda e: value}, recorder=recorder).run(load, None)
    assert recorder.flush(timeout=60)
    trace = read_trace(sink.traces[0])
    assert trace.effects[0].result == value and trace.complete


def test_hand_built_records_read_as_specified():
    """A trace assembled record by record from the spec decodes to the expected effect and outcome."""
    trace = read_trace(pack(*GOOD))
    (effect,) = trace.effects
    assert (
        effect.seq,
        effect.type,
        effect.request,
        effect.result,
        effect.start_ns,
        effect.duration_ns,
    ) == (1, "test_fmt.Tick", {"n": 0}, 0, 10, 5)
    assert effect.site == ("h.py", 3, "fn") and trace.outcome.value == "done" and trace.complete


def test_unknown_record_kinds_extra_fields_and_header_keys_are_ignored():
    """A v1 reader skips record kinds it does not know, extra trailing record fields, and unknown header keys."""
    data = pack(
        header(future_key=[1, 2]),
        GOOD[1],
        [42, "informational"],
        GOOD[2] + ["x"],
        GOOD[3],
        GOOD[4] + [7, 8],
        GOOD[5],
        [43, "after the outcome"],
    )
    trace = read_trace(data)
    assert len(trace.effects) == 1 and trace.complete


def test_truncated_tail_reads_as_incomplete_prefix():
    """A file that stops mid-record returns its complete records with complete=False and truncated=True."""
    data = recorded(5)
    trace = read_trace(data[:-3])
    assert (
        trace.outcome is None and not trace.complete and trace.truncated and len(trace.effects) == 5
    )
    ends = [end for _, end in TraceReader(data).raw_records()]
    at_boundary = read_trace(data[: ends[-2]])
    assert not at_boundary.complete and not at_boundary.truncated and len(at_boundary.effects) == 5


def _error(data: bytes) -> str:
    with pytest.raises(TraceFormatError) as info:
        read_trace(data)
    message = str(info.value)
    assert "\n" not in message and message.startswith("<bytes>: ")
    return message


def test_newer_format_version_is_refused_with_upgrade_advice():
    """A trace of a newer format version is refused with a message telling the user to upgrade prodture."""
    message = _error(pack(header(version=FORMAT_VERSION + 1), *GOOD[1:]))
    assert (
        f"version {FORMAT_VERSION + 1} is newer" in message and "pip install -U prodture" in message
    )


@pytest.mark.parametrize(
    "data, expected",
    [
        (b"", "the file is empty"),
        (b"\xc1", "not valid msgpack"),
        (pack({"not": "a trace"}), "does not start with a header"),
        (pack([RecordKind.INPUT, 1]), "does not start with a header"),
        (pack(header(format="other-format"), GOOD[1]), "another format"),
        (pack(header(version=0)), "version 0 is not supported"),
        (pack(header(version="1")), "no format version"),
        (pack(header(handler="no_colon")), "names no handler"),
        (
            pack(header(), GOOD[1], GOOD[2], [RecordKind.EFFECT, 1, 5, [0], True, 0, 1, 1, None]),
            "type id 5 is used before",
        ),
        (
            pack(header(), GOOD[1], GOOD[2], [RecordKind.EFFECT, 2, 0, [0], True, 0, 1, 1, None]),
            "out of order",
        ),
        (
            pack(header(), GOOD[1], GOOD[2], [RecordKind.EFFECT, 1, 0, [], True, 0, 1, 1, None]),
            "does not match",
        ),
        (
            pack(header(), GOOD[1], GOOD[2], [RecordKind.EFFECT, 1, 0, [0], 1, 0, 1, 1, None]),
            "expected true or false",
        ),
        (
            pack(header(), GOOD[1], GOOD[2], [RecordKind.EFFECT, 1, 0, [0], True, 0, 1, 1, 9]),
            "site id 9 is used before",
        ),
        (
            pack(
                header(),
                GOOD[1],
                GOOD[2],
                [RecordKind.EFFECT, 1, 0, [0], False, "no error", 1, 1, None],
            ),
            "does not hold an error",
        ),
        (pack(header(), GOOD[1], GOOD[2], GOOD[2]), "defined twice"),
        (pack(header(), GOOD[2]), "input record is missing"),
        (pack(header(), GOOD[1], GOOD[1]), "input record must come once"),
        (pack(*GOOD, GOOD[4]), "follows the outcome"),
        (pack(header(), GOOD[1], header()), "a second trace starts at record 2"),
        (
            pack(header(), GOOD[1], [RecordKind.OUTCOME, True, 1, "", 3, 1]),
            "failed effect #3 was not recorded",
        ),
        (pack(header(), GOOD[1], [RecordKind.TYPE, 0, "x"]), "expected 4 fields"),
        (pack(header(), GOOD[1], "stray"), "record 2 is not a prodture record"),
    ],
)
def test_malformed_traces_raise_one_line_trace_format_errors(data, expected):
    """Each kind of malformed trace raises TraceFormatError with one line naming the problem."""
    assert expected in _error(data)


def test_missing_file_and_directory_are_named(tmp_path):
    """A missing path or a directory gives a TraceFormatError naming the path and the problem."""
    with pytest.raises(TraceFormatError, match="no such trace file; check the path"):
        read_trace(tmp_path / "nope.prodtrace")
    with pytest.raises(TraceFormatError, match="is a directory"):
        read_trace(tmp_path)


def test_encoder_header_records_handler_and_version():
    """The encoder's header record carries the format name, version, handler, trace id, time and meta."""
    encoder = TraceEncoder()
    started = dt.datetime(2026, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    data = encoder.header(
        "pkg.mod:fn", trace_id="abc", started_at=started, fingerprint="f00d", meta={"env": "prod"}
    )
    trace = read_trace(data + encoder.input(None))
    assert trace.header.handler == "pkg.mod:fn" and trace.header.trace_id == "abc"
    assert trace.header.started_at == started and trace.header.meta == {"env": "prod"}
    assert trace.header.fingerprint == "f00d" and trace.header.prodture == prodture.__version__
    assert (
        msgpack.unpackb(data, raw=False, strict_map_key=False, ext_hook=lambda c, d: (c, d))[1][
            "format"
        ]
        == "prodture-trace"
    )


def test_the_header_is_read_from_the_first_bytes_alone(tmp_path):
    """read_header validates the header as read_trace does, reading only the start of the file:
    a trace whose later records are corrupt still names its handler and start time."""
    path = tmp_path / "t.prodtrace"
    path.write_bytes(pack(header(), GOOD[1]) + b"\xc1" * (2 * HEADER_PREFIX_BYTES))
    found = read_header(path)
    assert (found.handler, found.version) == (header()[1]["handler"], 1)
    with pytest.raises(TraceFormatError, match="not valid msgpack"):
        read_trace(path)
    for data, expected in [
        (b"", "the file is empty"),
        (pack({"not": "a trace"}), "does not start with a header"),
        (pack(header(format="other-format")), "another format"),
        (pack(header(handler="no_colon")), "names no handler"),
    ]:
        with pytest.raises(TraceFormatError, match=expected):
            read_header(data)
    with pytest.raises(TraceFormatError, match="no such trace file"):
        read_header(tmp_path / "missing.prodtrace")


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("redact", [False, True])
def test_a_value_the_writer_cannot_encode_is_marked_and_the_trace_reads(redact):
    """An effect result nested 1,024 deep followed by another effect of the same type: the file reads back complete, both effects are there, and the lost value is visibly marked (opaque without redaction, <redacted> past the redaction depth)."""
    deep = _nested(1024)
    sink = MemorySink()
    recorder = Recorder(sink, redact=prodture.trace.Redactor() if redact else None)
    results = iter([deep, 7])
    outcome = Interpreter({Tick: lambda e: next(results)}, recorder=recorder).run(ticking_any, 2)
    assert outcome.ok
    close = getattr(recorder, "close", None)
    if close is not None:
        close()
    trace = read_trace(sink.traces[0])
    assert trace.complete and [e.seq for e in trace.effects] == [1, 2]
    assert trace.effects[1].result == 7
    lost = trace.effects[0].result
    if redact:
        while isinstance(lost, list):
            (lost,) = lost
        assert lost is prodture.trace.REDACTED
    else:
        assert isinstance(lost, prodture.trace.Opaque) and lost.type_name == "builtins.list"


def test_a_value_as_deep_as_the_format_allows_is_kept():
    """A result nested as deep as msgpack allows inside its record (1,023 arrays in the record array) is written as data; one level more is marked."""
    encoder = TraceEncoder()
    data = encoder.header("m:f") + encoder.input(None)
    data += encoder.effect(1, Tick(0), True, _nested(1023), 0, 1, None)
    data += encoder.effect(2, Tick(1), True, _nested(1024), 0, 1, None)
    data += encoder.outcome(True, None, "", None, 1)
    trace = read_trace(data)
    kept, depth = trace.effects[0].result, 0
    while isinstance(kept, list):
        (kept,), depth = kept, depth + 1
    assert (kept, depth) == ("leaf", 1023)
    assert isinstance(trace.effects[1].result, prodture.trace.Opaque)


def test_encoder_state_changes_only_with_returned_bytes():
    """A type first used by a record that needed a fallback is defined in that same record's bytes (never registered without its TYPE record)."""
    encoder = TraceEncoder()
    head = encoder.header("m:f") + encoder.input(None)
    first = encoder.effect(1, Tick(2**70), True, None, 0, 1, ("f.py", 1, "f"))
    second = encoder.effect(2, Tick(1), True, None, 0, 1, ("f.py", 1, "f"))
    trace = read_trace(head + first + second + encoder.outcome(True, None, "", None, 1))
    assert trace.effects[0].values[0] == prodture.trace.Opaque("builtins.int", str(2**70))
    assert trace.effects[1].values == [1] and trace.effects[1].site == ("f.py", 1, "f")


def ticking_any(count):
    for n in range(count):
        yield Tick(n)
    return "done"
