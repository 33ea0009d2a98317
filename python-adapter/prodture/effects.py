"""Effect values: descriptions of side effects that a handler asks the interpreter to perform.

A handler never performs I/O; it yields (or awaits, or returns in a ``Command``) an effect value
and receives the result. Every effect type has a registered name, which is what a trace stores, so
a trace never names a Python import path.

This module imports nothing else of prodture's: it is the bottom of the dependency graph.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import threading
from collections.abc import Callable, Generator
from typing import Any, ClassVar

__all__ = [
    "Effect",
    "Command",
    "Now",
    "MonotonicNow",
    "RandomFloat",
    "RandomInt",
    "NewUUID",
    "Sleep",
    "GetEnv",
    "All",
    "gather",
    "TypeRegistry",
    "registry",
    "register",
    "secret",
]


class _WatchedNames(dict):  # type: ignore[type-arg]
    """The registry's class -> name table: a dict (its ``get`` is dict's own, bound by compiled
    trace encoders) that calls each of ``watchers`` after any change, however made (``add``, a
    test's ``monkeypatch.setitem``...): code compiled with a class's name baked in refreshes it
    (see ``prodture.trace.codec``)."""

    __slots__ = ("watchers",)

    def __init__(self) -> None:
        super().__init__()
        self.watchers: list[Callable[[], None]] = []

    def _changed(self) -> None:
        for watcher in self.watchers:
            watcher()

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: Any) -> None:
        super().__delitem__(key)
        self._changed()

    def __ior__(self, other: Any) -> Any:  # type: ignore[misc]
        super().__ior__(other)
        self._changed()
        return self

    def pop(self, *args: Any) -> Any:
        try:
            return super().pop(*args)
        finally:
            self._changed()

    def popitem(self) -> Any:
        try:
            return super().popitem()
        finally:
            self._changed()

    def setdefault(self, *args: Any) -> Any:
        try:
            return super().setdefault(*args)
        finally:
            self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        try:
            super().update(*args, **kwargs)
        finally:
            self._changed()

    def clear(self) -> None:
        super().clear()
        self._changed()


class TypeRegistry:
    """Names <-> classes for everything a trace may reconstruct.

    Decoding a trace only ever instantiates classes found here, so a hostile trace cannot make the
    decoder import a module or call an arbitrary callable: an unknown name stays an inert
    placeholder value.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, type] = {}
        #: Changed in place only, never replaced: compiled trace encoders bind its ``get``, and
        #: some bake a class's name in (refreshed by its watchers).
        self._by_type: dict[type, str] = _WatchedNames()
        self._aliases: dict[str, type] = {}
        self._lock = threading.Lock()

    def add(self, cls: type, name: str | None = None) -> type:
        name = name or _origin(cls)
        with self._lock:
            existing = self._by_name.get(name)
            if existing is not None and existing is not cls and _origin(existing) != _origin(cls):
                raise ValueError(
                    f"type name {name!r} is already registered for {_origin(existing)}; "
                    f"give {_origin(cls)} another name"
                )
            if existing is not None and existing is not cls:
                # The same class defined again (a ``slots=True`` dataclass is a new class, a
                # reloaded module): the newest one is the live one.
                self._by_type.pop(existing, None)
            self._by_name[name] = cls
            self._by_type[cls] = name
        return cls

    def add_alias(self, alias: str, cls: type) -> None:
        """Let ``alias`` (a name older traces carry) resolve to ``cls``; ``cls`` keeps writing its
        registered name. A name registered in its own right is never shadowed by an alias."""
        with self._lock:
            if alias != self._by_type.get(cls) and alias not in self._by_name:
                self._aliases[alias] = cls

    def name_of(self, cls: type) -> str | None:
        return self._by_type.get(cls)

    def lookup(self, name: str) -> type | None:
        return self._by_name.get(name) or self._aliases.get(name)

    def canonical(self, name: str) -> str:
        """The name a trace's ``name`` stands for today: an alias's registered name, else
        ``name`` itself (also when it names nothing registered)."""
        cls = self._aliases.get(name) if name not in self._by_name else None
        return (cls is not None and self._by_type.get(cls)) or name

    def names(self) -> list[str]:
        return sorted(self._by_name)


def _origin(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


#: The process-wide registry of effect, value and exception types a trace may name.
registry = TypeRegistry()


def register(cls: type | None = None, *, name: str | None = None) -> Any:
    """Register a dataclass, enum or exception so traces can carry it by ``name``.

    Usable bare (``@register``) or with a stable name (``@register(name="shop.Cart")``); a stable
    name keeps old traces readable when the class moves to another module.

    A class the trace codec cannot carry (neither a dataclass, nor an ``Enum``, nor an exception,
    e.g. a pydantic model or a plain class) is refused with a ``TypeError``: registering it would
    change nothing, and its values would be recorded as opaque reprs.
    """

    def apply(c: type) -> type:
        if not isinstance(c, type):
            raise TypeError(
                f"@prodture.register applies to a class, not to {c!r}; "
                "decorate a dataclass, an Enum or an exception class"
            )
        if not (dataclasses.is_dataclass(c) or issubclass(c, (enum.Enum, BaseException))):
            raise TypeError(
                f"@prodture.register cannot register {_origin(c)}: traces carry dataclasses, "
                "Enums and exceptions only, so its values would be recorded as opaque reprs; "
                "make it a @dataclasses.dataclass (put @prodture.register above @dataclass), "
                "or convert it to one (or to plain data) before it reaches an effect or a trace"
            )
        if issubclass(c, Effect):
            # An effect is recorded under ``effect_name``: registering it under a name sets it.
            previous = c.effect_name
            c.effect_name = name or previous
            registry.add(c, c.effect_name)
            registry.add_alias(previous, c)
            return c
        return registry.add(c, name)

    return apply(cls) if cls is not None else apply


def secret(**kwargs: Any) -> Any:
    """A dataclass field whose value is redacted before it reaches any trace."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata["prodture.secret"] = True
    return dataclasses.field(metadata=metadata, **kwargs)


class Effect:
    """Base class of effect values.

    Subclasses are frozen dataclasses; each is registered under ``name`` (a class keyword) or
    ``<module>.<qualname>``. Awaiting an effect inside an ``async def`` handler hands it to the
    interpreter, exactly like ``yield`` in a generator handler.
    """

    __slots__ = ()
    effect_name: ClassVar[str]

    def __init_subclass__(cls, name: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # ``@dataclass(slots=True)`` builds a new class from the decorated one's namespace, and
        # the class keyword ``name=`` is not passed again: the ``effect_name`` the namespace
        # already holds is the name the class was declared with, so it is kept.
        declared = cls.__dict__.get("effect_name")
        cls.effect_name = name or declared or _origin(cls)
        registry.add(cls, cls.effect_name)
        if name is None and declared is not None and declared != _origin(cls):
            # Before that name was kept, such a class was recorded as <module>.<qualname>
            # (``prodture.effects.Now``): traces written then still resolve.
            registry.add_alias(_origin(cls), cls)

    def __await__(self) -> Generator[Effect, Any, Any]:
        result = yield self
        return result


@dataclasses.dataclass(frozen=True, slots=True)
class Command:
    """The seed-000 form: a pure function returns ``Command(effect, then)``.

    The interpreter performs ``effect`` and calls ``then(result)``, which returns the next
    ``Command`` or a plain final value. ``on_error(exc)`` (optional) handles a failed effect the
    same way; without it the error fails the handler.
    """

    effect: Effect
    then: Callable[[Any], Any] | None = None
    on_error: Callable[[BaseException], Any] | None = None
    #: (file, line, function) where the command was built: the effect's call site in traces.
    site: tuple[str, int, str] | None = dataclasses.field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.site is None:
            frame = sys._getframe(2)  # 0: __post_init__, 1: __init__, 2: the pure function
            code = frame.f_code
            object.__setattr__(self, "site", (code.co_filename, frame.f_lineno, code.co_name))


# Built-in effects: every usual source of non-determinism is one, so replay is deterministic.


@dataclasses.dataclass(frozen=True, slots=True)
class Now(Effect, name="prodture.Now"):
    """The current wall-clock time as an aware ``datetime`` (UTC)."""


@dataclasses.dataclass(frozen=True, slots=True)
class MonotonicNow(Effect, name="prodture.MonotonicNow"):
    """A monotonic clock reading in seconds (``time.monotonic()``)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RandomFloat(Effect, name="prodture.RandomFloat"):
    """A float in [0, 1)."""


@dataclasses.dataclass(frozen=True, slots=True)
class RandomInt(Effect, name="prodture.RandomInt"):
    """An int in [low, high], both ends included."""

    low: int
    high: int


@dataclasses.dataclass(frozen=True, slots=True)
class NewUUID(Effect, name="prodture.NewUUID"):
    """A fresh random ``uuid.UUID`` (version 4)."""


@dataclasses.dataclass(frozen=True, slots=True)
class Sleep(Effect, name="prodture.Sleep"):
    """Sleep for ``seconds``; replay returns at once."""

    seconds: float


@dataclasses.dataclass(frozen=True, slots=True)
class GetEnv(Effect, name="prodture.GetEnv"):
    """Read an environment variable (``default`` when unset)."""

    name: str
    default: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class All(Effect, name="prodture.All"):
    """Perform ``effects`` at once (the role of ``asyncio.gather``); the result is the list of
    their results, in order. If any fails, the first failing one's error (in order) is raised,
    after all have finished. Recorded and replayed as one effect, so replay is deterministic."""

    effects: tuple[Effect, ...]


def gather(*effects: Effect) -> All:
    """``a, b = await prodture.gather(Lookup("a"), Lookup("b"))``: the effects run concurrently
    (under ``run_async``; one after another under ``run``)."""
    for effect in effects:
        if not isinstance(effect, Effect):
            raise TypeError(
                f"prodture.gather takes effects, got {type(effect).__name__}; "
                "pass the effect values themselves (Lookup('a')), not coroutines"
            )
    return All(tuple(effects))
