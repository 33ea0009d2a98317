"""Values <-> msgpack, safely.

Plain msgpack types travel as themselves (``bytes`` as bin). Everything else is a documented ext
type (see ``protocol/trace-format.md``). Decoding never imports a module or calls anything a trace
names: a dataclass, enum or exception is rebuilt only when its name resolves through the
:data:`~prodture.effects.registry` (or an allowed module that is already imported); otherwise it
becomes an inert :class:`UnknownValue` / :class:`RecordedError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import enum
import inspect
import itertools
import keyword
import logging
import operator
import os
import re
import sys
import threading
import uuid
import weakref
from collections.abc import (
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    MutableSet,
    Sequence,
    ValuesView,
)
from collections.abc import Set as AbstractSet
from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import msgpack

from ..effects import registry
from ..text import clip, short_repr
from . import fastpack

__all__ = [
    "TraceFormatError",
    "UnknownValue",
    "RecordedError",
    "Redacted",
    "REDACTED",
    "Opaque",
    "Redactor",
    "encode_value",
    "decode_value",
    "type_name",
    "ALLOWED_MODULES",
    "register_value_type",
    "opaque_of",
    "opaque_paths",
    "ExtCode",
]


class TraceFormatError(ValueError):
    """The one error a reader raises for any malformed, hostile or unsupported trace.

    ``str(error)`` is a single line naming the problem and what to do about it.
    """


class ExtCode:
    DATETIME = 1
    DATE = 2
    DECIMAL = 3
    UUID = 4
    OBJECT = 5  # registered dataclass / enum: [name, {field: value}] or [name, value]
    ERROR = 6  # exception: [name, [args], {attrs}, message]
    TUPLE = 7
    SET = 8
    FROZENSET = 9
    REDACTED = 10
    OPAQUE = 11  # a value the encoder could not represent: [type name, repr]
    TIMEDELTA = 12  # [days, seconds, microseconds]
    TIME = 13


@dataclasses.dataclass(frozen=True)
class UnknownValue:
    """A recorded dataclass/enum whose type is not registered here: its name and fields, inert."""

    type_name: str
    fields: Any

    def __hash__(self) -> int:
        # Its fields are a dict (unhashable), yet the value it stands for may have been in a
        # set (a frozen dataclass): equal values have equal type names.
        return hash(self.type_name)

    def __repr__(self) -> str:
        if isinstance(self.fields, dict):
            inner = ", ".join(f"{k}={v!r}" for k, v in self.fields.items())
            return f"{self.type_name.rsplit('.', 1)[-1]}({inner})"
        return f"{self.type_name}({self.fields!r})"


class RecordedError(Exception):
    """A recorded exception whose type is not registered: raised in replay in its place."""

    def __init__(self, type_name: str, message: str, args: tuple[Any, ...] = ()) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.recorded_args = args

    def __repr__(self) -> str:
        return f"{self.type_name.rsplit('.', 1)[-1]}({self.message!r})"


class Redacted:
    """Stands for a value removed at record time. Replay treats it as matching anything."""

    _instance: Redacted | None = None

    def __new__(cls) -> Redacted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<redacted>"

    def __reduce__(self) -> Any:
        return (Redacted, ())


REDACTED = Redacted()


@dataclasses.dataclass(frozen=True)
class Opaque:
    """A value that could not be encoded: its type and ``repr`` were recorded instead."""

    type_name: str
    repr: str

    def __repr__(self) -> str:
        # Marked as what it is: it looks like the value, but it is only the value's repr.
        return f"<opaque {self.type_name.rsplit('.', 1)[-1]}: {self.repr}>"

    def _unusable(self, what: str) -> str:
        short = self.type_name.rsplit(".", 1)[-1]
        return (
            f"{what}: this {short} value was recorded as an opaque repr ({clip(self.repr, 60)}), "
            f"not as data, because the recorder could not encode {self.type_name}; make {short} "
            "a dataclass registered with @prodture.register (or record plain data) and record again"
        )

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes the placeholder does not have: the recorded object's.
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(self._unusable(f"no attribute {name!r}"))

    def __getitem__(self, key: Any) -> Any:
        raise TypeError(self._unusable(f"cannot index it with {key!r}"))

    def __iter__(self) -> Iterator[Any]:
        raise TypeError(self._unusable("cannot iterate it"))


def opaque_paths(value: Any, where: str, limit: int = 20) -> list[str]:
    """Where ``value`` (a decoded trace value) holds :class:`Opaque` placeholders, as readable
    paths (``input['event']``, ``effect #2 result.items[0]``) with the recorded type names."""
    found: list[str] = []
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack and len(found) < limit:
        item, path, depth = stack.pop()
        if isinstance(item, Opaque):
            found.append(f"{path} ({item.type_name})")
        elif depth > MAX_DEPTH or isinstance(item, (str, bytes, int, float)):
            continue
        elif isinstance(item, dict):
            stack.extend((v, f"{path}[{k!r}]", depth + 1) for k, v in item.items())
        elif isinstance(item, (list, tuple)):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(item))
        elif isinstance(item, (set, frozenset)):
            stack.extend((v, f"{path}{{…}}", depth + 1) for v in item)
        elif isinstance(item, UnknownValue):
            stack.append((item.fields, path, depth + 1))
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            stack.extend(
                (getattr(item, f.name, None), f"{path}.{f.name}", depth + 1)
                for f in dataclasses.fields(item)
            )
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Type names


def type_name(cls: type) -> str:
    return registry.name_of(cls) or f"{cls.__module__}.{cls.__qualname__}"


#: The modules (and their submodules), already imported, whose dataclasses, enums and exceptions
#: the decode in progress may resolve by name: how an application's own types decode without
#: registering each. Set by the caller for its own decoding only (``TraceReader(...,
#: allowed_modules=)``, ``decode_value(..., allowed_modules=)``); nothing is ever imported.
ALLOWED_MODULES: ContextVar[frozenset[str]] = ContextVar(
    "prodture_allowed_modules", default=frozenset()
)


_BUILTIN_ERRORS = [
    ArithmeticError,
    AssertionError,
    AttributeError,
    BufferError,
    ConnectionAbortedError,
    ConnectionError,
    ConnectionRefusedError,
    ConnectionResetError,
    EOFError,
    Exception,
    FileExistsError,
    FileNotFoundError,
    IndexError,
    InterruptedError,
    IsADirectoryError,
    KeyError,
    LookupError,
    MemoryError,
    NotADirectoryError,
    NotImplementedError,
    OSError,
    OverflowError,
    PermissionError,
    RecursionError,
    RuntimeError,
    TimeoutError,
    TypeError,
    UnicodeError,
    ValueError,
    ZeroDivisionError,
    BrokenPipeError,
    ProcessLookupError,
]
for _cls in _BUILTIN_ERRORS:
    registry.add(_cls, f"builtins.{_cls.__name__}")


def _resolve(name: str) -> type | None:
    cls = registry.lookup(name)
    allowed = ALLOWED_MODULES.get()
    if cls is not None or not allowed:
        return cls
    # "pkg.mod.Outer.Inner": find the longest imported, allowed module prefix.
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        if not any(module_name == m or module_name.startswith(m + ".") for m in allowed):
            continue
        obj: Any = sys.modules.get(module_name)
        if obj is None:
            continue
        for attr in parts[i:]:
            obj = obj.__dict__.get(attr) if hasattr(obj, "__dict__") else None
            if obj is None:
                return None
        if isinstance(obj, type) and (
            dataclasses.is_dataclass(obj) or issubclass(obj, (enum.Enum, BaseException))
        ):
            return obj
        return None
    return None


#: Value types with an encoding of their own (not dataclasses): type -> (name, to_fields,
#: from_fields). See :func:`register_value_type`.
_custom_types: dict[type, tuple[str, Callable[[Any], Any], Callable[[Any], Any]]] = {}


def register_value_type(
    cls: type,
    name: str,
    to_fields: Callable[[Any], Any],
    from_fields: Callable[[Any], Any],
) -> type:
    """Let traces carry instances of ``cls`` as ``name``: recorded as ``to_fields(value)`` (an
    OBJECT ext value, redacted like a dict), rebuilt in replay by ``from_fields(fields)``.

    Only this registered ``cls`` is ever rebuilt for ``name``: the trace still names no code."""
    registry.add(cls, name)
    global value_types_version
    encode = lambda o: _ext(ExtCode.OBJECT, _pack([name, to_fields(o)]))  # noqa: E731
    with _fast_lock:  # (see _fast_lock)
        _custom_types[cls] = (name, to_fields, from_fields)
        _PLAIN_OBJECT.pop(cls, None)  # now encoded by to_fields, not as a dataclass
        value_types_version += 1  # for the encoders' caches of plain_object_encoder
        _FIXED_ENCODERS[cls] = encode
        _FAST[cls] = encode
    return cls


#: Taken by every writer of ``_FAST`` and ``_FIXED_ENCODERS`` (copy-on-write: readers take one
#: reference to ``_FAST`` and never lock): a thread that compiled a dataclass encoder for a type
#: must not store it over the encoder another thread registered for it meanwhile, and a full
#: cache replaced by a copy of the fixed encoders must not be copied before a registration and
#: stored after it (the registration was lost: the type's values became dataclass OBJECTs or
#: OPAQUE). Reentrant: a type's hash or equality is the program's code, which may record (and
#: meet a new type) while the lock is held. Made anew in a forked child (_after_fork_in_child).
_fast_lock = threading.RLock()


# ---------------------------------------------------------------------------------------------
# Caches

_V = TypeVar("_V")

#: Classes each per-type cache of the codec (and the redactor's) holds at most.
MAX_CACHED_TYPES = 10_000


def remember(cache: dict[Any, _V], key: Any, value: _V, limit: int) -> _V:
    """``cache[key] = value``, emptying the cache first when it holds ``limit`` entries: the
    encoders' caches are keyed by classes, sites and handlers, which a program can make at run
    time (a dataclass per request), so none may grow forever or keep every such class alive (a
    cleared entry is made again at its next use)."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value


def remember_beside(
    cache: dict[Any, _V], fixed: dict[Any, _V], key: Any, value: _V
) -> dict[Any, _V]:
    """``cache`` (its ``fixed`` entries and up to MAX_CACHED_TYPES others) with ``key: value``
    added; the caller stores the dict returned. When full, a new dict of the fixed entries and
    this one: replaced, not emptied in place, so that another thread reading the old one
    meanwhile still finds the fixed entries (the others are made again at their next use)."""
    if len(cache) >= MAX_CACHED_TYPES + len(fixed):
        return {**fixed, key: value}
    cache[key] = value
    return cache


# ---------------------------------------------------------------------------------------------
# Redaction

#: The ``repr`` an OPAQUE value holds in place of an unsupported object's own, by default (see
#: :class:`Redactor`'s ``opaque_repr``).
OPAQUE_REPR_WITHHELD = "<repr withheld: redact=Redactor(opaque_repr=True) records it>"


DEFAULT_SECRET_PATTERNS = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "private_key",
    "privatekey",
    "credential",
    "cookie",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "card_number",
    "cardnumber",
    "cvv",
    "cvc",
    "ssn",
)

_PLAIN = (
    str,
    int,
    float,
    bool,
    type(None),
    bytes,
    Decimal,
    uuid.UUID,
    _dt.datetime,
    _dt.date,
    _dt.time,
    _dt.timedelta,
    Redacted,
)


#: How deep the redactor walks nested containers and dataclasses. A value deeper than this is
#: replaced by REDACTED (redaction fails closed: nothing it could not look at reaches the file).
MAX_REDACT_DEPTH = 100

#: A container (other than dict / list / tuple / set / frozenset) with more items than this is
#: not walked item by item: it is replaced by REDACTED as a whole.
MAX_REDACT_ITEMS = 1_000_000

# How the redactor treats a type (decided once per type, see Redactor._kind).
(
    _LEAF,
    _MAPPING,
    _SEQUENCE,
    _SET,
    _RECORD,
    _NAMEDTUPLE,
    _VALUES,
    _FOREIGN,
    _CUSTOM,
    _ENUM_MEMBER,
    _ITEMS,
) = range(11)

#: Types (and subclasses) whose values hold nothing to walk, once enum members, exceptions and
#: dataclasses among them are told apart (see Redactor._kind).
_LEAF_TYPES = (
    str,
    bytes,
    bytearray,
    memoryview,
    range,
    int,
    float,
    Decimal,
    uuid.UUID,
    _dt.date,
    _dt.time,
    _dt.timedelta,
)

#: Where a name is split into words for a second look (see Redactor.is_secret_name): hyphens,
#: spaces and dots, and a camelCase boundary.
_WORD_BREAKS = re.compile(r"[-\s.]+|(?<=[a-z0-9])(?=[A-Z])")


def _first(mapping: Any, n: int) -> Iterator[tuple[Any, Any]]:
    return itertools.islice(mapping.items(), n)


class Redactor:
    """Removes secrets before encoding, so that they never reach a trace.

    Redacted: dataclass fields declared with :func:`prodture.secret`, every dataclass field,
    named-tuple field or map key (a ``str``, ``str`` subclass, ``bytes``, ``bytearray`` or
    ``memoryview`` one: its text) whose name matches a pattern (case-insensitive regular
    expression search, see :meth:`is_secret_name`), and the second item of every ``(name,
    value)`` pair whose name matches one: a tuple or list (or other sequence) of exactly two
    items whose first item is such a name (see :meth:`is_secret_key`), wherever it is — HTTP
    headers as ASGI's ``scope["headers"]`` (``[(b"authorization", b"Bearer ...")]``), WSGI's
    ``start_response`` and ``http.client`` give them. ``patterns`` **extend**
    :data:`DEFAULT_SECRET_PATTERNS`; pass ``defaults=False`` to use only the given patterns
    (``Redactor([], defaults=False)`` redacts only ``secret()`` fields).

    It fails closed: every ``Mapping``, ``Sequence`` and ``Set`` (subclasses and other
    implementations included), every dataclass and every enum member's value is walked, each
    value as the codec encodes it (a dataclass subclass of ``str`` as its fields), and a
    container that is not a built-in one is given back as the snapshot that was checked; a
    value nested deeper than :data:`MAX_REDACT_DEPTH` and a container that cannot be walked (its
    iteration raises, or it has more than :data:`MAX_REDACT_ITEMS` items) are replaced by
    :data:`REDACTED`. An object the codec can only record as OPAQUE (a class it cannot encode)
    is recorded by its type name alone, its ``repr`` withheld (:data:`OPAQUE_REPR_WITHHELD`): a
    repr is text the class makes (``Token('sk_live_...')``), with no name to check. With
    ``opaque_repr=True`` its ``repr`` is kept, unless it matches a pattern as a name would
    (``Model(password=...)``, ``cardNumber=``).
    """

    def __init__(
        self, patterns: Iterable[str] = (), *, defaults: bool = True, opaque_repr: bool = False
    ) -> None:
        if isinstance(patterns, str):
            raise TypeError(
                f"redact patterns must be a list of patterns, not the string {patterns!r}; "
                f"write [{patterns!r}]"
            )
        given = tuple(patterns)
        combined = (DEFAULT_SECRET_PATTERNS + given) if defaults else given
        self.patterns: tuple[str, ...] = tuple(dict.fromkeys(combined))
        #: Whether an object recorded as OPAQUE keeps its ``repr`` (when the repr names no secret).
        self.opaque_repr = opaque_repr
        self._regex = (
            re.compile("|".join(f"(?:{p})" for p in self.patterns), re.IGNORECASE)
            if self.patterns
            else None
        )
        self._field_cache: dict[type, tuple[bool, ...]] = {}
        self._kinds: dict[type, tuple[int, Any]] = {}
        self._name_cache: dict[str, bool] = {}
        #: What trace encoders compile for this redactor (prodture.trace.format), made and
        #: kept there; it lives as long as the redactor, whose secret fields it depends on.
        self.compiled: Any = None

    def __repr__(self) -> str:
        extra = ", opaque_repr=True" if self.opaque_repr else ""
        return f"Redactor({list(self.patterns)!r}, defaults=False{extra})"

    def is_secret_name(self, name: str) -> bool:
        """Whether ``name`` matches a pattern, as written or with its words joined by ``_``
        (``X-Api-Key`` and ``apiKey`` match ``api_key``, ``cardNumber`` matches ``card_number``)."""
        cached = self._name_cache.get(name)
        if cached is None:
            cached = self._names_a_secret(name)
            if len(self._name_cache) < 10_000:  # dict keys may be unbounded data, not names
                self._name_cache[name] = cached
        return cached

    def is_secret_key(self, key: Any) -> bool:
        """Whether ``key`` (a map key, or the first item of a pair) is a name that matches a
        pattern: a ``str``, or a ``str`` subclass (a str enum member, a case-insensitive header
        name), ``bytes``, ``bytearray`` or ``memoryview`` (read as Latin-1; msgpack writes a
        memoryview as the bytes it shows): its text is what a reader sees. Fails closed: a
        memoryview that cannot be read (released) is taken for a secret name."""
        if type(key) is str:
            return self.is_secret_name(key)
        if isinstance(key, str):
            return self.is_secret_name(str.__str__(key))
        if isinstance(key, (bytes, bytearray)):
            return self.is_secret_name(key.decode("latin-1"))
        if isinstance(key, memoryview):
            try:
                text = key.tobytes().decode("latin-1")
            except (ValueError, TypeError):
                return True
            return self.is_secret_name(text)
        return False

    def _names_a_secret(self, text: str) -> bool:
        """:meth:`is_secret_name` without its cache (for a repr: data, not a name)."""
        search = self._regex.search if self._regex is not None else None
        return search is not None and (
            search(text) is not None or search(_WORD_BREAKS.sub("_", text)) is not None
        )

    def secret_fields(self, cls: type) -> tuple[bool, ...]:
        """For a dataclass: which of its fields (in order) are secret."""
        cached = self._field_cache.get(cls)
        if cached is None:
            cached = tuple(
                bool(f.metadata.get("prodture.secret")) or self.is_secret_name(f.name)
                for f in dataclasses.fields(cls)
            )
            remember(self._field_cache, cls, cached, MAX_CACHED_TYPES)
        return cached

    def _kind(self, t: type) -> tuple[int, Any]:
        """How values of type ``t`` are walked, with what that needs (a dataclass's field names
        and secret flags, a named tuple's secret flags), decided once per type."""
        kind = self._kinds.get(t)
        if kind is not None:
            return kind
        # In the order the codec (_to_ext) picks an encoding: a type that is both a leaf or a
        # container and an enum, an exception or a dataclass (``@dataclass class Token(str)``)
        # is written as the latter, so it is walked as the latter.
        custom = _custom_types.get(t)
        if custom is not None:  # a registered value type (a pydantic model): its fields
            kind = (_CUSTOM, custom)
        elif t in _PLAIN_SET or t in _PLACEHOLDERS or t is msgpack.ExtType:
            # (an ExtType, a named tuple, is an ext value already made: REDACTED in a request)
            kind = (_LEAF, None)
        elif issubclass(t, enum.Enum):  # written as its value: walked
            kind = (_ENUM_MEMBER, None)
        elif issubclass(t, BaseException):
            # Exceptions are recorded with their args and attributes, unredacted (documented),
            # dataclass exceptions included.
            kind = (_LEAF, None)
        elif dataclasses.is_dataclass(t):
            names = tuple(f.name for f in dataclasses.fields(t))
            secret = self.secret_fields(t)
            # Compiled once per type: without a secret field, an instance whose field values
            # are all plain is clean, which one C-level pass over its fields tells.
            values_of = operator.attrgetter(*names) if len(names) > 1 else None
            kind = (_RECORD, (names, secret, None if True in secret else values_of))
        elif issubclass(t, _LEAF_TYPES):
            kind = (_LEAF, None)
        elif isinstance(t, type) and issubclass(t, Mapping):
            kind = (_MAPPING, None)
        elif issubclass(t, tuple) and isinstance(getattr(t, "_fields", None), tuple):
            kind = (
                _NAMEDTUPLE,
                tuple(self.is_secret_name(str(f)) for f in getattr(t, "_fields", ())),
            )
        elif issubclass(t, Sequence):
            kind = (_SEQUENCE, None)
        elif issubclass(t, ItemsView):  # a map's (key, value) pairs: its keys name its values
            kind = (_ITEMS, None)
        elif issubclass(t, AbstractSet):
            kind = (_SET, None)
        elif issubclass(t, ValuesView):
            kind = (_VALUES, None)
        else:
            kind = (_FOREIGN, None)  # the codec records it as an opaque repr
        return remember(self._kinds, t, kind, MAX_CACHED_TYPES)

    def scrub(self, value: Any) -> Any:
        """``value`` with secrets replaced by :data:`REDACTED`; the same object when clean."""
        if type(value) in _PLAIN_SET:
            return value
        try:
            return self._scrub(value, 0)
        except KeyboardInterrupt:  # the user's Ctrl-C goes on (see text.safe_repr)
            raise
        except BaseException:
            # A container whose iteration raised (a SystemExit or CancelledError too: the
            # program's code, which the handler never called), or a walk too deep for the
            # interpreter's stack: nothing of it was checked, so none of it is written.
            return REDACTED

    def scrub_each(self, values: list[Any]) -> list[Any]:
        """Each of ``values`` scrubbed as :meth:`scrub` does (the list itself when all are
        clean): the values of a record, such as an effect's request, which are separate values,
        never a ``(name, value)`` pair, and of which one that cannot be walked costs only itself."""
        try:
            scrubbed: list[Any] = self._scrub_sequence(values, values, 1, list)
            return scrubbed
        except KeyboardInterrupt:
            raise
        except BaseException:  # (as scrub: each value on its own then)
            return [self.scrub(v) for v in values]

    def _scrub(self, value: Any, depth: int) -> Any:
        t = type(value)
        if t in _PLAIN_SET:
            return value
        if depth >= MAX_REDACT_DEPTH:
            return REDACTED
        depth += 1
        if t is dict:
            return self._scrub_items(value, value.items(), depth)
        if t is list or t is tuple:
            if len(value) == 2 and self.is_secret_key(value[0]):  # a (name, value) pair
                return [value[0], REDACTED] if t is list else (value[0], REDACTED)
            return self._scrub_sequence(value, value, depth, t)
        kind, info = self._kind(t)
        if kind == _RECORD:
            names, secret, values_of = info
            if values_of is not None and all(
                map(_PLAIN_SET.__contains__, map(type, values_of(value)))
            ):
                return value
            changed: dict[str, Any] | None = None
            for name, is_secret in zip(names, secret, strict=False):
                v = getattr(value, name)
                if is_secret:
                    nv: Any = REDACTED
                elif type(v) in _PLAIN_SET:
                    continue
                else:
                    nv = self._scrub(v, depth)
                if nv is not v:
                    if changed is None:
                        changed = {}
                    changed[name] = nv
            if changed is None:
                return value
            fields = {name: getattr(value, name) for name in names}
            fields.update(changed)
            return _ScrubbedObject(type_name(t), fields)
        if kind == _LEAF:
            return value
        if kind == _ENUM_MEMBER:  # the codec writes [name, value]: a changed value, the same way
            member_value = value.value
            scrubbed = self._scrub(member_value, depth)
            return value if scrubbed is member_value else _ScrubbedObject(type_name(t), scrubbed)
        if kind == _CUSTOM:  # its fields, scrubbed like a dict, written as an OBJECT value
            name, to_fields, _ = info
            return _ScrubbedObject(name, self._scrub(to_fields(value), depth))
        # A container that is not a built-in one gives back the snapshot of its items that was
        # checked, as the plain container the codec records it as (the same bytes): what is
        # written is what was checked, whatever its own methods would give a second time (a dict
        # subclass's items() need not be what dict(value) copies, an iteration may change).
        if kind == _MAPPING:
            _check_size(value)
            pairs = list(value.items())
            scrubbed = self._scrub_items(value, pairs, depth)
            return dict(pairs) if scrubbed is value else scrubbed
        if kind == _SET:
            _check_size(value)
            items = list(value)
            scrubbed = self._scrub_sequence(items, items, depth, list)
            if scrubbed is items and t in (set, frozenset):
                return value
            # Changed, or a Set the codec does not know: record a plain set of the clean items.
            return (set if isinstance(value, (set, MutableSet)) else frozenset)(scrubbed)
        if kind == _ITEMS:  # recorded as a set of pairs
            _check_size(value)
            pairs = list(value)
            scrubbed = self._scrub_items(pairs, pairs, depth)
            return set(pairs if scrubbed is pairs else scrubbed.items())
        if kind == _NAMEDTUPLE:
            secret_flags = info
            items = [REDACTED if s else v for v, s in zip(value, secret_flags, strict=False)]
            if len(items) == 2 and self.is_secret_key(items[0]):  # a (name, value) pair
                items[1] = REDACTED
            return tuple(self._scrub_sequence(items, items, depth, list))
        if kind == _SEQUENCE or kind == _VALUES:
            _check_size(value)
            items = list(value)
            if kind == _SEQUENCE and len(items) == 2 and self.is_secret_key(items[0]):
                items[1] = REDACTED  # a (name, value) pair
            scrubbed = self._scrub_sequence(items, items, depth, list)
            # list / tuple subclasses: recorded as lists / tuples
            return tuple(scrubbed) if issubclass(t, tuple) else scrubbed
        # _FOREIGN: recorded as an opaque value. Its repr is text its class made, which nothing
        # can walk (``Token('sk_live_...')`` names no secret): by default only the type name is
        # kept; with opaque_repr, the repr too, unless it names a secret as a name would
        # (``User(password='...')``, ``cardNumber=``).
        if not self.opaque_repr:
            name = type_name(t)
            note_opaque(name, UNSUPPORTED_TYPE)
            return Opaque(name, OPAQUE_REPR_WITHHELD)
        opaque = opaque_of(value, UNSUPPORTED_TYPE)
        if self._names_a_secret(opaque.repr):
            return Opaque(
                opaque.type_name,
                f"<repr withheld: it matches a redaction pattern ({opaque.type_name})>",
            )
        return opaque

    def _scrub_items(self, value: Any, pairs: Any, depth: int) -> Any:
        """A mapping's items, scrubbed: ``value`` itself when clean, else a new dict."""
        out: dict[Any, Any] | None = None
        is_secret = self.is_secret_name
        for i, (k, v) in enumerate(pairs):
            nk = k
            if type(k) is str:
                if is_secret(k):
                    nv: Any = REDACTED
                elif type(v) in _PLAIN_SET:
                    if out is not None:
                        out[k] = v
                    continue
                else:
                    nv = self._scrub(v, depth)
            else:
                nk = self._scrub(k, depth)
                if self.is_secret_key(k):
                    nv = REDACTED
                else:
                    nv = v if type(v) in _PLAIN_SET else self._scrub(v, depth)
            if out is None and (nv is not v or nk is not k):
                out = dict(itertools.islice(pairs, i) if type(pairs) is list else _first(value, i))
            if out is not None:
                out[nk] = nv
        return value if out is None else out

    def _scrub_sequence(self, value: Any, items: Any, depth: int, t: type) -> Any:
        out: list[Any] | None = None
        for i, v in enumerate(items):
            if type(v) in _PLAIN_SET:
                continue
            nv = self._scrub(v, depth)
            if nv is not v:
                if out is None:
                    out = list(items)
                out[i] = nv
        if out is None:
            return value
        return out if t is list else tuple(out)


def _check_size(value: Any) -> None:
    if len(value) > MAX_REDACT_ITEMS:
        raise OverflowError("too many items to redact")


_PLAIN_SET = frozenset(_PLAIN)


@dataclasses.dataclass(frozen=True, eq=False)  # hashable by identity: it may sit in a set
class _ScrubbedObject:
    """A dataclass instance with some fields redacted (or an enum member, a registered value
    type, with a part of its value redacted): encoded as an OBJECT of its type's name."""

    name: str
    fields: Any


#: Values that stand for something already decided (decoded placeholders, redaction results):
#: the redactor leaves them alone and the encoder writes them as what they stand for.
_PLACEHOLDERS = frozenset({Opaque, UnknownValue, _ScrubbedObject, Redacted})


# ---------------------------------------------------------------------------------------------
# Opaque values: counted, and logged once per type


log = logging.getLogger("prodture.codec")

#: Type names already logged as opaque (one warning per type and process).
_opaque_logged: set[str] = set()
_opaque_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """A child forked while another thread held one of the codec's locks gets it held by a
    thread it does not have: its next opaque type or dataclass type waited for ever. The child
    has one thread; it starts with its locks free."""
    global _opaque_lock, _fast_lock
    _opaque_lock = threading.Lock()
    _fast_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


UNSUPPORTED_TYPE = "its type is not one the trace format can carry"
_FIX_TYPE = (
    "make {short} a dataclass, Enum or exception and register it with @prodture.register, "
    "or convert it to plain data (dict, list, str...) before it reaches a trace"
)
_FIX_VALUE = (
    "keep recorded values to ints within 64 bits, without reference cycles, and nested less "
    "than 1000 levels deep"
)


def opaque_of(value: Any, reason: str) -> Opaque:
    """``value`` as the :class:`Opaque` placeholder the codec records for it (its type name and
    a clipped ``repr``), after :func:`note_opaque`. For a trace encoder with a redactor (not
    ``opaque_repr``), only an int's or a string's repr is kept (data, as it would be written):
    any other repr is text made by code (a class's ``__repr__``, from state that is not a
    field, or the reprs of the items of a container) that no redaction walked."""
    name = type_name(type(value))
    note_opaque(name, reason)
    if type(value) not in _DATA_REPRS:
        redactor = getattr(_enc.encoder, "redactor", None)
        if redactor is not None and not redactor.opaque_repr:
            return Opaque(name, OPAQUE_REPR_WITHHELD)
    return Opaque(name, _safe_repr(value))


#: The types whose repr shows the value as data only (see opaque_of).
_DATA_REPRS = frozenset({int, str, bytes})


def note_opaque(name: str, reason: str) -> None:
    """Count one value recorded as opaque (for the :class:`~prodture.trace.format.TraceEncoder`
    encoding in this thread, see its ``on_opaque``) and log a warning the first time a type is."""
    encoder = _enc.encoder
    if encoder is not None:
        encoder._pending_opaque.append(name)  # counted once its record is packed
    if name in _opaque_logged:
        return
    with _opaque_lock:
        if name in _opaque_logged:
            return
        if len(_opaque_logged) >= MAX_CACHED_TYPES:  # a class (name) per request: a type
            _opaque_logged.clear()  # may be logged again, after that many others
        _opaque_logged.add(name)
    fix = (_FIX_TYPE if reason == UNSUPPORTED_TYPE else _FIX_VALUE).format(
        short=name.rsplit(".", 1)[-1]
    )
    log.warning(
        "prodture: a %s value could not be encoded (%s), so it was recorded as an opaque value "
        "that replay cannot use; fix: %s (logged once per type)",
        name,
        reason,
        fix,
    )


# ---------------------------------------------------------------------------------------------
# Encoding


def _default(obj: Any) -> Any:
    """msgpack's hook for every non-plain value: an ext value; an Opaque one when it cannot be
    represented (an int beyond 64 bits inside, a cycle, nesting deeper than the reader accepts),
    so that one odd value never costs the whole record."""
    if type(obj) is Decimal:  # money: the most frequent, inline (its str never fails)
        return _new_tuple(_ExtType, (3, str(obj).encode()))
    try:
        fast = _FAST.get(type(obj))
        return fast(obj) if fast is not None else _to_ext(obj)
    except _TooDeep:
        return _opaque_ext(
            obj, f"ext values nested deeper than the {MAX_DEPTH} levels a reader accepts"
        )
    except OverflowError:
        return _opaque_ext(obj, "it holds an int beyond 64 bits")
    except (TypeError, ValueError, RecursionError) as e:
        return _opaque_ext(obj, f"{type(e).__name__}: {_clip_reason(e)}")
    except KeyboardInterrupt:  # the user's Ctrl-C goes on (see text.safe_repr)
        raise
    except BaseException as e:
        # The program's code (a container's iteration, a property read as a field) raised a
        # SystemExit, a CancelledError...: the value is marked, the exception never reaches
        # the handler, which did not call that code. (Any other Exception is a bug: it goes on
        # to the recorder, which counts an encode error.)
        return _opaque_ext(obj, f"{type(e).__name__} raised while it was read")


def _clip_reason(e: BaseException) -> str:
    return " ".join(str(e).split())[:120] or type(e).__name__


def _opaque_ext(obj: Any, reason: str) -> msgpack.ExtType:
    opaque = opaque_of(obj, reason)
    return _ext(ExtCode.OPAQUE, _plain_pack([opaque.type_name, opaque.repr]))


class _TooDeep(Exception):
    pass


_ExtType = msgpack.ExtType
_new_tuple = tuple.__new__


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    """``ExtType(code, data)`` without its argument checks (the hot path; ours are right)."""
    return _new_tuple(_ExtType, (code, data))


_REDACTED_EXT = msgpack.ExtType(ExtCode.REDACTED, b"")


def compilable_names(names: tuple[str, ...]) -> bool:
    """Whether field names can be written into source compiled for a type (``o.name``): all
    identifiers, no keyword. A dataclass made with ``make_dataclass`` or a keyword-named field
    can have any name; the code compiled per type then reads fields by name instead. The one
    check every per-type compiler (codec, trace encoder, recorder) makes before ``exec``."""
    return all(n.isidentifier() and not keyword.iskeyword(n) for n in names)


#: The exact types that msgpack (as :func:`new_packer` packs) and msgspec both write as
#: themselves, byte for byte: values of these types need no hook and no conversion.
NATIVE_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None), bytes})


def _leaf_encoders(
    ext: Callable[[int, bytes], Any], pack: Callable[[Any], bytes]
) -> dict[type, Callable[[Any], Any]]:
    """The ext value of each plain type that is not native (exact type -> encoder), built with
    ``ext(code, data)``; ``pack`` packs a timedelta's parts. One definition for msgpack's
    ``ExtType`` (the packer's hook, the compiled encoders) and the accelerator's ``Ext``."""
    redacted = ext(ExtCode.REDACTED, b"")
    return {
        Decimal: lambda o: ext(ExtCode.DECIMAL, str(o).encode()),
        _dt.datetime: lambda o: ext(ExtCode.DATETIME, o.isoformat().encode()),
        _dt.date: lambda o: ext(ExtCode.DATE, o.isoformat().encode()),
        _dt.time: lambda o: ext(ExtCode.TIME, o.isoformat().encode()),
        _dt.timedelta: lambda o: ext(ExtCode.TIMEDELTA, pack([o.days, o.seconds, o.microseconds])),
        uuid.UUID: lambda o: ext(ExtCode.UUID, o.bytes),
        Redacted: lambda o: redacted,
    }


def packing_env(fast: bool) -> dict[str, Any]:
    """The names that code compiled per type for a packing backend uses (see :func:`leaf_source`):
    msgspec's (``fast``, only when :data:`fastpack.available`) or msgpack's."""
    env: dict[str, Any] = {"NATIVE": NATIVE_TYPES, "Decimal": Decimal}
    if fast:
        env.update(
            LEAF=_LEAF_EXT_FAST, Ext=fastpack.Ext, REDACTED_EXT=_LEAF_EXT_FAST[Redacted](REDACTED)
        )
    else:
        env.update(LEAF=_LEAF_EXT, new=_new_tuple, ExtType=_ExtType, REDACTED_EXT=_REDACTED_EXT)
    # Each native type, and each leaf type and its encoder, by name: for code that tests for one
    # type (leaf_source's likely type, leaf_convert_source)
    for native in NATIVE_TYPES:
        env[f"NATIVE_{native.__name__}"] = native
    for t, leaf in env["LEAF"].items():
        env[f"LEAF_{t.__name__}"] = t
        env[f"TO_{t.__name__}"] = leaf
    return env


def ext_source(fast: bool, code: str, data: str) -> str:
    """Source of an ext value (for :func:`packing_env`'s names)."""
    return f"Ext({code}, {data})" if fast else f"new(ExtType, ({code}, {data}))"


def decimal_data_source(var: str) -> str:
    """Source of a ``Decimal``'s ext data, ``str(var).encode()``: written ``f"{var!s}"``, one
    bytecode that calls ``str`` (``PyObject_Str``, as ``str()`` does) instead of four for the
    call of the builtin ``str`` (~40 instructions fewer per value)."""
    return f'f"{{{var}!s}}".encode()'


def likely_type(sample: object | None, name: str) -> type | None:
    """The type of ``sample``'s attribute ``name`` (a hint for :func:`leaf_source`), or None
    when there is no sample or it cannot be read."""
    if sample is None:
        return None
    try:
        return type(getattr(sample, name))
    except KeyboardInterrupt:
        raise
    except BaseException:  # a hint only (a property's SystemExit too): the code tests every value
        return None


def leaf_convert_source(var: str, t: type, fast: bool) -> str:
    """The statement that turns ``var``, known to be of the plain type ``t`` that is not native,
    into its ext value (for :func:`packing_env`'s names): a ``Decimal`` inline, the others by
    their encoder in :func:`_leaf_encoders`."""
    if t is Decimal:
        return f"{var} = {ext_source(fast, str(ExtCode.DECIMAL), decimal_data_source(var))}"
    return f"{var} = TO_{t.__name__}({var})"


def leaf_source(
    var: str, otherwise: str, fast: bool, indent: str = "    ", likely: type | None = None
) -> str:
    """Source lines that turn ``var``, when of a plain type that is not native (a ``Decimal``
    inline, the others by :func:`_leaf_encoders`), into its ext value, and run the statement
    ``otherwise`` for any other type that is not native. The same bytes as the packer's hook
    gives, without a call from C back into Python per value.

    ``likely`` is the type the value is expected to have (the one seen when the code is
    compiled): it is tested for first (one identity test for such a value instead of a set
    look-up, or two tests, for a plain type that is not native). The code is right for a
    value of any type."""
    ext = ext_source(fast, str(ExtCode.DECIMAL), decimal_data_source(var))
    general = (
        f"    if type({var}) is Decimal:",
        f"        {var} = {ext}",
        "    else:",
        f"        leaf = LEAF.get(type({var}))",
        "        if leaf is None:",
        f"            {otherwise}",
        f"        {var} = leaf({var})",
    )
    # Any other type: by its encoder (the likely plain type, tested for first, is not met)
    by_leaf = general[3:]
    if likely is not None and likely in _LEAF_EXT and likely not in NATIVE_TYPES:
        lines: tuple[str, ...] = (
            f"if type({var}) is LEAF_{likely.__name__}:",
            f"    {leaf_convert_source(var, likely, fast)}",
            f"elif type({var}) not in NATIVE:",
            *(line[4:] for line in by_leaf),
        )
    elif likely is not None and likely in NATIVE_TYPES:
        lines = (
            f"if type({var}) is not NATIVE_{likely.__name__} and type({var}) not in NATIVE:",
            *general,
        )
    else:
        lines = (f"if type({var}) not in NATIVE:", *general)
    return "".join(indent + line + "\n" for line in lines)


def _object_encoders(
    t: type,
) -> tuple[Callable[[Any], Any], Callable[..., Any] | None, Callable[[Any], Any] | None]:
    """The OBJECT ext encoders of dataclass ``t``, compiled once per type: ``encode(obj)``, and
    ``encode_plain(obj, pack)``, the same ext value when every field
    value is of a ``_PLAIN`` type, else None (then the value needs a redaction walk), and
    ``encode_plain_fast(obj)``, the same with the accelerator's encoder and ``Ext`` (None when
    it is not available). All are :func:`_object_source`'s code: ``encode`` without turning
    plain values into ext values (the packer's hook, ``_pack``, encodes every field value)."""
    lines, value, env = _object_source(t, "o", False, "", "_pack", leaves=False)
    source = f"def encode(o):\n{lines}    return {value}\n"
    exec(source, env)  # noqa: S102 -- field names checked to be identifiers (or read by name), once per type
    encode: Callable[[Any], Any] = env["encode"]
    plain: list[Callable[..., Any] | None] = []
    for fast in (False, True) if fastpack.available else (False,):
        lines, value, benv = plain_object_source(t, "o", fast, "", "pack")
        source = f"def encode_plain(o{'' if fast else ', pack'}):\n{lines}    return {value}\n"
        exec(source, benv)  # noqa: S102 -- as above
        if fast:
            bake_registered_name(benv["encode_plain"], "")
        plain.append(benv["encode_plain"])
    return encode, plain[0], plain[1] if len(plain) > 1 else None


#: Functions compiled with a class's registered name as a global (see :func:`_object_source`):
#: function -> the prefix of its names (``<prefix>name``, ``<prefix>t``...). Weak, and nothing
#: of the class's held: they go with their caches, a class made per request is freed.
_baked_names: weakref.WeakKeyDictionary[Callable[..., Any], str] = weakref.WeakKeyDictionary()
_baked_lock = threading.RLock()  # (re-entered if a change is made while baking: a finalizer)


def _refresh_baked_names() -> None:
    """Set every baked name to the class's name now: called after any change of the registry's
    table (registering a class names or renames it; registering another class under its name
    takes the name back from it)."""
    with _baked_lock:
        for function, prefix in list(_baked_names.items()):
            _bake(function.__globals__, prefix)


def _bake(env: dict[str, Any], prefix: str) -> None:
    env[prefix + "name"] = registry._by_type.get(env[prefix + "t"], env[prefix + "default_name"])


registry._by_type.watchers.append(_refresh_baked_names)  # type: ignore[attr-defined]


def bake_registered_name(function: Callable[..., Any], prefix: str) -> None:
    """Keep the global ``<prefix>name`` of ``function``, compiled from :func:`_object_source`'s
    fast code, the registered name of its class (``<prefix>t``), now and after every change of
    the registry: the name without a look-up per value. Must be called before ``function``
    is first called (its global is set here)."""
    with _baked_lock:  # (a change made meanwhile is seen: set under the lock the refresh takes)
        _baked_names[function] = prefix
        _bake(function.__globals__, prefix)


def _head_source(prefix: str) -> str:
    """The source of an OBJECT payload's ``[name,`` head (names from :func:`_object_env`),
    packed once per name the type is registered under (registering the class again renames
    it: seen at its next value)."""
    p = prefix
    return (
        f"({p}heads.get({p}n := registry._by_type.get({p}t, {p}default_name)) or {p}head_of({p}n))"
    )


def _object_env(t: type, prefix: str) -> dict[str, Any]:
    """The names :func:`_head_source` and an OBJECT encoder's code use, for dataclass ``t`` (each
    prefixed by ``prefix`` where it is the type's own)."""
    heads: dict[str, bytes] = {}

    def head_of(name: str) -> bytes:
        data = heads[name] = b"\x92" + _plain_pack(name)  # the payload is [name, fields]
        return data

    own = {
        "t": t,
        "default_name": f"{t.__module__}.{t.__qualname__}",
        "heads": heads,
        "head_of": head_of,
        "names": tuple(f.name for f in dataclasses.fields(t)),
    }
    return {
        **{prefix + k: v for k, v in own.items()},
        # (_head_source reads its dict: only ever changed in place)
        "registry": registry,
        "new": _new_tuple,
        "ExtType": _ExtType,
        "OBJECT": ExtCode.OBJECT,
        "_pack": _pack,
        "getattr": getattr,
    }


def plain_object_source(
    t: type, var: str, fast: bool, prefix: str, pack: str = "", sample: object | None = None
) -> tuple[str, str, dict[str, Any]]:
    """For dataclass ``t``: source lines (indented by 4) that read the fields of the instance
    named ``var`` into locals (named with ``prefix``) and turn each plain value that is not
    native into its ext value (see :func:`leaf_source`), running ``return None`` for any value
    that is not plain; the expression of the instance's OBJECT ext value made of them (with
    ``fast``, the accelerator's ``Ext`` of its encode, else msgpack's ``ExtType`` of ``pack``,
    the name of a packer's ``pack``); and the names that code needs (:func:`packing_env`'s
    included). The plain encoders of :func:`_object_encoders` are this code; the trace encoder
    inlines it into its per-type record encoders.

    The payload is ``[name, {field: value}]``; its ``[name,`` head is packed once per name the
    type is registered under (with ``fast``, the name is the global ``<prefix>name``: the
    caller passes the compiled function to :func:`bake_registered_name`). When its field names
    are identifiers (not keywords) this is straight-line code: a dict display, one type test
    per field; otherwise fields are read by name. ``sample``, an instance seen when the code is
    compiled, gives each field's likely type (see :func:`leaf_source`)."""
    return _object_source(t, var, fast, prefix, pack, leaves=True, sample=sample)


def _object_source(
    t: type, var: str, fast: bool, prefix: str, pack: str, *, leaves: bool, sample: object = None
) -> tuple[str, str, dict[str, Any]]:
    """:func:`plain_object_source` (``leaves``), or, without ``leaves``, the same code without
    the lines that turn plain values into ext values and return None for the others: the
    general OBJECT encoder of :func:`_object_encoders`, whose ``pack`` packs any field value."""
    names = tuple(f.name for f in dataclasses.fields(t))
    env = {**_object_env(t, prefix), **packing_env(fast), "encode_fast": fastpack.encode}
    head = _head_source(prefix)
    if names and compilable_names(names):
        local = [f"{prefix}v{i}" for i in range(len(names))]
        lines = "    " + ", ".join(local) + " = " + ", ".join(f"{var}.{n}" for n in names) + "\n"
        if leaves:
            lines += "".join(
                leaf_source(v, "return None", fast, likely=likely_type(sample, n))
                for v, n in zip(local, names, strict=True)
            )
        fields = "{" + ", ".join(f"{n!r}: {v}" for n, v in zip(names, local, strict=True)) + "}"
        struct = fastpack.map_struct(names) if fast else None
        if struct is not None:  # the same map, made and encoded faster
            env[f"{prefix}Fields"] = struct
            fields = f"{prefix}Fields({', '.join(local)})"
    else:  # any field names (or none): read by name
        fields = f"{prefix}fields"
        lines = f"    {fields} = {{n: getattr({var}, n) for n in {prefix}names}}\n"
        if leaves:
            lines += (
                f"    for {prefix}n, v in {fields}.items():\n"
                + leaf_source("v", "return None", fast, "        ")
                + f"        {fields}[{prefix}n] = v\n"
            )
    if fast:  # (name, fields) in one encode (an array, as a list): cheaper than head + encode
        # The registered name, baked in: the caller calls bake_registered_name on the function.
        value = ext_source(fast, "OBJECT", f"encode_fast(({prefix}name, {fields}))")
    else:
        value = ext_source(fast, "OBJECT", f"{head} + {pack}({fields})")
    return lines, value, env


def plain_object_encoder(t: type, fast: bool = False) -> Callable[..., Any] | None:
    """For a dataclass type: ``encode(obj, pack)``, the OBJECT ext value of an instance when all
    its field values are plain (nothing in them to redact by name, nothing to walk, never deeper
    than an ext value in an ext value), else None; None for other types. Compiled once per type.

    ``pack`` packs the fields map: a packer made by :func:`new_packer` that is not packing
    anything else (it must be the caller's own: a value of the record being packed is not
    encoded this way), so neither this thread's ext level nor its packers are involved.

    With ``fast``: ``encode(obj)``, the same value as the accelerator's ``Ext`` (see
    :mod:`~prodture.trace.fastpack`), or None when the accelerator is not available."""
    encoders = _PLAIN_OBJECT.get(t, _NO_KEY)
    if encoders is _NO_KEY:
        if not (isinstance(t, type) and dataclasses.is_dataclass(t)):
            # Not remembered: any type met in a value asks (a class made per request would
            # grow this dict, and be kept alive by it, without bound).
            return None
        encoders = None
        if not _is_special(t):
            encode, *encoders = _object_encoders(t)
            with _fast_lock:
                if t in _custom_types:  # registered while it was compiled: not a dataclass's
                    return None
                if t not in _FAST:
                    _store_encoder(t, encode)
                remember(_PLAIN_OBJECT, t, encoders, MAX_CACHED_TYPES)
        else:
            remember(_PLAIN_OBJECT, t, encoders, MAX_CACHED_TYPES)
    return encoders[fast] if encoders is not None else None  # type: ignore[index]


#: Per type: its plain OBJECT encoders (msgpack's, the accelerator's), or None.
_PLAIN_OBJECT: dict[type, list[Callable[..., Any] | None] | None] = {}
#: Bumped by :func:`register_value_type`: what :func:`plain_object_encoder` gave may be stale.
value_types_version = 0


def _is_special(t: type) -> bool:
    """Dataclass types that :func:`_to_ext` encodes otherwise (checked before dataclasses)."""
    return t in _custom_types or t in _PLACEHOLDERS or issubclass(t, (enum.Enum, BaseException))


def _to_ext(obj: Any) -> Any:
    t = type(obj)
    fast = _FAST.get(t)
    if fast is not None:
        return fast(obj)
    if t is set or t is frozenset:
        # Items in ascending order of their encoded bytes: deterministic for any item types.
        code = ExtCode.SET if t is set else ExtCode.FROZENSET
        packed = sorted(_pack(item) for item in obj)
        return _ext(code, _array_header(len(packed)) + b"".join(packed))
    if t is _ScrubbedObject:
        return _ext(ExtCode.OBJECT, _pack([obj.name, obj.fields]))
    # Decoded placeholders re-encode as what they stand for (they are dataclasses themselves).
    if t is UnknownValue:
        return _ext(ExtCode.OBJECT, _pack([obj.type_name, obj.fields]))
    if t is Opaque:
        return _ext(ExtCode.OPAQUE, _pack([obj.type_name, obj.repr]))
    if isinstance(obj, enum.Enum):
        return _ext(ExtCode.OBJECT, _pack([type_name(t), obj.value]))
    if isinstance(obj, BaseException):  # before dataclasses: a dataclass exception is an error
        return _ext(ExtCode.ERROR, _pack(_error_payload(obj)))
    if dataclasses.is_dataclass(t):
        encoder = _remember_encoder(t, _object_encoders(t)[0])
        return encoder(obj)
    if t is int:  # msgpack hands over an int only when it does not fit in 64 bits
        return _opaque_ext(obj, "an int beyond 64 bits")
    if isinstance(obj, (str, int, float, bytes, list, dict)):  # subclasses of plain types
        base: Callable[[Any], Any] = next(
            b for b in (str, bool, int, float, bytes, list, dict) if isinstance(obj, b)
        )
        return base(obj)
    if isinstance(obj, _dt.datetime):  # subclasses (e.g. a test clock's datetime)
        return _ext(ExtCode.DATETIME, _dt.datetime.isoformat(obj).encode())
    if isinstance(obj, _dt.date):
        return _ext(ExtCode.DATE, _dt.date.isoformat(obj).encode())
    # Other implementations of the collection ABCs are recorded as the plain collection.
    if isinstance(obj, tuple):  # named tuples, tuple subclasses
        return _ext(ExtCode.TUPLE, _pack(list(obj)))
    if isinstance(obj, (set, frozenset, AbstractSet)):
        code = ExtCode.FROZENSET if isinstance(obj, frozenset) else ExtCode.SET
        if not isinstance(obj, (set, frozenset)):
            # A view may hold what no set can (a dict's items() with list values), which the
            # reader could not rebuild: the TypeError makes it opaque (see _default).
            for item in obj:
                hash(item)
        packed = sorted(_pack(item) for item in obj)
        return _ext(code, _array_header(len(packed)) + b"".join(packed))
    if isinstance(obj, Mapping):
        return dict(obj.items())
    if isinstance(obj, bytearray):
        return bytes(obj)
    if isinstance(obj, (Sequence, ValuesView)) and not isinstance(obj, (range, memoryview)):
        return list(obj)
    return _opaque_ext(obj, UNSUPPORTED_TYPE)


def _error_payload(error: BaseException) -> list[Any]:
    if isinstance(error, RecordedError):
        return [error.type_name, list(error.recorded_args), {}, error.message]
    attrs = {k: v for k, v in vars(error).items() if not k.startswith("_")}
    try:
        message = str(error)
    except KeyboardInterrupt:  # the user's Ctrl-C goes on (see text.safe_repr)
        raise
    except BaseException:  # a __str__ raising SystemExit must not reach the handler either
        message = _safe_repr(error)
    return [type_name(type(error)), list(error.args), attrs, message]


def _safe_repr(obj: Any) -> str:
    """The text an Opaque value keeps of what could not be encoded (bounded: a trace stays small)."""
    return short_repr(obj, 1000)


def _plain_pack(obj: Any) -> bytes:
    data: bytes = msgpack.packb(obj, use_bin_type=True)
    return data


def _array_header(n: int) -> bytes:
    if n < 16:
        return bytes([0x90 | n])
    if n < 0x10000:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


class _EncodeState(threading.local):
    """Per thread: the ext nesting level being packed, and one reusable packer per level."""

    def __init__(self) -> None:
        self.level = 0
        self.packers: list[msgpack.Packer] = []
        #: The TraceEncoder encoding in this thread (counts opaque values), or None.
        self.encoder: Any = None


_enc = _EncodeState()


def _pack(obj: Any) -> bytes:
    """An ext payload. Raises when ``obj`` cannot be packed (the caller's ``_default`` then
    records the enclosing value as Opaque) or when ext values nest deeper than a reader accepts."""
    state = _enc
    level = state.level
    if level + 1 >= MAX_DEPTH:
        raise _TooDeep()
    packers = state.packers
    if level >= len(packers):
        packers.append(new_packer())
    packer = packers[level]
    state.level = level + 1
    try:
        data: bytes = packer.pack(obj)
        return data
    except BaseException:
        packer.reset()
        raise
    finally:
        state.level = level


#: The ext values of the plain types that are not native: msgpack's, and the accelerator's.
_LEAF_EXT = _leaf_encoders(_ext, _pack)
_LEAF_EXT_FAST = (
    _leaf_encoders(fastpack.Ext, fastpack.encode) if fastpack.encode is not None else {}
)

#: The encoders of :data:`_FAST` that are always there: the common types, and registered value
#: types (see :func:`register_value_type`).
_FIXED_ENCODERS: dict[type, Callable[[Any], Any]] = {
    **_LEAF_EXT,
    tuple: lambda o: _ext(ExtCode.TUPLE, _pack(list(o))),
}
#: Exact type -> encoder: the fixed ones, and dataclass types as they are first met (at most
#: MAX_CACHED_TYPES of them, see _remember_encoder).
_FAST: dict[type, Callable[[Any], Any]] = dict(_FIXED_ENCODERS)


def _remember_encoder(t: type, encode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``_FAST[t] = encode``, bounded: beyond MAX_CACHED_TYPES dataclass types, the cache goes
    back to its fixed encoders (the others are compiled again at their next value). Replaced,
    not emptied in place: another thread reading it meanwhile still finds the fixed ones. A type
    registered (register_value_type) while ``encode`` was compiled keeps its registered encoder,
    which is returned."""
    with _fast_lock:
        registered = _FIXED_ENCODERS.get(t)
        if registered is not None:
            return registered
        _store_encoder(t, encode)
    return encode


def _store_encoder(t: type, encode: Callable[[Any], Any]) -> None:
    """_remember_encoder's store, under ``_fast_lock``."""
    global _FAST
    _FAST = remember_beside(_FAST, _FIXED_ENCODERS, t, encode)


def encode_value(value: Any) -> bytes:
    """One value as a msgpack document (ext types for the non-plain ones)."""
    _enc.encoder = None
    try:
        data: bytes = msgpack.packb(
            value, default=_default, use_bin_type=True, datetime=False, strict_types=True
        )
        return data
    except (TypeError, ValueError, OverflowError) as e:
        # An int too large or a cycle at the top level: the whole value becomes Opaque.
        return _plain_pack(_opaque_ext(value, f"{type(e).__name__}: {_clip_reason(e)}"))


def new_packer() -> msgpack.Packer:
    return msgpack.Packer(default=_default, use_bin_type=True, datetime=False, strict_types=True)


# ---------------------------------------------------------------------------------------------
# Decoding

#: Nested ext payloads are decoded recursively; beyond this depth a trace is refused.
MAX_DEPTH = 64


#: How every msgpack document of a trace is unpacked (ext -1, the msgpack timestamp, which v1
#: writers never write, decodes as an aware UTC datetime).
UNPACK_OPTIONS: dict[str, Any] = dict(
    ext_hook=None,
    raw=False,
    strict_map_key=False,
    use_list=True,
    timestamp=3,
)


class _DecodeState(threading.local):
    def __init__(self) -> None:
        #: Ext nesting level being decoded.
        self.level = 0
        #: The memory budget of the read in progress in this thread, or None: no limit.
        self.budget: MemoryBudget | None = None


_depth = _DecodeState()
_unpackb = msgpack.unpackb
_sizeof = sys.getsizeof
#: The containers msgpack decodes (whose contents the budget charges).
_NESTED = frozenset({list, dict})
#: The values whose size depends on how many items they hold (never charged at a flat rate).
_SIZED = frozenset({list, dict, tuple, set, frozenset})
#: Flat charges for what the common records decode to, instead of ``sys.getsizeof`` of each
#: object (which costs more than decoding it): per value held (a scalar, or the reference to
#: an object that charged its own state), per object rebuilt (its instance and dict), per
#: effect record (its EffectRecord and integers). Only for at most FLAT_MAX_ITEMS values none
#: of which is a container (else each is charged its size): a string is then charged the flat
#: rate whatever its length, its characters being bounded by the file's own bytes, and each
#: flat charge is at least what ``getsizeof`` gives for the few-byte values that make a file
#: decode to the most memory per byte (short non-ASCII strings, within a few percent).
FLAT_MAX_ITEMS = 8
#: A value's flat charge by type (its reference included): a little more than getsizeof gives
#: for the values these types hold in a few bytes of trace (a short string: FLAT_STR).
FLAT_STR = 80
_FLAT_SIZES = {
    int: 40,
    float: 32,
    bool: 8,
    type(None): 8,
    str: FLAT_STR,
    bytes: 48,
    Decimal: 112,
    Redacted: 8,
}
#: Any other value: an object decoded from an ext value (that charged its own state).
FLAT_ITEM = 64
#: What _flat_size gives for a container (whose size depends on its items): the flat charge of
#: at most FLAT_MAX_ITEMS values, ``sum(map(_flat_size, map(type, values), _FLAT_DEFAULTS))``
#: (written inline where each effect and OBJECT value is read), is at least this when one of
#: them is a container, which must then be charged by its size instead.
FLAT_SIZED = 1 << 40
_FLAT_OR_SIZED: dict[type, int] = {**_FLAT_SIZES, **dict.fromkeys(_SIZED, FLAT_SIZED)}
_flat_size = _FLAT_OR_SIZED.get
_FLAT_DEFAULTS = itertools.repeat(FLAT_ITEM)


FLAT_OBJECT = 160
FLAT_EFFECT = 256


def _distinct(items: Any) -> Any:
    """The distinct objects of a long list (a list of small ints holds a few shared ones)."""
    return dict(zip(map(id, items), items, strict=True)).values()


class MemoryBudget:
    """Bytes the objects decoded from one trace may take; exceeding it is a TraceFormatError.

    Charged, with ``sys.getsizeof``, as each decoded value is completed (:meth:`charge_value`,
    called by the reader for each record and by the ext decoders for each ext payload): the
    shallow size of each item of each array and map (of each distinct item in an array or map
    of more than 16; in a shorter one a shared object, such as a cached small int, is counted
    each time: an over-estimate); an ext value's instance dict as it is decoded; while
    streaming, each array and map as it is started and each item as it is read. A value is
    decoded whole, then charged, only when its bytes are at most :data:`STREAM_THRESHOLD`
    (larger ones are streamed), so what exists uncharged at any time is bounded by what that
    many bytes decode to. Installed for the current thread with :meth:`active`.
    """

    def __init__(self, limit: int, message: str) -> None:
        self.left = limit
        self.message = message
        #: type name -> how its OBJECT values are rebuilt (see _fast_plan), for this read.
        self.classes: dict[str, Any] = {}
        #: Ext nesting level being decoded in this read (its unpackers' ext hook and, while the
        #: budget is active, _unpack count it here: an attribute of a thread-local object
        #: costs several times as much to read, once per OBJECT value).
        self.level = 0
        budget = self

        # For an Unpacker that decodes whole documents of any size (raw_records): each array
        # and map charged as msgpack completes it, before a larger one can be built.
        def list_hook(value: list[Any]) -> list[Any]:
            budget.left -= sum(map(_sizeof, value if len(value) <= 16 else _distinct(value)))
            if budget.left < 0:
                budget.exceeded()
            return value

        def map_hook(value: dict[Any, Any]) -> dict[Any, Any]:
            values: Any = value.values()
            budget.left -= sum(map(_sizeof, values if len(value) <= 16 else _distinct(values)))
            budget.left -= sum(map(_sizeof, value))
            if budget.left < 0:
                budget.exceeded()
            return value

        self.list_hook = list_hook
        self.map_hook = map_hook
        #: The ext hook of this read's unpackers, and how it decodes an OBJECT value (see
        #: _reading_hooks): the general :func:`ext_hook` with the common values inline.
        self.ext_hook, self.decode_object = _reading_hooks(self)

    def charge_value(self, value: Any) -> None:
        """Charge what decoding ``value`` allocated, as the hooks would have: the items (and
        keys) of each array and map in it, not ``value`` itself (its holder charges it; ext
        values charge their own state as they are decoded)."""
        t = type(value)
        if t is not list and t is not dict:
            return
        left = self.left
        stack = [value]
        pop, push = stack.pop, stack.append
        while stack:
            container = pop()
            items: Any = container
            if type(container) is dict:
                keys = container if len(container) <= 16 else _distinct(container)
                left -= sum(map(_sizeof, keys))
                items = container.values()
            left -= sum(map(_sizeof, items if len(items) <= 16 else _distinct(items)))
            if not _NESTED.isdisjoint(map(type, items)):
                for item in items:
                    if type(item) is list or type(item) is dict:
                        push(item)
        self.left = left
        if left < 0:
            self.exceeded()

    def charge(self, nbytes: int) -> None:
        self.left -= nbytes
        if self.left < 0:
            self.exceeded()

    def unpacker(self, size: int, *, hooks: bool = False) -> msgpack.Unpacker:
        """An Unpacker for ``size`` bytes of trace data, lengths bounded by the data (a larger
        declared length raises ``ValueError: ... exceeds max_``). Without ``hooks`` what it
        decodes is charged by the caller (:meth:`charge_value`); with them, as it is built."""
        return msgpack.Unpacker(
            ext_hook=self.ext_hook,
            list_hook=self.list_hook if hooks else None,
            object_hook=self.map_hook if hooks else None,
            raw=False,
            strict_map_key=False,
            use_list=True,
            timestamp=3,
            max_buffer_size=max(size, 1),
            max_str_len=size,
            max_bin_len=size,
            max_array_len=size,
            max_map_len=size // 2 or 1,
            max_ext_len=size,
        )

    def stream_value(self, data: Any, start: int) -> tuple[Any, int]:
        """(the value at ``data[start:]``, the offset after it), decoded one item at a time and
        charged as it goes: for a large record or ext payload, where a single array of millions
        of short strings would otherwise be allocated before any hook could refuse it. Arrays and
        maps are built here; scalars and ext values by msgpack. The data is fed a chunk at a
        time. Raises what ``Unpacker.unpack`` raises (OutOfData: the data ends inside it)."""
        size = len(data)
        unpacker = self.unpacker(size)
        fed = start

        def refill() -> None:
            nonlocal fed
            if fed >= size:
                raise msgpack.OutOfData()
            unpacker.feed(data[fed : fed + STREAM_THRESHOLD])
            fed += STREAM_THRESHOLD

        stack: list[list[Any]] = []  # [container, items left, next index / pending key, is map]
        value: Any
        while True:
            pos = start + unpacker.tell()
            while pos >= fed:
                refill()
            head = data[pos]
            container = 0x90 <= head <= 0x9F or head in (0xDC, 0xDD)
            mapping = 0x80 <= head <= 0x8F or head in (0xDE, 0xDF)
            read: Callable[[], Any] = (
                unpacker.read_array_header
                if container
                else unpacker.read_map_header
                if mapping
                else unpacker.unpack
            )
            while True:
                # A value cut by the end of what was fed has been partly consumed (tell()
                # moved into it): the same read goes on once more is fed, never a new one
                # from a byte inside the value.
                try:
                    got = read()
                    break
                except msgpack.OutOfData:
                    refill()
            if container or mapping:
                n = got
            else:
                value, n = got, -1
            if n < 0:
                if not (
                    value is None
                    or type(value) is bool
                    or type(value) is int
                    and -5 <= value <= 256
                ):
                    self.charge(_sizeof(value))  # what is not one of CPython's shared objects
            elif head <= 0x8F or head in (0xDE, 0xDF):
                self.charge(232 + 48 * n if n else 64)  # CPython's dict sizes, rounded up
                value = {}
                if n:
                    stack.append([value, 2 * n, _NO_KEY, True])
                    if len(stack) > _STREAM_DEPTH:
                        raise msgpack.StackError()
                    continue
            else:
                self.charge(56 + 8 * n)
                value = [None] * n
                if n:
                    stack.append([value, n, 0, False])
                    if len(stack) > _STREAM_DEPTH:
                        raise msgpack.StackError()
                    continue
            while stack:  # put the value in its container; a full container is a value too
                top = stack[-1]
                top[1] -= 1
                if top[3]:
                    if top[2] is _NO_KEY:
                        top[2] = value
                        break
                    top[0][top[2]] = value
                    top[2] = _NO_KEY
                else:
                    top[0][top[2]] = value
                    top[2] += 1
                if top[1]:
                    break
                stack.pop()
                value = top[0]
            else:
                return value, start + unpacker.tell()

    def exceeded(self) -> None:
        self.left = 1 << 62  # one error; nothing after it is charged
        raise TraceFormatError(self.message)

    @contextlib.contextmanager
    def active(self) -> Iterator[MemoryBudget]:
        state = _depth
        saved = state.budget
        state.budget = self
        try:
            yield self
        finally:
            state.budget = saved


def _unpack(payload: bytes) -> Any:
    """An ext value's payload; the outermost ext value of a document is at depth 1."""
    budget = _depth.budget
    # The level is counted by the read's budget (see MemoryBudget.level), else by the thread.
    state: Any = _depth if budget is None else budget
    level = state.level
    if level >= MAX_DEPTH:
        raise TraceFormatError(f"value nested deeper than {MAX_DEPTH} levels")
    state.level = level + 1
    try:
        if budget is None:
            return _unpackb(
                payload, ext_hook=ext_hook, raw=False, strict_map_key=False, timestamp=3
            )
        if len(payload) > STREAM_THRESHOLD:
            value, end = budget.stream_value(payload, 0)
            if end != len(payload):
                raise ValueError("extra data after the ext payload's value")
            return value
        value = _unpackb(
            payload, ext_hook=budget.ext_hook, raw=False, strict_map_key=False, timestamp=3
        )
        budget.charge_value(value)
        return value
    finally:
        state.level = level


#: A record or ext payload larger than this is decoded item by item (MemoryBudget.stream_value).
STREAM_THRESHOLD = 16 * 1024
#: Arrays and maps nested within one streamed value, at most (msgpack's own decoder: 1024).
_STREAM_DEPTH = 1024
_NO_KEY = object()


def _text(payload: bytes) -> str:
    return payload.decode("utf-8")


def ext_hook(code: int, payload: bytes) -> Any:
    if code == 10:  # ExtCode.REDACTED, the most frequent in a redacted trace
        return REDACTED
    try:
        if code == 5:  # ExtCode.OBJECT: charges what it decodes itself
            return _object(payload)
        decode = _DECODERS.get(code)
        if decode is None:
            # Unknown ext codes from a newer writer stay visible but inert.
            return Opaque(f"ext{code}", f"<unknown ext type {code}, {len(payload)} bytes>")
        value = decode(payload)
        if code in _CHARGED:
            budget = _depth.budget
            if budget is not None and hasattr(value, "__dict__"):
                budget.charge(_sizeof(value.__dict__))
        return value
    except TraceFormatError:
        raise
    except Exception as e:
        raise _ext_failure(code, e) from None


def _ext_failure(code: int, e: Exception) -> TraceFormatError:
    """The one-line error for an ext value of type ``code`` whose decoding raised ``e``."""
    if isinstance(e, RecursionError):
        return TraceFormatError(f"value nested deeper than {MAX_DEPTH} levels")
    reason = " ".join(str(e).split())[:160]
    return TraceFormatError(f"malformed ext value (type {code}): {type(e).__name__}: {reason}")


def _reading_hooks(
    budget: MemoryBudget,
) -> tuple[Callable[[int, bytes], Any], Callable[[bytes], Any]]:
    """(ext hook, OBJECT decoder) for a read charged to ``budget``: what :func:`ext_hook`
    does, with the values of nearly every effect record decoded inline (a redaction marker, a
    cached Decimal, a small OBJECT payload naming a dataclass whose fields it holds exactly)
    and everything else handed to :func:`ext_hook`. Nesting is counted in ``budget.level``,
    as _unpack counts it while the budget is active, so the two share one depth limit."""
    state = budget
    classes = budget.classes
    decimals = _decimals.get
    unpackb = _unpackb
    general = ext_hook
    new = object.__new__
    flat, flat_size_of, defaults = sum, _flat_size, _FLAT_DEFAULTS  # see FLAT_SIZED

    def hook(code: int, payload: bytes) -> Any:
        if code == 10:  # ExtCode.REDACTED
            return REDACTED
        if code == 3:  # ExtCode.DECIMAL, once decoded
            value = decimals(payload)
            if value is not None:
                return value
        elif code == 5:  # ExtCode.OBJECT
            try:
                return decode_object(payload)
            except TraceFormatError:
                raise
            except Exception as e:
                raise _ext_failure(code, e) from None
        return general(code, payload)

    def decode_object(payload: bytes) -> Any:
        level = state.level
        if len(payload) <= STREAM_THRESHOLD and level < MAX_DEPTH:
            state.level = level + 1
            try:
                decoded = unpackb(
                    payload, ext_hook=hook, raw=False, strict_map_key=False, timestamp=3
                )
            finally:
                state.level = level
            if type(decoded) is list and len(decoded) == 2:
                name, fields = decoded
                if type(fields) is dict and type(name) is str:
                    plan = classes.get(name, _NO_KEY)
                    if plan is _NO_KEY:
                        plan = classes[name] = _fast_plan(name)
                    if plan is not None and fields.keys() == plan[1].keys():
                        obj = new(plan[0])
                        obj.__dict__.update(fields)
                        # Its dict and values (the keys are the class's own field names, shared).
                        charge = flat(map(flat_size_of, map(type, fields.values()), defaults))
                        if charge < FLAT_SIZED and len(fields) <= FLAT_MAX_ITEMS:
                            budget.left -= FLAT_OBJECT + charge
                        else:
                            budget.left -= _sizeof(obj.__dict__)
                            budget.charge_value(fields)
                        if budget.left < 0:
                            budget.exceeded()
                        return obj
            budget.charge_value(decoded)
        else:
            decoded = _unpack(payload)
        name, fields = decoded
        if type(name) is not str:
            _str(name)
        value = _rebuild_object(name, fields)
        if type(value) is not UnknownValue:
            # The name and the fields map were charged and are freed now (the fields' keys and
            # values live on in the rebuilt object's dict).
            budget.left += _sizeof(name) + _sizeof(fields)
        if hasattr(value, "__dict__"):
            budget.charge(_sizeof(value.__dict__))
        return value

    return hook, decode_object


#: Decoded immutable scalars by payload (Decimal, datetime, date, time, UUID): a trace repeats
#: amounts and dates, and sharing an immutable value is indistinguishable from copying it.
_SCALAR_CACHE_SIZE = 4096


def _cached(
    parse: Callable[[bytes], Any], cache: dict[bytes, Any] | None = None
) -> Callable[[bytes], Any]:
    if cache is None:
        cache = {}

    def decode(payload: bytes) -> Any:
        value = cache.get(payload)
        if value is None:
            value = parse(payload)
            if len(cache) >= _SCALAR_CACHE_SIZE:
                cache.clear()
            cache[payload] = value
        return value

    return decode


#: Decimals decoded so far, by payload (read inline by _reading_hooks).
_decimals: dict[bytes, Decimal] = {}


def _decimal(payload: bytes) -> Decimal:
    try:
        return Decimal(payload.decode("utf-8"))
    except InvalidOperation:
        raise TraceFormatError(f"malformed Decimal {payload[:40]!r}") from None


def _timedelta(payload: bytes) -> _dt.timedelta:
    days, seconds, micros = _unpack(payload)
    return _dt.timedelta(days=days, seconds=seconds, microseconds=micros)


def _opaque(payload: bytes) -> Opaque:
    name, text = _unpack(payload)
    return Opaque(str(name), str(text))


def _object(payload: bytes) -> Any:
    budget = _depth.budget
    if budget is not None:  # a read: its budget charges what the value takes
        return budget.decode_object(payload)
    name, fields = _unpack(payload)
    if type(name) is not str:
        _str(name)
    return _rebuild_object(name, fields)


def _error(payload: bytes) -> Any:
    name, args, attrs, message = _unpack(payload)
    return _rebuild_error(
        _str(name), _list(args), attrs if isinstance(attrs, dict) else {}, str(message)
    )


#: Ext codes whose decoded value is a new object beyond the lists and maps already charged
#: (OBJECT values charge their own).
_CHARGED = frozenset({ExtCode.TUPLE, ExtCode.SET, ExtCode.FROZENSET, ExtCode.OPAQUE, ExtCode.ERROR})

_DECODERS: dict[int, Callable[[bytes], Any]] = {
    ExtCode.DECIMAL: _cached(_decimal, _decimals),
    ExtCode.DATETIME: _cached(lambda p: _dt.datetime.fromisoformat(p.decode("utf-8"))),
    ExtCode.DATE: _cached(lambda p: _dt.date.fromisoformat(p.decode("utf-8"))),
    ExtCode.TIME: _cached(lambda p: _dt.time.fromisoformat(p.decode("utf-8"))),
    ExtCode.UUID: _cached(lambda p: uuid.UUID(bytes=p)),
    ExtCode.TIMEDELTA: _timedelta,
    ExtCode.TUPLE: lambda p: tuple(_list(_unpack(p))),
    ExtCode.SET: lambda p: set(_list(_unpack(p))),
    ExtCode.FROZENSET: lambda p: frozenset(_list(_unpack(p))),
    ExtCode.REDACTED: lambda p: REDACTED,
    ExtCode.OPAQUE: _opaque,
    ExtCode.OBJECT: _object,
    ExtCode.ERROR: _error,
}


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TraceFormatError(
            f"malformed ext value: expected a type name string, found {type(value).__name__}"
        )
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TraceFormatError(
            f"malformed ext value: expected an array, found {type(value).__name__}"
        )
    return value


def _rebuild_object(name: str, fields: Any) -> Any:
    cls = _resolve(name)
    if cls is None:
        return UnknownValue(name, fields)
    custom = _custom_types.get(cls)
    if custom is not None:
        try:
            return custom[2](fields)
        except Exception:  # fields the class no longer accepts: shown, never half-built
            return UnknownValue(name, fields)
    plan = _object_plans.get(cls)
    if plan is None:
        plan = _object_plans[cls] = _object_plan(cls)
    kind, known, has_dict = plan
    if kind == _ENUM:
        # By value, without calling the enum (its _missing_ is the application's code).
        try:
            member = cls._value2member_map_.get(fields)  # type: ignore[attr-defined]
        except TypeError:  # an unhashable recorded value
            member = None
        return member if member is not None else UnknownValue(name, fields)
    if kind != _DATACLASS or type(fields) is not dict:
        return UnknownValue(name, fields)
    # Rebuilt without calling __init__/__post_init__: the recorded state, exactly.
    if len(fields) == len(known) and all(k in known for k in fields):
        obj: Any = object.__new__(cls)
        if has_dict:
            obj.__dict__.update(fields)
        else:
            for key, value in fields.items():
                object.__setattr__(obj, key, value)
        return obj
    if not all(type(k) is str and k in known for k in fields):
        return UnknownValue(name, fields)  # a field the class no longer has
    obj = object.__new__(cls)
    for key, value in fields.items():
        object.__setattr__(obj, key, value)
    for key, default in known.items():
        if key not in fields:  # field added since recording: its default, if any
            if default is dataclasses.MISSING:
                return UnknownValue(name, fields)
            object.__setattr__(obj, key, default)
    return obj


_ENUM, _DATACLASS, _OTHER = range(3)


def _fast_plan(name: str) -> tuple[type, dict[str, Any]] | None:
    """(class, field name -> default) when objects named ``name`` are dataclasses with an
    instance dict (rebuilt by filling it), else None (rebuilt by :func:`_rebuild_object`)."""
    cls = _resolve(name)
    if cls is None or cls in _custom_types:
        return None
    plan = _object_plans.get(cls)
    if plan is None:
        plan = _object_plans[cls] = _object_plan(cls)
    kind, known, has_dict = plan
    return (cls, known) if kind == _DATACLASS and has_dict else None


def _object_plan(cls: type) -> tuple[int, dict[str, Any], bool]:
    """(kind, field name -> default, whether instances have a ``__dict__``), once per class."""
    if issubclass(cls, enum.Enum):
        return _ENUM, {}, False
    if not dataclasses.is_dataclass(cls):
        return _OTHER, {}, False
    known = {f.name: f.default for f in dataclasses.fields(cls)}
    # object.__new__ runs none of the class's code; slots classes have no __dict__ to fill.
    has_dict = hasattr(object.__new__(cls), "__dict__")
    return _DATACLASS, known, has_dict


_object_plans: dict[type, tuple[int, dict[str, Any], bool]] = {}


def _rebuild_error(
    name: str, args: list[Any], attrs: dict[Any, Any], message: str
) -> BaseException:
    cls = _resolve(name)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Exception)):
        return RecordedError(name, message, tuple(args))
    # Built like a dataclass is: no __new__ / __init__ of the application's class runs, only
    # the nearest built-in one (OSError's for OSError subclasses).
    base_new: Callable[..., Any] = next(
        b.__new__ for b in cls.__mro__ if b.__module__ == "builtins" and "__new__" in b.__dict__
    )
    try:
        error: BaseException = base_new(cls)
    except Exception:
        return RecordedError(name, message, tuple(args))
    error.args = tuple(args)
    for key, value in attrs.items():
        if not isinstance(key, str) or key.startswith("_"):
            continue
        # Only plain instance state: never shadow a method (with_traceback...) or go through a
        # property or descriptor of the class.
        static = inspect.getattr_static(cls, key, None)
        if (
            key == "args"
            or callable(static)
            or hasattr(type(static), "__set__")
            or hasattr(type(static), "__get__")
        ):
            continue
        try:
            object.__setattr__(error, key, value)
        except Exception:
            pass
    return error


def decode_value(data: bytes, *, allowed_modules: Iterable[str] = ()) -> Any:
    """Inverse of :func:`encode_value`; raises :class:`TraceFormatError` on malformed input.
    Types of ``allowed_modules`` decode as themselves (see :data:`ALLOWED_MODULES`)."""
    token = ALLOWED_MODULES.set(frozenset(allowed_modules))
    try:
        return msgpack.unpackb(data, **UNPACK_OPTIONS)
    except TraceFormatError:
        raise
    except (msgpack.StackError, RecursionError):
        raise TraceFormatError("malformed value: nested too deeply") from None
    except Exception as e:
        reason = " ".join(str(e).split())[:160]
        raise TraceFormatError(f"malformed value: {type(e).__name__}: {reason}") from None
    finally:
        ALLOWED_MODULES.reset(token)


UNPACK_OPTIONS["ext_hook"] = ext_hook
