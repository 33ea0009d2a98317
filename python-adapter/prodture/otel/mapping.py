"""The names and encodings shared by the OpenTelemetry exporter and importer.

Spec: protocol/otel-mapping.md. Lossless payloads are the exact msgpack bytes of the trace
format (base64 in a string attribute), so a trace rebuilt from spans is read by the same trace
reader, with the same checks, as a file.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import msgpack

# execution span
HANDLER = "prodture.handler"
TRACE_ID = "prodture.trace_id"
HEADER = "prodture.header.msgpack"
INPUT = "prodture.input"
OUTCOME_OK = "prodture.outcome.ok"
OUTCOME = "prodture.outcome"
OUTCOME_TRACEBACK = "prodture.outcome.traceback"
OUTCOME_DURATION = "prodture.outcome.duration_ns"
FAILED_EFFECT = "prodture.failed_effect"
# effect spans
EFFECT_SEQ = "prodture.effect.seq"
EFFECT_TYPE = "prodture.effect.type"
EFFECT_FIELDS = "prodture.effect.fields"
EFFECT_OK = "prodture.effect.ok"
EFFECT_START = "prodture.effect.start_ns"
EFFECT_DURATION = "prodture.effect.duration_ns"
REQUEST = "prodture.request"
RESULT = "prodture.result"
# suffixes of a payload attribute: the lossless bytes, or the mark that they were left out
MSGPACK = ".msgpack"
TRUNCATED = ".truncated"
#: Set on a span whose payload the exporter could not add (its execution is not rebuilt).
PAYLOAD_ERROR = "prodture.payload_error"
#: The type name of the value that stands for one left out of the export for its size.
TRUNCATED_TYPE = "prodture.Truncated"

HEADER_META_TRACE_ID = "otel.trace_id"
HEADER_META_SPAN_ID = "otel.span_id"


def element_slices(data: bytes) -> list[list[bytes]]:
    """Each msgpack record (an array) in ``data`` as the bytes of its elements."""
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(data), 1))
    unpacker.feed(data)
    records = []
    while unpacker.tell() < len(data):
        n = unpacker.read_array_header()
        elements = []
        for _ in range(n):
            start = unpacker.tell()
            unpacker.skip()
            elements.append(data[start : unpacker.tell()])
        records.append(elements)
    return records


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def readable(value: Any, limit: int) -> tuple[str, bool]:
    """JSON text of a decoded trace value, cut at ``limit`` characters with a visible mark."""
    from ..trace.render import to_json

    text = json.dumps(to_json(value), ensure_ascii=False, default=str)
    return clip(text, limit)


def clip(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return f"{text[:limit]}… [truncated: {len(text)} characters in all]", True
