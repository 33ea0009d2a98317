"""OpenTelemetry out: one span per handler execution, a child span per effect.

``Interpreter(performers, recorder=OtelRecorder(Recorder(sink)))`` keeps writing ``.prodtrace``
files and also emits spans through the OpenTelemetry SDK. Links go both ways: every span carries
``prodture.trace_id``, and the trace header's ``meta`` holds the execution span's
``otel.trace_id``/``otel.span_id`` (so the store finds the trace for a dashboard's trace id).

By default only the effect type, number, call site and outcome go into spans. ``payloads=True``
(opt-in) adds the *redacted* input, requests, results and outcome: readable JSON (cut at
``max_text`` characters, marked) plus the exact trace bytes (left out above ``max_payload_bytes``,
marked) — enough for ``prodture import`` to rebuild the ``.prodtrace`` from the OpenTelemetry
backend alone. Mapping: protocol/otel-mapping.md. Requires the ``otel`` extra.
"""

from __future__ import annotations

import datetime as _dt
import inspect
import time
import uuid
from typing import Any

import msgpack
from opentelemetry import context as otel_context
from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from ..runtime import EffectCall, Outcome, handlers
from ..trace.codec import Redactor, decode_value
from ..trace.format import TraceEncoder, code_fingerprint, describe_error
from . import mapping as m

__all__ = ["OtelRecorder"]

#: Attribute namespaces an effect may fill through ``otel_attributes`` (semantic conventions).
SEMANTIC_PREFIXES = ("http.", "db.", "url.", "server.", "network.", "rpc.", "messaging.")
PAYLOAD_ERROR = m.PAYLOAD_ERROR


class OtelRecorder:
    """An interpreter observer that emits spans and forwards everything to ``inner``.

    ``payloads``: also carry redacted values (see the module's doc). ``redact`` is used when
    ``inner`` has no redactor of its own (default: the recorder's default patterns).
    """

    def __init__(
        self,
        inner: Any | None = None,
        *,
        tracer_provider: Any | None = None,
        payloads: bool = False,
        max_text: int = 4096,
        max_payload_bytes: int = 64 * 1024,
        redact: Redactor | None = None,
    ) -> None:
        self.inner = inner
        self.tracer = otel_trace.get_tracer("prodture", tracer_provider=tracer_provider)
        self.payloads = payloads
        self.max_text = max_text
        self.max_payload_bytes = max_payload_bytes
        self.redactor = getattr(inner, "redactor", None) or redact or Redactor()
        begin = getattr(inner, "begin", None)
        self._inner_takes_meta = begin is not None and "meta" in inspect.signature(begin).parameters

    def begin(
        self, handler_name: str, input: Any, *, meta: dict[str, Any] | None = None
    ) -> _OtelSession:
        return _OtelSession(self, handler_name, input, meta)


class _OtelSession:
    __slots__ = (
        "owner",
        "tracer",
        "span",
        "inner",
        "offset_ns",
        "token",
        "encoder",
        "t0",
        "types",
        "own_trace_id",
    )

    def __init__(
        self,
        owner: OtelRecorder,
        handler_name: str,
        input: Any,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.owner = owner
        self.tracer = owner.tracer
        # Effect timings are perf_counter readings; spans want epoch nanoseconds.
        self.offset_ns = time.time_ns() - time.perf_counter_ns()
        module, _, qualname = handler_name.partition(":")
        self.span = self.tracer.start_span(
            f"handler {handler_name}",
            attributes={
                m.HANDLER: handler_name,
                "code.namespace": module,
                "code.function": qualname,
            },
        )
        ids = self.span.get_span_context()
        link: dict[str, Any] = {}
        if ids.is_valid:
            link = {
                m.HEADER_META_TRACE_ID: otel_trace.format_trace_id(ids.trace_id),
                m.HEADER_META_SPAN_ID: otel_trace.format_span_id(ids.span_id),
            }
        if meta:  # the run's own header meta (Interpreter.run(..., meta=)), the span's ids over it
            link = {**meta, **link}
        inner = owner.inner
        if inner is None:
            self.inner = None
        elif owner._inner_takes_meta:
            self.inner = inner.begin(handler_name, input, meta=link)
        else:
            self.inner = inner.begin(handler_name, input)
        info = getattr(self.inner, "info", None)
        self.own_trace_id = getattr(info, "trace_id", None) or uuid.uuid4().hex
        self.span.set_attribute(m.TRACE_ID, self.own_trace_id)
        self.t0 = getattr(self.inner, "t0", None) or time.perf_counter_ns()
        self.encoder: TraceEncoder | None = None
        self.types: dict[int, tuple[str, list[str]]] = {}
        if owner.payloads:
            try:
                self._payload_header(handler_name, input, info, link)
            except Exception as e:  # spans without payloads, never a failed handler
                self.encoder = None
                self.span.set_attribute(PAYLOAD_ERROR, f"{type(e).__name__}: {e}"[:200])
        # The execution span is the current span while the handler runs: spans the performers'
        # own instrumentation starts (HTTP clients, database drivers) become its children.
        self.token = otel_context.attach(otel_trace.set_span_in_context(self.span))

    @property
    def trace_id(self) -> str | None:
        return getattr(self.inner, "trace_id", None) if self.inner is not None else None

    # -- payloads --------------------------------------------------------------------------

    def _payload_header(self, handler_name: str, input: Any, info: Any, link: dict) -> None:
        self.encoder = TraceEncoder(self.owner.redactor)
        fn = handlers.get(handler_name)
        fingerprint = (
            code_fingerprint(fn.__code__.co_filename)
            if fn is not None and hasattr(fn, "__code__")
            else ""
        )
        meta = getattr(self.owner.inner, "meta", None) or {}
        header = self.encoder.header(
            handler_name,
            trace_id=self.own_trace_id,
            started_at=getattr(info, "started_at", None) or _dt.datetime.now(_dt.timezone.utc),
            fingerprint=fingerprint,
            meta={**meta, **link} if link else meta,
        )
        self.span.set_attribute(m.HEADER, m.b64(m.element_slices(header)[0][1]))
        value = m.element_slices(self.encoder.input(input))[0][1]
        self._payload(self.span, m.INPUT, value)

    def _payload(
        self, span: Any, name: str, data: bytes, error: bool = False, fields: Any = None
    ) -> None:
        """The readable text of a value and its exact bytes (or the mark that they are left out)."""
        value = decode_value(data)
        if fields is not None:  # a request: shown as field → value
            value = dict(zip(fields, value, strict=False))
        if error:
            text, clipped = m.clip(describe_error(value), self.owner.max_text)
        else:
            text, clipped = m.readable(value, self.owner.max_text)
        span.set_attribute(name, text)
        if len(data) <= self.owner.max_payload_bytes:
            span.set_attribute(name + m.MSGPACK, m.b64(data))
        else:
            span.set_attribute(name + m.TRUNCATED, True)
        if clipped and len(data) <= self.owner.max_payload_bytes:
            span.set_attribute(name + ".text_truncated", True)

    # -- the interpreter's calls -----------------------------------------------------------

    def effect(
        self, call: EffectCall, ok: bool, value: Any, start_ns: int, duration_ns: int
    ) -> None:
        if self.inner is not None:
            self.inner.effect(call, ok, value, start_ns, duration_ns)
        name = getattr(type(call.effect), "effect_name", type(call.effect).__name__)
        attributes: dict[str, Any] = {m.EFFECT_SEQ: call.seq, m.EFFECT_TYPE: name}
        if call.site is not None:
            attributes.update(
                {
                    "code.filepath": call.site[0],
                    "code.lineno": call.site[1],
                    "code.function": call.site[2],
                }
            )
        child = self.tracer.start_span(
            name,
            context=otel_trace.set_span_in_context(self.span),
            start_time=start_ns + self.offset_ns,
            attributes=attributes,
        )
        if self.encoder is not None:
            try:
                self._effect_payload(child, call, ok, value, start_ns, duration_ns)
            except Exception as e:
                child.set_attribute(PAYLOAD_ERROR, f"{type(e).__name__}: {e}"[:200])
        if not ok:
            child.record_exception(value)
            child.set_status(Status(StatusCode.ERROR, f"{type(value).__name__}: {value}"))
        child.end(end_time=start_ns + duration_ns + self.offset_ns)

    def _effect_payload(
        self, span: Any, call: EffectCall, ok: bool, value: Any, start_ns: int, duration_ns: int
    ) -> None:
        assert self.encoder is not None
        records = m.element_slices(
            self.encoder.effect(
                call.seq, call.effect, ok, value, start_ns - self.t0, duration_ns, call.site
            )
        )
        for record in records[:-1]:  # the TYPE (and SITE) records defined on first use
            if msgpack.unpackb(record[0]) == 2:
                self.types[msgpack.unpackb(record[1])] = (
                    msgpack.unpackb(record[2]),
                    msgpack.unpackb(record[3]),
                )
        effect = records[-1]
        _name, fields = self.types[msgpack.unpackb(effect[2])]
        span.set_attribute(m.EFFECT_FIELDS, fields)
        span.set_attribute(m.EFFECT_OK, ok)
        span.set_attribute(m.EFFECT_START, start_ns - self.t0)
        span.set_attribute(m.EFFECT_DURATION, duration_ns)
        self._payload(span, m.REQUEST, effect[3], fields=fields)
        self._payload(span, m.RESULT, effect[5], error=not ok)
        declared = getattr(type(call.effect), "otel_attributes", None)
        if declared:
            request = dict(zip(fields, decode_value(effect[3]), strict=False))
            result = decode_value(effect[5]) if ok else None
            for attribute, source in dict(declared).items():
                if not attribute.startswith(SEMANTIC_PREFIXES):
                    continue
                found = _lookup(source, request, result)
                if found is not None:
                    span.set_attribute(attribute, found)

    def finish(self, outcome: Outcome) -> None:
        if self.inner is not None:
            self.inner.finish(outcome)
        try:
            otel_context.detach(self.token)
        except Exception:  # finished in another context than it began: nothing to restore
            pass
        span = self.span
        try:
            self._outcome_payload(outcome)
        except Exception as e:
            span.set_attribute(PAYLOAD_ERROR, f"{type(e).__name__}: {e}"[:200])
        if outcome.ok:
            span.set_status(Status(StatusCode.OK))
        else:
            span.record_exception(outcome.error)
            span.set_status(
                Status(StatusCode.ERROR, f"{type(outcome.error).__name__}: {outcome.error}")
            )
            if outcome.effect_seq is not None:
                span.set_attribute(m.FAILED_EFFECT, outcome.effect_seq)
        span.end()

    def _outcome_payload(self, outcome: Outcome) -> None:
        span = self.span
        if self.encoder is not None:
            duration = time.perf_counter_ns() - self.t0
            if outcome.ok:
                data = self.encoder.outcome(True, outcome.value, "", None, duration)
            else:
                data = self.encoder.outcome(
                    False, outcome.error, outcome.traceback, outcome.effect_seq, duration
                )
            record = m.element_slices(data)[0]
            span.set_attribute(m.OUTCOME_OK, outcome.ok)
            span.set_attribute(m.OUTCOME_DURATION, duration)
            self._payload(span, m.OUTCOME, record[2], error=not outcome.ok)
            if not outcome.ok:
                span.set_attribute(
                    m.OUTCOME_TRACEBACK, m.clip(outcome.traceback, self.owner.max_text)[0]
                )


def _lookup(source: str, request: dict[str, Any], result: Any) -> Any:
    """``field`` from the (redacted) request or ``result.key`` from the result, as an attribute
    value (a str, bool, int or float; anything else as its text; a redacted value stays hidden)."""
    if source.startswith("result."):
        key = source[len("result.") :]
        value = result.get(key) if isinstance(result, dict) else getattr(result, key, None)
    else:
        value = request.get(source)
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)
