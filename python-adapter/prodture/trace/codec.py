"""Values <-> msgpack, safely.

Plain msgpack types travel as themselves (``bytes`` as bin). Everything else is a documented ext
type (see ``protocol/trace-format.md``). Decoding never imports a module or calls anything a trace
names: a dataclass, enum or exception is rebuilt only when its name resolves through the
:data:`~prodture.effects.registry` (or an allowed module that is already imported); otherwise it
becomes an inert :class:`UnknownValue` / :class:`RecordedError`.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import inspect
import operator
import re
import sys
import threading
import uuid
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from decimal import Decimal, InvalidOperation
from typing import Any

import msgpack

from ..effects import registry
from ..text import short_repr

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
        return self.repr


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
    _custom_types[cls] = (name, to_fields, from_fields)
    _FAST[cls] = lambda o: _ext(ExtCode.OBJECT, _pack([name, to_fields(o)]))
    return cls


# ---------------------------------------------------------------------------------------------
# Redaction


DEFAULT_SECRET_PATTERNS = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "card_number",
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


class Redactor:
    """Removes secrets before encoding: fields whose name matches a pattern (case-insensitive
    substring or regex), and dataclass fields declared with :func:`prodture.secret`."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_SECRET_PATTERNS) -> None:
        self.patterns = tuple(patterns)
        self._regex = (
            re.compile("|".join(f"(?:{p})" for p in self.patterns), re.IGNORECASE)
            if self.patterns
            else None
        )
        self._field_cache: dict[type, tuple[bool, ...]] = {}
        self._plans: dict[type, tuple[tuple[str, ...], tuple[bool, ...]] | None] = {}
        self._name_cache: dict[str, bool] = {}

    def is_secret_name(self, name: str) -> bool:
        cached = self._name_cache.get(name)
        if cached is None:
            cached = self._regex is not None and self._regex.search(name) is not None
            if len(self._name_cache) < 10_000:  # dict keys may be unbounded data, not names
                self._name_cache[name] = cached
        return cached

    def secret_fields(self, cls: type) -> tuple[bool, ...]:
        """For a dataclass: which of its fields (in order) are secret."""
        cached = self._field_cache.get(cls)
        if cached is None:
            cached = tuple(
                bool(f.metadata.get("prodture.secret")) or self.is_secret_name(f.name)
                for f in dataclasses.fields(cls)
            )
            self._field_cache[cls] = cached
        return cached

    def _plan(self, t: type) -> tuple[tuple[str, ...], tuple[bool, ...]] | None:
        """(field names, secret flags) for a dataclass type; None for any other type."""
        try:
            return self._plans[t]
        except KeyError:
            pass
        plan = None
        if dataclasses.is_dataclass(t):
            plan = (tuple(f.name for f in dataclasses.fields(t)), self.secret_fields(t))
        self._plans[t] = plan
        return plan

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """``value`` with secrets replaced by :data:`REDACTED`; the same object when clean."""
        t = type(value)
        if t in _PLAIN_SET or depth > 64:
            return value
        if t is dict:
            out = None
            is_secret = self.is_secret_name
            for k, v in value.items():
                if isinstance(k, str) and is_secret(k):
                    nv: Any = REDACTED
                elif type(v) in _PLAIN_SET:
                    continue
                else:
                    nv = self.scrub(v, depth + 1)
                if nv is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = nv
            return value if out is None else out
        if t is list or t is tuple:
            items = None
            for i, v in enumerate(value):
                if type(v) in _PLAIN_SET:
                    continue
                nv = self.scrub(v, depth + 1)
                if nv is not v:
                    if items is None:
                        items = list(value)
                    items[i] = nv
            if items is None:
                return value
            return items if t is list else tuple(items)
        custom = _custom_types.get(t)
        if custom is not None:  # e.g. a pydantic model: its fields, scrubbed like a dict
            return _ScrubbedObject(custom[0], self.scrub(custom[1](value), depth + 1))
        plan = self._plan(t)
        if plan is not None:
            names, secret = plan
            changed: dict[str, Any] | None = None
            for name, is_secret in zip(names, secret, strict=False):
                v = getattr(value, name)
                if is_secret:
                    nv: Any = REDACTED
                elif type(v) in _PLAIN_SET:
                    continue
                else:
                    nv = self.scrub(v, depth + 1)
                if nv is not v:
                    if changed is None:
                        changed = {}
                    changed[name] = nv
            if changed is None:
                return value
            fields = {name: getattr(value, name) for name in names}
            fields.update(changed)
            return _ScrubbedObject(type_name(t), fields)
        return value


_PLAIN_SET = frozenset(_PLAIN)


@dataclasses.dataclass(frozen=True)
class _ScrubbedObject:
    name: str
    fields: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# Encoding


def _default(obj: Any) -> Any:
    """msgpack's hook for every non-plain value: an ext value; an Opaque one when it cannot be
    represented (an int beyond 64 bits inside, a cycle, nesting deeper than the reader accepts),
    so that one odd value never costs the whole record."""
    try:
        fast = _FAST.get(type(obj))
        return fast(obj) if fast is not None else _to_ext(obj)
    except (TypeError, ValueError, OverflowError, RecursionError, _TooDeep):
        return msgpack.ExtType(ExtCode.OPAQUE, _plain_pack([type_name(type(obj)), _safe_repr(obj)]))


class _TooDeep(Exception):
    pass


_ExtType = msgpack.ExtType
_new_tuple = tuple.__new__


def _ext(code: int, data: bytes) -> msgpack.ExtType:
    """``ExtType(code, data)`` without its argument checks (the hot path; ours are right)."""
    return _new_tuple(_ExtType, (code, data))


_REDACTED_EXT = msgpack.ExtType(ExtCode.REDACTED, b"")


def _object_encoder(t: type) -> Callable[[Any], Any]:
    names = tuple(f.name for f in dataclasses.fields(t))
    default_name = f"{t.__module__}.{t.__qualname__}"
    name_of = registry.name_of
    if len(names) > 1:
        many = operator.attrgetter(*names)

        def encode(obj: Any) -> Any:
            return _new_tuple(
                _ExtType,
                (
                    ExtCode.OBJECT,
                    _pack([name_of(t) or default_name, dict(zip(names, many(obj), strict=False))]),
                ),
            )
    else:

        def encode(obj: Any) -> Any:
            fields = {n: getattr(obj, n) for n in names}
            return _new_tuple(
                _ExtType, (ExtCode.OBJECT, _pack([name_of(t) or default_name, fields]))
            )

    return encode


#: Exact type -> encoder, for the common types (dataclass types are added as they are first met).
_FAST: dict[type, Callable[[Any], Any]] = {
    Decimal: lambda o: _new_tuple(_ExtType, (ExtCode.DECIMAL, str(o).encode())),
    _dt.datetime: lambda o: _new_tuple(_ExtType, (ExtCode.DATETIME, o.isoformat().encode())),
    _dt.date: lambda o: _ext(ExtCode.DATE, o.isoformat().encode()),
    _dt.time: lambda o: _ext(ExtCode.TIME, o.isoformat().encode()),
    _dt.timedelta: lambda o: _ext(ExtCode.TIMEDELTA, _pack([o.days, o.seconds, o.microseconds])),
    uuid.UUID: lambda o: _new_tuple(_ExtType, (ExtCode.UUID, o.bytes)),
    tuple: lambda o: _ext(ExtCode.TUPLE, _pack(list(o))),
    Redacted: lambda o: _REDACTED_EXT,
}


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
        encoder = _FAST[t] = _object_encoder(t)
        return encoder(obj)
    if isinstance(obj, (str, int, float, bytes, list, dict)):  # subclasses of plain types
        base = next(b for b in (str, bool, int, float, bytes, list, dict) if isinstance(obj, b))
        return base(obj)
    if isinstance(obj, _dt.datetime):  # subclasses (e.g. a test clock's datetime)
        return _ext(ExtCode.DATETIME, _dt.datetime.isoformat(obj).encode())
    if isinstance(obj, _dt.date):
        return _ext(ExtCode.DATE, _dt.date.isoformat(obj).encode())
    return _ext(ExtCode.OPAQUE, _plain_pack([type_name(t), _safe_repr(obj)]))


def _error_payload(error: BaseException) -> list[Any]:
    if isinstance(error, RecordedError):
        return [error.type_name, list(error.recorded_args), {}, error.message]
    attrs = {k: v for k, v in vars(error).items() if not k.startswith("_")}
    try:
        message = str(error)
    except Exception:
        message = _safe_repr(error)
    return [type_name(type(error)), list(error.args), attrs, message]


def _safe_repr(obj: Any) -> str:
    """The text an Opaque value keeps of what could not be encoded (bounded: a trace stays small)."""
    return short_repr(obj, 1000)


def _plain_pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


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
        return packer.pack(obj)
    except BaseException:
        packer.reset()
        raise
    finally:
        state.level = level


def encode_value(value: Any) -> bytes:
    """One value as a msgpack document (ext types for the non-plain ones)."""
    try:
        return msgpack.packb(
            value, default=_default, use_bin_type=True, datetime=False, strict_types=True
        )
    except (TypeError, ValueError, OverflowError):
        # An int too large or a cycle at the top level: the whole value becomes Opaque.
        return _plain_pack(
            msgpack.ExtType(
                ExtCode.OPAQUE, _plain_pack([type_name(type(value)), _safe_repr(value)])
            )
        )


def new_packer() -> msgpack.Packer:
    return msgpack.Packer(default=_default, use_bin_type=True, datetime=False, strict_types=True)


# ---------------------------------------------------------------------------------------------
# Decoding

#: Nested ext payloads are decoded recursively; beyond this depth a trace is refused.
MAX_DEPTH = 64
_depth = threading.local()


#: How every msgpack document of a trace is unpacked (ext -1, the msgpack timestamp, which v1
#: writers never write, decodes as an aware UTC datetime).
UNPACK_OPTIONS: dict[str, Any] = dict(
    ext_hook=None, raw=False, strict_map_key=False, use_list=True, timestamp=3
)


def _unpack(payload: bytes) -> Any:
    """An ext value's payload; the outermost ext value of a document is at depth 1."""
    level = getattr(_depth, "level", 0)
    if level >= MAX_DEPTH:
        raise TraceFormatError(f"value nested deeper than {MAX_DEPTH} levels")
    _depth.level = level + 1
    try:
        return msgpack.unpackb(payload, **UNPACK_OPTIONS)
    finally:
        _depth.level = level


def _text(payload: bytes) -> str:
    return payload.decode("utf-8")


def ext_hook(code: int, payload: bytes) -> Any:
    try:
        return _decode_ext(code, payload)
    except TraceFormatError:
        raise
    except RecursionError:
        raise TraceFormatError(f"value nested deeper than {MAX_DEPTH} levels") from None
    except Exception as e:
        reason = " ".join(str(e).split())[:160]
        raise TraceFormatError(
            f"malformed ext value (type {code}): {type(e).__name__}: {reason}"
        ) from None


def _decode_ext(code: int, payload: bytes) -> Any:
    if code == ExtCode.DECIMAL:
        try:
            return Decimal(_text(payload))
        except InvalidOperation:
            raise TraceFormatError(f"malformed Decimal {payload[:40]!r}") from None
    if code == ExtCode.DATETIME:
        return _dt.datetime.fromisoformat(_text(payload))
    if code == ExtCode.DATE:
        return _dt.date.fromisoformat(_text(payload))
    if code == ExtCode.TIME:
        return _dt.time.fromisoformat(_text(payload))
    if code == ExtCode.UUID:
        return uuid.UUID(bytes=payload)
    if code == ExtCode.TIMEDELTA:
        days, seconds, micros = _unpack(payload)
        return _dt.timedelta(days=days, seconds=seconds, microseconds=micros)
    if code == ExtCode.TUPLE:
        return tuple(_list(_unpack(payload)))
    if code == ExtCode.SET:
        return set(_list(_unpack(payload)))
    if code == ExtCode.FROZENSET:
        return frozenset(_list(_unpack(payload)))
    if code == ExtCode.REDACTED:
        return REDACTED
    if code == ExtCode.OPAQUE:
        name, text = _unpack(payload)
        return Opaque(str(name), str(text))
    if code == ExtCode.OBJECT:
        name, fields = _unpack(payload)
        return _rebuild_object(_str(name), fields)
    if code == ExtCode.ERROR:
        name, args, attrs, message = _unpack(payload)
        return _rebuild_error(
            _str(name), _list(args), attrs if isinstance(attrs, dict) else {}, str(message)
        )
    # Unknown ext codes from a newer writer stay visible but inert.
    return Opaque(f"ext{code}", f"<unknown ext type {code}, {len(payload)} bytes>")


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
    if issubclass(cls, enum.Enum):
        # By value, without calling the enum (its _missing_ is the application's code).
        try:
            member = cls._value2member_map_.get(fields)
        except TypeError:  # an unhashable recorded value
            member = None
        return member if member is not None else UnknownValue(name, fields)
    if isinstance(fields, dict) and dataclasses.is_dataclass(cls):
        # Rebuilt without calling __init__/__post_init__: the recorded state, exactly.
        known = _known_fields.get(cls)
        if known is None:
            known = _known_fields[cls] = {f.name: f.default for f in dataclasses.fields(cls)}
        if len(fields) != len(known) or not all(k in known for k in fields):
            if not all(isinstance(k, str) and k in known for k in fields):
                return UnknownValue(name, fields)  # a field the class no longer has
        obj = object.__new__(cls)
        setattr_ = object.__setattr__
        for key, value in fields.items():
            setattr_(obj, key, value)
        if len(fields) != len(known):
            for key, default in known.items():
                if key not in fields:  # field added since recording: its default, if any
                    if default is dataclasses.MISSING:
                        return UnknownValue(name, fields)
                    setattr_(obj, key, default)
        return obj
    return UnknownValue(name, fields)


_known_fields: dict[type, dict[str, Any]] = {}


def _rebuild_error(
    name: str, args: list[Any], attrs: dict[Any, Any], message: str
) -> BaseException:
    cls = _resolve(name)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Exception)):
        return RecordedError(name, message, tuple(args))
    # Built like a dataclass is: no __new__ / __init__ of the application's class runs, only
    # the nearest built-in one (OSError's for OSError subclasses).
    base_new = next(
        b.__new__ for b in cls.__mro__ if b.__module__ == "builtins" and "__new__" in b.__dict__
    )
    try:
        error = base_new(cls)
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
