"""Effect type names: what a trace calls an effect, whatever way the class was declared.

``@dataclass(slots=True)`` builds a new class from the decorated one; the name given with the
class keyword must survive that, and traces written while it did not (``prodture.effects.Now``)
must still read and replay.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import prodture
import prodture.effects as effects_module
from prodture import Effect, Interpreter, MemorySink, Recorder, Replayer, read_trace
from prodture.effects import registry

BUILT_IN_EFFECTS = [
    getattr(prodture, name)
    for name in effects_module.__all__
    if isinstance(getattr(effects_module, name), type)
    and issubclass(getattr(effects_module, name), Effect)
    and getattr(effects_module, name) is not Effect
]


@dataclasses.dataclass(frozen=True, slots=True)
class Lookup(Effect, name="shop.Lookup"):
    key: str


@dataclasses.dataclass(frozen=True, slots=True)
class Unnamed(Effect):
    key: str


@prodture.register(name="test_effect_names.Renamed")
@dataclasses.dataclass(frozen=True, slots=True)
class Renamed(Effect):
    key: str


def test_every_built_in_effect_is_registered_and_recorded_under_its_public_name():
    assert len(BUILT_IN_EFFECTS) >= 8  # Now … GetEnv, All
    for cls in BUILT_IN_EFFECTS:
        public = f"prodture.{cls.__name__}"
        assert cls is getattr(prodture, cls.__name__)
        assert cls.effect_name == public
        assert registry.name_of(cls) == public
        assert registry.lookup(public) is cls
    assert "__slots__" in prodture.Now.__dict__  # still the slots class, not a copy without


def test_every_effect_prodture_ships_is_recorded_under_the_name_it_declares():
    """prodture.http, prodture.sql and the event-sourcing effects too: the registry and the
    trace writer (effect_name) agree on one name."""
    import prodture.eventsourcing
    import prodture.http
    import prodture.sql  # noqa: F401 -- imported for their effect classes

    shipped = [
        cls
        for name in registry.names()
        if isinstance(cls := registry.lookup(name), type)
        and issubclass(cls, Effect)
        and cls.__module__.startswith("prodture.")
    ]
    assert {"prodture.http.Request", "prodture.sql.Query", "prodture.LoadStream"} <= {
        c.effect_name for c in shipped
    }
    for cls in shipped:
        assert registry.name_of(cls) == cls.effect_name, cls
        assert registry.lookup(cls.effect_name) is cls


def test_a_users_slots_dataclass_effect_keeps_the_name_it_was_declared_with():
    assert Lookup.effect_name == registry.name_of(Lookup) == "shop.Lookup"
    assert registry.lookup("shop.Lookup") is Lookup
    assert Unnamed.effect_name == registry.name_of(Unnamed) == f"{__name__}.Unnamed"
    assert Renamed.effect_name == registry.name_of(Renamed) == "test_effect_names.Renamed"
    assert registry.lookup("test_effect_names.Renamed") is Renamed


def handler(key):
    now = yield prodture.Now()
    ident = yield prodture.NewUUID()
    both = yield prodture.gather(Lookup(key), Lookup(key + "!"))
    renamed = yield Renamed(key)
    return {"year": now.year, "uuid": str(ident), "both": both, "renamed": renamed}


PERFORMERS: dict[type, Callable[[Any], Any]] = {
    Lookup: lambda e: e.key.upper(),
    Renamed: lambda e: e.key[::-1],
}


def record_bytes() -> bytes:
    sink = MemorySink()
    outcome = Interpreter(PERFORMERS, recorder=Recorder(sink)).run(handler, "k")
    assert outcome.ok, outcome
    return sink.traces[0]


def test_a_trace_records_the_public_names():
    trace = read_trace(record_bytes())
    assert [e.type for e in trace.effects] == [
        "prodture.Now",
        "prodture.NewUUID",
        "prodture.All",
        "test_effect_names.Renamed",
    ]
    assert trace.effects[2].request["effects"] == (Lookup("k"), Lookup("k!"))


@pytest.fixture
def old_names(monkeypatch):
    """Record as the writer did before the fix: a slots effect under <module>.<qualname>."""
    for cls in (prodture.Now, prodture.NewUUID, Lookup):
        monkeypatch.setattr(cls, "effect_name", f"{cls.__module__}.{cls.__qualname__}")
    # (Changed in place, as the registry does: compiled encoders hold its dict's bound get.)
    for cls in (prodture.Now, prodture.NewUUID, Lookup):
        monkeypatch.setitem(registry._by_type, cls, cls.effect_name)


def test_a_trace_naming_the_old_module_names_reads_and_replays(old_names, monkeypatch):
    data = record_bytes()
    assert (
        b"prodture.effects.Now" in data
        and b"test_effect_names.Lookup" in data
        and b"shop.Lookup" not in data
    )
    monkeypatch.undo()  # back to today's names; the file keeps the old ones

    trace = read_trace(data)
    assert [e.type for e in trace.effects][:2] == ["prodture.Now", "prodture.NewUUID"]
    assert trace.effects[2].request["effects"] == (Lookup("k"), Lookup("k!"))  # OBJECT by old name
    assert isinstance(trace.effects[1].result, uuid.UUID)
    result = Replayer(trace, handler).run()
    assert result.reproduced and result.divergence is None, result
    assert result.effects_replayed == 4


def test_a_registered_name_is_never_shadowed_by_an_older_alias():
    # "prodture.effects.Now" is only an alias: registering it for real takes it over.
    assert registry.canonical("prodture.effects.Now") == "prodture.Now"
    assert registry.canonical("prodture.Now") == "prodture.Now"
    assert registry.canonical("nobody.Knows") == "nobody.Knows"
    assert registry.lookup("nobody.Knows") is None
