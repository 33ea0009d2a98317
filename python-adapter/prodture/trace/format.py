"""Trace file format v1: records, the encoder that writes them, the reader that checks them.

A trace is a stream of msgpack arrays, one record each, the first element the record kind. The
normative description is ``protocol/trace-format.md``; this module is its reference
implementation. Records are self-delimiting and written one ``write`` each, so a process killed
mid-way leaves a readable prefix that the reader reports as incomplete.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import os
import platform
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

import msgpack

from ..effects import Effect, registry
from ..gcpause import cyclic_gc_paused
from ..text import clip as _clip
from ..text import short_repr as _short
from . import codec as _codec
from . import fastpack
from .codec import (
    _FLAT_DEFAULTS,
    _LEAF_EXT_FAST,
    _SIZED,
    ALLOWED_MODULES,
    FLAT_EFFECT,
    FLAT_MAX_ITEMS,
    FLAT_SIZED,
    NATIVE_TYPES,
    STREAM_THRESHOLD,
    MemoryBudget,
    Redactor,
    TraceFormatError,
    _enc,
    _flat_size,
    _sizeof,
    bake_registered_name,
    compilable_names,
    leaf_convert_source,
    leaf_source,
    likely_type,
    new_packer,
    opaque_of,
    packing_env,
    plain_object_encoder,
    plain_object_source,
    type_name,
)
from .codec import _PLAIN_SET as _PLAIN_TYPES
from .codec import remember as _remember

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "RecordKind",
    "TraceHeader",
    "EffectRecord",
    "OutcomeRecord",
    "Trace",
    "TraceEncoder",
    "TraceReader",
    "read_trace",
    "read_header",
    "code_fingerprint",
]

FORMAT_NAME = "prodture-trace"
FORMAT_VERSION = 1


class RecordKind:
    HEADER = 0
    INPUT = 1
    TYPE = 2
    SITE = 3
    EFFECT = 4
    OUTCOME = 5


@dataclasses.dataclass(frozen=True)
class TraceHeader:
    version: int
    handler: str
    trace_id: str
    started_at: _dt.datetime | None
    fingerprint: str
    python: str
    prodture: str
    meta: dict[str, Any]


@dataclasses.dataclass(slots=True)
class EffectRecord:
    """One performed effect: its request, its result or error, when, how long, and where."""

    seq: int
    type: str
    fields: tuple[str, ...]
    values: list[Any]
    ok: bool
    result: Any
    error: BaseException | None
    start_ns: int
    duration_ns: int
    site: tuple[str, int, str] | None

    @property
    def request(self) -> dict[str, Any]:
        return dict(zip(self.fields, self.values, strict=False))

    @property
    def short_type(self) -> str:
        return self.type.rsplit(".", 1)[-1]

    def describe_request(self, limit: int = 80) -> str:
        inner = ", ".join(
            f"{k}={_short(v, 60)}" for k, v in zip(self.fields, self.values, strict=False)
        )
        return _clip(f"{self.short_type}({inner})", limit)

    def describe_result(self, limit: int = 80) -> str:
        if self.ok:
            return _clip(_short(self.result, 400), limit)
        return _clip(describe_error(self.error), limit)


@dataclasses.dataclass(frozen=True)
class OutcomeRecord:
    ok: bool
    value: Any
    error: BaseException | None
    traceback: str
    failed_effect: int | None
    duration_ns: int

    def describe(self, limit: int = 120) -> str:
        if self.ok:
            return _clip(f"Success: {_short(self.value, 400)}", limit)
        return _clip(f"Failure: {describe_error(self.error)}", limit)


@dataclasses.dataclass
class Trace:
    """A decoded trace. ``complete`` is False when the file ends before its outcome record."""

    header: TraceHeader
    input: Any
    effects: list[EffectRecord]
    outcome: OutcomeRecord | None
    complete: bool
    truncated: bool
    source: str

    @property
    def handler(self) -> str:
        return self.header.handler

    @property
    def failed_effect(self) -> EffectRecord | None:
        if self.outcome is not None and self.outcome.failed_effect is not None:
            index = self.outcome.failed_effect - 1
            if 0 <= index < len(self.effects):
                return self.effects[index]
        return next((e for e in self.effects if not e.ok), None)


def describe_error(error: BaseException | None) -> str:
    if error is None:
        return "error"
    name = getattr(error, "type_name", None) or type(error).__name__
    name = name.rsplit(".", 1)[-1]
    message = getattr(error, "message", None)
    if not isinstance(message, str) or not message:
        try:
            message = str(error)
        except Exception:  # a rebuilt exception whose __str__ needs state it was not given
            message = ", ".join(_short(a, 60) for a in error.args)
    return f"{name}: {message}" if message else name


#: filename -> its fingerprint: at most ``codec.MAX_CACHED_TYPES`` (a program that makes file
#: names per request, exec'd code or generated modules, must not grow it forever).
_fingerprints: dict[str, str] = {}


def code_fingerprint(filename: str) -> str:
    """sha256 (first 16 hex digits) of a source file: tells whether code changed since recording."""
    cached = _fingerprints.get(filename)
    if cached is None:
        try:
            with open(filename, "rb") as f:
                cached = hashlib.sha256(f.read()).hexdigest()[:16]
        except OSError:
            cached = ""
        _remember(_fingerprints, filename, cached, _codec.MAX_CACHED_TYPES)
    return cached


# ---------------------------------------------------------------------------------------------
# Writing


def _request_getter(
    names: tuple[str, ...], secret: tuple[bool, ...], redacting: bool
) -> Callable[[Any], tuple[list[Any], bool]]:
    """A function from an effect to ``(values, clean)``: its request values, a list (the packer
    is strict about types: a tuple would become an ext value), with the REDACTED ext value in
    place of each secret field, whose value is never read; and whether every value is of a type
    that needs no redaction walk (always True when not ``redacting``). Compiled once per effect
    type and redactor (see :func:`_compiled_type`) to straight-line code when the field names
    are identifiers, which turns plain values that are not native (a ``Decimal``...) into their
    ext values (see :func:`~prodture.trace.codec.leaf_source`): no hook is called to pack them."""
    env: dict[str, Any] = {"CLEAN": _CLEAN_TYPES, "getattr": getattr, **packing_env(False)}
    secret = secret or (False,) * len(names)
    # Keyword field names (the dataclass decorator allows them for fields that are not
    # __init__ parameters) cannot be written as e.name: read them by name.
    env["fields"] = list(zip(names, secret, strict=True))
    source = (
        "def slow(e):\n"
        "    values = [REDACTED_EXT if s else getattr(e, n) for n, s in fields]\n"
        f"    return values, {'all(type(v) in CLEAN for v in values)' if redacting else 'True'}\n"
    )
    if compilable_names(names):
        read = [i for i, s in enumerate(secret) if not s]
        items = ", ".join("REDACTED_EXT" if s else f"v{i}" for i, s in enumerate(secret))
        source += "def request(e):\n" + "".join(f"    v{i} = e.{names[i]}\n" for i in read)
        if read:
            source += (
                "    try:\n"
                + "".join(leaf_source(f"v{i}", "return slow(e)", False, "        ") for i in read)
                + "    except Exception:  # a value the packer's hook marks as opaque\n"
                + "        return slow(e)\n"
            )
        source += f"    return [{items}], True\n"
    exec(source, env)  # noqa: S102 -- field names checked to be identifiers (or read by name), once per effect type and redactor
    request: Callable[[Any], tuple[list[Any], bool]] = env.get("request", env["slow"])
    return request


def _fast_record_encoder(
    names: tuple[str, ...],
    secret: tuple[bool, ...],
    result_type: type,
    redactor: Redactor | None,
    sample_effect: object | None = None,
    sample_result: object | None = None,
) -> Callable[..., bytes | None] | None:
    """For the accelerator (see :mod:`~prodture.trace.fastpack`), per effect type and result
    type: ``record(effect, seq, type_id, result, start_ns, duration_ns, site_id)``, the bytes
    of a successful effect record, its secret fields REDACTED; or None when a request or
    result value is of a type the accelerator may not be given, or it refuses the record (the
    msgpack path then packs it). Only ever called with a result of exactly ``result_type``
    (its callers look it up by ``type(result)``). One compiled call per record: the request's
    fields and the result read and turned into the accelerator's values inline (a result of a
    plain type that is not native into its ``Ext``, a dataclass without secret fields into its
    OBJECT ``Ext`` by :func:`~prodture.trace.codec.plain_object_source`'s code), then one
    encode. ``sample_effect`` and ``sample_result``, the first ones seen, give the likely
    type of each field (tested for first, see :func:`~prodture.trace.codec.leaf_source`); the
    code is right for any values.

    An exact list or dict is turned into the accelerator's values by :func:`_fast_value`, which
    refuses one holding anything to redact (the record then goes the msgpack path's way, the
    redactor's walk). None (no such encoder: the msgpack path) for field names that are not
    identifiers, and for any other result type (a dataclass with a secret field is redacted by
    the walk)."""
    if not compilable_names(names):
        return None
    env: dict[str, Any] = {**packing_env(True), "encode": fastpack.encode}
    if result_type in NATIVE_TYPES:
        convert = ""
        result = "r"
    elif result_type in _LEAF_EXT_FAST:  # (no type test: the result is of exactly this type)
        convert = "        " + leaf_convert_source("r", result_type, True) + "\n"
        result = "r"
    elif result_type is list or result_type is dict:
        env.update(fast_value=_fast_value(redactor), WALK=_WALK)
        convert = "        r = fast_value(r)\n        if r is WALK:\n            return None\n"
        result = "r"
    else:
        if plain_object_encoder(result_type, True) is None or (
            redactor is not None and True in redactor.secret_fields(result_type)
        ):
            return None
        lines, result, object_env = plain_object_source(
            result_type, "r", True, "r_", sample=sample_result
        )
        env.update(object_env)
        convert = "".join("    " + line + "\n" for line in lines.splitlines())
    secret = secret or (False,) * len(names)
    read = [i for i, s in enumerate(secret) if not s]
    items = ", ".join("REDACTED_EXT" if s else f"v{i}" for i, s in enumerate(secret))
    source = (
        "def record(e, seq, type_id, r, start, duration, site):\n"
        "    try:\n"
        + "".join(f"        v{i} = e.{names[i]}\n" for i in read)
        + "".join(
            leaf_source(
                f"v{i}", "return None", True, "        ", likely_type(sample_effect, names[i])
            )
            for i in read
        )
        + convert
        # tuples: msgspec writes them as the arrays lists are, and they are cheaper to make
        + f"        return encode(({RecordKind.EFFECT}, seq, type_id, ({items}{',' if len(names) == 1 else ''}), "
        f"True, {result}, start, duration, site))\n"
        "    except KeyboardInterrupt:\n"
        "        raise\n"
        # (a property read as a field raising SystemExit too: the program's code)
        "    except BaseException:  # an int beyond 64 bits...: the msgpack path marks it\n"
        "        return None\n"
    )
    exec(source, env)  # noqa: S102 -- field names checked to be identifiers, once per effect type, result type and redactor
    record: Callable[..., bytes | None] = env["record"]
    if "r_t" in env:  # an OBJECT result: its registered name is baked in
        bake_registered_name(record, "r_")
    return record


@dataclasses.dataclass(slots=True, frozen=True)
class _CompiledType:
    """What an effect type's records need that does not depend on the trace, made once per
    (class, redactor) and shared by every encoder (see :func:`_compiled_type`)."""

    request: Callable[[Any], tuple[list[Any], bool]]
    #: The effect's field names, and which are secret (for :func:`_fast_record_encoder`).
    names: tuple[str, ...]
    secret: tuple[bool, ...]
    #: Result type -> the accelerator's record encoder for it (see _fast_record_encoder), or
    #: None; made at a type's first result. None when the accelerator is not available.
    fast_records: dict[type, Callable[..., bytes | None] | None] | None
    #: The name the TYPE record's bytes were made for (re-made if the class is renamed).
    name: str
    #: The TYPE record after its type id: the packed name and field names.
    tail: bytes


class _Compiled:
    """An encoder's trace-independent state for one redactor, shared by every encoder that uses
    it: its effect types (class -> :class:`_CompiledType`) and result types (class -> the plain
    OBJECT encoder of a dataclass without secret fields, or None: redacted by a walk)."""

    __slots__ = ("types", "results", "value_types_version")

    def __init__(self) -> None:
        self.types: dict[type, _CompiledType] = {}
        self.results: dict[type, Callable[..., Any] | None] = {}
        #: codec.value_types_version when ``results`` was begun.
        self.value_types_version = _codec.value_types_version


#: The compiled state of encoders without a redactor (each redactor holds its own, in its
#: ``compiled``: a redactor's patterns are fixed when it is made, so are its secret fields).
_UNREDACTED = _Compiled()
#: Classes compiled per redactor, at most (classes made at run time must not grow it forever).
_MAX_COMPILED = 10_000
_UNSEEN = object()


def _compiled_for(redactor: Redactor | None) -> _Compiled:
    """The compiled state of ``redactor``, checked once per trace (one per encoder)."""
    if redactor is None:
        compiled = _UNREDACTED
    else:
        compiled = redactor.compiled
        if compiled is None:
            compiled = redactor.compiled = _Compiled()
    if compiled.value_types_version != _codec.value_types_version:
        # A value type registered since: a dataclass may now be encoded by its to_fields.
        compiled.value_types_version = _codec.value_types_version
        compiled.results = {}
        compiled.types = {}  # their record encoders per result type
    return compiled


def _plain_result(
    results: dict[type, Callable[..., Any] | None], t: type, redactor: Redactor | None
) -> Callable[..., Any] | None:
    """The plain OBJECT encoder of result type ``t`` (see ``plain_object_encoder``), None when
    ``redactor`` names one of its fields secret."""
    encoder = plain_object_encoder(t)
    if encoder is not None and redactor is not None and True in redactor.secret_fields(t):
        encoder = None
    return _remember(results, t, encoder, _MAX_COMPILED)


def _compiled_type(
    compiled: dict[type, _CompiledType], cls: type, redactor: Redactor | None
) -> _CompiledType:
    """``cls``'s compiled type: from ``compiled`` when the class still records under the name
    its TYPE record was made for (registering a class renames it), else made now."""
    name = getattr(cls, "effect_name", None) or type_name(cls)
    entry = compiled.get(cls)
    if entry is not None and entry.name == name:
        return entry
    names = tuple(f.name for f in dataclasses.fields(cls)) if dataclasses.is_dataclass(cls) else ()
    secret = redactor.secret_fields(cls) if (redactor is not None and names) else ()
    pack = new_packer().pack
    redacting = redactor is not None
    entry = _CompiledType(
        _request_getter(names, secret, redacting),
        names,
        secret,
        {} if fastpack.available and compilable_names(names) else None,
        name,
        pack(name) + pack(list(names)),
    )
    return _remember(compiled, cls, entry, _MAX_COMPILED)


#: A site's SITE record after its site id (file, line, function packed), per site.
_site_tails: dict[tuple[str, int, str], bytes] = {}
_MAX_SITES = 10_000
#: (effect class, result class, site) triples remembered per encoder, at most (see ok_effect).
_MAX_COMMON = 10_000

#: msgpack's encoding of the ids 0..127 (a positive fixint: the byte itself).
_FIXINT = [bytes((i,)) for i in range(128)]


def _packed_id(n: int) -> bytes:
    return _FIXINT[n] if n < 128 else msgpack.packb(n)


def _site_tail(site: tuple[str, int, str]) -> bytes:
    tail = _site_tails.get(site)
    if tail is None:
        file, line, function = site
        pack = new_packer().pack  # a site's parts are whatever the caller gave: any value
        tail = _remember(_site_tails, site, pack(file) + pack(line) + pack(function), _MAX_SITES)
    return tail


#: The TYPE record's head: an array of 4, kind 2; the SITE record's: an array of 5, kind 3.
_TYPE_HEAD = b"\x94" + _FIXINT[RecordKind.TYPE]
_SITE_HEAD = b"\x95" + _FIXINT[RecordKind.SITE]

#: Per (handler, fingerprint, python, prodture): the header record's bytes up to the trace_id
#: value, and those from after the started_at value to the meta value (see _header_parts).
_header_heads: dict[tuple[str, str, str, str], tuple[bytes, bytes]] = {}
_MAX_HEADER_HEADS = 1_000


def _header_parts(key: tuple[str, str, str, str]) -> tuple[bytes, bytes]:
    """The header record's bytes that depend only on ``key`` (handler, fingerprint, python,
    prodture): up to the trace_id value, and from after the started_at value to the meta value."""
    handler, fingerprint, python, prodture = key
    pack = new_packer().pack
    head = b"".join(
        [b"\x92", _FIXINT[RecordKind.HEADER], b"\x89"]  # [0, {9 entries}]
        + [pack(x) for x in ("format", FORMAT_NAME, "version", FORMAT_VERSION)]
        + [pack(x) for x in ("handler", handler, "trace_id")]
    )
    middle = b"".join(
        pack(x)
        for x in ("fingerprint", fingerprint, "python", python, "prodture", prodture, "meta")
    )
    return _remember(_header_heads, key, (head, middle), _MAX_HEADER_HEADS)


#: Request value types that need no redaction walk: plain values, and the REDACTED ext value a
#: compiled getter puts in place of a secret field.
_CLEAN_TYPES = _PLAIN_TYPES | {msgpack.ExtType}

#: What TraceEncoder._clean returns for a value it leaves to the redactor's walk, and how deep it
#: looks into dicts and lists before it does (far above a handler's usual input and result, far
#: below the walk's own MAX_REDACT_DEPTH).
_WALK = object()
_CLEAN_DEPTH = 8


def _clean_walk(
    value: Any,
    is_secret: Callable[[str], bool] | None,
    skip: frozenset[Any],
    other: Callable[[Any, int], Any],
    depth: int,
) -> Any:
    """The look into exact dicts and lists that :meth:`TraceEncoder._clean` (for msgpack) and
    :func:`_fast_value` (for the accelerator) share: ``value`` ready to pack when it holds
    nothing to redact, else ``_WALK``. A value of a type in ``skip`` is ready as it is; an
    exact list is ready when each of its items is; an exact dict when each of its keys is a
    str matching no pattern (``is_secret``, the redactor's cached name check; None: no
    redactor) and each value is ready; lists and dicts from ``_CLEAN_DEPTH`` down are
    ``_WALK``; so is a list of two items whose first is an exact str or bytes naming a secret
    (a ``(name, value)`` pair, see :class:`~prodture.trace.codec.Redactor`). Any other value is
    ``other(value, depth)``'s (the backend's own: ready, or ``_WALK``). Containers are copied
    only when an item is made ready as another value."""
    t = type(value)
    if t in skip:
        return value
    if t is list:
        if depth >= _CLEAN_DEPTH:
            return _WALK
        if len(value) == 2 and is_secret is not None:  # a (name, value) pair? (inline: hot)
            first = value[0]
            if type(first) is str:
                if is_secret(first):
                    return _WALK
            elif type(first) is bytes and is_secret(first.decode("latin-1")):
                return _WALK
        items: list[Any] | None = None
        for i, v in enumerate(value):
            if type(v) in skip:
                continue
            nv = _clean_walk(v, is_secret, skip, other, depth + 1)
            if nv is _WALK:
                return _WALK
            if nv is not v:
                if items is None:
                    items = list(value)
                items[i] = nv
        return value if items is None else items
    if t is dict:
        if depth >= _CLEAN_DEPTH:
            return _WALK
        out: dict[str, Any] | None = None
        for k, v in value.items():
            if type(k) is not str or (is_secret is not None and is_secret(k)):
                return _WALK
            if type(v) in skip:
                continue
            nv = _clean_walk(v, is_secret, skip, other, depth + 1)
            if nv is _WALK:
                return _WALK
            if nv is not v:
                if out is None:
                    out = dict(value)
                out[k] = nv
        return value if out is None else out
    return other(value, depth)


def _names_a_secret(first: Any, is_secret: Callable[[str], bool]) -> bool:
    """Whether ``first``, the first item of a tuple of two, makes it a ``(name, value)`` pair
    to redact (for :meth:`TraceEncoder._clean_other`; :func:`_clean_walk` tests a list's inline).
    Only a plain str or bytes name is looked at here: a tuple holding anything else is walked."""
    t = type(first)
    return (t is str and is_secret(first)) or (t is bytes and is_secret(first.decode("latin-1")))


def _fast_value(redactor: Redactor | None) -> Callable[[Any], Any]:
    """For the accelerator (see :mod:`~prodture.trace.fastpack`), made once per compiled record
    encoder: a function from an exact list or dict to the accelerator's values when it holds
    nothing to redact, else ``_WALK`` (see :func:`_clean_walk`): each native value as it is, each
    plain value that is not native (a ``Decimal``...) as its ``Ext``, a dataclass without secret
    fields whose field values are all plain as its OBJECT ``Ext``; anything else, and anything
    deeper than ``_CLEAN_DEPTH``, is ``_WALK``: the msgpack path and the redactor's walk decide,
    as they always did. The same bytes as that path writes for the values it lets through
    (``tests/test_fastpack.py``)."""
    is_secret = redactor.is_secret_name if redactor is not None else None

    def other(value: Any, depth: int) -> Any:
        t = type(value)
        leaf = _LEAF_EXT_FAST.get(t)
        if leaf is not None:
            return leaf(value)
        if depth >= _CLEAN_DEPTH:
            return _WALK
        plain = plain_object_encoder(t, True)
        if plain is None or (redactor is not None and True in redactor.secret_fields(t)):
            return _WALK
        ext = plain(value)
        return _WALK if ext is None else ext

    def fast_value(value: Any) -> Any:
        return _clean_walk(value, is_secret, NATIVE_TYPES, other, 0)

    return fast_value


#: A header's meta when empty (msgpack's empty map), and what the codec's hook makes of a
#: datetime, made without the hook for the header's started_at.
_EMPTY_MAP = b"\x80"
_DATETIME = _codec.ExtCode.DATETIME

_UTC = _dt.timezone.utc
#: Per second: the ISO text of a UTC time up to its seconds (see _utc_iso).
_utc_seconds: dict[tuple[int, int, int, int, int, int], bytes] = {}


def _utc_iso(when: _dt.datetime) -> bytes:
    """``when.isoformat().encode()`` for an exact datetime in timezone.utc (a header's
    started_at), its text up to the seconds made once per second: the same bytes in half the
    time (isoformat formats the offset anew each call)."""
    key = (when.year, when.month, when.day, when.hour, when.minute, when.second)
    head = _utc_seconds.get(key)
    if head is None:
        head = _remember(
            _utc_seconds, key, when.replace(microsecond=0).isoformat()[:19].encode(), 64
        )
    us = when.microsecond
    return head + (b".%06d+00:00" % us if us else b"+00:00")


_version: str | None = None


def _prodture_version() -> str:
    global _version
    if _version is None:
        from .. import __version__  # at first use: the package imports this module

        _version = __version__
    return _version


class TraceEncoder:
    """Turns one execution into record bytes. One per trace; not shared between threads.

    Effect types and call sites are interned (defined once by a TYPE / SITE record) so each
    effect record is a short array of ids and values.

    Every method returns the complete bytes of its record(s) or raises nothing: a value that
    cannot be encoded is written as an OPAQUE placeholder (§4.5 of the format), so the bytes
    always read back, and the encoder's state (which types and sites are defined) only changes
    with bytes that are returned.

    ``on_opaque(type_name)`` is called, in the encoding thread, for every value recorded as
    opaque; :attr:`opaque_values` counts them.
    """

    def __init__(
        self,
        redactor: Redactor | None = None,
        *,
        on_opaque: Callable[[str], None] | None = None,
    ) -> None:
        self._packer = new_packer()
        #: The accelerator's encode (see fastpack), or None: every record packed by msgpack.
        self._fast = fastpack.encoder()
        #: Effect types defined in this trace: class -> (type id, compiled type).
        self._types: dict[type, tuple[int, _CompiledType]] = {}
        #: The common records, for the accelerator (see ok_effect): (effect class, result
        #: class, site) -> (record encoder, type id, site id), for each such triple this trace
        #: has encoded with a record encoder; empty without the accelerator.
        self._common: dict[tuple[type, type, Any], tuple[Callable[..., bytes | None], int, Any]]
        self._common = {}
        #: Call sites defined in this trace: site -> site id; None (no site) -> None.
        self._sites: dict[tuple[str, int, str] | None, int | None] = {None: None}
        compiled = _compiled_for(redactor)
        self._compiled = compiled.types
        self._plain_results = compiled.results
        self.redactor = redactor
        self.on_opaque = on_opaque
        #: Values recorded as OPAQUE by this encoder (they cannot be replayed).
        self.opaque_values = 0
        #: Opaque values of the record being packed (an attempt that fails does not count).
        self._pending_opaque: list[str] = []

    def _commit_opaque(self) -> None:
        names, self._pending_opaque = self._pending_opaque, []
        self.opaque_values += len(names)
        if self.on_opaque is not None:
            for name in names:
                self.on_opaque(name)

    def header(
        self,
        handler: str,
        *,
        trace_id: str | None = None,
        started_at: _dt.datetime | None = None,
        fingerprint: str = "",
        meta: dict[str, Any] | None = None,
        python: str | None = None,
        prodture: str | None = None,
    ) -> bytes:
        """The header record. Every field can be given, so that the same arguments always
        give the same bytes (the golden vectors rely on it)."""
        _enc.encoder = self
        trace_id = trace_id or uuid.uuid4().hex
        started_at = started_at or _dt.datetime.now(_dt.timezone.utc)
        python = python if python is not None else platform.python_version()
        prodture = prodture if prodture is not None else _prodture_version()
        meta = meta or {}
        if meta and self.redactor is not None:  # free-form: redacted like any value (§6)
            meta = self.redactor.scrub(meta)
        parts = None
        if (
            type(handler) is str
            and type(fingerprint) is str
            and type(python) is str
            and type(prodture) is str
        ):
            key = (handler, fingerprint, python, prodture)
            parts = _header_heads.get(key) or _header_parts(key)
        if parts is not None:
            # The parts that do not change between traces were packed once (_header_parts).
            packer = self._packer
            try:
                # started_at: what the codec's hook makes of an exact datetime, made here
                # without the hook (a subclass is left to it).
                when: Any = started_at
                if type(started_at) is _dt.datetime:
                    when = _codec._ext(
                        _DATETIME,
                        _utc_iso(started_at)
                        if started_at.tzinfo is _UTC
                        else started_at.isoformat().encode(),
                    )
                # [trace_id, "started_at", started_at] without its array head; the meta map at
                # the depth it has in the record (msgpack's nesting limit counts the arrays).
                middle: bytes = packer.pack([trace_id, "started_at", when])[1:]
                tail: bytes = (
                    _EMPTY_MAP if type(meta) is dict and not meta else packer.pack([[meta]])[2:]
                )
            except Exception:
                packer.reset()
                self._pending_opaque.clear()
            else:
                if self._pending_opaque:
                    self._commit_opaque()
                return parts[0] + middle + parts[1] + tail
        body = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "handler": handler,
            "trace_id": trace_id,
            "started_at": started_at,
            "fingerprint": fingerprint,
            "python": python,
            "prodture": prodture,
            "meta": meta,
        }
        try:
            data: bytes = self._packer.pack([RecordKind.HEADER, body])
        except Exception:
            self._packer.reset()
            self._pending_opaque.clear()
            body["meta"] = self._or_opaque(body["meta"], 2)
            data = self._packer.pack([RecordKind.HEADER, body])
        self._commit_opaque()
        return data

    def input(self, value: Any) -> bytes:
        _enc.encoder = self
        # A plain value has nothing to redact (the redactor returns it as is).
        if self.redactor is not None and type(value) not in _PLAIN_TYPES:
            data = self._pack_clean(self.redactor, [RecordKind.INPUT, value], 1)
            if data is not None:
                return data
            value = self.redactor.scrub(value)
        return self._pack_or_mark([RecordKind.INPUT, value], (1,))

    def _pack_clean(self, redactor: Redactor, record: list[Any], slot: int) -> bytes | None:
        """``record`` packed when :meth:`_clean` finds nothing to redact in its value at
        ``slot``, else None (then the redactor walks it). The same bytes as the redactor's walk
        followed by the packer: only values that walk leaves as they are go this way."""
        try:
            ready = self._clean(record[slot], redactor)
        except Exception:  # a dict changed by another thread while read: the walk decides
            ready = _WALK
        packer = self._packer
        if ready is not _WALK:
            record[slot] = ready
            try:
                data: bytes = packer.pack(record)
            except Exception:  # the general way marks what cannot be packed
                packer.reset()
                ready = _WALK
        if ready is _WALK:
            # Opaque parts of values packed before the walk was chosen are noted again by it.
            self._pending_opaque.clear()
            return None
        if self._pending_opaque:
            self._commit_opaque()
        return data

    def _clean(self, value: Any, redactor: Redactor) -> Any:
        """``value`` ready to pack when it holds nothing to redact, else ``_WALK``: a plain value;
        a dict whose keys are all str matching no pattern and whose values are clean; a list of
        clean values (see :func:`_clean_walk`); a tuple of plain values; a dataclass without
        secret fields whose field values are all plain, encoded here and now by its compiled
        OBJECT encoder (the ext value the packer's hook would make of it; see
        :meth:`_clean_other`). Anything else, and anything deeper than ``_CLEAN_DEPTH``, is left
        to the redactor's walk, which decides as it always did."""
        return _clean_walk(value, redactor.is_secret_name, _PLAIN_TYPES, self._clean_other, 0)

    def _clean_other(self, value: Any, depth: int) -> Any:
        """:meth:`_clean` of a value that is neither plain nor an exact list or dict (for
        :func:`_clean_walk`); ``self.redactor`` is set (only then is there a walk to skip)."""
        if depth >= _CLEAN_DEPTH:
            return _WALK
        t = type(value)
        redactor = self.redactor
        assert redactor is not None
        if t is tuple:
            if len(value) == 2 and _names_a_secret(value[0], redactor.is_secret_name):
                return _WALK  # a (name, value) pair
            return value if all(map(_PLAIN_TYPES.__contains__, map(type, value))) else _WALK
        results = _compiled_for(redactor).results
        plain: Any = results.get(t, _UNSEEN)
        if plain is _UNSEEN:
            plain = _plain_result(results, t, redactor)
        if plain is None:
            return _WALK
        packer = self._packer  # idle: the record is packed after this
        try:
            ext = plain(value, packer.pack)
        except KeyboardInterrupt:
            raise
        except BaseException:  # an int beyond 64 bits, a property's SystemExit: the general way
            packer.reset()
            return _WALK
        return _WALK if ext is None else ext

    def _pack_or_mark(self, record: list[Any], value_slots: tuple[int, ...]) -> bytes:
        """``record`` packed. When msgpack refuses it (an int beyond 64 bits, nesting deeper
        than the packer's limit, a cycle), each value slot that cannot be packed alone becomes
        an OPAQUE placeholder, so the record is still written and marks what was lost."""
        packer = self._packer
        try:
            data: bytes = packer.pack(record)
        except Exception:
            packer.reset()
            self._pending_opaque.clear()
        else:
            if self._pending_opaque:
                self._commit_opaque()
            return data
        record = list(record)
        for slot in value_slots:
            value = record[slot]
            if slot == 3 and record[0] == RecordKind.EFFECT:  # the request: one value per field
                record[slot] = [self._or_opaque(v, 2) for v in value]
            else:
                record[slot] = self._or_opaque(value, 1)
        data = packer.pack(record)
        self._commit_opaque()
        return data

    def _or_opaque(self, value: Any, depth: int = 0) -> Any:
        """``value``, or its OPAQUE placeholder when it cannot be packed ``depth`` arrays deep
        (where it sits in its record: msgpack's nesting limit counts the record's arrays)."""
        probe = value
        for _ in range(depth):
            probe = [probe]
        pending = len(self._pending_opaque)
        try:
            self._packer.pack(probe)
            failure = None
        except Exception as e:
            self._packer.reset()
            failure = e
        # The record's own packing notes this value's opaque parts again: forget the probe's.
        del self._pending_opaque[pending:]
        if failure is None:
            return value
        reason = " ".join(str(failure).split())[:120] or type(failure).__name__
        return opaque_of(value, f"msgpack refused it: {type(failure).__name__}: {reason}")

    def common_records(
        self,
    ) -> dict[tuple[type, type, Any], tuple[Callable[..., bytes | None], int, Any]]:
        """What :meth:`ok_effect` looks a common record's encoder up in, for a caller that does
        it inline (a recording session: one Python call per effect fewer): (effect class,
        result class, site) -> (record encoder, type id, site id). Such a caller calls
        ``record(effect, seq, type_id, result, start_ns, duration_ns, site_id)`` only as
        ok_effect does (a successful effect; exact int ``seq``, ``start_ns``, ``duration_ns``)
        and gives anything it does not find to :meth:`_effect`, a record that returns None to
        ``_effect(..., fast=False)`` (ok_effect's own ways; or all of it to :meth:`effect`).
        The dict is this encoder's own, changed in place, and only once the bytes of an
        effect that defines its type and site are in hand (see :meth:`_effect`)."""
        return self._common

    def effect(
        self,
        seq: int,
        effect: Effect,
        ok: bool,
        value: Any,
        start_ns: int,
        duration_ns: int,
        site: tuple[str, int, str] | None,
    ) -> bytes:
        if ok is True and type(seq) is int and type(start_ns) is int and type(duration_ns) is int:
            return self.ok_effect(seq, effect, value, start_ns, duration_ns, site)
        return self._effect(seq, effect, ok, value, start_ns, duration_ns, site)

    def ok_effect(
        self,
        seq: int,
        effect: Effect,
        value: Any,
        start_ns: int,
        duration_ns: int,
        site: tuple[str, int, str] | None,
    ) -> bytes:
        """:meth:`effect` of a successful effect, for a caller whose ``seq``, ``start_ns`` and
        ``duration_ns`` are exact ints (a recording session: the runtime's counter and clock),
        which :meth:`effect` checks for (an int subclass is written as msgpack writes it)."""
        # The common record, for the accelerator: an effect of a type and at a site this trace
        # has defined, its result of a type with a record encoder, one look-up (the three
        # met together before); only values of the exact types it writes as msgpack does (see
        # fastpack), anything else (or a record the encoder refuses) goes the general way.
        common = self._common.get((type(effect), type(value), site))
        if common is not None:
            record, type_id, site_id = common
            body = record(effect, seq, type_id, value, start_ns, duration_ns, site_id)
            if body is not None:
                return body
            # refused (an int beyond 64 bits...): msgpack packs it, without a 2nd try
            return self._effect(seq, effect, True, value, start_ns, duration_ns, site, False)
        return self._effect(seq, effect, True, value, start_ns, duration_ns, site)

    def _effect(
        self,
        seq: int,
        effect: Effect,
        ok: bool,
        value: Any,
        start_ns: int,
        duration_ns: int,
        site: tuple[str, int, str] | None,
        fast: bool = True,
    ) -> bytes:
        """:meth:`effect`'s general way: defines the type and site when new, packs with the
        accelerator when it can (making the record encoder of a new result type; not when
        ``fast`` is False: it refused this record), else with msgpack."""
        cls = type(effect)
        defined = self._types.get(cls)
        if defined is None:
            compiled = _compiled_type(self._compiled, cls, self.redactor)
            type_id = len(self._types)
            prefix = _TYPE_HEAD + _packed_id(type_id) + compiled.tail
        else:
            type_id, compiled = defined
            prefix = b""
        known: Any = self._sites.get(site, _UNSEEN)
        site_id: int | None = known
        new_site = None
        if known is _UNSEEN:
            site_id = new_site = len(self._sites) - 1  # (None is not a site)
            prefix += _SITE_HEAD + _packed_id(new_site) + _site_tail(site)  # type: ignore[arg-type]
        body = None
        common: tuple[Callable[..., bytes | None], int, Any] | None = None
        fast_records = compiled.fast_records if self._fast is not None else None
        if (
            fast
            and fast_records is not None
            and ok is True
            and type(seq) is int
            and type(start_ns) is int
            and type(duration_ns) is int
        ):
            t = type(value)
            record: Any = fast_records.get(t, _UNSEEN)
            if record is _UNSEEN:
                record = _remember(
                    fast_records,
                    t,
                    _fast_record_encoder(
                        compiled.names, compiled.secret, t, self.redactor, effect, value
                    ),
                    _MAX_COMPILED,
                )
            if record is not None:
                body = record(effect, seq, type_id, value, start_ns, duration_ns, site_id)
                if body is not None:
                    common = (record, type_id, site_id)
        if body is None:
            body = self._effect_body(
                seq, effect, compiled, type_id, ok, value, start_ns, duration_ns, site_id
            )
        # Only now, with every byte of this record in hand: the type and site are defined.
        if defined is None:
            self._types[cls] = (type_id, compiled)
        if new_site is not None:
            self._sites[site] = new_site
        if common is not None:  # ok_effect's look-up from now on
            _remember(self._common, (cls, type(value), site), common, _MAX_COMMON)
        return body if not prefix else prefix + body

    def _effect_body(
        self,
        seq: int,
        effect: Effect,
        compiled: _CompiledType,
        type_id: int,
        ok: bool,
        value: Any,
        start_ns: int,
        duration_ns: int,
        site_id: int | None,
    ) -> bytes:
        """The effect record packed by msgpack, its values scrubbed when they need it."""
        _enc.encoder = self
        # The request's values, its secret fields already REDACTED (see _request_getter).
        values, clean = compiled.request(effect)
        result = value
        redactor = self.redactor
        if not clean:
            # Each value on its own: the list is the record's, not a (name, value) pair.
            values = redactor.scrub_each(values)  # type: ignore[union-attr]
        if ok and type(value) not in _PLAIN_TYPES:
            plain: Any = self._plain_results.get(type(value), _UNSEEN)
            if plain is _UNSEEN:
                plain = _plain_result(self._plain_results, type(value), redactor)
            result = None
            if plain is not None:
                # The common result: a dataclass without secret fields whose field values are
                # all plain, encoded here as its ext value (nothing in it to redact).
                pending = len(self._pending_opaque)
                # With the record's packer, idle until the record is packed: packing plain
                # values calls only the codec's hook, never back into this encoder.
                packer = self._packer
                try:
                    result = plain(value, packer.pack)
                except KeyboardInterrupt:
                    raise
                except BaseException:  # left to the packer's hook, which marks it as opaque
                    packer.reset()
                    del self._pending_opaque[pending:]
                    result = None
            if result is None:
                value = result = redactor.scrub(value) if redactor is not None else value
        record = [
            RecordKind.EFFECT,
            seq,
            type_id,
            values,
            ok,
            result,
            start_ns,
            duration_ns,
            site_id,
        ]
        try:  # the common case, inline
            body: bytes = self._packer.pack(record)
            if self._pending_opaque:
                self._commit_opaque()
        except Exception:
            self._packer.reset()
            self._pending_opaque.clear()
            record[5] = value  # as given: its opaque parts are noted again
            body = self._pack_or_mark(record, (3, 5))
        return body

    def outcome(
        self, ok: bool, value: Any, traceback: str, failed_effect: int | None, duration_ns: int
    ) -> bytes:
        _enc.encoder = self
        if ok and self.redactor is not None and type(value) not in _PLAIN_TYPES:
            data = self._pack_clean(
                self.redactor,
                [RecordKind.OUTCOME, ok, value, traceback, failed_effect, duration_ns],
                2,
            )
            if data is not None:
                return data
            value = self.redactor.scrub(value)
        return self._pack_or_mark(
            [RecordKind.OUTCOME, ok, value, traceback, failed_effect, duration_ns], (2,)
        )


# ---------------------------------------------------------------------------------------------
# Reading

#: Traces larger than this are refused rather than read into memory.
MAX_TRACE_BYTES = 2 * 1024 * 1024 * 1024

#: What the objects decoded from a trace may take, at most: this many times the file's size plus
#: READ_MEMORY_BASE bytes (estimated with sys.getsizeof as each container and ext value is
#: completed); beyond it the trace is refused as hostile (see protocol/trace-format.md §5.4).
READ_MEMORY_FACTOR = 16
READ_MEMORY_BASE = 1 << 20


def _memory_budget(size: int) -> MemoryBudget:
    return MemoryBudget(
        READ_MEMORY_FACTOR * size + READ_MEMORY_BASE,
        f"its values decode to more than {READ_MEMORY_FACTOR} times the file's {size} bytes "
        "(millions of tiny items): the file is hostile or corrupt",
    )


class TraceReader:
    """Reads and validates a trace from a path, bytes, or a binary file object.

    Every problem — not msgpack, not a trace, a newer format version, a malformed record, a
    hostile length or nesting — raises :class:`TraceFormatError` with a one-line message. A file
    that simply stops (a killed writer) is not an error: the readable prefix is returned with
    ``complete=False``.
    """

    def __init__(
        self,
        source: str | os.PathLike[str] | bytes | IO[bytes],
        *,
        name: str | None = None,
        allowed_modules: Iterable[str] = (),
    ) -> None:
        self._source = source
        # whose types decode as themselves (see codec.ALLOWED_MODULES), for this reader only
        self._allowed_modules = frozenset(allowed_modules)
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.name = name or "<bytes>"
        elif hasattr(source, "read"):
            self.name = name or str(getattr(source, "name", "<stream>"))
        else:
            self.name = name or os.fspath(source)

    def _data(self, limit: int = -1) -> bytes:
        """The trace's bytes (only the first ``limit`` when it is not -1)."""
        source = self._source
        if isinstance(source, (bytes, bytearray, memoryview)):
            return bytes(source if limit < 0 else source[:limit])
        if hasattr(source, "read"):
            return source.read(limit)
        try:
            size = os.path.getsize(source)
            if size > MAX_TRACE_BYTES:
                raise TraceFormatError(
                    f"{self.name}: {size} bytes is larger than the {MAX_TRACE_BYTES} bytes a trace may be"
                )
            with open(source, "rb") as f:
                return f.read(limit)
        except FileNotFoundError:
            raise TraceFormatError(f"{self.name}: no such trace file; check the path") from None
        except IsADirectoryError:
            raise TraceFormatError(f"{self.name}: is a directory, not a trace file") from None
        except PermissionError:
            raise TraceFormatError(f"{self.name}: permission denied reading the trace") from None

    def _fail(self, what: str) -> TraceFormatError:
        return TraceFormatError(f"{self.name}: {what}")

    def _unpacker(self, data: bytes, budget: MemoryBudget) -> msgpack.Unpacker:
        unpacker = budget.unpacker(len(data), hooks=True)
        unpacker.feed(data)
        return unpacker

    def _unpack_error(self, e: Exception, at: int) -> TraceFormatError | None:
        """The TraceFormatError for an exception of ``Unpacker.unpack``; None for the end of the
        data (a truncated tail)."""
        if isinstance(e, msgpack.OutOfData):
            return None
        if isinstance(e, TraceFormatError):
            return self._fail(f"{e} (at byte {at}); the file is corrupt")
        if isinstance(e, (msgpack.StackError, RecursionError)):
            return self._fail("a value is nested too deeply: the file is corrupt or hostile")
        if isinstance(e, ValueError) and "exceeds max_" in str(e):
            # A declared length or count larger than the whole file: like a record cut off by a
            # killed writer, it runs past the end of the data (a truncated tail).
            return None
        return self._fail(f"not valid msgpack at byte {at} ({_reason(e)}); the file is corrupt")

    def raw_records(self, data: bytes | None = None) -> Iterator[tuple[list[Any], int]]:
        """(record, end offset) pairs; stops quietly at a truncated tail."""
        if data is None:
            data = self._data()
        if not data:
            raise self._empty()
        budget = _memory_budget(len(data))
        unpacker = self._unpacker(data, budget)
        with budget.active():
            while True:
                # Set around each unpack only: a generator's caller must not see it between yields.
                decoding = ALLOWED_MODULES.set(self._allowed_modules)
                try:
                    record = unpacker.unpack()
                except Exception as e:
                    error = self._unpack_error(e, unpacker.tell())
                    if error is None:
                        return
                    raise error from None
                finally:
                    ALLOWED_MODULES.reset(decoding)
                yield record, unpacker.tell()

    def _empty(self) -> TraceFormatError:
        return self._fail(
            "the file is empty: the recording process wrote nothing (nothing to replay)"
        )

    def header(self) -> TraceHeader:
        """The header alone, from the first :data:`HEADER_PREFIX_BYTES` of the trace: whose trace
        it is and when, without reading or decoding the rest."""
        first = next(self.raw_records(self._data(HEADER_PREFIX_BYTES)), None)
        record = first[0] if first is not None else None
        if not isinstance(record, list) or not record or record[0] != RecordKind.HEADER:
            raise self._fail("not a prodture trace (it does not start with a header record)")
        return self._header(record)

    def read(self) -> Trace:
        data = self._data()
        if not data:
            raise self._empty()
        budget = _memory_budget(len(data))
        decoding = ALLOWED_MODULES.set(self._allowed_modules)
        try:
            # a decoded trace holds no reference cycles: the cyclic collector has nothing to find
            with cyclic_gc_paused(young_pass_after=True), budget.active():
                return self._read(data, budget)
        finally:
            ALLOWED_MODULES.reset(decoding)

    def _read(self, data: bytes, budget: MemoryBudget) -> Trace:
        header: TraceHeader | None = None
        input_value: Any = None
        have_input = False
        effects: list[EffectRecord] = []
        append = effects.append
        outcome: OutcomeRecord | None = None
        types: dict[int, tuple[str, tuple[str, ...]]] = {}
        sites: dict[int, tuple[str, int, str]] = {}
        # Fed a chunk at a time: a record that does not fit in a chunk is seen (msgpack raises
        # OutOfData having decoded at most a chunk of it) and decoded item by item instead.
        size = len(data)
        view = memoryview(data)
        unpacker = budget.unpacker(size)
        unpack, tell = unpacker.unpack, unpacker.tell
        base = fed = 0  # data offset of the unpacker's first byte; bytes fed so far
        end = 0  # where the last whole record stopped
        index = -1
        streamed = False  # whether the record in hand was decoded (and charged) item by item
        while True:
            try:
                record = unpack()
                end = base + tell()
            except msgpack.OutOfData:
                if fed >= size:
                    break  # the end of the data, or a truncated tail
                if fed - end < STREAM_THRESHOLD:
                    unpacker.feed(view[fed : fed + STREAM_THRESHOLD])
                    fed += STREAM_THRESHOLD
                    continue
                try:
                    record, end = budget.stream_value(view, end)
                except Exception as e:
                    error = self._unpack_error(e, end)
                    if error is None:
                        break
                    raise error from None
                unpacker = budget.unpacker(size)
                unpack, tell = unpacker.unpack, unpacker.tell
                base = fed = end
                streamed = True  # charged as it was read
            except Exception as e:
                error = self._unpack_error(e, base + tell())
                if error is None:
                    break
                raise error from None
            index += 1
            # The common record, checked inline: an EFFECT of a defined type, in sequence.
            if type(record) is list and len(record) >= 9 and record[0] == 4 and have_input:
                _, seq, type_id, values, ok, payload, start, duration, site_id = (
                    record if len(record) == 9 else record[:9]
                )
                defined = types.get(type_id) if type(type_id) is int else None
                if (
                    defined is not None
                    and outcome is None
                    and type(seq) is int
                    and seq == len(effects) + 1
                    and type(values) is list
                    and len(values) == len(defined[1])
                    and type(start) is int
                    and type(duration) is int
                    and (ok is True or (ok is False and isinstance(payload, BaseException)))
                    and (site_id is None or (type(site_id) is int and site_id in sites))
                ):
                    if streamed:
                        streamed = False
                    else:  # what the record holds (itself replaced by the EffectRecord)
                        n = len(values)
                        # the flat charge (see FLAT_SIZED), inline: this runs once per effect
                        charge = (
                            sum(map(_flat_size, map(type, values), _FLAT_DEFAULTS))
                            if n <= FLAT_MAX_ITEMS
                            else FLAT_SIZED
                        )
                        if charge < FLAT_SIZED:
                            budget.left -= FLAT_EFFECT + charge
                        else:
                            budget.left -= FLAT_EFFECT + 8 * n
                            budget.charge_value(values)
                        if type(payload) in _SIZED:
                            budget.left -= _sizeof(payload)
                            budget.charge_value(payload)
                        if budget.left < 0:
                            budget.exceeded()
                    append(
                        EffectRecord(
                            seq,
                            defined[0],
                            defined[1],
                            values,
                            ok,
                            payload if ok else None,
                            None if ok else payload,
                            start,
                            duration,
                            sites[site_id] if site_id is not None else None,
                        )
                    )
                    continue
            if streamed:
                streamed = False
            else:
                budget.charge_value(record)
            if (
                not isinstance(record, list)
                or not record
                or not isinstance(record[0], int)
                or isinstance(record[0], bool)
            ):
                if index == 0:
                    raise self._fail(
                        "not a prodture trace (it does not start with a header record)"
                    )
                raise self._fail(f"record {index} is not a prodture record; the file is corrupt")
            kind = record[0]
            try:
                if index == 0:
                    if kind != RecordKind.HEADER:
                        raise self._fail(
                            "not a prodture trace (it does not start with a header record)"
                        )
                    header = self._header(record)
                elif kind > RecordKind.OUTCOME or kind < 0:
                    continue  # an unknown record kind (a later v1 writer's addition) is skipped
                elif kind == RecordKind.HEADER:
                    raise self._fail(
                        f"a second trace starts at record {index}: the file holds several traces "
                        "(a segment of DirectorySink(segment_bytes=...)?); split it into "
                        "one .prodtrace file per trace with 'prodture split FILE'"
                    )
                elif outcome is not None:
                    raise ValueError("a record follows the outcome record")
                elif kind == RecordKind.INPUT:
                    _arity(record, 2)
                    if have_input or effects or types or sites:
                        raise ValueError("the input record must come once, right after the header")
                    input_value, have_input = record[1], True
                elif not have_input:
                    raise ValueError("the input record is missing after the header")
                elif kind == RecordKind.TYPE:
                    _arity(record, 4)
                    _, type_id, name, fields = record[:4]
                    if (
                        not isinstance(name, str)
                        or not isinstance(fields, list)
                        or not all(isinstance(f, str) for f in fields)
                    ):
                        raise ValueError("bad type definition")
                    type_id = _int(type_id)
                    if type_id in types:
                        raise ValueError(f"type id {type_id} is defined twice")
                    # An older name of a registered effect (``prodture.effects.Now``) reads as
                    # its name today, so replay and the tools compare one name (§4.4).
                    types[type_id] = (registry.canonical(name), tuple(fields))
                elif kind == RecordKind.SITE:
                    _arity(record, 5)
                    _, site_id, file, line, function = record[:5]
                    if not isinstance(file, str) or not isinstance(function, str):
                        raise ValueError("bad site definition")
                    site_id = _int(site_id)
                    if site_id in sites:
                        raise ValueError(f"site id {site_id} is defined twice")
                    sites[site_id] = (file, _int(line), function)
                elif kind == RecordKind.EFFECT:
                    # Only a malformed effect gets here (see the inline check above): say how.
                    _arity(record, 9)
                    _, seq, type_id, values, ok, payload, start, duration, site_id = record[:9]
                    type_id = _int(type_id)
                    if type_id not in types:
                        raise ValueError(f"type id {type_id} is used before its type record")
                    name, fields = types[type_id]
                    seq = _int(seq)
                    if seq != len(effects) + 1:
                        raise ValueError(
                            f"effect number {seq} out of order (expected {len(effects) + 1})"
                        )
                    if not isinstance(values, list) or len(values) != len(fields):
                        raise ValueError("request does not match its type's fields")
                    ok = _bool(ok)
                    if site_id is not None:
                        site_id = _int(site_id)
                        if site_id not in sites:
                            raise ValueError(f"site id {site_id} is used before its site record")
                    _int(start), _int(duration)
                    if not ok:
                        _as_error(payload)
                    raise ValueError("malformed effect record")  # not reached for a valid one
                else:  # RecordKind.OUTCOME
                    _arity(record, 6)
                    _, ok, payload, tb, failed, duration = record[:6]
                    ok = _bool(ok)
                    if not isinstance(tb, str):
                        raise ValueError("the traceback is not a string")
                    if failed is not None:
                        failed = _int(failed)
                        if not 1 <= failed <= len(effects):
                            raise ValueError(f"the failed effect #{failed} was not recorded")
                    outcome = OutcomeRecord(
                        ok,
                        payload if ok else None,
                        None if ok else _as_error(payload),
                        tb,
                        failed,
                        _int(duration),
                    )
            except TraceFormatError:
                raise
            except (KeyError, ValueError, TypeError) as e:
                raise self._fail(
                    f"record {index} (kind {kind}) is malformed: {_reason(e)}; the file is corrupt"
                ) from None
        if header is None:
            raise self._fail("the file ends inside its header record: nothing was recorded")
        truncated = end != len(data)
        return Trace(
            header=header,
            input=input_value if have_input else None,
            effects=effects,
            outcome=outcome,
            complete=outcome is not None and not truncated,
            truncated=truncated,
            source=self.name,
        )

    def _header(self, record: list[Any]) -> TraceHeader:
        if len(record) < 2 or not isinstance(record[1], dict):
            raise self._fail("not a prodture trace (malformed header record)")
        body = record[1]
        if body.get("format") != FORMAT_NAME:
            raise self._fail("not a prodture trace (its header names another format)")
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise self._fail("header has no format version; the file is corrupt")
        if version > FORMAT_VERSION:
            raise self._fail(
                f"trace format version {version} is newer than this prodture reads ({FORMAT_VERSION}); "
                "upgrade prodture (pip install -U prodture)"
            )
        if version < 1:
            raise self._fail(f"trace format version {version} is not supported")
        handler = body.get("handler")
        if not isinstance(handler, str) or ":" not in handler:
            raise self._fail("header names no handler (module:qualname); the file is corrupt")
        started = body.get("started_at")
        meta = body.get("meta")
        return TraceHeader(
            version=version,
            handler=handler,
            trace_id=_text(body.get("trace_id")),
            started_at=started if isinstance(started, _dt.datetime) else None,
            fingerprint=_text(body.get("fingerprint")),
            python=_text(body.get("python")),
            prodture=_text(body.get("prodture")),
            meta=meta if isinstance(meta, dict) else {},
        )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _reason(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    return text[:160]


def _arity(record: list[Any], n: int) -> None:
    if len(record) < n:
        raise ValueError(f"expected {n} fields, found {len(record)}")


def _int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"expected an integer, found {type(value).__name__}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, found {type(value).__name__}")
    return value


def _as_error(payload: Any) -> BaseException:
    if isinstance(payload, BaseException):
        return payload
    raise ValueError("an error record does not hold an error value")


def read_trace(
    source: str | os.PathLike[str] | bytes | IO[bytes],
    *,
    name: str | None = None,
    allowed_modules: Iterable[str] = (),
) -> Trace:
    """Read and validate a whole trace (see :class:`TraceReader`)."""
    return TraceReader(source, name=name, allowed_modules=allowed_modules).read()


#: Bytes read to find a trace's header record (a header is a few hundred bytes).
HEADER_PREFIX_BYTES = 64 * 1024


def read_header(source: str | os.PathLike[str] | bytes | IO[bytes]) -> TraceHeader:
    """The validated header of a trace, reading only its first bytes (see :meth:`TraceReader.header`)."""
    return TraceReader(source).header()
