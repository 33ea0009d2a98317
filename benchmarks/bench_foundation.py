"""Foundation benchmarks: the cost of recording an effect, replay throughput, bytes per effect.

    .venv/bin/python benchmarks/bench_foundation.py [--rounds 7] [--effects 20000]

Prints exactly four ``name: value`` lines on stdout (details go to stderr), each the median over
rounds in which every contender is measured side by side:

* ``record_vs_otel``  — per-effect recording cost (the recorder path: ``_Session.effect`` = encode
  + append to a real DirectorySink file) / recording the same effect as an OpenTelemetry SDK span
  (TracerProvider + SimpleSpanProcessor + InMemorySpanExporter; request and result as JSON
  attributes). Goal <= 0.05.
* ``record_vs_msgpack`` — the same recorder path / a bare ``msgpack.packb`` of the same record
  (prebuilt, ext values already ``ExtType``: byte-for-byte the record the encoder writes). Goal <= 3.
* ``replay_effects_per_s`` — ``Replayer(trace, handler).run()`` on a 100,000-effect trace. Goal >= 300,000.
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
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
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


def time_record(directory: str, n: int) -> float:
    """Seconds per effect through the recorder path into a real file."""
    recorder = Recorder(DirectorySink(directory))
    session = recorder.begin("bench:charge_many", n)
    calls = [EffectCall(i, EFFECT, SITE) for i in range(1, n + 1)]
    effect = session.effect
    start = time.perf_counter()
    for call in calls:
        effect(call, True, RESULT, 1000, 2500)
    elapsed = time.perf_counter() - start
    session.finish(prodture.Success("done"))
    assert recorder.stats.sink_errors == 0 and recorder.stats.encode_errors == 0
    return elapsed / n


def otel_setup() -> tuple:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("bench"), exporter


def time_otel(tracer, exporter, n: int) -> float:
    """Seconds per effect recorded as an OpenTelemetry span with JSON request/result attributes."""
    exporter.clear()
    dumps = json.dumps
    start = time.perf_counter()
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
    return (time.perf_counter() - start) / n


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
    start = time.perf_counter()
    for record in records:
        packb(record)
    return (time.perf_counter() - start) / n


# -- replay and size -------------------------------------------------------------------------------


def record_trace(n: int, directory: str) -> Path:
    sink_dir = Path(directory) / f"trace-{n}"
    interpreter = Interpreter(
        {ChargeCard: lambda e: RESULT}, recorder=Recorder(DirectorySink(sink_dir))
    )
    assert interpreter.run(charge_many, n).ok
    (path,) = sink_dir.glob("*.prodtrace")
    return path


def time_replay(trace) -> float:
    start = time.perf_counter()
    result = Replayer(trace, charge_many).run()
    elapsed = time.perf_counter() - start
    assert result.reproduced, result.divergence
    return len(trace.effects) / elapsed


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

        vs_otel, vs_msgpack, rec_us, otel_us, mp_us = [], [], [], [], []
        for r in range(args.rounds):
            gc.collect()
            t_rec = time_record(os.path.join(workdir, f"rec-{r}"), args.effects)
            t_otel = time_otel(tracer, exporter, args.effects)
            t_mp = time_msgpack(args.effects)
            vs_otel.append(t_rec / t_otel)
            vs_msgpack.append(t_rec / t_mp)
            rec_us.append(t_rec * 1e6)
            otel_us.append(t_otel * 1e6)
            mp_us.append(t_mp * 1e6)

        path = record_trace(args.replay_effects, workdir)
        t0 = time.perf_counter()
        trace = read_trace(path)
        read_s = time.perf_counter() - t0
        replay = [time_replay(trace) for _ in range(max(3, args.rounds // 2))]

        small = record_trace(1000, workdir)
        ours = small.stat().st_size / 1000
        otlp = otlp_bytes_per_span(tracer, exporter, 1000)

        print(f"record_vs_otel: {statistics.median(vs_otel):.4f}")
        print(f"record_vs_msgpack: {statistics.median(vs_msgpack):.2f}")
        print(f"replay_effects_per_s: {statistics.median(replay):.0f}")
        print(f"bytes_vs_otlp: {ours / otlp:.3f}")
        print(
            f"# per effect (median µs): record {statistics.median(rec_us):.2f}, otel span {statistics.median(otel_us):.2f}, "
            f"bare packb {statistics.median(mp_us):.3f}; read_trace of {args.replay_effects} effects {read_s:.2f}s "
            f"({path.stat().st_size / 1e6:.1f} MB); bytes/effect {ours:.1f} vs OTLP/span {otlp:.1f}",
            file=sys.stderr,
        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
