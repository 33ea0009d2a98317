"""Trace store and OpenTelemetry benchmarks.

    .venv/bin/python benchmarks/bench_stores.py [--rounds 5] [--rows 1000000]

Starts a throwaway PostgreSQL cluster (tests/pg_cluster.py; ``PRODTURE_BENCH_PG_URL`` uses an
existing database instead) and prints exactly six ``name: value`` lines on stdout (details go
to stderr):

* ``store_sink_vs_dir`` — handler-thread time per recorded execution (5 effects) with
  ``PostgresSink`` / with ``DirectorySink``, measured side by side in each round (median of the
  rounds' ratios; the PostgreSQL writer thread runs meanwhile, as in production). Goal <= 1.2.
* ``store_traces_per_s`` — traces committed per second by one ``PostgresSink`` fed by 8 threads
  (from the first execution until ``flush`` returns).
* ``store_list_failed_1m_ms`` — ``list --failed --since 1h`` (50 rows) with ``--rows`` traces
  stored (generated with SQL, 1 % failures over 30 days), median ms. Goal <= 100.
* ``store_fetch_ms`` — fetch by a 12-digit prefix, bytes included, same table, median ms. Goal <= 50.
* ``otlp_import_spans_per_s`` — OTLP protobuf → ``.prodtrace`` (read + rebuild + check), spans/s.
* ``otel_bytes_vs_prodtrace`` — OTLP protobuf bytes of one execution exported with
  ``payloads=True`` / its ``.prodtrace`` bytes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-adapter"))
sys.path.insert(0, str(ROOT / "tests"))

import psycopg  # noqa: E402
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402

import prodture  # noqa: E402
from prodture.otel import OtelRecorder  # noqa: E402
from prodture.otel.otlp_import import read_otlp, rebuild_traces  # noqa: E402
from prodture.stores import Query, open_store  # noqa: E402
from prodture.stores.postgres import TABLE, PostgresSink  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Lookup(prodture.Effect, name="bench.stores.Lookup"):
    key: str
    amount: Decimal


@prodture.handler(name="bench.stores:checkout")
def checkout(order):
    total = Decimal(0)
    for i in range(5):
        row = yield Lookup(f"item-{order}-{i}", Decimal("1.25"))
        total += row["price"]
    if order % 100 == 0:
        raise ValueError(f"order {order} declined")
    return {"order": order, "total": total}


def _lookup(effect: Lookup) -> dict:
    return {"key": effect.key, "price": effect.amount, "stock": 7}


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


def time_runs(sink, n: int, start: int = 0) -> float:
    """Seconds per execution on the handler's thread."""
    recorder = prodture.Recorder(sink, max_queue=max(n, 1000))  # every trace kept, none dropped
    interpreter = prodture.Interpreter({Lookup: _lookup}, recorder=recorder)
    t0 = time.perf_counter()
    for i in range(start, start + n):
        interpreter.run(checkout, i + 1)
    elapsed = time.perf_counter() - t0
    recorder.close()  # every trace handed to the sink (the recorder's writer thread, untimed)
    return elapsed / n


def sink_vs_dir(url: str, rounds: int, n: int) -> float:
    ratios = []
    for r in range(rounds):
        directory = tempfile.mkdtemp(prefix="prodture-bench-dir-")
        try:
            sink = PostgresSink(url, max_queue=10 * n)
            if r % 2:  # alternate which goes first: the machine's load drifts
                local = time_runs(prodture.DirectorySink(directory), n, start=r * n)
                pg = time_runs(sink, n, start=r * n)
            else:
                pg = time_runs(sink, n, start=r * n)
                local = time_runs(prodture.DirectorySink(directory), n, start=r * n)
            sink.close(timeout=300)
            ratios.append(pg / local)
            log(
                f"  round {r}: pg sink {pg * 1e6:.1f} us, dir sink {local * 1e6:.1f} us per execution"
            )
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    return statistics.median(ratios)


def traces_per_s(url: str, per_thread: int) -> float:
    sink = PostgresSink(url, max_queue=8 * per_thread + 1)
    t0 = time.perf_counter()
    threads = [
        threading.Thread(target=time_runs, args=(sink, per_thread, 10_000_000 + k * per_thread))
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close(timeout=600)
    elapsed = time.perf_counter() - t0
    log(
        f"  8 threads: {sink.stats.written} traces written, {sink.stats.dropped} dropped, {elapsed:.2f} s"
    )
    return sink.stats.written / elapsed


def fill_million(url: str, rows: int) -> None:
    """``rows`` traces generated by SQL (one real trace's bytes for each), 1 % failed."""
    memory = prodture.MemorySink()
    prodture.Interpreter({Lookup: _lookup}, recorder=prodture.Recorder(memory)).run(checkout, 100)
    sample = memory.traces[0]
    store = open_store(url, create=True)
    store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            f"""
            INSERT INTO {TABLE} (trace_id, handler, service, host, started_at, duration_ms, ok,
                error_type, error_message, failed_effect, effect_count, size_bytes, data)
            SELECT md5(i::text), 'bench.stores:checkout', 'shop', 'web-' || (i %% 20),
                now() - (i * interval '30 days' / %s), 3.5, i %% 100 <> 0,
                CASE WHEN i %% 100 = 0 THEN 'ValueError' ELSE '' END,
                CASE WHEN i %% 100 = 0 THEN 'order ' || i || ' declined' ELSE '' END,
                NULL, 5, %s, %s
            FROM generate_series(1, %s) AS i
            """,
            (rows, len(sample), sample, rows),
        )
        conn.execute(f"ANALYZE {TABLE}")


def median_ms(fn, repeat: int = 21) -> float:
    fn()  # warm the cache, as a dashboard user's second query would be
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def otel_export(executions: int) -> tuple[bytes, int, int]:
    """OTLP protobuf of ``executions`` runs with payloads, its span count, one .prodtrace's size."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    memory = prodture.MemorySink()
    recorder = OtelRecorder(prodture.Recorder(memory), tracer_provider=provider, payloads=True)
    interpreter = prodture.Interpreter({Lookup: _lookup}, recorder=recorder)
    for i in range(executions):
        interpreter.run(checkout, i + 1)
    spans = exporter.get_finished_spans()
    return encode_spans(spans).SerializeToString(), len(spans), len(memory.traces[0])


def otel_bytes_ratio() -> float:
    one, _spans, prodtrace = otel_export(1)
    log(f"  one execution: {len(one)} OTLP bytes, {prodtrace} .prodtrace bytes")
    return len(one) / prodtrace


def otlp_import_rate(executions: int, rounds: int) -> float:
    data, spans, _ = otel_export(executions)
    rates = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = rebuild_traces(read_otlp(data))
        elapsed = time.perf_counter() - t0
        assert len(result.traces) == executions
        rates.append(spans / elapsed)
    return statistics.median(rates)


@contextlib.contextmanager
def database():
    given = os.environ.get("PRODTURE_BENCH_PG_URL")
    if given:
        yield given
        return
    from pg_cluster import running_cluster

    with running_cluster() as cluster:
        yield cluster.create_database("bench_stores")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with database() as url:
        log("store_sink_vs_dir ...")
        ratio = sink_vs_dir(url, args.rounds, args.executions)
        log("store_traces_per_s ...")
        rate = traces_per_s(url, args.executions // 2)
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE {TABLE}")
        log(f"filling {args.rows} rows ...")
        t0 = time.perf_counter()
        fill_million(url, args.rows)
        log(f"  filled in {time.perf_counter() - t0:.1f} s")
        store = open_store(url)
        since = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(hours=1)
        found = store.list(Query(failed_only=True, since=since))
        log(f"  list: {len(found)} failures in the last hour")
        list_ms = median_ms(lambda: store.list(Query(failed_only=True, since=since)))
        with psycopg.connect(url) as conn:
            ids = [
                r[0]
                for r in conn.execute(f"SELECT trace_id FROM {TABLE} ORDER BY random() LIMIT 30")
            ]
        it = iter(ids)
        fetch_ms = median_ms(lambda: store.fetch(next(it)[:12]), repeat=min(21, len(ids) - 1))
        store.close()
    otel_ratio = otel_bytes_ratio()
    import_rate = otlp_import_rate(200, args.rounds)
    print(f"store_sink_vs_dir: {ratio:.3f}")
    print(f"store_traces_per_s: {rate:.0f}")
    print(f"store_list_failed_1m_ms: {list_ms:.2f}")
    print(f"store_fetch_ms: {fetch_ms:.2f}")
    print(f"otlp_import_spans_per_s: {import_rate:.0f}")
    print(f"otel_bytes_vs_prodtrace: {otel_ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
