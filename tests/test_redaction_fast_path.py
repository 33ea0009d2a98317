"""The trace encoder's fast path for the header, the input and the outcome (values with nothing to
redact are packed without the redactor's general walk, clean dataclasses by their compiled OBJECT
encoders) writes the very bytes the general way writes, and never lets a secret through.

Oracle: the general way, run on the same encoder (``Redactor.scrub`` then ``_pack_or_mark``; for
the header, the header map packed whole). Secrets are checked in the bytes of real trace files."""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import enum
from decimal import Decimal
from typing import Any

import pytest

import prodture
from prodture import DirectorySink, Effect, Interpreter, Recorder, secret
from prodture.trace import REDACTED, Redactor, read_trace
from prodture.trace.codec import MAX_REDACT_DEPTH, _enc, register_value_type
from prodture.trace.format import _CLEAN_DEPTH, RecordKind, TraceEncoder, _utc_iso

SECRET = "hunter2-fast-path"
PUBLIC = "visible-data"


@prodture.register(name="test_redaction_fast_path.Cart")
@dataclasses.dataclass(frozen=True)
class Cart:
    cart_id: str
    quantity: int
    total: Decimal


@dataclasses.dataclass
class Customer:  # not registered: recorded under its module path
    customer_id: str
    email: str


@dataclasses.dataclass(frozen=True)
class Holder:
    name: str
    extra: Any


@dataclasses.dataclass(frozen=True)
class Login:
    user: str
    api_key: str


@dataclasses.dataclass(frozen=True)
class Card:
    holder: str
    pin: str = secret()


@dataclasses.dataclass(frozen=True)
class Account:
    user: str
    pin_code: str


class MyDict(dict):
    pass


class Key(str):
    pass


@dataclasses.dataclass(frozen=True)
class Token(str):
    """A str that is also a dataclass: the codec writes its fields."""

    password: str

    def __new__(cls, *args: Any) -> Token:
        return super().__new__(cls, "token")


class Region(enum.Enum):
    EU = {"region": "eu", "api_key": SECRET}
    US = {"region": "us"}


@dataclasses.dataclass(frozen=True)
class Carry(Effect, name="test_redaction_fast_path.Carry"):
    payload: Any


def nested_dicts(depth: int, leaf: Any) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"level": value}
    return value


def nested_lists(depth: int) -> Any:
    value: Any = [CART]
    for _ in range(depth):
        value = [value]
    return value


CART = Cart("cart-1842", 2, Decimal("58.99"))

#: Values the fast path packs itself, and values it must leave to the walk, side by side.
VALUES: dict[str, Any] = {
    "str": "1842",
    "None": None,
    "Decimal": Decimal("1.50"),
    "datetime": _dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=_dt.timezone.utc),
    "benchmark outcome": {"order_id": "1842", "charge": "ok", "n": CART},
    "dict of plain values": {"a": 1, "b": 2.5, "c": None, "d": b"x", "e": True},
    "dataclass": CART,
    "unregistered dataclass": Customer("c-1", "ada@example.com"),
    "dict with a dataclass and a list": {
        "customer": Customer("c-9", "ada@example.com"),
        "tags": ["gift", "eu"],
        "pair": ("a", 1),
        "carts": [CART, CART],
    },
    "nested dicts at the fast path's depth": nested_dicts(_CLEAN_DEPTH, CART),
    "nested dicts beyond it": nested_dicts(_CLEAN_DEPTH + 3, CART),
    "dicts nested beyond the redaction depth": nested_dicts(MAX_REDACT_DEPTH + 5, {"a": CART}),
    "lists nested 2000 deep": nested_lists(2000),
    "an int beyond 64 bits in a dict": {"n": 1 << 70, "cart": CART},
    "an int beyond 64 bits in a dataclass": Holder("big", 1 << 70),
    "an int beyond 64 bits in a dataclass, then a secret key": {
        "h": Holder("big", 1 << 70),
        "password": SECRET,
    },
    "a tuple holding a dataclass": (CART, "x"),
    "empty dict": {},
    "empty list": [],
    "secret key at the top": {"password": SECRET, "user": PUBLIC},
    "secret key beside a dataclass": {"cart": CART, "token": SECRET, "user": PUBLIC},
    "secret nested in a list": {"items": [{"sku": "x"}, {"api_key": SECRET}], "u": PUBLIC},
    "secret field of a dataclass in a dict": {"login": Login(PUBLIC, SECRET)},
    "secret() field of a dataclass in a dict": {"card": Card(PUBLIC, SECRET)},
    "secret dict in an Any field": {"h": Holder(PUBLIC, {"password": SECRET})},
    "dict subclass": MyDict(token=SECRET, user=PUBLIC),
    "clean dict subclass": MyDict(user=PUBLIC),
    "OrderedDict": collections.OrderedDict(password=SECRET, user=PUBLIC),
    "str subclass key": {Key("password"): SECRET, "user": PUBLIC},
    "int key": {1: {"password": SECRET}},
    "dataclass subclass of str": {"t": Token(SECRET), "user": PUBLIC},
    "enum member whose value holds a secret": {"r": Region.EU, "user": PUBLIC},
    "enum member whose value is clean": {"r": Region.US, "user": PUBLIC},
    "secret key at the fast path's depth": nested_dicts(_CLEAN_DEPTH, {"password": SECRET}),
    "secret key below the fast path's depth": nested_dicts(_CLEAN_DEPTH + 1, {"token": SECRET}),
}


def general(encoder: TraceEncoder, record: list[Any], slot: int) -> bytes:
    assert encoder.redactor is not None
    _enc.encoder = encoder  # what counts the opaque values (as input() and outcome() set it)
    record = list(record)
    record[slot] = encoder.redactor.scrub(record[slot])
    return encoder._pack_or_mark(record, (slot,))


@pytest.mark.parametrize("name", list(VALUES))
def test_input_and_outcome_bytes_are_those_of_the_general_way(name):
    """Every value, clean or holding a secret, gives the same input and outcome record bytes (and the same count of opaque values) as the redactor's walk followed by the packer."""
    value = VALUES[name]
    fast, slow = TraceEncoder(Redactor()), TraceEncoder(Redactor())
    for _ in range(2):  # the second time with every per-type cache warm
        assert fast.input(value) == general(slow, [RecordKind.INPUT, value], 1)
        outcome = [RecordKind.OUTCOME, True, value, "", None, 1234]
        assert fast.outcome(True, value, "", None, 1234) == general(slow, outcome, 2)
    assert fast.opaque_values == slow.opaque_values


def test_utc_start_times_are_written_as_isoformat_writes_them():
    """The header's started_at text, made from a per-second cache, is isoformat's for every microsecond value (none, one, the last), second after second, at the ends of the calendar."""
    start = _dt.datetime(2026, 12, 31, 23, 59, 58, tzinfo=_dt.timezone.utc)
    times = [start + _dt.timedelta(microseconds=us) for us in range(0, 3_000_000, 99_991)]
    times += [
        start + _dt.timedelta(seconds=s, microseconds=us)
        for s in (0, 1, 2)
        for us in (0, 1, 999_999)
    ]
    times += [
        _dt.datetime(1, 1, 1, tzinfo=_dt.timezone.utc),
        _dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=_dt.timezone.utc),
    ]
    for when in times:
        assert _utc_iso(when) == when.isoformat().encode()


def record(directory, value: Any, redact: Any = None) -> bytes:
    """One trace into a real DirectorySink: ``value`` as the input and the outcome."""

    def handler(arg):
        yield Carry("x")
        return value

    recorder = Recorder(DirectorySink(directory), **({} if redact is None else {"redact": redact}))
    outcome = Interpreter({Carry: lambda e: "ok"}, recorder=recorder).run(handler, value)
    assert outcome.ok
    recorder.close()
    (path,) = directory.glob("*.prodtrace")
    return path.read_bytes()


@pytest.mark.parametrize(
    "name",
    [
        "secret key at the top",
        "secret key beside a dataclass",
        "secret nested in a list",
        "secret field of a dataclass in a dict",
        "secret() field of a dataclass in a dict",
        "secret dict in an Any field",
        "dict subclass",
        "OrderedDict",
        "dataclass subclass of str",
        "enum member whose value holds a secret",
    ],
)
def test_no_secret_reaches_the_file_through_the_fast_path(name, tmp_path):
    """A secret in the input and the outcome is redacted in the file, even after the same shapes were recorded clean (every per-type and per-key cache warm), and what sits beside it is kept."""
    clean = {"cart": CART, "items": [{"sku": "x"}], "login": Customer("u", "e"), "user": PUBLIC}
    record(tmp_path / "warm", clean)
    data = record(tmp_path / "case", VALUES[name])
    assert SECRET.encode() not in data
    assert PUBLIC.encode() in data
    trace = read_trace(data)
    assert trace.complete and trace.outcome is not None


def test_a_dataclass_once_clean_is_walked_when_an_instance_holds_a_secret(tmp_path):
    """Holder is first recorded with a plain extra (its compiled OBJECT encoder takes it), then with a secret dict in extra: that instance is walked and the secret redacted."""
    record(tmp_path / "a", {"h": Holder(PUBLIC, "plain")})
    data = record(tmp_path / "b", {"h": Holder(PUBLIC, {"password": SECRET})})
    assert SECRET.encode() not in data
    trace = read_trace(data)
    assert trace.input["h"].fields["extra"]["password"] is REDACTED


def test_a_pattern_of_one_recorder_is_not_cached_for_another(tmp_path):
    """Two recorders in one process: "pin_code" is clean for the default one (its verdict cached) and secret for the one made with redact=["pin_code"] (a key, and a dataclass field), and stays clean for the first one afterwards: key verdicts are cached per redactor."""
    value = {"pin_code": SECRET, "account": Account(PUBLIC, SECRET)}
    plain_before = record(tmp_path / "a", value)
    assert SECRET.encode() in plain_before  # no default pattern matches pin_code
    redacted = record(tmp_path / "b", value, redact=["pin_code"])
    assert SECRET.encode() not in redacted and PUBLIC.encode() in redacted
    trace = read_trace(redacted)
    assert trace.input["pin_code"] is REDACTED
    assert trace.outcome is not None and trace.outcome.value["pin_code"] is REDACTED
    plain_after = record(tmp_path / "c", value)
    assert plain_after.count(SECRET.encode()) == plain_before.count(SECRET.encode())


def test_a_value_type_registered_later_is_encoded_by_its_to_fields():
    """A dataclass first packed by its compiled OBJECT encoder and then registered as a value type (with to_fields) is encoded by to_fields from then on, by an encoder made before: the encoder's long-lived caches follow registrations."""

    @dataclasses.dataclass(frozen=True)
    class Money:
        amount: str
        currency: str

    encoder = TraceEncoder(Redactor())
    before = encoder.input({"m": Money("1.00", "EUR")})
    register_value_type(
        Money,
        "test_redaction_fast_path.Money",
        lambda m: {"eur": m.amount},
        lambda f: Money(f["eur"], "EUR"),
    )
    after = encoder.input({"m": Money("1.00", "EUR")})
    assert after != before
    assert after == general(
        TraceEncoder(Redactor()), [RecordKind.INPUT, {"m": Money("1.00", "EUR")}], 1
    )
    assert b"eur" in after and b"currency" not in after
