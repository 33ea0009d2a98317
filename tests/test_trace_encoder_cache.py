"""What the trace encoder compiles once and reuses across traces (effect types, sites, the
constant parts of the header, result encoders) never changes a byte it writes: each trace reads
the same as if encoded from scratch, and a change that matters (a class registered under a new
name, another redactor, a value type registered later) is seen by the next trace."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgpack
import pytest

import prodture
from prodture import Effect
from prodture.trace import REDACTED, Opaque, TraceEncoder, TraceReader, read_header, read_trace
from prodture.trace.codec import Redactor, new_packer, register_value_type
from prodture.trace.format import RecordKind

STARTED = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.timezone.utc)
SITE = ("/srv/app/cache_test.py", 12, "handle")


def _trace(encoder: TraceEncoder, effects: Sequence[tuple[Any, object]], site=SITE) -> bytes:
    parts = [
        encoder.header("tests:cache", trace_id="t" * 32, started_at=STARTED, meta={}),
        encoder.input(None),
    ]
    for seq, (effect, result) in enumerate(effects, 1):
        parts.append(encoder.effect(seq, effect, True, result, 10 * seq, 5, site))
    parts.append(encoder.outcome(True, "done", "", None, 100))
    return b"".join(parts)


def _records(data: bytes) -> list[list]:
    return [r for r, _ in TraceReader(data).raw_records()]


@dataclasses.dataclass(frozen=True)
class Lookup(Effect, name="test_cache.Lookup"):
    key: str
    api_key: str
    amount: Decimal


@prodture.register(name="test_cache.Found")
@dataclasses.dataclass(frozen=True)
class Found:
    note: str
    amount: Decimal


def test_every_trace_defines_its_types_and_sites_again_with_the_same_bytes():
    """A second trace (a new encoder) starts its ids at 0 and writes the TYPE and SITE records
    the first wrote, as a plain msgpack pack of the record gives them; both read back whole."""
    effects = [
        (Lookup("k1", "s3cr3t", Decimal("1.5")), Found("n1", Decimal("2"))),
        (Lookup("k2", "s3cr3t", Decimal("2.5")), Found("n2", Decimal("3"))),
    ]
    redactor = Redactor()
    first = _trace(TraceEncoder(redactor), effects)
    second = _trace(TraceEncoder(redactor), effects)
    assert first == second
    records = _records(second)
    assert [r[0] for r in records] == [0, 1, 2, 3, 4, 4, 5]
    assert records[2] == [RecordKind.TYPE, 0, "test_cache.Lookup", ["key", "api_key", "amount"]]
    assert records[3] == [RecordKind.SITE, 0, *SITE]
    type_bytes = msgpack.packb([2, 0, "test_cache.Lookup", ["key", "api_key", "amount"]])
    site_bytes = msgpack.packb([3, 0, *SITE])
    assert type_bytes + site_bytes in second
    assert b"s3cr3t" not in second
    trace = read_trace(second)
    assert [e.site for e in trace.effects] == [SITE, SITE]
    assert trace.effects[1].values[0] == "k2" and trace.effects[1].result.note == "n2"


def test_a_type_registered_under_a_new_name_is_written_under_it_by_the_next_trace():
    @dataclasses.dataclass(frozen=True)
    class Renamed(Effect):
        x: int

    @dataclasses.dataclass(frozen=True)
    class Payload:
        a: int
        b: int

    before = read_trace(_trace(TraceEncoder(Redactor()), [(Renamed(1), Payload(1, 2))]))
    prodture.register(name="test_cache.RenamedNow")(Renamed)
    prodture.register(name="test_cache.PayloadNow")(Payload)
    after = read_trace(_trace(TraceEncoder(Redactor()), [(Renamed(1), Payload(1, 2))]))
    assert (
        before.effects[0].type.endswith("Renamed")
        and before.effects[0].type != after.effects[0].type
    )
    assert after.effects[0].type == "test_cache.RenamedNow"
    assert type(after.effects[0].result) is Payload and after.effects[0].result == Payload(1, 2)


def test_each_redactor_redacts_its_own_fields_whichever_encoded_the_type_first():
    """The same effect and result types under a redactor that names ``key``/``note`` secret
    and one that does not, alternately: each trace's raw bytes follow its own redactor."""
    strict = Redactor(["key", "note"])
    loose = Redactor([], defaults=False)
    effects = [
        (Lookup("visible-key", "visible-api", Decimal("1")), Found("visible-note", Decimal("2")))
    ]
    for redactor, shown in [(strict, False), (loose, True), (strict, False), (loose, True)]:
        data = _trace(TraceEncoder(redactor), effects)
        for text in (b"visible-key", b"visible-api", b"visible-note"):
            assert (text in data) is shown, (redactor, text)
        effect = read_trace(data).effects[0]
        assert (effect.result.note == "visible-note") is shown


def test_a_result_with_a_secret_field_is_redacted_not_encoded_as_plain():
    @dataclasses.dataclass(frozen=True)
    class Token:
        user: str
        token: str

    @dataclasses.dataclass(frozen=True)
    class Secretive:
        user: str
        pin: str = prodture.secret()

    data = _trace(
        TraceEncoder(Redactor()),
        [
            (Lookup("k", "a", Decimal(1)), Token("ann", "tok-123")),
            (Lookup("k", "a", Decimal(1)), Secretive("bob", "9876")),
        ],
    )
    assert b"tok-123" not in data and b"9876" not in data
    assert b"ann" in data and b"bob" in data


def test_a_value_type_registered_later_is_encoded_by_its_to_fields_from_the_next_trace():
    @dataclasses.dataclass(frozen=True)
    class Money:
        units: int
        currency: str

    effects = [(Lookup("k", "a", Decimal(1)), Money(5, "EUR"))]
    redactor = Redactor()
    before = read_trace(_trace(TraceEncoder(redactor), effects)).effects[0].result
    assert before == Money(5, "EUR") or getattr(before, "fields", None) == {
        "units": 5,
        "currency": "EUR",
    }
    register_value_type(
        Money, "test_cache.Money", lambda m: {"text": f"{m.units} {m.currency}"}, lambda f: f
    )
    after = read_trace(_trace(TraceEncoder(redactor), effects)).effects[0].result
    assert after == {"text": "5 EUR"}


class Clock(dt.datetime):
    pass


@pytest.mark.parametrize(
    "started_at",
    [
        STARTED,
        dt.datetime(2026, 12, 1, 0, 4, 32, 123456, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 12, 1, 1, 4, 32, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        dt.datetime(999, 1, 2, 3, 4, 5, 60, tzinfo=dt.timezone.utc),
        dt.datetime(2026, 12, 1, 0, 4, 32, 7),  # naive
        Clock(2026, 12, 1, 0, 4, 32, 7, tzinfo=dt.timezone.utc),  # a datetime subclass
    ],
)
@pytest.mark.parametrize("handler", ["a.b:one", "a.b:two", "a.b:one"])
@pytest.mark.parametrize(
    "meta",
    [
        None,
        {},
        {"env": "prod", "ids": [1, 2, (3, 4)]},
        {"when": STARTED},
        {"n": Decimal(3)},
        {"found": Found("n", Decimal("1.5"))},
    ],
)
def test_the_header_is_the_plain_msgpack_of_its_record(handler, meta, started_at):
    """Whatever was packed once for an earlier header, a header's bytes are those of its whole
    record packed at once (what any msgpack writer of the same record gives): no meta, empty or
    full meta, a started_at in UTC (written from the per-second cached text) or not."""
    encoder = TraceEncoder(Redactor())
    data = encoder.header(
        handler,
        trace_id="x" * 32,
        started_at=started_at,
        fingerprint="f" * 16,
        meta=meta,
        python="3.12.1",
        prodture="9.9",
    )
    body = {
        "format": "prodture-trace",
        "version": 1,
        "handler": handler,
        "trace_id": "x" * 32,
        "started_at": started_at,
        "fingerprint": "f" * 16,
        "python": "3.12.1",
        "prodture": "9.9",
        "meta": meta or {},
    }
    assert data == new_packer().pack([RecordKind.HEADER, body])
    assert read_header(data).meta == (meta or {}) and read_header(data).handler == handler


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("depth", range(1018, 1026))
def test_meta_nested_at_the_packers_limit_is_kept_or_marked_as_in_the_whole_record(depth):
    """The meta map is packed at the depth it has in the record: where the whole record packs,
    the same bytes; where it does not, the meta alone becomes an opaque placeholder."""
    meta = {"deep": _nested(depth)}
    data = TraceEncoder().header("a.b:deep", trace_id="d" * 32, started_at=STARTED, meta=meta)
    body = dict(read_header(data).__dict__)
    try:
        expected = new_packer().pack(
            [
                0,
                {
                    "format": "prodture-trace",
                    "version": 1,
                    "handler": "a.b:deep",
                    "trace_id": "d" * 32,
                    "started_at": STARTED,
                    "fingerprint": "",
                    "python": body["python"],
                    "prodture": body["prodture"],
                    "meta": meta,
                },
            ]
        )
    except Exception:  # too deep for the record: the meta alone is marked
        assert isinstance(_records(data)[0][1]["meta"], Opaque)
    else:
        assert data == expected


def _keyword_fields(name: str, bases: tuple[type, ...], fields: list[str]) -> type:
    """A dataclass whose fields are named by Python keywords (the decorator allows it when the
    fields are not ``__init__`` parameters): it cannot be read with ``obj.field`` syntax."""
    ns: dict = {"__annotations__": dict.fromkeys(fields, str)}
    for field in fields:
        ns[field] = dataclasses.field(default="", init=False, repr=False, compare=False)
    return dataclasses.dataclass(eq=False, repr=False)(type(name, bases, ns))


def _made(cls: type, **values: object) -> object:
    obj = cls()
    for key, value in values.items():
        object.__setattr__(obj, key, value)
    return obj


def test_fields_named_by_keywords_and_classes_without_fields_are_read_redacted_and_written():
    """Effect and result classes whose field names are keywords (read by name, not compiled),
    an effect without fields and one with only secret fields: requests and results read back
    as recorded, and secrets never reach the bytes."""
    Odd = _keyword_fields("Odd", (Effect,), ["class", "for", "pass"])
    OddResult = _keyword_fields("OddResult", (), ["if", "else", "pass"])
    prodture.register(name="test_cache.OddResult")(OddResult)

    @dataclasses.dataclass(frozen=True)
    class Empty(Effect, name="test_cache.Empty"):
        pass

    @dataclasses.dataclass(frozen=True)
    class AllSecret(Effect, name="test_cache.AllSecret"):
        password: str
        api_key: str

    odd = _made(Odd, **{"class": "gold", "for": "ann", "pass": "pw-1"})
    result = _made(OddResult, **{"if": "kept", "else": "too", "pass": "tok-2"})
    redactor = Redactor(["pass"])
    for _ in range(2):  # compiled by the first trace, reused by the second
        data = _trace(
            TraceEncoder(redactor),
            [
                (odd, result),
                (Empty(), {"nested": {"password": "pw-3"}}),
                (AllSecret("pw-4", "k-5"), None),
            ],
        )
        for secret in (b"pw-1", b"tok-2", b"pw-3", b"pw-4", b"k-5"):
            assert secret not in data
        effects = read_trace(data).effects
        assert effects[0].request == {"class": "gold", "for": "ann", "pass": REDACTED}
        assert getattr(effects[0].result, "if") == "kept"
        assert getattr(effects[0].result, "pass") is REDACTED
        assert effects[1].request == {} and effects[1].result == {"nested": {"password": REDACTED}}
        assert effects[2].request == {"password": REDACTED, "api_key": REDACTED}
    plain = read_trace(_trace(TraceEncoder(), [(odd, result)])).effects[0]
    assert plain.request["pass"] == "pw-1" and getattr(plain.result, "pass") == "tok-2"


@dataclasses.dataclass(frozen=True)
class Fetch(Effect, name="test_cache.Fetch"):
    key: str


def test_values_of_classes_made_per_request_leave_no_entry_behind_in_the_codecs_caches():
    """A handler may make a class per request (a namedtuple factory, a local class): its values
    in a result list or dict are checked for the accelerator (a dataclass?) without remembering
    the answer per type, which would grow a process-wide dict, and keep every such class alive,
    without bound. The records still read back."""
    from prodture.trace import codec

    before = len(codec._PLAIN_OBJECT)
    for i in range(200):
        pair = collections.namedtuple("pair", "a b")  # a new class each time
        local = type("Local", (), {"__repr__": lambda self: "Local()"})
        result: Any = [pair(i, 2), {"k": local()}] if i % 2 else {"k": [pair(i, 2)]}
        data = _trace(TraceEncoder(Redactor()), [(Fetch("k"), result)])
        assert read_trace(data).effects[0].result is not None
    assert len(codec._PLAIN_OBJECT) == before
