"""OpenTelemetry in and out (see protocol/otel-mapping.md).

* Out: :class:`OtelRecorder` emits one span per execution and one child span per effect, linked
  both ways with the ``.prodtrace`` (spans name ``prodture.trace_id``; the trace header's ``meta``
  names the span). With ``payloads=True`` the spans also carry the redacted input, requests,
  results and outcome, enough to rebuild the trace from the OpenTelemetry backend alone.
* In: :func:`prodture.otel.otlp_import.rebuild_traces` turns OTLP (JSON Lines of ``TracesData``,
  one ``ExportTraceServiceRequest`` JSON document, or OTLP protobuf) back into ``.prodtrace``
  bytes; ``prodture import FILE`` puts them in a store.

``OtelRecorder`` requires the ``otel`` extra (``opentelemetry-sdk``).
"""

from __future__ import annotations

from typing import Any

__all__ = ["OtelRecorder"]


def __getattr__(name: str) -> Any:
    # Lazy: the OTLP importer needs no OpenTelemetry SDK, only this package's mapping.
    if name == "OtelRecorder":
        from .export import OtelRecorder

        return OtelRecorder
    raise AttributeError(f"module 'prodture.otel' has no attribute {name!r}")
