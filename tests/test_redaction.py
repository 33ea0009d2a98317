"""Redaction fails closed: a secret in any container type, at any depth, in any place of a trace,
never reaches the file. Every case greps the raw bytes of the trace file a real DirectorySink wrote."""

from __future__ import annotations

import collections
import dataclasses
import enum
import types
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, NamedTuple

import pytest

import prodture
from prodture import DirectorySink, Effect, Interpreter, Recorder, secret
from prodture.trace import REDACTED, Redactor, fastpack, read_trace
from prodture.trace.codec import (
    DEFAULT_SECRET_PATTERNS,
    MAX_REDACT_DEPTH,
    encode_value,
    register_value_type,
)
from prodture.trace.format import _CLEAN_DEPTH

SECRET = "hunter2-do-not-leak"
PUBLIC = "visible-data"


@dataclasses.dataclass(frozen=True)
class Carry(Effect, name="test_redaction.Carry"):
    payload: Any


@prodture.register(name="test_redaction.Card")
@dataclasses.dataclass(frozen=True)
class Card:
    holder: str
    pin: str = secret()


@prodture.register(name="test_redaction.Login")
@dataclasses.dataclass(frozen=True)
class Login:
    user: str
    api_key: str


@dataclasses.dataclass(frozen=True)
class Wrapper:
    inner: Any


Credentials = collections.namedtuple("Credentials", ["user", "password"])
Row = collections.namedtuple("Row", ["user", "extra"])


class ReadOnlyMap(Mapping):
    """A Mapping that is not a dict subclass."""

    def __init__(self, data: dict) -> None:
        self._data = dict(data)

    def __getitem__(self, key: Any) -> Any:
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)


class Items(Sequence):
    """A Sequence that is not a list or tuple subclass."""

    def __init__(self, *items: Any) -> None:
        self._items = list(items)

    def __getitem__(self, index: Any) -> Any:
        return self._items[index]

    def __len__(self) -> int:
        return len(self._items)


class Bag(AbstractSet):
    """A Set that is not a set or frozenset subclass."""

    def __init__(self, *items: Any) -> None:
        self._items = list(items)

    def __contains__(self, item: Any) -> bool:
        return item in self._items

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Exploding(Mapping):
    """A Mapping whose iteration fails half-way: nothing of it can be checked."""

    def __getitem__(self, key: Any) -> Any:
        return SECRET

    def __iter__(self):
        yield "password"
        raise RuntimeError("cannot iterate")

    def __len__(self) -> int:
        return 2

    def __repr__(self) -> str:
        return f"Exploding(password={SECRET!r})"


class MaskingDict(dict):
    """A dict subclass whose items() hide the value of "profile" (dict(value) copies the real one)."""

    def items(self) -> Any:
        return [(k, "masked" if k == "profile" else v) for k, v in dict.items(self)]


class Changing(list):
    """A list subclass whose items change after its first iteration (a live view, a cursor)."""

    def __init__(self) -> None:
        super().__init__([PUBLIC, None])
        self.reads = 0

    def __iter__(self):
        self.reads += 1
        yield PUBLIC
        yield {"user": PUBLIC} if self.reads == 1 else {"note": SECRET}


class HeaderName(str):
    """A case-insensitive header name (like multidict's istr): a str subclass as a map key."""


class Field(str, enum.Enum):
    PASSWORD = "password"


class Model:
    """Not a dataclass (a pydantic-like model): recorded as an opaque repr."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def __repr__(self) -> str:
        return "Model(" + ", ".join(f"{k}={v!r}" for k, v in self.fields.items()) + ")"


class StripeKey:
    """An unsupported object whose repr shows a secret without any name a pattern matches."""

    def __init__(self, key: str) -> None:
        self.key = key

    def __repr__(self) -> str:
        return f"StripeKey({self.key!r})"


class MyList(list):
    pass


class MyDict(dict):
    pass


# Types that are both a leaf (str, int, bytes...) or a container and something else the codec
# encodes by its own rule (a dataclass, an enum member): the codec writes them by that rule.
class LeafBase:
    """The leaf's own value is fixed; the dataclass's generated __init__ sets the fields."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        return super().__new__(cls, cls.LEAF)  # type: ignore[call-arg,attr-defined]


@dataclasses.dataclass(frozen=True)
class StrToken(LeafBase, str):
    LEAF = "token"
    user: str
    password: str


@dataclasses.dataclass(frozen=True)
class IntToken(LeafBase, int):
    LEAF = 7
    user: str
    pin: str = secret()


@dataclasses.dataclass(frozen=True)
class BytesToken(LeafBase, bytes):
    LEAF = b"token"
    extra: Any


@dataclasses.dataclass(frozen=True)
class StrHolder(LeafBase, str):
    LEAF = "holder"
    extra: Any


@dataclasses.dataclass
class DictRecord(dict):
    api_key: str
    user: str


@dataclasses.dataclass
class ListRecord(list):
    token: str
    user: str


@dataclasses.dataclass(frozen=True)
class TupleRecord(LeafBase, tuple):
    LEAF = ("t",)
    secret: str
    user: str


class Settings(enum.Enum):
    PROD = {"password": SECRET, "user": PUBLIC}
    CARD = (PUBLIC, Card(PUBLIC, SECRET))


class Level(str, enum.Enum):
    LOW = "low"


class TypedCredentials(NamedTuple):
    user: str
    password: str


class MySet(set):
    pass


class MyFrozenSet(frozenset):
    pass


class MyTuple(tuple):
    pass


class Vault:
    """A registered value type (register_value_type): recorded as its to_fields."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password


register_value_type(
    Vault,
    "test_redaction.Vault",
    lambda v: {"user": v.user, "password": v.password},
    lambda f: Vault(f["user"], f["password"]),
)


def nested(depth: int) -> Any:
    value: Any = {"password": SECRET, "note": PUBLIC}
    for _ in range(depth):
        value = {"level": value}
    return value


def nested_value(depth: int, leaf: Any) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = {"level": value}
    return value


def nested_lists_around(depth: int, leaf: Any) -> Any:
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_lists(depth: int) -> Any:
    value: Any = [SECRET]
    for _ in range(depth):
        value = [value]
    return value


def counter_with_secret() -> Any:
    counter: Any = collections.Counter()  # a Counter's values may be anything
    counter["password"] = SECRET
    counter["user"] = PUBLIC
    return counter


def defaultdict_with_secret() -> Any:
    d: collections.defaultdict[str, Any] = collections.defaultdict(list)
    d["api_key"] = SECRET
    d["user"] = PUBLIC
    return d


#: name -> (value holding SECRET, whether PUBLIC must still be in the file)
CASES: dict[str, tuple[Any, bool]] = {
    "dict": ({"password": SECRET, "user": PUBLIC}, True),
    "OrderedDict": (collections.OrderedDict(password=SECRET, user=PUBLIC), True),
    "defaultdict": (defaultdict_with_secret(), True),
    "dict subclass": (MyDict(token=SECRET, user=PUBLIC), True),
    "ChainMap": (collections.ChainMap({"api_key": SECRET}, {"user": PUBLIC}), True),
    "UserDict": (collections.UserDict(password=SECRET, user=PUBLIC), True),
    "MappingProxyType": (types.MappingProxyType({"secret": SECRET, "user": PUBLIC}), True),
    "custom Mapping": (ReadOnlyMap({"cvv": SECRET, "user": PUBLIC}), True),
    "list": ([{"password": SECRET}, PUBLIC], True),
    "list subclass": (MyList([{"password": SECRET}, PUBLIC]), True),
    "tuple": (({"password": SECRET}, PUBLIC), True),
    "namedtuple field": (Credentials(PUBLIC, SECRET), True),
    "namedtuple nested": (Row(PUBLIC, {"authorization": SECRET}), True),
    "deque": (collections.deque([{"passwd": SECRET}, PUBLIC]), True),
    "UserList": (collections.UserList([{"ssn": SECRET}, PUBLIC]), True),
    "custom Sequence": (Items({"card_number": SECRET}, PUBLIC), True),
    "set of secret() dataclasses": ({Card(PUBLIC, SECRET)}, True),
    "frozenset of secret() dataclasses": (frozenset({Card(PUBLIC, SECRET)}), True),
    "frozenset of name-matched dataclasses": (frozenset({Login(PUBLIC, SECRET)}), True),
    "custom Set": (Bag(Card(PUBLIC, SECRET)), True),
    "dict values view": ({"a": Card(PUBLIC, SECRET)}.values(), True),
    "dict keys view": ({Card(PUBLIC, SECRET): 1}.keys(), True),
    "dict items view": ({"password": SECRET, "user": PUBLIC}.items(), True),
    "tuple key of a dict": ({(PUBLIC, Card(PUBLIC, SECRET)): 1}, True),
    "dataclass secret()": (Card(PUBLIC, SECRET), True),
    "unregistered dataclass holding a dict": (Wrapper({"apikey": SECRET, "u": PUBLIC}), True),
    "nested 65 deep": (nested(65), True),
    "nested beyond the redaction depth": (nested(MAX_REDACT_DEPTH + 50), False),
    "lists nested 2000 deep": (nested_lists(2000), False),
    "mapping whose iteration fails": (Exploding(), False),
    "opaque object whose repr names a secret": (Model(user=PUBLIC, password=SECRET), False),
    "opaque object inside a dict": ({"user": PUBLIC, "model": Model(api_key=SECRET)}, True),
    # Its repr names the secret as a map key would (matched across camelCase and hyphens).
    "opaque object whose repr names a secret in camelCase": (
        Model(user=PUBLIC, cardNumber=SECRET),
        False,
    ),
    "opaque object whose repr names a secret header": (
        Model(headers={"X-Api-Key": SECRET}),
        False,
    ),
    "opaque object whose repr shows a secret under no name": (StripeKey(SECRET), False),
    "opaque object in a list": ([StripeKey(SECRET), PUBLIC], True),
    # Leaf types that are also dataclasses: the codec writes their fields (an OBJECT).
    "dataclass subclass of str": (StrToken(PUBLIC, SECRET), True),
    "dataclass subclass of int, secret()": (IntToken(PUBLIC, SECRET), True),
    "dataclass subclass of bytes holding a dict": (BytesToken({"token": SECRET}), False),
    "dataclass subclass of str holding a dict": (StrHolder({"cvv": SECRET, "u": PUBLIC}), True),
    "dataclass subclass of str in a list": ([StrToken(PUBLIC, SECRET)], True),
    "dataclass subclass of dict": (DictRecord(SECRET, PUBLIC), True),
    "dataclass subclass of list": (ListRecord(SECRET, PUBLIC), True),
    "dataclass subclass of tuple": (TupleRecord(SECRET, PUBLIC), True),
    # Enum members: the codec writes their value.
    "enum member whose value is a dict": (Settings.PROD, True),
    "enum member whose value holds a secret() dataclass": (Settings.CARD, True),
    "str enum member beside a secret": ({"level": Level.LOW, "password": SECRET}, False),
    "registered value type": (Vault(PUBLIC, SECRET), True),
    "typing.NamedTuple field": (TypedCredentials(PUBLIC, SECRET), True),
    "Counter": (counter_with_secret(), True),
    "UserDict in a list": ([collections.UserDict(token=SECRET, user=PUBLIC)], True),
    "set subclass": (MySet({Card(PUBLIC, SECRET)}), True),
    "frozenset subclass": (MyFrozenSet({Login(PUBLIC, SECRET)}), True),
    "tuple subclass": (MyTuple(({"password": SECRET}, PUBLIC)), True),
    "MappingProxyType in a tuple": (
        (types.MappingProxyType({"token": SECRET, "u": PUBLIC}),),
        True,
    ),
    # Around the depth the encoder's fast path (format._clean) looks before it walks.
    "secret key one level above the fast path's depth": (nested(_CLEAN_DEPTH - 1), True),
    "secret key at the fast path's depth": (nested(_CLEAN_DEPTH), True),
    "secret key one level below the fast path's depth": (nested(_CLEAN_DEPTH + 1), True),
    "secret dataclass at the fast path's depth": (
        nested_value(_CLEAN_DEPTH, Login(PUBLIC, SECRET)),
        True,
    ),
    "secret key in lists at the fast path's depth": (
        [PUBLIC, nested_lists_around(_CLEAN_DEPTH, {"password": SECRET})],
        True,
    ),
    "secret key in lists below the fast path's depth": (
        [PUBLIC, nested_lists_around(_CLEAN_DEPTH + 1, {"api_key": SECRET})],
        True,
    ),
    "bytes under a secret key": ({"password": SECRET.encode(), "user": PUBLIC}, True),
    "bytearray under a secret key": ({"token": bytearray(SECRET.encode()), "u": PUBLIC}, True),
    # Names are matched case-insensitively, anywhere in the name.
    "upper-case key": ({"PASSWORD": SECRET, "user": PUBLIC}, True),
    "mixed-case key": ({"ApiKey": SECRET, "user": PUBLIC}, True),
    "key containing a pattern": ({"db_password_hash": SECRET, "user": PUBLIC}, True),
    "hyphenated key": ({"X-Api-Key": SECRET, "user": PUBLIC}, True),
    "camelCase key": ({"cardNumber": SECRET, "user": PUBLIC}, True),
    # What is written is what was checked, whatever the container's own methods give later.
    "dict subclass whose items() hide a value": (
        MaskingDict(profile={"password": SECRET}, token=SECRET, user=PUBLIC),
        True,
    ),
    # Keys that are names without being exactly str.
    "str subclass key": ({HeaderName("Authorization"): SECRET, "user": PUBLIC}, True),
    "str enum member key": ({Field.PASSWORD: SECRET, "user": PUBLIC}, True),
    "bytes key": ({b"x-api-key": SECRET, "user": PUBLIC}, True),
    # (name, value) pairs: a 2-item tuple or list whose first item names a secret (see
    # Redactor). ASGI's scope["headers"] are bytes pairs in a list; WSGI's start_response,
    # http.client's getheaders() and requests give str pairs.
    "ASGI scope headers (bytes pairs)": (
        {
            "type": "http",
            "path": PUBLIC,
            "headers": [
                (b"host", PUBLIC.encode()),
                (b"authorization", b"Bearer " + SECRET.encode()),
                (b"cookie", b"session=" + SECRET.encode()),
            ],
        },
        True,
    ),
    "bytes header pairs in a list": ([(b"x-api-key", SECRET.encode()), (b"accept", PUBLIC)], True),
    "str header pairs in a list": (
        [("Authorization", "Bearer " + SECRET), ("Accept", PUBLIC)],
        True,
    ),
    "header pairs in a tuple": ((("Set-Cookie", SECRET), ("Accept", PUBLIC)), True),
    "header pairs as lists": ([["Cookie", SECRET], ["Accept", PUBLIC]], True),
    "header pairs nested in a dict": (
        {"request": {"headers": [("X-Auth-Token", SECRET)]}, "u": PUBLIC},
        True,
    ),
    "header pairs in a deque": (
        collections.deque([("authorization", SECRET), ("u", PUBLIC)]),
        True,
    ),
    "header pairs in a set": ({("token", SECRET), ("user", PUBLIC)}, True),
    "header pair with a str subclass name": ([(HeaderName("Authorization"), SECRET), PUBLIC], True),
    "header pair with a bytearray name": ([(bytearray(b"cookie"), SECRET), PUBLIC], True),
    "header pair in a custom Sequence": (Items(("api_key", SECRET), PUBLIC), True),
    "a lone header pair": (("Authorization", SECRET), False),
    "a lone header pair as a list": (["password", SECRET], False),
    "header pairs at the fast path's depth": (
        nested_value(_CLEAN_DEPTH, [(b"authorization", SECRET.encode()), (b"u", PUBLIC)]),
        True,
    ),
}

PLACES = ["input", "request", "result", "outcome"]


def record_to_file(
    place: str,
    value: Any,
    directory,
    redact: Any = Redactor(),  # noqa: B008 -- Redactor is immutable
    mode: str = prodture.ALWAYS,
) -> bytes:
    """One trace holding ``value`` at ``place``, recorded into a real DirectorySink: in
    on-failure mode (kept in memory, encoded once the handler fails) the handler fails after
    its effect."""

    def handler(arg):
        yield Carry(value if place == "request" else "x")
        if mode == prodture.ON_FAILURE:
            raise RuntimeError("fails after the effect")
        return value if place == "outcome" else "done"

    recorder = Recorder(DirectorySink(directory), redact=redact, mode=mode)
    performers: dict[type, Callable[[Any], Any]] = {
        Carry: lambda e: value if place == "result" else "ok"
    }
    outcome = Interpreter(performers, recorder=recorder).run(
        handler, value if place == "input" else None
    )
    assert outcome.ok == (mode != prodture.ON_FAILURE)
    close = getattr(recorder, "close", None)
    if close is not None:  # a recorder with a background writer: wait for the file
        close()
    (path,) = directory.glob("*.prodtrace")
    return path.read_bytes()


#: The REDACTED ext value's bytes, as both encoders write it.
MARKER = encode_value(REDACTED)
assert MARKER == b"\xc7\x00\x0a"

ENCODERS = ["msgspec", "msgpack"] if fastpack.available else ["msgpack"]


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("case", list(CASES))
def test_no_secret_reaches_the_file(case, place, encoder, tmp_path, monkeypatch):
    """Whatever container holds it, however deep, wherever in the trace, with the accelerator (msgspec) or msgpack only: the secret's bytes are not in the file, the file reads back complete, and the data beside the secret is kept."""
    monkeypatch.setattr(fastpack, "enabled", encoder == "msgspec")
    value, keeps_public = CASES[case]
    data = record_to_file(place, value, tmp_path)
    assert SECRET.encode() not in data
    # In its place: the redaction marker (or, for an opaque object, its withheld repr).
    assert MARKER in data or b"<repr withheld" in data
    trace = read_trace(data)
    assert trace.complete and len(trace.effects) == 1
    if keeps_public:
        assert PUBLIC.encode() in data


@pytest.mark.parametrize("place", ["input", "request", "result"])
@pytest.mark.parametrize("case", list(CASES))
def test_no_secret_reaches_the_file_in_on_failure_mode(case, place, tmp_path):
    """In on-failure mode values are kept (by reference when they cannot change, else encoded at once) and written when the handler fails: the same matrix, the same result."""
    value, keeps_public = CASES[case]
    data = record_to_file(place, value, tmp_path, mode=prodture.ON_FAILURE)
    assert SECRET.encode() not in data
    assert MARKER in data or b"<repr withheld" in data
    assert read_trace(data).complete
    if keeps_public:
        assert PUBLIC.encode() in data


def test_the_matrix_covers_the_probe():
    """At least the 22 container cases of the probe that broke redaction are covered, each in the input, a request, a result and the outcome."""
    assert len(CASES) >= 22 and len(PLACES) == 4


def test_too_deep_is_replaced_by_the_marker():
    """A value deeper than the redactor walks is replaced by REDACTED at that depth, not written as is."""
    scrubbed = Redactor().scrub(nested_lists(MAX_REDACT_DEPTH + 10))
    for _ in range(MAX_REDACT_DEPTH):
        (scrubbed,) = scrubbed
    assert scrubbed is REDACTED


def test_clean_values_are_returned_unchanged():
    """Values without secrets of the built-in containers and dataclasses come back as the same object (nothing is copied on the hot path); other containers come back as the plain container that was checked, equal to what the codec would make of them."""
    redactor = Redactor()
    for value in (
        {"user": "ada", "items": [1, 2, {"sku": "x"}]},
        [1, "a", (2, 3)],
        Wrapper({"u": [1, 2]}),
        frozenset({("a", 1)}),
    ):
        assert redactor.scrub(value) is value
    assert redactor.scrub(Row("ada", {"note": 1})) == ("ada", {"note": 1})
    assert type(redactor.scrub(MyDict(user="ada"))) is dict
    assert type(redactor.scrub(MyList([1]))) is list


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("place", PLACES)
def test_pairs_that_name_no_secret_are_kept(place, encoder, tmp_path, monkeypatch):
    """Only a pair whose first item names a secret loses its second item: ("status", "ok"), ("business_name", ...) (a pattern only across words joined without a separator), header pairs beside a secret one, and lists that are not pairs are written as they are; a secret pair keeps its name."""
    monkeypatch.setattr(fastpack, "enabled", encoder == "msgspec")
    value = {
        "status": ("status", "ok"),
        "business": ["business_name", PUBLIC],
        "headers": [(b"accept", b"text/html"), (b"authorization", SECRET.encode())],
        "words": ["token", "a", "b"],
        "numbers": (1, 2),
    }
    data = record_to_file(place, value, tmp_path)
    assert SECRET.encode() not in data
    trace = read_trace(data)
    recorded = {
        "input": lambda: trace.input,
        "request": lambda: trace.effects[0].request["payload"],
        "result": lambda: trace.effects[0].result,
        "outcome": lambda: trace.outcome.value,
    }[place]()
    assert recorded == {
        "status": ("status", "ok"),
        "business": ["business_name", PUBLIC],
        "headers": [(b"accept", b"text/html"), (b"authorization", REDACTED)],
        "words": ["token", "a", "b"],
        "numbers": (1, 2),
    }


def test_an_effect_with_two_fields_is_not_a_pair(tmp_path):
    """An effect's request values are separate values, not a (name, value) pair: an effect whose first field holds a secret-sounding word keeps its second field."""

    @dataclasses.dataclass(frozen=True)
    class Notify(Effect, name="test_redaction.Notify"):
        subject: str
        body: Any

    def handler(arg):
        yield Notify("password reset", {"to": PUBLIC})
        return "done"

    recorder = Recorder(DirectorySink(tmp_path))
    assert Interpreter({Notify: lambda e: "ok"}, recorder=recorder).run(handler, None).ok
    recorder.close()
    (path,) = tmp_path.glob("*.prodtrace")
    request = read_trace(path.read_bytes()).effects[0].request
    assert request == {"subject": "password reset", "body": {"to": PUBLIC}}


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("place", PLACES)
def test_opaque_reprs_are_kept_only_when_asked_and_clean(place, encoder, tmp_path, monkeypatch):
    """An object the codec cannot encode is recorded by its type name, its repr withheld (text its class made: nothing can check it); Redactor(opaque_repr=True) keeps a repr that names no secret, and still withholds one that does."""
    monkeypatch.setattr(fastpack, "enabled", encoder == "msgspec")
    value = [Model(user=PUBLIC), StripeKey(SECRET), Model(password=SECRET)]
    default = record_to_file(place, value, tmp_path / "default")
    assert SECRET.encode() not in default and PUBLIC.encode() not in default
    assert b"StripeKey" in default and b"Model" in default  # the type names are kept
    asked = record_to_file(place, value, tmp_path / "asked", redact=Redactor(opaque_repr=True))
    assert PUBLIC.encode() in asked  # Model(user='visible-data')
    assert b"it matches a redaction pattern" in asked  # Model(password=...)
    # Asked for, a repr is kept as the class made it: a secret under no name is the user's.
    assert SECRET.encode() in asked


@dataclasses.dataclass(frozen=True)
class Connection:
    """A dataclass the encoder can carry, but whose repr shows state that is not a field."""

    host: str

    def __repr__(self) -> str:
        return f"Connection({self.host!r}, dsn='postgres://app:{SECRET}@db')"


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("place", PLACES)
def test_a_value_msgpack_refuses_keeps_no_repr_of_its_own_class(
    place, encoder, tmp_path, monkeypatch
):
    """A value of an encodable class that msgpack refuses all the same (a field holding a lone surrogate) becomes OPAQUE as a whole: with a redactor its repr, made by its class from state the redactor never saw, is withheld too; the digits of an int beyond 64 bits, data like any int, are kept."""
    monkeypatch.setattr(fastpack, "enabled", encoder == "msgspec")
    value = {"conn": Connection("db\udc80"), "big": 2**70, "user": PUBLIC}
    data = record_to_file(place, value, tmp_path)
    assert SECRET.encode() not in data and PUBLIC.encode() in data
    assert str(2**70).encode() in data and b"<repr withheld" in data
    assert read_trace(data).complete


def test_redact_list_extends_the_defaults(tmp_path):
    """Recorder(redact=[...]) adds patterns to the defaults (password, api_key, cvv... stay redacted); Redactor([...], defaults=False) replaces them."""
    value = {
        "password": SECRET,
        "api_key": SECRET,
        "cvv": SECRET,
        "pin_code": SECRET,
        "user": PUBLIC,
    }
    extended = record_to_file("input", value, tmp_path / "a", redact=["pin_code"])
    assert SECRET.encode() not in extended and PUBLIC.encode() in extended
    assert set(Redactor(["pin_code"]).patterns) >= set(DEFAULT_SECRET_PATTERNS)
    only = record_to_file(
        "input", value, tmp_path / "b", redact=Redactor(["pin_code"], defaults=False)
    )
    trace = read_trace(only)
    assert trace.input["pin_code"] is REDACTED and trace.input["password"] == SECRET


def test_a_single_string_is_refused_as_patterns():
    """Redactor("password") is refused: a string is a sequence of one-letter patterns."""
    with pytest.raises(TypeError, match=r"write \['password'\]"):
        Redactor("password")


@dataclasses.dataclass(frozen=True)
class Signup(Effect, name="test_redaction.Signup"):
    user: str
    pin: str = secret()
    api_key: str = ""
    extra: Any = None


@dataclasses.dataclass(frozen=True)
class Profile:
    user: str
    extra: Any


def test_effect_secret_fields_and_a_once_clean_result_type_stay_redacted(tmp_path):
    """An effect's secret() and name-matched fields are redacted by its compiled request getter while an Any field holding a secret dict is still walked; and a result type first recorded clean (so its type is known to hold no secret field) is walked again when a later instance holds a secret in a field typed Any."""

    def handler(arg):
        yield Signup(PUBLIC, SECRET, SECRET, {"password": SECRET, "user": PUBLIC})
        yield Signup(PUBLIC, SECRET, SECRET, None)
        yield Carry("clean")
        yield Carry("dirty")
        return "done"

    results = {"clean": Profile(PUBLIC, "plain"), "dirty": Profile(PUBLIC, {"token": SECRET})}
    recorder = Recorder(DirectorySink(tmp_path))
    performers: dict[type, Callable[[Any], Any]] = {
        Signup: lambda e: "ok",
        Carry: lambda e: results[e.payload],
    }
    assert Interpreter(performers, recorder=recorder).run(handler, None).ok
    recorder.close()
    (path,) = tmp_path.glob("*.prodtrace")
    data = path.read_bytes()
    assert SECRET.encode() not in data and PUBLIC.encode() in data
    effects = read_trace(data).effects
    assert effects[0].request["pin"] is REDACTED and effects[0].request["api_key"] is REDACTED
    assert effects[0].request["extra"] == {"password": REDACTED, "user": PUBLIC}
    assert effects[3].result.fields["extra"] == {"token": REDACTED}


def test_secret_names_match_across_case_hyphens_and_camel_case():
    """A name matches a pattern as written (case-insensitively, anywhere in it) or with its words joined by underscores: HTTP header and camelCase spellings of the defaults are secret, and words that only run into a pattern once joined without a separator are not."""
    redactor = Redactor()
    for name in (
        "PASSWORD",
        "db_password_hash",
        "X-Api-Key",
        "apiKey",
        "cardNumber",
        "x.auth.token",
    ):
        assert redactor.is_secret_name(name), name
    for name in ("business_name", "business-name", "user", "card", "key"):
        assert not redactor.is_secret_name(name), name
    assert Redactor(["pin_code"]).is_secret_name("pinCode")


@pytest.mark.parametrize(
    "name",
    [
        "Set-Cookie",
        "cookies",
        "privateKey",
        "PRIVATE-KEY",
        "pwd",
        "passphrase",
        "credentials",
        "cardnumber",
        "aws_credential_id",
    ],
)
def test_the_defaults_cover_cookies_keys_and_credentials(name, tmp_path):
    """Header and config spellings of session cookies, private keys, short password names and
    credentials are secret by default: a recorded request dict under such a key has only the
    marker in the file."""
    data = record_to_file("input", {name: SECRET, "path": PUBLIC}, tmp_path)
    assert SECRET.encode() not in data and MARKER in data and PUBLIC.encode() in data


class LoginFailed(Exception):
    pass


@dataclasses.dataclass
class SignupRejected(Exception):
    user: str
    password: str


def test_exceptions_are_recorded_unredacted_as_documented(tmp_path):
    """protocol/trace-format.md §6: an error's args, message and attributes are written as they are (a dataclass exception's fields are its attributes), so what the docs tell users to keep out of exceptions really is in the file; a secret key beside an exception in a value is still redacted."""
    beside = {"error": LoginFailed(PUBLIC), "password": SECRET}
    data = record_to_file("result", beside, tmp_path / "beside")
    assert SECRET.encode() not in data and MARKER in data and PUBLIC.encode() in data

    def handler(arg):
        yield Carry("x")
        raise SignupRejected(PUBLIC, SECRET)

    recorder = Recorder(DirectorySink(tmp_path / "failed"))
    outcome = Interpreter({Carry: lambda e: "ok"}, recorder=recorder).run(handler, None)
    assert not outcome.ok
    recorder.close()
    (path,) = (tmp_path / "failed").glob("*.prodtrace")
    data = path.read_bytes()
    assert SECRET.encode() in data  # documented: not redacted
    assert read_trace(data).outcome is not None


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize(
    ("make", "checked"),
    [(Changing, PUBLIC), (lambda: MaskingDict(profile={"note": SECRET}), "masked")],
)
def test_what_is_written_is_what_was_checked(make, checked, place, tmp_path):
    """A container that looks clean to the redactor is written as the snapshot it checked: not iterated again by the encoder (a list subclass whose items change after the first look), not copied by another method than the one it was checked with (a dict subclass whose items() differ from what dict() copies)."""
    data = record_to_file(place, make(), tmp_path)
    assert SECRET.encode() not in data and checked.encode() in data


def test_header_meta_is_redacted(tmp_path):
    """The header's free-form meta (the recorder's, and a run's own over it) is redacted like any value: a secret-named key's value is not in the file, the rest is."""

    def handler(arg):
        yield Carry("x")
        return "done"

    recorder = Recorder(DirectorySink(tmp_path), meta={"service": PUBLIC, "api_key": SECRET})
    performers: dict[type, Callable[[Any], Any]] = {Carry: lambda e: "ok"}
    run_meta = {"auth": {"token": SECRET}, "login": Login(PUBLIC, SECRET)}
    assert Interpreter(performers, recorder=recorder).run(handler, None, meta=run_meta).ok
    recorder.close()
    (path,) = tmp_path.glob("*.prodtrace")
    data = path.read_bytes()
    assert SECRET.encode() not in data and PUBLIC.encode() in data and MARKER in data
    meta = read_trace(data).header.meta
    assert meta["api_key"] is REDACTED and meta["auth"] == {"token": REDACTED}


def test_a_non_effect_holding_a_secret_is_named_by_its_type(tmp_path):
    """Yielding a value that is not an effect fails the handler with prodture's own TypeError, recorded unredacted like every error: it names the value's type, not its contents, so a secret in that value stays out of the file."""

    def handler(arg):
        yield Carry("x")
        yield {"password": SECRET}

    recorder = Recorder(DirectorySink(tmp_path))
    performers: dict[type, Callable[[Any], Any]] = {Carry: lambda e: "ok"}
    outcome = Interpreter(performers, recorder=recorder).run(handler, None)
    recorder.close()
    assert not outcome.ok and "a builtins.dict value" in str(outcome.error)
    (path,) = tmp_path.glob("*.prodtrace")
    assert SECRET.encode() not in path.read_bytes()
