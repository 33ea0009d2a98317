"""Redaction fails closed: a secret in any container type, at any depth, in any place of a trace,
never reaches the file. Every case greps the raw bytes of the trace file a real DirectorySink wrote."""

from __future__ import annotations

import collections
import dataclasses
import types
from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

import pytest

import prodture
from prodture import DirectorySink, Effect, Interpreter, Recorder, secret
from prodture.trace import REDACTED, Redactor, read_trace
from prodture.trace.codec import DEFAULT_SECRET_PATTERNS, MAX_REDACT_DEPTH

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


class Model:
    """Not a dataclass (a pydantic-like model): recorded as an opaque repr."""

    def __init__(self, **fields: Any) -> None:
        self.fields = fields

    def __repr__(self) -> str:
        return "Model(" + ", ".join(f"{k}={v!r}" for k, v in self.fields.items()) + ")"


class MyList(list):
    pass


class MyDict(dict):
    pass


def nested(depth: int) -> Any:
    value: Any = {"password": SECRET, "note": PUBLIC}
    for _ in range(depth):
        value = {"level": value}
    return value


def nested_lists(depth: int) -> Any:
    value: Any = [SECRET]
    for _ in range(depth):
        value = [value]
    return value


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
    "tuple key of a dict": ({(PUBLIC, Card(PUBLIC, SECRET)): 1}, True),
    "dataclass secret()": (Card(PUBLIC, SECRET), True),
    "unregistered dataclass holding a dict": (Wrapper({"apikey": SECRET, "u": PUBLIC}), True),
    "nested 65 deep": (nested(65), True),
    "nested beyond the redaction depth": (nested(MAX_REDACT_DEPTH + 50), False),
    "lists nested 2000 deep": (nested_lists(2000), False),
    "mapping whose iteration fails": (Exploding(), False),
    "opaque object whose repr names a secret": (Model(user=PUBLIC, password=SECRET), False),
    "opaque object inside a dict": ({"user": PUBLIC, "model": Model(api_key=SECRET)}, True),
}

PLACES = ["input", "request", "result", "outcome"]


def record_to_file(place: str, value: Any, directory, redact: Any = Redactor()) -> bytes:  # noqa: B008 -- Redactor is immutable
    def handler(arg):
        yield Carry(value if place == "request" else "x")
        return value if place == "outcome" else "done"

    recorder = Recorder(DirectorySink(directory), redact=redact)
    performers: dict[type, Callable[[Any], Any]] = {
        Carry: lambda e: value if place == "result" else "ok"
    }
    outcome = Interpreter(performers, recorder=recorder).run(
        handler, value if place == "input" else None
    )
    assert outcome.ok
    close = getattr(recorder, "close", None)
    if close is not None:  # a recorder with a background writer: wait for the file
        close()
    (path,) = directory.glob("*.prodtrace")
    return path.read_bytes()


@pytest.mark.parametrize("place", PLACES)
@pytest.mark.parametrize("case", list(CASES))
def test_no_secret_reaches_the_file(case, place, tmp_path):
    """Whatever container holds it, however deep, wherever in the trace: the secret's bytes are not in the file, the file reads back complete, and the data beside the secret is kept."""
    value, keeps_public = CASES[case]
    data = record_to_file(place, value, tmp_path)
    assert SECRET.encode() not in data
    trace = read_trace(data)
    assert trace.complete and len(trace.effects) == 1
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
    """Values without secrets come back as the same object (nothing is copied on the hot path)."""
    redactor = Redactor()
    for value in (
        {"user": "ada", "items": [1, 2, {"sku": "x"}]},
        [1, "a", (2, 3)],
        Row("ada", {"note": 1}),
        Wrapper({"u": [1, 2]}),
        frozenset({("a", 1)}),
    ):
        assert redactor.scrub(value) is value


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
