"""pydantic v2 models as trace values.

``register_model(Booking)`` (or ``@register_model(name="shop.Booking")``) lets a handler take or
return a model: it is recorded as ``model_dump()`` under its registered name, and replay rebuilds
it with ``model_validate`` of that registered class only, so a trace still names no code to
import. Field names matching the recorder's secret patterns are redacted like a dict's keys, and
``SecretStr``/``SecretBytes`` values are always redacted.
"""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import pydantic

from ..trace.codec import REDACTED, Redacted, register_value_type

__all__ = ["register_model"]

M = TypeVar("M", bound=type[pydantic.BaseModel])

_SECRET_TYPES = (pydantic.SecretStr, pydantic.SecretBytes)


def register_model(cls: M | None = None, *, name: str | None = None) -> Any:
    """Register a pydantic v2 model class so traces can carry its instances by ``name``
    (default ``<module>.<qualname>``; a stable name keeps old traces readable after a move)."""

    def apply(model: M) -> M:
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            raise TypeError(
                f"register_model expects a pydantic.BaseModel subclass, got {model!r}; "
                "use prodture.register for dataclasses, enums and exceptions"
            )
        register_value_type(
            model,
            name or f"{model.__module__}.{model.__qualname__}",
            _dump,
            lambda fields: _rebuild(model, fields),
        )
        return model

    return apply(cls) if cls is not None else apply


def _dump(model: pydantic.BaseModel) -> dict[str, Any]:
    return _without_secrets(model.model_dump(mode="python"))


def _without_secrets(value: Any) -> Any:
    if isinstance(value, _SECRET_TYPES):
        return REDACTED
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        items = [_without_secrets(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    return value


def _rebuild(model: type[pydantic.BaseModel], fields: Any) -> pydantic.BaseModel:
    if not isinstance(fields, dict):
        raise TypeError(f"recorded {model.__name__} is not a mapping")
    try:
        return model.model_validate(fields)
    except pydantic.ValidationError:
        if not any(isinstance(v, Redacted) for v in _leaves(fields)):
            raise
    # A redacted field cannot validate: every other field is validated on its own, a redacted
    # one stays <redacted> (which replay matches against anything).
    values: dict[str, Any] = {}
    for key, value in fields.items():
        info = model.model_fields.get(key) if isinstance(key, str) else None
        if info is None:
            raise ValueError(f"recorded {model.__name__} has a field {key!r} it no longer has")
        if isinstance(value, Redacted):
            values[key] = value
            continue
        annotation: Any = info.annotation  # any typing form, not only a class
        if (
            isinstance(value, dict)
            and isinstance(annotation, type)
            and issubclass(annotation, pydantic.BaseModel)
        ):
            values[key] = _rebuild(annotation, value)
        elif any(isinstance(v, Redacted) for v in _leaves(value)):
            values[key] = value
        else:
            values[key] = _adapter(annotation).validate_python(value)
    return model.model_construct(**values)


@functools.lru_cache(maxsize=256)
def _adapter(annotation: Any) -> pydantic.TypeAdapter[Any]:
    return pydantic.TypeAdapter(annotation)


def _leaves(value: Any) -> Any:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _leaves(v)
    else:
        yield value
