"""Decoded trace values as JSON: the machine-readable view the CLI (``--json``) prints.

Plain values stay plain; the others become one-key tagged objects (``{"$decimal": "0.00"}``),
documented in ``protocol/trace-format.md`` §8.1 ("Reading view"); the golden vectors use the
lossless wire-level rendering of §8 instead. Rendering never fails: anything unexpected becomes
``{"$repr": ...}``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import uuid
from decimal import Decimal
from typing import Any

from .codec import REDACTED, Opaque, RecordedError, UnknownValue, _custom_types, type_name
from .format import EffectRecord, OutcomeRecord, Trace

__all__ = ["to_json", "effect_to_json", "effect_view", "outcome_to_json", "trace_to_json"]


def to_json(value: Any, depth: int = 0) -> Any:
    if depth > 64:
        return {"$repr": "…"}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if value is REDACTED:
        return {"$redacted": True}
    if isinstance(value, Decimal):
        return {"$decimal": str(value)}
    if isinstance(value, _dt.datetime):
        return {"$datetime": value.isoformat()}
    if isinstance(value, _dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, _dt.time):
        return {"$time": value.isoformat()}
    if isinstance(value, _dt.timedelta):
        return {"$timedelta": value.total_seconds()}
    if isinstance(value, uuid.UUID):
        return {"$uuid": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"$bytes": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, list):
        return [to_json(v, depth + 1) for v in value]
    if isinstance(value, tuple):
        return {"$tuple": [to_json(v, depth + 1) for v in value]}
    if isinstance(value, (set, frozenset)):
        items = [to_json(v, depth + 1) for v in value]
        return {"$set" if isinstance(value, set) else "$frozenset": sorted(items, key=repr)}
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: to_json(v, depth + 1) for k, v in value.items()}
        return {"$map": [[to_json(k, depth + 1), to_json(v, depth + 1)] for k, v in value.items()]}
    if isinstance(value, UnknownValue):
        return {
            "$type": value.type_name,
            "fields": to_json(value.fields, depth + 1),
            "registered": False,
        }
    if isinstance(value, Opaque):
        return {"$opaque": value.type_name, "repr": value.repr}
    if isinstance(value, RecordedError):
        return {"$error": value.type_name, "message": value.message, "registered": False}
    if isinstance(value, BaseException):
        return {"$error": type_name(type(value)), "message": str(value)}
    if isinstance(value, enum.Enum):
        return {"$type": type_name(type(value)), "value": to_json(value.value, depth + 1)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: to_json(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value)
        }
        return {"$type": type_name(type(value)), "fields": fields}
    custom = _custom_types.get(type(value))
    if custom is not None:  # a registered pydantic model...: its recorded fields
        try:
            return {"$type": custom[0], "fields": to_json(custom[1](value), depth + 1)}
        except Exception:
            pass
    try:
        return {"$repr": repr(value)}
    except Exception:
        return {"$repr": f"<{type(value).__name__}>"}


def effect_to_json(effect: EffectRecord) -> dict[str, Any]:
    out: dict[str, Any] = {
        "seq": effect.seq,
        "type": effect.type,
        "request": {k: to_json(v) for k, v in zip(effect.fields, effect.values, strict=False)},
        "ok": effect.ok,
        "start_ns": effect.start_ns,
        "duration_ns": effect.duration_ns,
        "site": list(effect.site) if effect.site else None,
    }
    if effect.ok:
        out["result"] = to_json(effect.result)
    else:
        out["error"] = to_json(effect.error)
    return out


def effect_view(effect: EffectRecord, limit: int) -> dict[str, Any]:
    """One effect as the timeline and the trace viewer show it: short human renderings (the shape
    of both the DAP ``prodture/effects`` and the LSP ``prodture/traceSummary`` entries)."""
    site = effect.site
    return {
        "seq": effect.seq,
        "type": effect.type,
        "request": effect.describe_request(limit),
        "ok": effect.ok,
        "result": effect.describe_result(limit) if effect.ok else None,
        "error": None if effect.ok else effect.describe_result(limit),
        "durationMs": round(effect.duration_ns / 1e6, 3),
        "path": site[0] if site else None,
        "line": site[1] if site else None,
        "function": site[2] if site else None,
    }


def outcome_to_json(outcome: OutcomeRecord | None) -> dict[str, Any] | None:
    if outcome is None:
        return None
    out: dict[str, Any] = {"ok": outcome.ok, "duration_ns": outcome.duration_ns}
    if outcome.ok:
        out["value"] = to_json(outcome.value)
    else:
        out["error"] = to_json(outcome.error)
        out["traceback"] = outcome.traceback
        out["failed_effect"] = outcome.failed_effect
    return out


def trace_to_json(trace: Trace) -> dict[str, Any]:
    h = trace.header
    return {
        "header": {
            "version": h.version,
            "handler": h.handler,
            "trace_id": h.trace_id,
            "started_at": h.started_at.isoformat() if h.started_at else None,
            "fingerprint": h.fingerprint,
            "python": h.python,
            "prodture": h.prodture,
            "meta": to_json(h.meta),
        },
        "input": to_json(trace.input),
        "effects": [effect_to_json(e) for e in trace.effects],
        "outcome": outcome_to_json(trace.outcome),
        "complete": trace.complete,
        "truncated": trace.truncated,
    }
