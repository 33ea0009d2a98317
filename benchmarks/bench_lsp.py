"""Language server figures.

* ``lsp_hints_10k_ms``: time from ``textDocument/didOpen`` to the inlay hints answered, for a handler
  whose active trace has 10,000 recorded effects (trace already loaded; median of runs), driving
  the real server (``python -m prodture.lsp``) over stdio with an LSP client.
* ``lsp_cold_hints_10k_ms``: the same, counting from ``initialized`` (the trace is read and
  indexed first) — what a user sees when the extension starts the server with the trace active,
  beyond the Python process start-up.
* ``lsp_mem_per_100k_effects_mb``: memory the server holds for active traces, per 100,000 recorded
  effects (tracemalloc, after indexing, decoded traces released).

The traces are recorded for real with the Recorder and Interpreter on a handler with a loop.

    python benchmarks/bench_lsp.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import importlib
import os
import statistics
import sys
import tempfile
import textwrap
import time
import tracemalloc

from lsprotocol import types
from pytest_lsp.client import make_test_lsp_client

import prodture
from prodture.lsp.active_traces import ActiveTraces

HANDLER = textwrap.dedent('''
    """A batch job: look up every item, then save a report."""
    import dataclasses
    import prodture


    @dataclasses.dataclass(frozen=True)
    class LookupItem(prodture.Effect, name="bench.LookupItem"):
        key: str


    @dataclasses.dataclass(frozen=True)
    class SaveReport(prodture.Effect, name="bench.SaveReport"):
        count: int
        total: int


    @prodture.handler
    def crunch(n):
        total = 0
        for i in range(n):
            item = yield LookupItem(key=f"item-{i}")
            total += item["price"]
        report_id = yield SaveReport(count=n, total=total)
        return {"report": report_id, "total": total}
''')


def record(directory: str, effects: int) -> tuple[str, str]:
    """Write the handler module and record one run of ``effects`` effects; (source, trace)."""
    src_dir = os.path.join(directory, "src")
    os.makedirs(src_dir, exist_ok=True)
    source = os.path.join(src_dir, "bench_job.py")
    with open(source, "w") as f:
        f.write(HANDLER)
    sys.path.insert(0, src_dir)
    module = importlib.import_module("bench_job")
    traces = os.path.join(directory, f"traces-{effects}")
    recorder = prodture.Recorder(prodture.DirectorySink(traces))
    interpreter = prodture.Interpreter(
        {
            module.LookupItem: lambda e: {
                "key": e.key,
                "price": len(e.key),
                "name": f"Item {e.key}",
            },
            module.SaveReport: lambda e: "report-1",
        },
        recorder=recorder,
    )
    outcome = interpreter.run(module.crunch, effects - 1)
    assert outcome.ok, outcome
    recorder.close()  # the trace is written by the recorder's writer thread
    [trace] = glob.glob(os.path.join(traces, "*.prodtrace"))
    return source, trace


async def _session(root: str, trace: str):
    client = make_test_lsp_client()
    await client.start_io(sys.executable, "-m", "prodture.lsp")
    params = types.InitializeParams(
        capabilities=types.ClientCapabilities(),
        root_uri="file://" + root,
        process_id=os.getpid(),
        initialization_options={"traces": [trace], "quickReplay": False},
    )
    client.capabilities = params.capabilities
    await client.initialize_async(params)  # the server process is up and imported
    # The trace is read and indexed when `initialized` arrives: the clock starts here.
    started = time.perf_counter()
    client.initialized(types.InitializedParams())
    return client, started


async def _hints(client, uri: str, text: str, version: int) -> list:
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri, language_id="python", version=version, text=text
            )
        )
    )
    return await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0),
                end=types.Position(line=10_000, character=0),
            ),
        )
    )


async def measure_hints(root: str, source: str, trace: str, runs: int) -> tuple[float, float]:
    text = open(source).read()
    uri = "file://" + source
    warm: list[float] = []
    client, _ = await _session(root, trace)
    try:
        # A first round trip: the trace is indexed while handling `initialized`.
        await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri="file:///nowhere.py"),
                position=types.Position(line=0, character=0),
            )
        )
        for run in range(runs):
            t0 = time.perf_counter()
            hints = await _hints(client, uri, text, run + 1)
            warm.append((time.perf_counter() - t0) * 1000)
            assert hints and any("×" in h.label for h in hints), hints
            client.text_document_did_close(
                types.DidCloseTextDocumentParams(
                    text_document=types.TextDocumentIdentifier(uri=uri)
                )
            )
    finally:
        await client.shutdown_session()
        await client.stop()
    cold: list[float] = []
    for _run in range(runs):
        client, started = await _session(root, trace)
        try:
            hints = await _hints(client, uri, text, 1)
            cold.append((time.perf_counter() - started) * 1000)
            assert hints
        finally:
            await client.shutdown_session()
            await client.stop()
    return statistics.median(warm), statistics.median(cold)


def measure_memory(traces: list[str], effects: int) -> float:
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    active = ActiveTraces()
    errors = active.set(traces)
    assert not errors, errors
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert sum(t.effect_count for t in active.active()) == effects
    scale = 100_000 / effects / (1024 * 1024)
    return (held - before) * scale, (peak - before) * scale


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="prodture-bench-lsp-") as root:
        source, trace_10k = record(root, 10_000)
        _, trace_100k = record(root, 100_000)
        warm, cold = asyncio.run(measure_hints(root, source, trace_10k, args.runs))
        mem, peak = measure_memory([trace_100k], 100_000)
        size_mb = os.path.getsize(trace_100k) / (1024 * 1024)
    print(f"lsp_hints_10k_ms: {warm:.1f}")
    print(f"lsp_cold_hints_10k_ms: {cold:.1f}")
    print(f"lsp_mem_per_100k_effects_mb: {mem:.2f}")
    print(
        f"# transient peak while indexing (the decoded trace, released after): {peak:.1f} MB per 100k effects"
    )
    print(
        f"# 100k-effect trace file: {size_mb:.1f} MB; runs: {args.runs}; python {sys.version.split()[0]}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
