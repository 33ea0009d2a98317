"""The OpenTelemetry bridge: spans beside the trace file, linked by trace id."""

from __future__ import annotations

import dataclasses

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import prodture
from prodture.otel import OtelRecorder
from prodture.runtime import handler_name


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="tests.otel.Fetch"):
    key: str


@prodture.handler
def fetch_two(keys):
    first = yield Fetch(keys[0])
    second = yield Fetch(keys[1])
    return first + second


def _refuse_missing(effect: Fetch) -> str:
    if effect.key == "missing":
        raise KeyError(effect.key)
    return effect.key.upper()


def test_spans_mirror_the_recorded_trace() -> None:
    """Each execution is a span with one child per effect, carrying the prodtrace id and failure."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = prodture.MemorySink()
    recorder = OtelRecorder(prodture.Recorder(sink), tracer_provider=provider)
    interpreter = prodture.Interpreter({Fetch: _refuse_missing}, recorder=recorder)

    assert interpreter.run(fetch_two, ["a", "b"]).value == "AB"
    failed = interpreter.run(fetch_two, ["a", "missing"])
    assert not failed.ok and failed.effect_seq == 2

    spans = exporter.get_finished_spans()
    roots = [s for s in spans if s.parent is None]
    assert [s.name for s in roots] == [f"handler {handler_name(fetch_two)}"] * 2
    traces = [prodture.read_trace(data) for data in sink.traces]
    assert [r.attributes["prodture.trace_id"] for r in roots] == [t.header.trace_id for t in traces]
    children = [
        s for s in spans if s.parent is not None and s.parent.span_id == roots[1].context.span_id
    ]
    assert [
        (c.name, c.attributes["prodture.effect.seq"], c.status.status_code) for c in children
    ] == [
        ("tests.otel.Fetch", 1, StatusCode.UNSET),
        ("tests.otel.Fetch", 2, StatusCode.ERROR),
    ]
    assert (
        roots[1].status.status_code is StatusCode.ERROR
        and roots[1].attributes["prodture.failed_effect"] == 2
    )
    assert all(c.start_time <= c.end_time for c in children)
