"""Foundation benchmarks: the cost of recording an effect, replay throughput, bytes per effect.

    .venv/bin/python benchmarks/bench_foundation.py [--rounds 7] [--effects 20000]

Prints ``name: value`` lines on stdout (details go to stderr), each the median over rounds in which
every contender is measured side by side:

* ``record_vs_otel``  — per-effect recording cost (the recorder path: the session's ``effect`` for
  20,000 effects, then ``finish`` and ``Recorder.close()``: the CPU time of every thread, the
  background writer's encoding and writing included, until the trace is in a real DirectorySink
  file) / recording the same effect as an OpenTelemetry SDK span (TracerProvider +
  SimpleSpanProcessor + InMemorySpanExporter; request and result as JSON attributes), both in
  process CPU time. Goal <= 0.05.
* ``record_vs_otel_file`` — the same recorder path / the same span exported to a file the way
  the SDK exports: a ``BatchSpanProcessor`` and the SDK's OTLP protobuf encoding
  (``encode_spans``, what the OTLP/HTTP and gRPC exporters send; the cheapest OTLP form, cheaper
  than the JSON ``FileSpanExporter``), written length-prefixed to a file; CPU time of every thread
  until the file holds every span. Like for like, since both then end as bytes in a file. Report
  (the goal is on ``record_vs_otel``).
* ``record_vs_msgpack`` — the same recorder path / a bare ``msgpack.packb`` of the same record
  (prebuilt, ext values already ``ExtType``: byte-for-byte the record the encoder writes). Goal <= 3.
* ``read_vs_msgpack`` — ``read_trace`` of a 100,000-effect trace (bytes in memory) / a bare
  ``msgpack.Unpacker`` iteration over the same bytes (ext values left as ``ExtType``). Goal <= 3.
* ``read_peak_mem_ratio`` — the worst, over a set of hostile files of ~4 MB each (millions of empty
  maps, empty arrays, short strings, tiny ext values...), of tracemalloc's peak while
  ``read_trace`` reads (or refuses) the file / the file's size. Goal <= 20.
* ``replay_effects_per_s`` — ``Replayer(trace, handler).run()`` on a 100,000-effect trace. Goal >= 300,000.
* ``replay_vs_bare_driver`` — the time of that replay / the time of a bare generator driver that
  sends the same handler the recorded results from a list (the floor any replayer has). Report.
* ``bytes_vs_otlp`` — trace file bytes per effect / OTLP protobuf bytes per span of the same
  effects (``encode_spans`` of the spans above). Goal <= 0.5.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "python-adapter"))

import msgpack  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

import prodture  # noqa: E402
from prodture import DirectorySink, Effect, Interpreter, MemorySink, Recorder, Replayer  # noqa: E402
from prodture.runtime import EffectCall  # noqa: E402
from prodture.trace import read_trace  # noqa: E402
from prodture.trace.codec import ExtCode  # noqa: E402
from prodture.trace.format import RecordKind  # noqa: E402


@dataclasses.dataclass(frozen=True)
class ChargeCard(Effect, name="bench.ChargeCard"):
    card_token: str
    amount: Decimal


@prodture.register(name="bench.Charge")
@dataclasses.dataclass(frozen=True)
class Charge:
    charge_id: str
    amount: Decimal


EFFECT = ChargeCard(card_token="tok_visa_4242", amount=Decimal("58.99"))
RESULT = Charge(charge_id="ch_4b4d33b8e46f", amount=Decimal("58.99"))
SITE = ("/srv/app/checkout/service.py", 18, "place_order")


@prodture.handler(name="bench:charge_many")
def charge_many(count):
    total = Decimal(0)
    for _ in range(count):
        charge = yield EFFECT
        total += charge.amount
    return str(total)


# -- contenders ------------------------------------------------------------------------------------


def time_record(directory: str, n: int) -> tuple[float, float]:
    """(CPU seconds per effect of recording into a real file, all threads, until the trace is
    written; wall seconds per effect spent in the handler's thread)."""
    recorder = Recorder(DirectorySink(directory))
    session = recorder.begin("bench:charge_many", n)
    calls = [EffectCall(i, EFFECT, SITE) for i in range(1, n + 1)]
    effect = session.effect
    cpu = time.process_time()
    start = time.perf_counter()
    for call in calls:
        effect(call, True, RESULT, 1000, 2500)
    in_thread = time.perf_counter() - start
    session.finish(prodture.Success("done"))
    close = getattr(recorder, "close", None)
    if close is not None:  # a background writer: the trace is encoded and written when closed
        close()
    total = time.process_time() - cpu
    assert recorder.stats.sink_errors == 0 and recorder.stats.encode_errors == 0
    assert len(os.listdir(directory)) == 1
    return total / n, in_thread / n


def otel_setup() -> tuple:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("bench"), exporter


def record_spans(tracer, n: int) -> None:
    """Record ``n`` effects as spans with JSON request/result attributes."""
    dumps = json.dumps
    for i in range(1, n + 1):
        span = tracer.start_span("bench.ChargeCard")
        span.set_attribute("prodture.seq", i)
        span.set_attribute(
            "prodture.request", dumps({"card_token": "<redacted>", "amount": str(EFFECT.amount)})
        )
        span.set_attribute(
            "prodture.result", dumps({"charge_id": RESULT.charge_id, "amount": str(RESULT.amount)})
        )
        span.set_attribute("code.filepath", SITE[0])
        span.set_attribute("code.lineno", SITE[1])
        span.end()


def time_otel(tracer, exporter, n: int) -> float:
    """Seconds per effect recorded as an OpenTelemetry span with JSON request/result attributes."""
    exporter.clear()
    start = time.process_time()
    record_spans(tracer, n)
    return (time.process_time() - start) / n


class OtlpFileExporter(SpanExporter):
    """Spans as OTLP protobuf (the SDK's ``encode_spans``), one length-prefixed message per batch."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 (closed by shutdown, as exporters are)
        self.exported = 0

    def export(self, spans) -> SpanExportResult:
        data = encode_spans(spans).SerializeToString()
        self.file.write(len(data).to_bytes(4, "big") + data)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.file.close()


def time_otel_to_file(path: str, n: int) -> float:
    """CPU seconds per effect, every thread, of recording it as the span of :func:`time_otel`
    exported as OTLP protobuf to a file by a ``BatchSpanProcessor`` (its queue holds every span:
    none is dropped), until the file holds all ``n``."""
    provider = TracerProvider()
    exporter = OtlpFileExporter(path)
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=n, max_export_batch_size=512)
    )
    tracer = provider.get_tracer("bench")
    start = time.process_time()
    record_spans(tracer, n)
    provider.shutdown()  # exports what is queued and closes the file
    elapsed = time.process_time() - start
    assert exporter.exported == n, f"{exporter.exported} of {n} spans reached the file"
    return elapsed / n


def bare_record(seq: int) -> list:
    """The effect record the encoder writes, with its ext values prebuilt (same bytes, no hooks)."""
    decimal = msgpack.ExtType(ExtCode.DECIMAL, b"58.99")
    charge = msgpack.ExtType(
        ExtCode.OBJECT,
        msgpack.packb(["bench.Charge", {"charge_id": RESULT.charge_id, "amount": decimal}]),
    )
    return [
        RecordKind.EFFECT,
        seq,
        0,
        [msgpack.ExtType(ExtCode.REDACTED, b""), decimal],
        True,
        charge,
        1000,
        2500,
        0,
    ]


def time_msgpack(n: int) -> float:
    records = [bare_record(i) for i in range(1, n + 1)]
    packb = msgpack.packb
    start = time.process_time()
    for record in records:
        packb(record)
    return (time.process_time() - start) / n


# -- reading ---------------------------------------------------------------------------------------


def time_read(data: bytes) -> tuple[float, float]:
    """(read_trace seconds, bare msgpack decode seconds) for the same bytes, measured side by side."""
    gc.collect()
    start = time.perf_counter()
    read_trace(data)
    t_read = time.perf_counter() - start
    gc.collect()
    start = time.perf_counter()
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data))
    unpacker.feed(data)
    for _ in unpacker:
        pass
    t_bare = time.perf_counter() - start
    return t_read, t_bare


def hostile_files(size: int = 4_000_000) -> dict[str, bytes]:
    """Files of about ``size`` bytes built to make a reader allocate as much as possible per byte:
    one INPUT record holding an array of millions of 1-3 byte items (a valid header before it)."""
    from prodture.trace.format import TraceEncoder

    encoder = TraceEncoder()
    head = encoder.header("bench:hostile", trace_id="0" * 32, fingerprint="", meta={})
    items = {
        "empty maps": b"\x80",
        "empty arrays": b"\x90",
        "2-char strings": b"\xa2ab",
        "1-char non-latin strings": b"\xa2" + "\u0101".encode(),  # 'ā': not a cached 1-char str
        "floats": b"\xcb" + b"\x3f\xf1" + b"\x00" * 6,
        "empty sets": bytes([0xD4, ExtCode.SET, 0x90]),
        "tiny decimals": bytes([0xD4, ExtCode.DECIMAL, ord("1")]),
        "unknown objects": bytes([0xD6, ExtCode.OBJECT, 0x92, 0xA1, ord("X"), 0x80]),
        "maps of empty maps": b"\x81\x00\x80",
    }
    files = {}
    for name, item in items.items():
        count = (size - len(head)) // len(item)
        files[name] = head + b"\x92\x01\xdd" + count.to_bytes(4, "big") + item * count
    # Records small enough to be decoded whole, each full of tiny arrays of short strings.
    pair = b"\x92" + (b"\xa2" + "\u0101".encode()) * 2
    records = [head, msgpack.packb([RecordKind.INPUT, None])]
    records.append(msgpack.packb([RecordKind.TYPE, 0, "bench.Hostile", []]))
    seq, total = 1, sum(map(len, records))
    while total < size:
        record = (
            b"\x99\x04"
            + msgpack.packb(seq)
            + b"\x00\x90\xc3\xdc"
            + (8000).to_bytes(2, "big")
            + pair * 8000
            + b"\x00\x00\xc0"
        )
        records.append(record)
        seq, total = seq + 1, total + len(record)
    files["small records of 2-string arrays"] = b"".join(records)
    return files


def read_peak_mem_ratio() -> tuple[float, str, dict[str, float]]:
    import tracemalloc

    ratios = {}
    for name, data in hostile_files().items():
        gc.collect()
        tracemalloc.start()
        try:
            try:
                trace = read_trace(data)
            except prodture.trace.TraceFormatError:
                trace = None
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        del trace
        ratios[name] = peak / len(data)
    worst = max(ratios, key=ratios.__getitem__)
    return ratios[worst], worst, ratios


# -- replay and size -------------------------------------------------------------------------------


def record_trace(n: int, directory: str) -> Path:
    sink_dir = Path(directory) / f"trace-{n}"
    recorder = Recorder(DirectorySink(sink_dir))
    interpreter = Interpreter({ChargeCard: lambda e: RESULT}, recorder=recorder)
    assert interpreter.run(charge_many, n).ok
    recorder.close()  # the trace is written by the recorder's writer thread
    (path,) = sink_dir.glob("*.prodtrace")
    return path


def time_replay(trace) -> float:
    start = time.perf_counter()
    result = Replayer(trace, charge_many).run()
    elapsed = time.perf_counter() - start
    assert result.reproduced, result.divergence
    return len(trace.effects) / elapsed


def time_bare_driver(trace) -> float:
    """Seconds for a bare generator driver to feed ``charge_many`` the recorded results."""
    results = [e.result for e in trace.effects]
    start = time.perf_counter()
    gen = charge_many(len(results))
    send = gen.send
    value = None
    try:
        for result in results:
            send(value)
            value = result
        send(value)
    except StopIteration:
        pass
    return time.perf_counter() - start


def otlp_bytes_per_span(tracer, exporter, n: int) -> float:
    time_otel(tracer, exporter, n)
    spans = exporter.get_finished_spans()
    assert len(spans) == n
    return len(encode_spans(spans).SerializeToString()) / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument(
        "--effects", type=int, default=20_000, help="effects per round for the per-effect costs"
    )
    parser.add_argument("--replay-effects", type=int, default=100_000)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="prodture-bench-")
    try:
        tracer, exporter = otel_setup()
        # Sanity: the bare record is byte-for-byte what the encoder writes.
        probe = MemorySink()
        session = Recorder(probe).begin("bench:charge_many", 1)
        session.effect(EffectCall(1, EFFECT, SITE), True, RESULT, 1000 + session.t0, 2500)
        session.finish(prodture.Success("done"))
        assert msgpack.packb(bare_record(1)) in probe.traces[0], (
            "bare record differs from the encoder's"
        )

        vs_otel, vs_msgpack, rec_us, otel_us, mp_us, thread_us = [], [], [], [], [], []
        vs_otel_file, otel_file_us = [], []
        for r in range(args.rounds):
            gc.collect()
            t_rec, t_thread = time_record(os.path.join(workdir, f"rec-{r}"), args.effects)
            thread_us.append(t_thread * 1e6)
            t_otel = time_otel(tracer, exporter, args.effects)
            t_otel_file = time_otel_to_file(os.path.join(workdir, f"otel-{r}.jsonl"), args.effects)
            vs_otel_file.append(t_rec / t_otel_file)
            otel_file_us.append(t_otel_file * 1e6)
            t_mp = time_msgpack(args.effects)
            vs_otel.append(t_rec / t_otel)
            vs_msgpack.append(t_rec / t_mp)
            rec_us.append(t_rec * 1e6)
            otel_us.append(t_otel * 1e6)
            mp_us.append(t_mp * 1e6)

        path = record_trace(args.replay_effects, workdir)
        data = path.read_bytes()
        reads = [time_read(data) for _ in range(3)]
        read_s = statistics.median(r for r, _ in reads)
        read_ratio = statistics.median(r / b for r, b in reads)
        bare_read_s = statistics.median(b for _, b in reads)
        trace = read_trace(path)
        replay, vs_bare = [], []
        for _ in range(max(3, args.rounds // 2)):
            per_s = time_replay(trace)
            bare_s = time_bare_driver(trace)
            replay.append(per_s)
            vs_bare.append((len(trace.effects) / per_s) / bare_s)
        mem_ratio, mem_worst, mem_all = read_peak_mem_ratio()

        small = record_trace(1000, workdir)
        ours = small.stat().st_size / 1000
        otlp = otlp_bytes_per_span(tracer, exporter, 1000)

        print(f"record_vs_otel: {statistics.median(vs_otel):.4f}")
        print(f"record_vs_otel_file: {statistics.median(vs_otel_file):.4f}")
        print(f"record_vs_msgpack: {statistics.median(vs_msgpack):.2f}")
        print(f"read_vs_msgpack: {read_ratio:.2f}")
        print(f"read_peak_mem_ratio: {mem_ratio:.1f}")
        print(f"replay_effects_per_s: {statistics.median(replay):.0f}")
        print(f"replay_vs_bare_driver: {statistics.median(vs_bare):.1f}")
        print(f"bytes_vs_otlp: {ours / otlp:.3f}")
        print(
            f"# per effect (median µs): record {statistics.median(rec_us):.2f} CPU all threads until written "
            f"({statistics.median(thread_us):.2f} wall in the handler's thread), otel span {statistics.median(otel_us):.2f} "
            f"({statistics.median(otel_file_us):.2f} exported to a file), "
            f"bare packb {statistics.median(mp_us):.3f}; read_trace of {args.replay_effects} effects {read_s:.2f}s "
            f"({path.stat().st_size / 1e6:.1f} MB; bare msgpack {bare_read_s:.3f}s); peak memory / file size per hostile "
            f"file: {', '.join(f'{k} {v:.1f}' for k, v in mem_all.items())} (worst: {mem_worst}); bytes/effect {ours:.1f} vs OTLP/span {otlp:.1f}",
            file=sys.stderr,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
