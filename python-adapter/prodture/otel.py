"""OpenTelemetry bridge: one span per handler execution, a child span per effect.

``Interpreter(performers, recorder=OtelRecorder(Recorder(sink)))`` keeps writing ``.prodtrace``
files and also emits spans through the OpenTelemetry SDK, each carrying ``prodture.trace_id`` —
so the trace a dashboard points at can be opened in the debugger. Requests and results are not
copied into span attributes (they may hold personal data, and the trace file already has them,
redacted); only the effect type, number and outcome are.

Requires the ``otel`` extra (``opentelemetry-api``/``-sdk``).
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry import trace as otel_trace
from opentelemetry.trace import Status, StatusCode

from .runtime import EffectCall, Outcome

__all__ = ["OtelRecorder"]


class OtelRecorder:
    """An interpreter observer that emits spans and forwards everything to ``inner``."""

    def __init__(self, inner: Any | None = None, *, tracer_provider: Any | None = None) -> None:
        self.inner = inner
        self.tracer = otel_trace.get_tracer("prodture", tracer_provider=tracer_provider)

    def begin(self, handler_name: str, input: Any) -> _OtelSession:
        inner = self.inner.begin(handler_name, input) if self.inner is not None else None
        return _OtelSession(self.tracer, handler_name, inner)


class _OtelSession:
    __slots__ = ("tracer", "span", "inner", "offset_ns")

    def __init__(self, tracer: Any, handler_name: str, inner: Any) -> None:
        self.tracer = tracer
        self.inner = inner
        # Effect timings are perf_counter readings; spans want epoch nanoseconds.
        self.offset_ns = time.time_ns() - time.perf_counter_ns()
        self.span = tracer.start_span(
            f"handler {handler_name}", attributes={"prodture.handler": handler_name}
        )
        trace_id = getattr(getattr(inner, "info", None), "trace_id", None)
        if trace_id:
            self.span.set_attribute("prodture.trace_id", trace_id)

    @property
    def trace_id(self) -> str | None:
        return getattr(self.inner, "trace_id", None)

    def effect(
        self, call: EffectCall, ok: bool, value: Any, start_ns: int, duration_ns: int
    ) -> None:
        if self.inner is not None:
            self.inner.effect(call, ok, value, start_ns, duration_ns)
        name = getattr(type(call.effect), "effect_name", type(call.effect).__name__)
        attributes: dict[str, Any] = {"prodture.effect.seq": call.seq, "prodture.effect.type": name}
        if call.site is not None:
            attributes.update(
                {
                    "code.filepath": call.site[0],
                    "code.lineno": call.site[1],
                    "code.function": call.site[2],
                }
            )
        context = otel_trace.set_span_in_context(self.span)
        child = self.tracer.start_span(
            name, context=context, start_time=start_ns + self.offset_ns, attributes=attributes
        )
        if not ok:
            child.record_exception(value)
            child.set_status(Status(StatusCode.ERROR, f"{type(value).__name__}: {value}"))
        child.end(end_time=start_ns + duration_ns + self.offset_ns)

    def finish(self, outcome: Outcome) -> None:
        if self.inner is not None:
            self.inner.finish(outcome)
        if outcome.ok:
            self.span.set_status(Status(StatusCode.OK))
        else:
            self.span.record_exception(outcome.error)
            self.span.set_status(
                Status(StatusCode.ERROR, f"{type(outcome.error).__name__}: {outcome.error}")
            )
            if outcome.effect_seq is not None:
                self.span.set_attribute("prodture.failed_effect", outcome.effect_seq)
        self.span.end()
