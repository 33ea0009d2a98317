"""The optional accelerator of trace encoding: msgspec's MessagePack encoder, for the same bytes.

Installed with the ``prodture[fast]`` extra; the runtime never needs it (``msgpack`` is its one
dependency). When it is importable, :class:`~prodture.trace.format.TraceEncoder` packs its common
effect records with it (about twice as fast as a ``msgpack.Packer`` on a typical record).

msgspec writes natively some types the trace codec writes as ext values (``datetime``,
``Decimal`` as a string, ``UUID``, dataclasses, enums, sets, subclasses of ``int``/``str``/
``dict``...), so it is only ever given values of the exact types both libraries write alike:
``str``, ``bytes``, ``int``, ``float``, ``bool``, ``None``, :data:`Ext` values and tuples the
encoder built, and exact lists and dicts (str keys) whose items it checked to be such values. A record holding anything else, and any record msgspec
refuses (an int beyond 64 bits, a lone surrogate), goes to the msgpack path, which writes exactly
the bytes it always did (opaque values marked as such). ``tests/test_fastpack.py`` proves the
bytes equal.

``PRODTURE_ACCELERATOR=0`` in the environment (read at import) or ``fastpack.enabled = False``
(read by each new encoder) forces the msgpack path.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

try:
    from msgspec import defstruct as _defstruct
    from msgspec.msgpack import Encoder as _Encoder
    from msgspec.msgpack import Ext as _Ext
except ImportError:  # the extra is not installed (or blocked): the msgpack path only
    _Encoder = _Ext = _defstruct = None  # type: ignore[assignment,misc]

__all__ = ["available", "enabled", "Ext", "encode", "encoder", "map_struct"]

#: Whether msgspec could be imported.
available = _Encoder is not None

#: Whether new encoders use the accelerator (when available).
enabled = available and os.environ.get("PRODTURE_ACCELERATOR", "").strip().lower() not in {
    "0",
    "false",
    "no",
    "off",
}

#: msgspec's ext value type (``Ext(code, data)``), or None.
Ext: Any = _Ext

#: msgspec's encoder, shared: an ``encode`` keeps its state per call (and has no hook to reenter).
encode: Callable[[Any], bytes] | None = _Encoder().encode if _Encoder is not None else None


def encoder() -> Callable[[Any], bytes] | None:
    """The accelerator's ``encode`` for a new trace encoder, or None: the msgpack path only."""
    return encode if enabled else None


def map_struct(names: tuple[str, ...]) -> Callable[..., Any] | None:
    """A class whose instances, made with one value per name (positionally), ``encode`` exactly
    as the map ``{name: value, ...}`` in this order (a msgspec ``Struct``, garbage collection
    off: it is only ever given plain values and dropped once encoded); about 0.03 us cheaper
    than making and encoding the dict. None when the accelerator is not available or these
    names cannot be its fields (checked by encoding one)."""
    if _defstruct is None or encode is None:
        return None
    try:
        struct: Any = _defstruct("Fields", [(name, object) for name in names], gc=False)
        same = encode(struct(*range(len(names)))) == encode({n: i for i, n in enumerate(names)})
    except Exception:  # a name msgspec refuses as a field (``__x``...)
        return None
    return struct if same else None
