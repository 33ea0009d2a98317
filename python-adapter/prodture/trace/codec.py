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
import re
import sys
import threading
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

import msgpack

from ..effects import registry

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
    "allow_modules",
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

    _instance: "Redacted | None" = None

    def __new__(cls) -> "Redacted":
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


_allowed_modules: set[str] = set()


def allow_modules(modules: Iterable[str]) -> None:
    """Let the decoder resolve classes of these (already imported) modules and their submodules.

    This is how an application's own dataclasses decode without registering each: the replayer
    allows the modules it was told to import. Nothing is ever imported by decoding.
    """
    _allowed_modules.update(modules)


_BUILTIN_ERRORS = [
    ArithmeticError, AssertionError, AttributeError, BufferError, ConnectionAbortedError,
    ConnectionError, ConnectionRefusedError, ConnectionResetError, EOFError, Exception,
    FileExistsError, FileNotFoundError, IndexError, InterruptedError, IsADirectoryError, KeyError,
    LookupError, MemoryError, NotADirectoryError, NotImplementedError, OSError, OverflowError,
    PermissionError, RecursionError, RuntimeError, TimeoutError, TypeError, UnicodeError,
    ValueError, ZeroDivisionError, BrokenPipeError, ProcessLookupError,
]
for _cls in _BUILTIN_ERRORS:
    registry.add(_cls, f"builtins.{_cls.__name__}")


def _resolve(name: str) -> type | None:
    cls = registry.lookup(name)
    if cls is not None or not _allowed_modules:
        return cls
    # "pkg.mod.Outer.Inner": find the longest imported, allowed module prefix.
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module_name = ".".join(parts[:i])
        if not any(module_name == m or module_name.startswith(m + ".") for m in _allowed_modules):
            continue
        obj: Any = sys.modules.get(module_name)
        if obj is None:
            continue
        for attr in parts[i:]:
            obj = obj.__dict__.get(attr) if hasattr(obj, "__dict__") else None
            if obj is None:
                return None
        if isinstance(obj, type) and (
            dataclasses.is_dataclass(obj)
            or issubclass(obj, (enum.Enum, BaseException))
        ):
            return obj
        return None
    return None


# ---------------------------------------------------------------------------------------------
# Redaction


DEFAULT_SECRET_PATTERNS = (
    "password", "passwd", "secret", "token", "api_key", "apikey", "authorization",
    "card_number", "cvv", "cvc", "ssn",
)

_PLAIN = (str, int, float, bool, type(None), bytes, Decimal, uuid.UUID, _dt.datetime, _dt.date)


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

    def is_secret_name(self, name: str) -> bool:
        return self._regex is not None and self._regex.search(name) is not None

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

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """``value`` with secrets replaced by :data:`REDACTED`; the same object when clean."""
        t = type(value)
        if t in _PLAIN_SET or depth > 64:
            return value
        if t is dict:
            out = None
            for k, v in value.items():
                if isinstance(k, str) and self.is_secret_name(k):
                    nv: Any = REDACTED
                else:
                    nv = self.scrub(v, depth + 1)
                if nv is not v:
                    if out is None:
                        out = dict(value)
                    out[k] = nv
            return value if out is None else out
        if t is list or t is tuple:
            items = [self.scrub(v, depth + 1) for v in value]
            if all(a is b for a, b in zip(items, value)):
                return value
            return items if t is list else tuple(items)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            secret = self.secret_fields(t)
            changed: dict[str, Any] = {}
            for f, is_secret in zip(dataclasses.fields(value), secret):
                v = getattr(value, f.name)
                nv = REDACTED if is_secret else self.scrub(v, depth + 1)
                if nv is not v:
                    changed[f.name] = nv
            if not changed:
                return value
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
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
    t = type(obj)
    if t is Decimal:
        return msgpack.ExtType(ExtCode.DECIMAL, str(obj).encode())
    if t is _dt.datetime:
        return msgpack.ExtType(ExtCode.DATETIME, obj.isoformat().encode())
    if t is _dt.date:
        return msgpack.ExtType(ExtCode.DATE, obj.isoformat().encode())
    if t is _dt.time:
        return msgpack.ExtType(ExtCode.TIME, obj.isoformat().encode())
    if t is _dt.timedelta:
        return msgpack.ExtType(
            ExtCode.TIMEDELTA, _pack([obj.days, obj.seconds, obj.microseconds])
        )
    if t is uuid.UUID:
        return msgpack.ExtType(ExtCode.UUID, obj.bytes)
    if t is tuple:
        return msgpack.ExtType(ExtCode.TUPLE, _pack(list(obj)))
    if t is set or t is frozenset:
        code = ExtCode.SET if t is set else ExtCode.FROZENSET
        try:
            items = sorted(obj)
        except TypeError:
            items = list(obj)
        return msgpack.ExtType(code, _pack(items))
    if obj is REDACTED:
        return msgpack.ExtType(ExtCode.REDACTED, b"")
    if t is _ScrubbedObject:
        return msgpack.ExtType(ExtCode.OBJECT, _pack([obj.name, obj.fields]))
    if isinstance(obj, enum.Enum):
        return msgpack.ExtType(ExtCode.OBJECT, _pack([type_name(t), obj.value]))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return msgpack.ExtType(ExtCode.OBJECT, _pack([type_name(t), fields]))
    if isinstance(obj, BaseException):
        return msgpack.ExtType(ExtCode.ERROR, _pack(_error_payload(obj)))
    if isinstance(obj, (UnknownValue,)):
        return msgpack.ExtType(ExtCode.OBJECT, _pack([obj.type_name, obj.fields]))
    if isinstance(obj, Opaque):
        return msgpack.ExtType(ExtCode.OPAQUE, _pack([obj.type_name, obj.repr]))
    if isinstance(obj, (str, int, float, bytes, list, dict)):  # subclasses of plain types
        base = next(b for b in (str, bool, int, float, bytes, list, dict) if isinstance(obj, b))
        return base(obj)
    return msgpack.ExtType(ExtCode.OPAQUE, _pack([type_name(t), _safe_repr(obj)]))


def _error_payload(error: BaseException) -> list[Any]:
    if isinstance(error, RecordedError):
        return [error.type_name, list(error.recorded_args), {}, error.message]
    attrs = {k: v for k, v in vars(error).items() if not k.startswith("_")}
    return [type_name(type(error)), list(error.args), attrs, str(error)]


def _safe_repr(obj: Any) -> str:
    try:
        text = repr(obj)
    except Exception as e:  # a broken __repr__ must not break recording
        text = f"<{type(obj).__name__} (repr failed: {type(e).__name__})>"
    return text[:1000]


def _pack(obj: Any) -> bytes:
    try:
        return msgpack.packb(obj, default=_default, use_bin_type=True, datetime=False, strict_types=True)
    except (TypeError, ValueError, OverflowError):
        # An int too large, a dict with unhashable keys after scrubbing, a cycle...
        return msgpack.packb(
            msgpack.ExtType(ExtCode.OPAQUE, msgpack.packb([type(obj).__name__, _safe_repr(obj)])),
            use_bin_type=True,
        )


def encode_value(value: Any) -> bytes:
    """One value as a msgpack document (ext types for the non-plain ones)."""
    return _pack(value)


def new_packer() -> msgpack.Packer:
    return msgpack.Packer(default=_default, use_bin_type=True, datetime=False, strict_types=True)


# ---------------------------------------------------------------------------------------------
# Decoding

#: Nested ext payloads are decoded recursively; beyond this depth a trace is refused.
MAX_DEPTH = 64
_depth = threading.local()


def _unpack(payload: bytes) -> Any:
    level = getattr(_depth, "level", 0)
    if level >= MAX_DEPTH:
        raise TraceFormatError(f"value nested deeper than {MAX_DEPTH} levels")
    _depth.level = level + 1
    try:
        return msgpack.unpackb(
            payload,
            ext_hook=ext_hook,
            raw=False,
            strict_map_key=False,
            use_list=True,
        )
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
        raise TraceFormatError(f"malformed ext value (type {code}): {type(e).__name__}: {e}") from None


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
        return _rebuild_error(_str(name), _list(args), attrs if isinstance(attrs, dict) else {}, str(message))
    # Unknown ext codes from a newer writer stay visible but inert.
    return Opaque(f"ext{code}", f"<unknown ext type {code}, {len(payload)} bytes>")


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TraceFormatError(f"expected a type name string, found {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TraceFormatError(f"expected an array, found {type(value).__name__}")
    return value


def _rebuild_object(name: str, fields: Any) -> Any:
    cls = _resolve(name)
    if cls is None:
        return UnknownValue(name, fields)
    if issubclass(cls, enum.Enum):
        try:
            return cls(fields)
        except ValueError:
            return UnknownValue(name, fields)
    if dataclasses.is_dataclass(cls) and isinstance(fields, dict):
        # Rebuilt without calling __init__/__post_init__: the recorded state, exactly.
        obj = object.__new__(cls)
        known = {f.name for f in dataclasses.fields(cls)}
        if not all(isinstance(k, str) for k in fields) or set(fields) - known:
            return UnknownValue(name, fields)
        for key, value in fields.items():
            object.__setattr__(obj, key, value)
        for f in dataclasses.fields(cls):
            if f.name not in fields:  # field added since recording: its default, if any
                if f.default is dataclasses.MISSING:
                    return UnknownValue(name, fields)
                object.__setattr__(obj, f.name, f.default)
        return obj
    return UnknownValue(name, fields)


def _rebuild_error(name: str, args: list[Any], attrs: dict[Any, Any], message: str) -> BaseException:
    cls = _resolve(name)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Exception)):
        return RecordedError(name, message, tuple(args))
    error = cls.__new__(cls, *args)
    error.args = tuple(args)
    for key, value in attrs.items():
        if isinstance(key, str) and not key.startswith("_"):
            try:
                setattr(error, key, value)
            except Exception:
                pass
    return error


def decode_value(data: bytes) -> Any:
    """Inverse of :func:`encode_value`; raises :class:`TraceFormatError` on malformed input."""
    try:
        return _unpack(data)
    except TraceFormatError:
        raise
    except Exception as e:
        raise TraceFormatError(f"malformed value: {type(e).__name__}: {e}") from None
