"""OpenTelemetry out and back in: spans carry the redacted trace; OTLP rebuilds the .prodtrace."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import http.server
import json
import threading
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from opentelemetry.exporter.otlp.json.file import FileSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

import prodture
from prodture.cli import main
from prodture.otel import OtelRecorder
from prodture.otel.otlp_import import OtlpError, read_otlp, read_otlp_file, rebuild_traces
from prodture.stores import Query, open_store
from prodture.trace import REDACTED, Opaque
from prodture.trace.render import trace_to_json


@dataclasses.dataclass(frozen=True)
class HttpCall(prodture.Effect, name="tests.otelp.HttpCall"):
    method: str
    url: str
    token: str = prodture.secret()
    otel_attributes: ClassVar[dict[str, str]] = {
        "http.request.method": "method",
        "url.full": "url",
        "http.response.status_code": "result.status",
        "prodture.not_allowed": "method",  # only semantic-convention namespaces are filled
    }


@dataclasses.dataclass(frozen=True)
class LoadRows(prodture.Effect, name="tests.otelp.LoadRows"):
    table: str


class GatewayDown(Exception):
    pass


@prodture.handler
def pay(order):
    rows = yield LoadRows("carts")
    response = yield HttpCall("POST", "https://pay.example/charge", "tok-123")
    if order.get("fail"):
        yield HttpCall("POST", "https://pay.example/retry", "tok-123")
    return {"rows": len(rows), "status": response["status"], "at": order["at"]}


def _perform_load(effect: LoadRows):
    return [{"id": 1, "total": Decimal("15.00")}, {"id": 2, "blob": "x" * 50}]


def _perform_http(effect: HttpCall):
    if effect.url.endswith("retry"):
        raise GatewayDown("gateway unreachable")
    return {"status": 201, "secret_password": "hunter2"}


def _record(exporter, **options):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sink = prodture.MemorySink()
    recorder = OtelRecorder(
        prodture.Recorder(sink, meta={"service": "shop"}),
        tracer_provider=provider,
        payloads=True,
        **options,
    )
    interpreter = prodture.Interpreter(
        {LoadRows: _perform_load, HttpCall: _perform_http}, recorder=recorder
    )
    at = _dt.datetime(2026, 11, 30, 10, 42, tzinfo=_dt.timezone.utc)
    # Each run's own header meta (over the recorder's): in the file and in the span's header.
    outcomes = [
        interpreter.run(pay, {"at": at}, meta={"attempt": 1}),
        interpreter.run(pay, {"at": at, "fail": True}, meta={"attempt": 2}),
    ]
    with provider.get_tracer("other").start_as_current_span("unrelated request"):
        pass  # a span without prodture data: skipped and counted on import
    provider.shutdown()
    return outcomes, {prodture.read_trace(d).header.trace_id: d for d in sink.traces}


def _same_trace(rebuilt: bytes, recorded: bytes) -> None:
    """Equal in everything but the outcome's duration (measured a few ns apart)."""
    a, b = trace_to_json(prodture.read_trace(rebuilt)), trace_to_json(prodture.read_trace(recorded))
    assert a["outcome"].pop("duration_ns") > 0 and b["outcome"].pop("duration_ns") > 0
    assert a == b


class _Receiver(http.server.BaseHTTPRequestHandler):
    bodies: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:  # noqa: N802 -- the name http.server calls
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.bodies.append((self.path, self.headers.get("Content-Type", ""), body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_otlp_http_exporter_to_a_local_receiver_rebuilds_the_traces(tmp_path) -> None:
    _Receiver.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        outcomes, recorded = _record(OTLPSpanExporter(endpoint=endpoint))
    finally:
        server.shutdown()
    assert {path for path, _, _ in _Receiver.bodies} == {"/v1/traces"}
    assert all(ctype == "application/x-protobuf" for _, ctype, _ in _Receiver.bodies)
    spans = [s for _, _, body in _Receiver.bodies for s in read_otlp(body)]
    result = rebuild_traces(spans)
    assert (len(result.traces), result.spans_skipped, result.spans_read) == (2, 1, 8)
    for trace_id, data in result.traces:
        _same_trace(data, recorded[trace_id])
    assert {t for t, _ in result.traces} == {o.trace_id for o in outcomes}

    # The CLI does the same from a protobuf file, into a directory store.
    (tmp_path / "export.pb").write_bytes(_Receiver.bodies[0][2])
    code = main(["import", str(tmp_path / "export.pb"), "--store", str(tmp_path / "store")])
    assert code == 0


def test_json_written_by_the_sdk_file_exporter_and_a_single_document(tmp_path, capsys) -> None:
    lines = tmp_path / "spans.jsonl"
    outcomes, recorded = _record(FileSpanExporter(str(lines)))
    documents = [json.loads(line) for line in lines.read_text().splitlines()]
    assert documents and all("resourceSpans" in d for d in documents)
    result = rebuild_traces(read_otlp_file(str(lines)))
    assert len(result.traces) == 2 and result.spans_skipped == 1
    for trace_id, data in result.traces:
        _same_trace(data, recorded[trace_id])

    # One ExportTraceServiceRequest document, pretty-printed, as a backend's export.
    single = tmp_path / "export.json"
    single.write_text(
        json.dumps({"resourceSpans": [r for d in documents for r in d["resourceSpans"]]}, indent=2)
    )
    store = tmp_path / "store"
    assert main(["import", str(single), "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("rebuilt 2 traces from 8 spans (1 spans without prodture data skipped)")
    failed = open_store(str(store)).list(Query(failed_only=True))
    assert [s.trace_id for s in failed] == [outcomes[1].trace_id]
    assert failed[0].error_message == "gateway unreachable" and failed[0].failed_effect == 3


def test_spans_carry_redacted_values_semantic_attributes_and_links() -> None:
    exporter = InMemorySpanExporter()
    outcomes, recorded = _record(exporter)
    spans = exporter.get_finished_spans()
    execution = next(
        s
        for s in spans
        if s.attributes.get("prodture.trace_id") == outcomes[1].trace_id and s.parent is None
    )
    effects = sorted(
        (s for s in spans if s.parent and s.parent.span_id == execution.context.span_id),
        key=lambda s: int(_attrs(s)["prodture.effect.seq"]),
    )
    http = _attrs(effects[1])
    assert (
        http["http.request.method"] == "POST" and http["url.full"] == "https://pay.example/charge"
    )
    assert http["http.response.status_code"] == 201 and "prodture.not_allowed" not in http
    assert json.loads(http["prodture.request"])["token"] == {"$redacted": True}
    assert json.loads(http["prodture.result"])["secret_password"] == {"$redacted": True}
    assert http["code.function"] == "pay" and http["code.lineno"] > 0
    assert "tok-123" not in json.dumps(http) and "hunter2" not in json.dumps(http)
    assert effects[2].attributes["prodture.result"] == "GatewayDown: gateway unreachable"
    assert [e.name for e in effects[2].events] == ["exception"]
    assert effects[2].events[0].attributes["exception.type"].endswith("GatewayDown")
    assert execution.attributes["prodture.failed_effect"] == 3
    assert json.loads(_attrs(execution)["prodture.input"])["at"] == {
        "$datetime": "2026-11-30T10:42:00+00:00"
    }
    # Linked both ways: the trace header names the span, the span names the trace.
    header = prodture.read_trace(recorded[outcomes[1].trace_id]).header
    assert header.meta["otel.trace_id"] == format_trace_id(execution.context.trace_id)
    assert header.meta["otel.span_id"] == format_span_id(execution.context.span_id)
    assert header.meta["service"] == "shop" and header.meta["attempt"] == 2


def test_store_finds_the_trace_for_a_dashboards_trace_id(tmp_path, capsys) -> None:
    exporter = InMemorySpanExporter()
    outcomes, recorded = _record(exporter)
    store = open_store(str(tmp_path / "store"), create=True)
    from prodture.stores import import_traces

    import_traces(recorded.items(), store)
    dashboard_id = next(
        format_trace_id(s.context.trace_id)
        for s in exporter.get_finished_spans()
        if s.attributes.get("prodture.trace_id") == outcomes[0].trace_id
    )
    code = main(
        [
            "list",
            "--store",
            str(tmp_path / "store"),
            "--otel-trace-id",
            dashboard_id.upper(),
            "--json",
        ]
    )
    assert code == 0
    assert [r["trace_id"] for r in json.loads(capsys.readouterr().out)] == [outcomes[0].trace_id]


def test_values_over_the_limits_are_cut_visibly_and_marked_in_the_rebuilt_trace() -> None:
    exporter = InMemorySpanExporter()
    _outcomes, recorded = _record(exporter, max_text=40, max_payload_bytes=60)
    spans = exporter.get_finished_spans()
    load = next(
        s for s in spans if s.attributes.get("prodture.effect.type") == "tests.otelp.LoadRows"
    )
    text = load.attributes["prodture.result"]
    assert text.endswith("characters in all]") and "… [truncated: " in text
    assert load.attributes["prodture.result.truncated"] is True
    assert "prodture.result.msgpack" not in load.attributes
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    rebuilt = rebuild_traces(read_otlp(encode_spans(spans).SerializeToString()))
    trace = prodture.read_trace(rebuilt.traces[0][1])
    result = trace.effects[0].result
    assert isinstance(result, Opaque) and result.type_name == "prodture.Truncated"
    assert "left out of the OpenTelemetry export for its size" in repr(result)
    assert trace.effects[1].request["token"] is REDACTED  # small values keep their exact bytes


@pytest.mark.parametrize(
    "content, message",
    [
        (b'{"resourceSpans": []}\n{not json\n', "line 2 is not JSON"),
        (b'{"hello": "world"}', "without resourceSpans is not OTLP trace data"),
        (b"\x0a\xff\xff\xff\xff\x0f garbage", "neither OTLP JSON nor OTLP protobuf"),
        (b"", "empty"),
        (
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"1"}]}]}]}',
            "malformed OTLP JSON",
        ),
    ],
)
def test_malformed_otlp_is_one_line_and_writes_nothing(tmp_path, capsys, content, message) -> None:
    source = tmp_path / "bad.json"
    source.write_bytes(content)
    store = tmp_path / "store"
    assert main(["import", str(source), "--store", str(store)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.splitlines()) == 1 and err.startswith("prodture: ")
    assert not store.exists()


def test_huge_otlp_is_refused_before_reading(tmp_path) -> None:
    source = tmp_path / "big.json"
    source.write_bytes(b"{" + b" " * 5000 + b"}")
    with pytest.raises(OtlpError, match="5002 bytes of OTLP, over the 1000-byte limit"):
        read_otlp_file(str(source), max_bytes=1000)


def test_a_forged_payload_is_refused_by_the_trace_reader() -> None:
    exporter = InMemorySpanExporter()
    _record(exporter)
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    spans = read_otlp(encode_spans(exporter.get_finished_spans()).SerializeToString())
    for s in spans:
        if "prodture.header.msgpack" in s.attributes:
            s.attributes["prodture.header.msgpack"] = "kQ=="  # an empty array, not a header
    with pytest.raises(OtlpError, match="cannot rebuild the trace of span"):
        rebuild_traces(spans)


def test_a_payload_that_cannot_be_added_spoils_neither_the_run_nor_the_import(monkeypatch) -> None:
    from prodture.otel import export

    def broken(self, span, call, *args):
        if call.seq == 2:
            raise RuntimeError("cannot render this value")
        return original(self, span, call, *args)

    original = export._OtelSession._effect_payload
    monkeypatch.setattr(export._OtelSession, "_effect_payload", broken)
    exporter = InMemorySpanExporter()
    outcomes, recorded = _record(exporter)
    assert outcomes[0].ok and outcomes[0].value["status"] == 201  # the handler is unaffected
    assert all(prodture.read_trace(d).complete for d in recorded.values())
    spans = exporter.get_finished_spans()
    marked = [s for s in spans if "prodture.payload_error" in s.attributes]
    assert (
        len(marked) == 2
        and "cannot render this value" in marked[0].attributes["prodture.payload_error"]
    )
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    result = rebuild_traces(read_otlp(encode_spans(spans).SerializeToString()))
    assert result.traces == [] and result.spans_skipped == result.spans_read == 8


def _attrs(span: Any) -> dict[str, Any]:
    """A span's attributes as a plain dict (the SDK types them as a union of value types)."""
    return dict(span.attributes or {})
