"""The optional accelerator (prodture[fast], ``prodture.trace.fastpack``) writes the bytes msgpack
writes: for any plain value, for every golden vector and encoder-cache trace, and for records
holding values it must never be given (they go to the msgpack path, opaque marking included).
Without msgspec, prodture imports and records on the msgpack path alone."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import enum
import functools
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import prodture
from prodture import Effect, MemorySink, Recorder
from prodture.runtime import EffectCall
from prodture.trace import Opaque, TraceEncoder, TraceReader, codec, fastpack, read_trace
from prodture.trace import format as format_module
from prodture.trace.codec import Redactor

msgspec = pytest.importorskip(
    "msgspec", reason="the prodture[fast] extra (msgspec) is not installed"
)

ROOT = Path(__file__).resolve().parent.parent
STARTED = dt.datetime(2026, 11, 30, 12, 0, 0, tzinfo=dt.timezone.utc)
SITE = ("/srv/app/fastpack_test.py", 7, "handle")


# -- the encoders alone: any plain value ------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Ext:
    """An ext value in the generated tree: msgspec's Ext on one side, msgpack's ExtType on the other."""

    code: int
    data: bytes


def _as_msgpack(value: Any) -> Any:
    if isinstance(value, _Ext):
        return msgpack.ExtType(value.code, value.data)
    if isinstance(value, list):
        return [_as_msgpack(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_msgpack(v) for k, v in value.items()}
    return value


def _as_msgspec(value: Any) -> Any:
    if isinstance(value, _Ext):
        return msgspec.msgpack.Ext(value.code, value.data)
    if isinstance(value, list):
        return [_as_msgspec(v) for v in value]
    if isinstance(value, dict):
        return {k: _as_msgspec(v) for k, v in value.items()}
    return value


def _around(*bounds: int) -> list[int]:
    return sorted({n + d for n in bounds for d in (-1, 0, 1) if n + d >= 0})


#: Every boundary of msgpack's int formats (fixint, int8/16/32/64, uint8/16/32/64), both sides.
INT_BOUNDS = sorted(
    {b + d for b in (0, 127, 255, 65535, 2**32 - 1, 2**64 - 1) for d in (-1, 0, 1) if b + d < 2**64}
    | {-b + d for b in (32, 128, 32768, 2**31, 2**63) for d in (-1, 0, 1) if -b + d >= -(2**63)}
)
#: Lengths around each str/bin/array/map/ext header boundary (fix, 8, 16, 32 bits).
STR_LENGTHS = _around(31, 32, 255, 256, 65535, 65536)
EXT_SIZES = [0, 1, 2, 3, 4, 5, 8, 15, 16, 17, 255, 256, 65535, 65536]
CONTAINER_SIZES = _around(15, 16)
#: Container sizes around the 16/32-bit header boundary (checked one by one: large to generate).
LARGE_SIZES = _around(65535, 65536)


def _text_of_bytes(n: int, char: str) -> str:
    """A str whose UTF-8 encoding is ``n`` bytes, of ``char`` (1 to 4 bytes) padded with 'a'."""
    width = len(char.encode())
    return char * (n // width) + "a" * (n % width)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.sampled_from(INT_BOUNDS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(
        [-0.0, 0.0, float("inf"), float("-inf"), float("nan"), 5e-324, 1.7976931348623157e308]
    ),
    st.text(),
    st.builds(_text_of_bytes, st.sampled_from(STR_LENGTHS), st.sampled_from(["a", "é", "€", "😀"])),
    st.binary(),
    st.sampled_from(STR_LENGTHS).map(lambda n: b"\xff" * n),
    st.builds(_Ext, st.integers(0, 127), st.binary()),
    st.builds(_Ext, st.integers(0, 127), st.sampled_from(EXT_SIZES).map(lambda n: b"x" * n)),
)
plain_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=20),
        st.dictionaries(st.text(max_size=8), inner, max_size=20),
        st.sampled_from(CONTAINER_SIZES).map(lambda n: [None] * n),
        st.sampled_from(CONTAINER_SIZES).map(lambda n: {str(i): i for i in range(n)}),
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(plain_values)
def test_the_accelerator_writes_what_msgpack_writes_for_any_plain_value(value):
    """Ints across every width boundary, floats (nan, inf, -0.0), str and bin around each
    length boundary (non-ASCII included), ext values of every size class, nested lists and
    maps of every header size: msgspec's bytes are msgpack's (``use_bin_type=True``)."""
    assert fastpack.encode is not None
    assert fastpack.encode(_as_msgspec(value)) == msgpack.packb(
        _as_msgpack(value), use_bin_type=True
    )


@pytest.mark.parametrize("n", LARGE_SIZES)
def test_large_arrays_and_maps_are_written_alike(n):
    for value in ([None] * n, {str(i): i for i in range(n)}, [_Ext(5, b"x" * n)]):
        assert fastpack.encode(_as_msgspec(value)) == msgpack.packb(  # type: ignore[misc]
            _as_msgpack(value), use_bin_type=True
        )


@pytest.mark.parametrize(
    "value", [2**64, -(2**63) - 1, 10**30, "\ud800", ["ok", "lone \udfff surrogate"]]
)
def test_what_msgpack_refuses_the_accelerator_refuses_too(value):
    """Values msgpack cannot pack (and that the encoder then marks opaque) are not written by
    the accelerator either: it raises, and the record goes to the msgpack path."""
    with pytest.raises(Exception):  # noqa: B017 -- msgpack raises OverflowError / UnicodeEncodeError
        msgpack.packb(value, use_bin_type=True)
    with pytest.raises(Exception):  # noqa: B017 -- msgspec's own errors for the same values
        fastpack.encode(value)  # type: ignore[misc]


# -- the trace encoder on both paths ----------------------------------------------------------


@pytest.fixture
def fast_records(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Records the accelerator packed (in encoders made from now on)."""
    packed: list[Any] = []
    real = fastpack.encode

    def counting(record: Any) -> bytes:
        packed.append(record)
        return real(record)  # type: ignore[misc]

    monkeypatch.setattr(fastpack, "encode", counting)
    _forget_compiled()  # compiled encoders hold the encode they were made with
    yield packed
    _forget_compiled()


def _forget_compiled() -> None:
    format_module._UNREDACTED.types.clear()
    format_module._UNREDACTED.results.clear()
    codec._PLAIN_OBJECT.clear()


def _both_paths(build: Callable[[], bytes], monkeypatch: pytest.MonkeyPatch) -> tuple[bytes, bytes]:
    """``build()`` (which makes its own encoders) with the accelerator, then without it."""
    monkeypatch.setattr(fastpack, "enabled", True)
    fast = build()
    monkeypatch.setattr(fastpack, "enabled", False)
    pure = build()
    monkeypatch.setattr(fastpack, "enabled", True)
    return fast, pure


def _vectors() -> Any:
    from test_vectors import gen  # the golden vectors' generator, loaded by that test module

    return gen


@pytest.mark.parametrize("name", sorted(_vectors().VECTORS))
def test_every_golden_vector_is_written_byte_for_byte_on_both_paths(
    name, monkeypatch, fast_records
):
    build, _ = _vectors().VECTORS[name]
    fast, pure = _both_paths(build, monkeypatch)
    golden = (ROOT / "protocol" / "vectors" / f"{name}.prodtrace").read_bytes()
    assert fast == golden and pure == golden


def test_the_common_records_of_the_vectors_are_packed_by_the_accelerator(monkeypatch, fast_records):
    """The equality above is not vacuous: the simple-success vector's effects go through msgspec."""
    build, _ = _vectors().VECTORS["simple-success"]
    monkeypatch.setattr(fastpack, "enabled", True)
    build()
    assert any(type(r) in (list, tuple) and r[0] == 4 for r in fast_records)


def test_the_encoder_cache_cases_are_byte_equal_on_both_paths(monkeypatch, fast_records):
    """tests/test_trace_encoder_cache.py's traces (secret fields, Decimals, registered results,
    a renamed type), written with and without the accelerator."""
    from test_trace_encoder_cache import Found, Lookup, _trace

    effects = [
        (Lookup("k1", "s3cr3t", Decimal("1.5")), Found("n1", Decimal("2"))),
        (Lookup("k2", "s3cr3t", Decimal("2.5")), Found("n2", Decimal("3"))),
    ]
    for redactor in (Redactor(), Redactor(["key", "note"]), Redactor([], defaults=False), None):
        fast, pure = _both_paths(
            functools.partial(lambda r: _trace(TraceEncoder(r), effects), redactor), monkeypatch
        )
        assert fast == pure, redactor
    # all but the two whose result has a secret field (redacted by a walk, on the msgpack path)
    assert sum(type(r) in (list, tuple) and r[0] == 4 for r in fast_records) == 3 * 2


def test_the_encoder_cache_tests_pass_on_the_msgpack_path():
    """The whole encoder-cache and golden-vector suites, again with ``PRODTURE_ACCELERATOR=0``."""
    env = {**os.environ, "PRODTURE_ACCELERATOR": "0"}
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/test_trace_encoder_cache.py",
            "tests/test_vectors.py",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


class Color(enum.Enum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


@prodture.register(name="test_fastpack.Basket")
@dataclasses.dataclass(frozen=True)
class Basket:
    items: list[Any]
    owner: str


@prodture.register(name="test_fastpack.Reading")
@dataclasses.dataclass(frozen=True)
class Reading:
    at: dt.datetime
    id: uuid.UUID
    amount: Decimal
    took: dt.timedelta
    day: dt.date
    clock: dt.time
    note: str
    raw: bytes
    ratio: float
    ok: bool
    nothing: None


@dataclasses.dataclass(frozen=True)
class Probe(Effect, name="test_fastpack.Probe"):
    value: Any
    amount: Decimal = Decimal("0")
    api_key: str = "k-123"


class Tagged(dict[str, Any]):
    pass


class Name(str):
    pass


class Ratio(float):
    pass


class BadZone(dt.tzinfo):
    def utcoffset(self, d: Any) -> dt.timedelta:
        raise ValueError("no offset today")

    def dst(self, d: Any) -> dt.timedelta:
        return dt.timedelta(0)

    def tzname(self, d: Any) -> str:
        return "bad"


NOW = dt.datetime(2026, 12, 1, 0, 30, tzinfo=dt.timezone.utc)
READING = Reading(
    NOW,
    uuid.UUID(int=7),
    Decimal("-1.50"),
    dt.timedelta(days=1, seconds=2, microseconds=3),
    NOW.date(),
    dt.time(1, 2, 3),
    "é€😀",
    b"\x00\xff",
    -0.25,
    True,
    None,
)

#: Values the accelerator must never be given (msgspec would write them otherwise or not at
#: all), next to the plain ones it takes: each as a request value and as a result.
VALUES = {
    "str": "plain",
    "int 2**64-1": 2**64 - 1,
    "decimal": Decimal("58.99"),
    "registered dataclass of plain leaves": READING,
    "datetime": NOW,
    "naive datetime": dt.datetime(2026, 1, 1),
    "datetime with a failing tzinfo": dt.datetime(2026, 1, 1, tzinfo=BadZone()),
    "uuid": uuid.UUID(int=1),
    "enum": Color.RED,
    "int enum": Level.HIGH,
    "dataclass holding a list": Basket([1, Decimal("2"), NOW], "ada"),
    "dict subclass": Tagged(password="hunter2", a=1),
    "ordered dict": collections.OrderedDict(a=1),
    "str subclass": Name("n"),
    "float subclass": Ratio(0.5),
    "huge int": 2**70,
    "negative huge int": -(2**64),
    "nested huge int": {"n": [2**65]},
    "set": {1, 2},
    "tuple": (1, "a"),
    "list with a decimal": [Decimal("1"), "x"],
    "dict with a secret": {"token": "t0k", "n": 1},
    "lone surrogate": "a\ud800",
    "bytearray": bytearray(b"ab"),
    "foreign object": object(),
    "exception": ValueError("boom"),
}


def _records_of(redactor: Redactor | None, ok: bool) -> bytes:
    encoder = TraceEncoder(redactor)
    parts = [
        encoder.header("tests:fastpack", trace_id="f" * 32, started_at=STARTED, meta={}),
        encoder.input(None),
    ]
    for seq, value in enumerate(VALUES.values(), 1):
        # as the request value, then as the result (or the error of a failed effect)
        result = value if ok or isinstance(value, BaseException) else ValueError(str(seq))
        parts.append(encoder.effect(seq, Probe(value), ok, result, 10 * seq, 5, SITE))
    parts.append(encoder.outcome(True, "done", "", None, 100))
    return b"".join(parts)


@pytest.mark.parametrize("ok", [True, False], ids=["results", "errors"])
@pytest.mark.parametrize("redacting", [True, False], ids=["redacting", "unredacted"])
def test_records_holding_values_msgspec_must_not_see_are_byte_equal_to_the_msgpack_path(
    ok, redacting, monkeypatch, fast_records
):
    """datetime, UUID, enums, a dataclass holding a list, dict/str/float subclasses, ints beyond
    64 bits, sets, tuples, a lone surrogate, an exception: the same bytes with and without the
    accelerator (opaque marking and opaque counts included), and the trace reads back."""
    counts = []

    def build() -> bytes:
        data = _records_of(Redactor() if redacting else None, ok)
        counts.append(read_trace(data).effects)
        return data

    fast, pure = _both_paths(build, monkeypatch)
    assert fast == pure
    effects = counts[0]
    assert len(effects) == len(VALUES)
    by_name = dict(zip(VALUES, effects, strict=True))
    assert isinstance(by_name["huge int"].values[0], Opaque)
    if ok:
        assert by_name["registered dataclass of plain leaves"].result == READING
        assert by_name["decimal"].result == Decimal("58.99")
        # the plain ones went through msgspec; a record holding a huge int did not reach it intact
        assert any(type(r) in (list, tuple) and r[3][0] == "plain" for r in fast_records)
    assert b"hunter2" not in fast or not redacting
    assert b"k-123" not in fast or not redacting


def test_opaque_counts_are_the_same_on_both_paths(monkeypatch):
    seen: dict[bool, list[str]] = {}
    for enabled in (True, False):
        monkeypatch.setattr(fastpack, "enabled", enabled)
        names: list[str] = []
        encoder = TraceEncoder(Redactor(), on_opaque=names.append)
        for seq, value in enumerate(VALUES.values(), 1):
            encoder.effect(seq, Probe(value), True, value, 1, 1, SITE)
        seen[enabled] = names
    assert seen[True] == seen[False] and seen[True]


# -- without msgspec ---------------------------------------------------------------------------


def test_prodture_imports_and_records_when_msgspec_cannot_be_imported(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        sys.modules["msgspec"] = None  # import msgspec -> ImportError
        import dataclasses
        from decimal import Decimal
        import prodture
        from prodture import Effect, Interpreter, MemorySink, Recorder
        from prodture.trace import fastpack, read_trace

        @dataclasses.dataclass(frozen=True)
        class Charge(Effect, name="nomsgspec.Charge"):
            amount: Decimal

        @prodture.handler(name="nomsgspec:pay")
        def pay(n):
            total = Decimal(0)
            for _ in range(n):
                total += yield Charge(Decimal("1.25"))
            return str(total)

        sink = MemorySink()
        recorder = Recorder(sink)
        result = Interpreter({Charge: lambda e: e.amount}, recorder=recorder).run(pay, 3)
        recorder.close()
        trace = read_trace(sink.traces[0])
        assert not fastpack.available and fastpack.encoder() is None
        assert "msgspec" not in {m.split(".")[0] for m in sys.modules if sys.modules[m] is not None}
        assert [e.result for e in trace.effects] == [Decimal("1.25")] * 3, trace.effects
        assert trace.complete and trace.outcome.value == "3.75"
        print("recorded without msgspec", result.value)
        """
    )
    run = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "python-adapter")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "recorded without msgspec 3.75" in run.stdout


def test_the_environment_switch_turns_the_accelerator_off():
    probe = (
        "from prodture.trace import fastpack; print(fastpack.available, fastpack.encoder() is None)"
    )
    for value, expected in [("0", "True True"), ("1", "True False"), ("off", "True True")]:
        run = subprocess.run(
            [sys.executable, "-c", probe],
            env={
                **os.environ,
                "PRODTURE_ACCELERATOR": value,
                "PYTHONPATH": str(ROOT / "python-adapter"),
            },
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.stdout.split("\n")[0] == expected, (value, run.stderr)


def test_a_recorder_writes_the_same_trace_with_and_without_the_accelerator(monkeypatch):
    """The whole recorder path (kept effects encoded later, header, input, outcome)."""

    @dataclasses.dataclass(frozen=True)
    class Pay(Effect, name="test_fastpack.Pay"):
        card_token: str
        amount: Decimal

    def record() -> bytes:
        sink = MemorySink()
        recorder = Recorder(sink)
        session = recorder.begin("tests:fastpack", {"order": 1})
        for seq in range(1, 4):
            session.effect(
                EffectCall(seq, Pay("tok", Decimal(seq)), SITE), True, READING, 1000 + session.t0, 5
            )
        session.finish(prodture.Success("done"))
        recorder.close()
        data = sink.traces[0]
        ends = [end for _, end in TraceReader(data).raw_records()]
        # from after the header (its trace id and start time differ between recordings) to
        # the outcome (its duration too)
        return data[ends[0] : ends[-2]]

    fast, pure = _both_paths(record, monkeypatch)
    assert fast == pure


# -- the common record: one compiled encoder per effect type and result type ---------------------


@prodture.register(name="test_fastpack.Line")
@dataclasses.dataclass(frozen=True)
class Line:
    sku: str
    price: Decimal


@dataclasses.dataclass(frozen=True)
class Masked:
    user: str
    pin: str = prodture.secret()


#: Results of the shapes the accelerator's record encoders take (natives, plain values that are
#: not native, plain dataclasses, exact lists and dicts of them) next to ones holding something
#: to redact (a secret key at any depth, a secret field), which must go the redactor's way.
CONTAINER_RESULTS = {
    "empty list": [],
    "list of natives": [1, "a", None, 2.5, True, b"\x00"],
    "list of plain leaves": [Decimal("1.10"), NOW, uuid.UUID(int=3), dt.timedelta(seconds=5)],
    "list of dataclasses": [Line("a", Decimal("1")), Line("b", Decimal("2.50"))],
    "dict of plain values": {"sku": "x", "price": Decimal("9.99"), "at": NOW, "n": 3},
    "nested containers": {"lines": [{"sku": "a", "qty": [1, 2]}], "meta": {"k": None}},
    "dict with a secret key": {"order": 1, "password": "hunter2"},
    "secret key nested in a list": [{"ok": 1}, {"api_key": "ak-live-55"}],
    "secret key deep": {"a": {"b": {"c": [{"d": {"secret": "deep-s3cret"}}]}}},
    "dataclass with a secret field in a list": [Masked("ann", "pin-4321")],
    "non-str key": {1: "one"},
    "tuple inside": {"pair": (1, 2)},
    "set inside": [{1, 2}],
    "deeper than the clean depth": [[[[[[[[[[["bottom"]]]]]]]]]]],
    "huge int inside": {"n": [2**70]},
    "dict subclass inside": [Tagged(token="tagged-t0k")],
    "decimal": Decimal("58.99"),
    "dataclass": Line("sku-1", Decimal("3.00")),
    "str": "plain",
}
SECRETS = [b"hunter2", b"ak-live-55", b"deep-s3cret", b"pin-4321", b"tagged-t0k"]


def _container_trace(redactor: Redactor | None) -> bytes:
    encoder = TraceEncoder(redactor)
    parts = [
        encoder.header("tests:fastpack", trace_id="c" * 32, started_at=STARTED, meta={}),
        encoder.input(None),
    ]
    for seq, value in enumerate(CONTAINER_RESULTS.values(), 1):
        parts.append(encoder.effect(seq, Probe("v"), True, value, 10 * seq, 5, SITE))
    parts.append(encoder.outcome(True, "done", "", None, 100))
    return b"".join(parts)


@pytest.mark.parametrize(
    "redactor",
    [Redactor(), Redactor(["sku"]), Redactor([], defaults=False), None],
    ids=["defaults", "extra pattern", "no patterns", "no redactor"],
)
def test_results_of_lists_and_dicts_are_byte_equal_to_the_msgpack_path(
    redactor, monkeypatch, fast_records
):
    """Lists and dicts of plain values, dataclasses in them, secret keys at every depth, values
    the accelerator may not be given inside them: the same bytes with and without it."""
    fast, pure = _both_paths(lambda: _container_trace(redactor), monkeypatch)
    assert fast == pure
    effects = read_trace(fast).effects
    results = dict(zip(CONTAINER_RESULTS, (e.result for e in effects), strict=True))
    if redactor is not None and redactor.is_secret_name("sku"):
        assert b"sku-1" not in fast  # a secret field of a dataclass result, by its name
        assert results["dict of plain values"]["sku"] == prodture.trace.REDACTED
    else:
        assert results["list of dataclasses"] == CONTAINER_RESULTS["list of dataclasses"]
        assert results["dict of plain values"] == CONTAINER_RESULTS["dict of plain values"]
    if redactor is not None and redactor.patterns:
        for secret in SECRETS:
            assert secret not in fast, secret
        assert results["dict with a secret key"]["order"] == 1


def test_records_with_nothing_to_redact_take_one_compiled_call_and_the_others_the_walk(
    monkeypatch, fast_records
):
    """A spy on the msgpack path: the clean results of every accelerated shape never reach it
    (the record encoder compiled per effect type and result type writes them), each record
    packed by one encode of the whole record; results holding a secret always do."""
    monkeypatch.setattr(fastpack, "enabled", True)
    general: list[Any] = []
    real = TraceEncoder._effect_body

    def spy(self: TraceEncoder, seq: int, *args: Any) -> bytes:
        general.append(list(CONTAINER_RESULTS)[seq - 1])
        return real(self, seq, *args)

    monkeypatch.setattr(TraceEncoder, "_effect_body", spy)
    data = _container_trace(Redactor())
    for secret in SECRETS:
        assert secret not in data, secret
    assert general == [
        "dict with a secret key",
        "secret key nested in a list",
        "secret key deep",
        "dataclass with a secret field in a list",
        "non-str key",
        "tuple inside",
        "set inside",
        "deeper than the clean depth",
        "huge int inside",
        "dict subclass inside",
    ]
    effect_records = [r for r in fast_records if type(r) in (list, tuple) and r[0] == 4]
    # each accelerated result (and the refused huge int, tried once) packed as one record
    assert len(effect_records) == len(CONTAINER_RESULTS) - len(general) + 1


def test_a_result_class_registered_again_is_written_under_its_new_name_by_the_fast_path(
    monkeypatch,
):
    """The compiled record encoder's baked-in name of the result type is refreshed when the
    class is registered again."""
    monkeypatch.setattr(fastpack, "enabled", True)

    @dataclasses.dataclass(frozen=True)
    class Receipt:
        number: int

    encoder = TraceEncoder(Redactor())
    parts = [encoder.header("tests:fastpack", trace_id="r" * 32), encoder.input(None)]
    parts.append(encoder.effect(1, Probe("v"), True, Receipt(1), 1, 1, SITE))
    prodture.register(name="test_fastpack.ReceiptNow")(Receipt)
    parts.append(encoder.effect(2, Probe("v"), True, Receipt(2), 2, 1, SITE))
    data = b"".join(parts)
    assert b"test_fastpack.ReceiptNow" in data
    assert data.count(b"Receipt") == 2  # the old name once, the new one once


def test_a_result_class_renamed_in_the_registry_table_is_written_under_each_name_in_turn(
    monkeypatch,
):
    """However the registry's table changes (an entry set, then taken away again, as a test's
    monkeypatch does): each fast record carries the result class's name at that moment, the
    one the msgpack path writes."""
    monkeypatch.setattr(fastpack, "enabled", True)

    @dataclasses.dataclass(frozen=True)
    class Voucher:
        number: int

    default = f"{Voucher.__module__}.{Voucher.__qualname__}".encode()
    encoder = TraceEncoder(Redactor())
    encoder.header("tests:fastpack", trace_id="v" * 32)
    first = encoder.effect(1, Probe("v"), True, Voucher(1), 1, 1, SITE)
    with monkeypatch.context() as patch:
        patch.setitem(prodture.effects.registry._by_type, Voucher, "test_fastpack.VoucherNow")
        renamed = encoder.effect(2, Probe("v"), True, Voucher(2), 2, 1, SITE)
    again = encoder.effect(3, Probe("v"), True, Voucher(3), 3, 1, SITE)  # its entry deleted
    assert default in first and b"VoucherNow" not in first
    assert b"test_fastpack.VoucherNow" in renamed and default not in renamed
    assert default in again and b"VoucherNow" not in again
    assert encoder.common_records()  # these were the compiled record encoder's


_leaves = st.one_of(
    st.none(),
    st.integers(min_value=-(2**64), max_value=2**65),
    st.text(max_size=5),
    st.sampled_from([Decimal("1.5"), NOW, uuid.UUID(int=9), Line("l", Decimal("2")), (1, 2)]),
)
_results = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["a", "n", "password", "my_token", "x"]), inner, max_size=4
        ),
    ),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(_results)
def test_any_nested_result_is_written_alike_and_its_secret_keys_never_reach_the_bytes(value):
    """Lists and dicts nested in any order, with keys that name secrets at any depth, ints
    beyond 64 bits, tuples and dataclasses among the leaves: the accelerator's bytes are the
    msgpack path's, and no value under a secret key is in them."""

    def marked(v: Any) -> Any:  # values under secret keys become a findable marker
        if isinstance(v, list):
            return [marked(x) for x in v]
        if isinstance(v, dict):
            return {
                k: "S3CRET-MARK" if "password" in k or "token" in k else marked(x)
                for k, x in v.items()
            }
        return v

    result = marked(value)
    data = {}
    saved = fastpack.enabled
    for enabled in (True, False):
        fastpack.enabled = enabled
        try:
            encoder = TraceEncoder(Redactor())
            data[enabled] = encoder.effect(1, Probe("v"), True, result, 1, 1, SITE)
        finally:
            fastpack.enabled = saved
    assert data[True] == data[False]
    assert b"S3CRET-MARK" not in data[True]


@pytest.mark.parametrize(
    "names",
    [("charge_id", "amount"), ("copy", "self", "_private", "encode"), ("__x", "y")],
    ids=["plain", "struct-like names", "a name msgspec refuses as a field"],
)
def test_result_dataclasses_encoded_through_a_fields_struct_are_byte_equal(names, monkeypatch):
    """The fast path encodes a result dataclass's fields map through a msgspec Struct when its
    field names can be fields (else the dict): the same bytes as the msgpack path either way."""
    cls = dataclasses.make_dataclass(f"Fields{len(names)}", names, frozen=True)
    prodture.register(cls, name=f"test_fastpack.Fields{len(names)}")
    struct = fastpack.map_struct(names)
    assert (struct is None) == (names[0] == "__x")
    result = cls(*[Decimal("1.5") if i % 2 else f"v{i}" for i in range(len(names))])
    general: list[int] = []
    real = TraceEncoder._effect_body

    def spy(self: TraceEncoder, seq: int, *args: Any) -> bytes:
        general.append(seq)
        return real(self, seq, *args)

    monkeypatch.setattr(TraceEncoder, "_effect_body", spy)
    data = {}
    for enabled in (True, False):
        monkeypatch.setattr(fastpack, "enabled", enabled)
        encoder = TraceEncoder(Redactor())
        encoder.effect(1, Probe("v"), True, result, 1, 1, SITE)  # defines type and site
        data[enabled] = encoder.effect(2, Probe("v"), True, result, 2, 1, SITE)
    assert general == [1, 2]  # the msgpack path's two records only: the fast path wrote its own
    assert data[True] == data[False]
    decoded = msgpack.unpackb(data[True], raw=False, strict_map_key=False)
    assert decoded[0] == 4 and decoded[1] == 2


EVERY_KIND_OF_DECIMAL = [
    Decimal("58.99"),
    Decimal("58.990"),
    Decimal("-0"),
    Decimal("0E-7"),
    Decimal("NaN"),
    Decimal("-sNaN123"),
    Decimal("Infinity"),
    Decimal("-Infinity"),
    Decimal("1E+10"),
    Decimal("1.5e-30"),
    Decimal("123456789012345678901234567890.123456789012345678901234567890"),
    Decimal(2) ** 200,
]


@pytest.mark.parametrize("amount", EVERY_KIND_OF_DECIMAL, ids=str)
def test_every_kind_of_decimal_is_written_as_its_str_on_both_paths(amount, monkeypatch):
    """A Decimal's ext data is ``str(d).encode()``, byte for byte, in the request and in the
    result's OBJECT (the compiled record encoder's own code, tried first with a likely
    Decimal) as on the msgpack path: two Decimals equal in value keep their own digits."""
    data = {}
    for enabled in (True, False):
        monkeypatch.setattr(fastpack, "enabled", enabled)
        encoder = TraceEncoder(Redactor())
        encoder.header("tests:fastpack", trace_id="d" * 32)
        encoder.effect(1, Probe("v", Decimal("1")), True, Line("s", Decimal("1")), 1, 1, SITE)
        data[enabled] = encoder.effect(2, Probe("v", amount), True, Line("s", amount), 2, 1, SITE)
        assert encoder.common_records() or not enabled  # the compiled encoder wrote it
    assert data[True] == data[False]
    assert data[True].count(str(amount).encode()) == 2
    record = msgpack.unpackb(data[True], strict_map_key=False, ext_hook=lambda c, d: (c, d))
    assert record[3][1] == (codec.ExtCode.DECIMAL, str(amount).encode())
