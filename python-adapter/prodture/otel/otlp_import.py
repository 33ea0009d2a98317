"""OpenTelemetry in: rebuild ``.prodtrace`` traces from OTLP spans (protocol/otel-mapping.md).

Reads the OpenTelemetry collector file exporter's JSON Lines (one ``TracesData`` per line), a
single ``ExportTraceServiceRequest`` JSON document (as backends export it), or OTLP protobuf
(``ExportTraceServiceRequest``, what OTLP/HTTP carries). One trace per execution span exported
with ``OtelRecorder(payloads=True)``; spans that carry no prodture data are skipped and counted.
Everything is parsed and checked before anything is returned: bad input raises
:class:`OtlpError` with one line, and nothing is written.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
from typing import Any

import msgpack

from ..trace.codec import Opaque, RecordedError, TraceFormatError, encode_value
from ..trace.format import RecordKind, read_trace
from . import mapping as m

__all__ = ["OtlpError", "RebuildResult", "rebuild_traces", "read_otlp_file"]

#: OTLP input larger than this is refused (``max_bytes`` changes it).
MAX_OTLP_BYTES = 256 * 1024 * 1024


class OtlpError(ValueError):
    """OTLP input that cannot be read or rebuilt; the message is one line and names the fix."""


@dataclasses.dataclass
class Span:
    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits
    parent_span_id: str
    name: str
    attributes: dict[str, Any]


@dataclasses.dataclass
class RebuildResult:
    traces: list[tuple[str, bytes]]  # (prodture trace id, .prodtrace bytes)
    spans_read: int = 0
    spans_used: int = 0
    spans_skipped: int = 0  # no prodture data (other services' spans, or exported without payloads)


# ---------------------------------------------------------------------------------------------
# Reading OTLP


def read_otlp_file(path: str, *, max_bytes: int = MAX_OTLP_BYTES) -> list[Span]:
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise OtlpError(f"{path}: cannot read ({e.strerror}); check the path") from None
    if size > max_bytes:
        raise OtlpError(
            f"{path}: {size} bytes of OTLP, over the {max_bytes}-byte limit; split the export"
        )
    with open(path, "rb") as f:
        data = f.read()
    return read_otlp(data, name=path, max_bytes=max_bytes)


def read_otlp(
    data: bytes, *, name: str = "OTLP input", max_bytes: int = MAX_OTLP_BYTES
) -> list[Span]:
    """The spans in OTLP JSON (a document or JSON Lines) or OTLP protobuf bytes."""
    if len(data) > max_bytes:
        raise OtlpError(f"{name}: {len(data)} bytes of OTLP, over the {max_bytes}-byte limit")
    if not data.strip():
        raise OtlpError(f"{name}: empty; export some spans first")
    if data.lstrip()[:1] in (b"{", b"["):
        return _read_json(data, name)
    return _read_protobuf(data, name)


def _read_json(data: bytes, name: str) -> list[Span]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OtlpError(f"{name}: not UTF-8 JSON ({e.reason} at byte {e.start})") from None
    try:
        documents = [json.loads(text)]
    except json.JSONDecodeError:
        documents = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise OtlpError(
                    f"{name}: line {number} is not JSON ({e.msg}, column {e.colno}); "
                    "expected OTLP JSON (one TracesData per line, or one ExportTraceServiceRequest)"
                ) from None
    spans: list[Span] = []
    for document in documents:
        for doc in document if isinstance(document, list) else [document]:
            if not isinstance(doc, dict) or not isinstance(
                doc.get("resourceSpans", doc.get("resource_spans")), list
            ):
                raise OtlpError(
                    f"{name}: a JSON document without resourceSpans is not OTLP trace data"
                )
            try:
                spans += _json_spans(doc)
            except (TypeError, ValueError, AttributeError, KeyError) as e:
                raise OtlpError(f"{name}: malformed OTLP JSON ({type(e).__name__}: {e})") from None
    return spans


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    return obj.get(camel, obj.get(snake))


def _json_spans(doc: dict[str, Any]) -> list[Span]:
    spans = []
    for resource in _get(doc, "resourceSpans", "resource_spans") or []:
        for scope in _get(resource, "scopeSpans", "scope_spans") or []:
            for span in scope.get("spans") or []:
                spans.append(
                    Span(
                        trace_id=_json_id(_get(span, "traceId", "trace_id"), 16),
                        span_id=_json_id(_get(span, "spanId", "span_id"), 8),
                        parent_span_id=_json_id(_get(span, "parentSpanId", "parent_span_id"), 8),
                        name=str(span.get("name", "")),
                        attributes={
                            a["key"]: _json_value(a.get("value") or {})
                            for a in span.get("attributes") or []
                        },
                    )
                )
    return spans


def _json_id(value: Any, size: int) -> str:
    """OTLP JSON ids are hex; protobuf's own JSON printer gives base64: accept both."""
    if not value:
        return ""
    if not isinstance(value, str):
        raise ValueError(f"span id {value!r} is not a string")
    if len(value) == size * 2:
        int(value, 16)
        return value.lower()
    raw = base64.b64decode(value, validate=True)
    if len(raw) != size:
        raise ValueError(f"span id {value!r} has {len(raw)} bytes, not {size}")
    return raw.hex()


def _json_value(value: dict[str, Any]) -> Any:
    if "stringValue" in value or "string_value" in value:
        return _get(value, "stringValue", "string_value")
    if "boolValue" in value or "bool_value" in value:
        return bool(_get(value, "boolValue", "bool_value"))
    if "intValue" in value or "int_value" in value:
        return int(_get(value, "intValue", "int_value"))  # int64 is a string in OTLP JSON
    if "doubleValue" in value or "double_value" in value:
        return float(_get(value, "doubleValue", "double_value"))
    if "arrayValue" in value or "array_value" in value:
        array = _get(value, "arrayValue", "array_value") or {}
        return [_json_value(v) for v in array.get("values") or []]
    if "bytesValue" in value or "bytes_value" in value:
        return base64.b64decode(_get(value, "bytesValue", "bytes_value"))
    return None


def _read_protobuf(data: bytes, name: str) -> list[Span]:
    try:
        from google.protobuf.message import DecodeError  # type: ignore[import-untyped]  # no stubs shipped
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
        )
    except ImportError:
        raise OtlpError(
            f"{name}: reading OTLP protobuf needs opentelemetry-proto: pip install 'prodture[otel]'"
        ) from None
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, ValueError, RuntimeError) as e:
        raise OtlpError(
            f"{name}: neither OTLP JSON nor OTLP protobuf ({e}); export with the OTLP file or HTTP exporter"
        ) from None
    if not request.resource_spans and data:
        raise OtlpError(f"{name}: OTLP protobuf with no resource spans (or not OTLP at all)")
    spans = []
    for resource in request.resource_spans:
        for scope in resource.scope_spans:
            for span in scope.spans:
                spans.append(
                    Span(
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        attributes={a.key: _proto_value(a.value) for a in span.attributes},
                    )
                )
    return spans


def _proto_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_proto_value(v) for v in value.array_value.values]
    if kind in ("string_value", "bool_value", "int_value", "double_value", "bytes_value"):
        return getattr(value, kind)
    return None


# ---------------------------------------------------------------------------------------------
# Rebuilding traces


def rebuild_traces(spans: list[Span], *, name: str = "OTLP input") -> RebuildResult:
    """One ``.prodtrace`` per execution span that carries prodture's payloads."""
    executions = {(s.trace_id, s.span_id): s for s in spans if m.HEADER in s.attributes}
    children: dict[tuple[str, str], list[Span]] = {key: [] for key in executions}
    used = len(executions)
    for span in spans:
        key = (span.trace_id, span.parent_span_id)
        if key in children and m.EFFECT_SEQ in span.attributes:
            children[key].append(span)
            used += 1
    result = RebuildResult(traces=[], spans_read=len(spans), spans_used=used)
    result.spans_skipped = len(spans) - used
    for key, execution in executions.items():
        if any(m.PAYLOAD_ERROR in s.attributes for s in [execution, *children[key]]):
            # the exporter could not add a payload: the execution cannot be rebuilt whole
            result.spans_used -= 1 + len(children[key])
            result.spans_skipped += 1 + len(children[key])
            continue
        try:
            data = _rebuild(execution, children[key])
        except (TraceFormatError, ValueError, TypeError, KeyError, msgpack.ExtraData) as e:
            raise OtlpError(
                f"{name}: cannot rebuild the trace of span {execution.span_id} "
                f"({execution.name}): {str(e).splitlines()[0] if str(e) else type(e).__name__}"
            ) from None
        result.traces.append((str(execution.attributes.get(m.TRACE_ID, "")), data))
    return result


def _array(n: int) -> bytes:
    """A msgpack array header for ``n`` elements (the elements follow as packed bytes)."""
    if n < 16:
        return bytes([0x90 | n])
    return b"\xdc" + n.to_bytes(2, "big") if n < 65536 else b"\xdd" + n.to_bytes(4, "big")


def _record(kind: int, *parts: bytes) -> bytes:
    return _array(len(parts) + 1) + msgpack.packb(kind) + b"".join(parts)


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _payload(attributes: dict[str, Any], name: str, *, error: bool = False) -> bytes:
    """The exact bytes of a value, or a visible stand-in when the export left them out."""
    encoded = attributes.get(name + m.MSGPACK)
    if isinstance(encoded, str):
        data = m.unb64(encoded)
        msgpack.unpackb(data, ext_hook=lambda code, payload: None)  # exactly one value
        return data
    if attributes.get(name + m.TRUNCATED):
        text = f"<left out of the OpenTelemetry export for its size: {attributes.get(name, '')}>"
        stand_in = (
            RecordedError(m.TRUNCATED_TYPE, text) if error else Opaque(m.TRUNCATED_TYPE, text)
        )
        return encode_value(stand_in)
    raise ValueError(f"span has no {name}{m.MSGPACK}")


def _rebuild(execution: Span, effects: list[Span]) -> bytes:
    a = execution.attributes
    out = _record(RecordKind.HEADER, m.unb64(a[m.HEADER]))
    out += _record(RecordKind.INPUT, _payload(a, m.INPUT))
    types: dict[tuple[str, tuple[str, ...]], int] = {}
    sites: dict[tuple[str, int, str], int] = {}
    effects = sorted(effects, key=lambda s: int(s.attributes[m.EFFECT_SEQ]))
    for span in effects:
        e = span.attributes
        fields = tuple(str(f) for f in e.get(m.EFFECT_FIELDS) or ())
        type_key = (str(e[m.EFFECT_TYPE]), fields)
        type_id = types.get(type_key)
        if type_id is None:
            type_id = types[type_key] = len(types)
            out += _pack([RecordKind.TYPE, type_id, type_key[0], list(fields)])
        site_id = None
        if "code.filepath" in e and "code.lineno" in e:
            site = (str(e["code.filepath"]), int(e["code.lineno"]), str(e.get("code.function", "")))
            site_id = sites.get(site)
            if site_id is None:
                site_id = sites[site] = len(sites)
                out += _pack([RecordKind.SITE, site_id, *site])
        ok = bool(e[m.EFFECT_OK])
        request = (
            _truncated_request(e, fields)
            if (m.REQUEST + m.TRUNCATED) in e
            else _payload(e, m.REQUEST)
        )
        out += _record(
            RecordKind.EFFECT,
            _pack(int(e[m.EFFECT_SEQ])),
            _pack(type_id),
            request,
            _pack(ok),
            _payload(e, m.RESULT, error=not ok),
            _pack(int(e[m.EFFECT_START])),
            _pack(int(e[m.EFFECT_DURATION])),
            _pack(site_id),
        )
    if m.OUTCOME_OK in a:
        ok = bool(a[m.OUTCOME_OK])
        failed = a.get(m.FAILED_EFFECT)
        out += _record(
            RecordKind.OUTCOME,
            _pack(ok),
            _payload(a, m.OUTCOME, error=not ok),
            _pack(str(a.get(m.OUTCOME_TRACEBACK, ""))),
            _pack(int(failed) if failed is not None and not ok else None),
            _pack(int(a.get(m.OUTCOME_DURATION, 0))),
        )
    trace = read_trace(out, name=f"span {execution.span_id}")  # the same checks as a file
    if trace.truncated or len(trace.effects) != len(effects):
        raise ValueError("the rebuilt records do not read back whole")
    return out


def _truncated_request(attributes: dict[str, Any], fields: tuple[str, ...]) -> bytes:
    """A request left out for its size: one visible stand-in per field."""
    text = f"<left out of the OpenTelemetry export for its size: {attributes.get(m.REQUEST, '')}>"
    stand_in = Opaque(m.TRUNCATED_TYPE, text)
    return _array(len(fields)) + b"".join(encode_value(stand_in) for _ in fields)
