"""A run knows its trace id: on the Outcome, and in a context variable while it runs."""

from __future__ import annotations

import asyncio
import dataclasses
import threading

import prodture
from prodture.runtime import current_trace_id


@dataclasses.dataclass(frozen=True)
class Probe(prodture.Effect, name="tests.trace_id.Probe"):
    fail: bool = False


def _perform_probe(effect: Probe) -> str | None:
    """What a log filter would see while the handler runs."""
    if effect.fail:
        raise RuntimeError("probe failed")
    return current_trace_id.get()


@prodture.handler
def probing(fail):
    seen = yield Probe(fail)
    return seen


@prodture.handler
async def probing_async(fail):
    return await Probe(fail)


def test_outcome_and_context_variable_name_the_written_trace() -> None:
    sink = prodture.MemorySink()
    interpreter = prodture.Interpreter({Probe: _perform_probe}, recorder=prodture.Recorder(sink))
    ok = interpreter.run(probing, False)
    failed = interpreter.run(probing, True)
    written = [prodture.read_trace(data).header.trace_id for data in sink.traces]
    assert ok.ok and ok.trace_id == written[0] and ok.value == written[0]
    assert not failed.ok and failed.trace_id == written[1] and failed.effect_seq == 1
    assert current_trace_id.get() is None  # reset after the run


def test_async_runs_and_threads_each_see_their_own_id() -> None:
    sink = prodture.MemorySink()
    interpreter = prodture.Interpreter({Probe: _perform_probe}, recorder=prodture.Recorder(sink))

    async def many():
        return await asyncio.gather(
            *(interpreter.run_async(probing_async, False) for _ in range(5))
        )

    outcomes = asyncio.run(many())
    assert all(o.value == o.trace_id for o in outcomes)
    assert len({o.trace_id for o in outcomes}) == 5

    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(interpreter.run(probing, False)))
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(o.value == o.trace_id for o in results) and len({o.trace_id for o in results}) == 4


def test_no_trace_kept_means_no_id() -> None:
    sink = prodture.MemorySink()
    on_failure = prodture.Interpreter(
        {Probe: _perform_probe}, recorder=prodture.Recorder(sink, mode=prodture.ON_FAILURE)
    )
    ok = on_failure.run(probing, False)
    assert ok.trace_id is None and ok.value is not None  # the id existed while running
    failed = on_failure.run(probing, True)
    assert failed.trace_id == prodture.read_trace(sink.traces[0]).header.trace_id
    unrecorded = prodture.Interpreter({Probe: _perform_probe}).run(probing, False)
    assert unrecorded.trace_id is None and unrecorded.value is None
    # Equality of outcomes ignores the id (replay compares recorded and new outcomes).
    assert prodture.Success(1, trace_id="a") == prodture.Success(1)


def test_log_records_carry_the_trace_id() -> None:
    import io
    import logging

    from prodture.runtime import TraceIdLogFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(TraceIdLogFilter())
    handler.setFormatter(logging.Formatter("%(trace_id)s %(message)s"))
    logger = logging.getLogger("tests.trace_id")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)

    def logging_probe(effect: Probe) -> None:
        logger.info("charging")

    try:
        outcome = prodture.Interpreter(
            {Probe: logging_probe}, recorder=prodture.Recorder(prodture.MemorySink())
        ).run(probing, False)
        logger.info("after")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [f"{outcome.trace_id} charging", "- after"]


def test_the_id_names_the_file_the_background_writer_writes(tmp_path) -> None:
    """A DirectorySink is written by the recorder's writer thread: after flush(), every id on an
    outcome (run and run_async, both modes) names a written file, and only those are written."""
    for mode in (prodture.ALWAYS, prodture.ON_FAILURE):
        directory = tmp_path / mode
        recorder = prodture.Recorder(prodture.DirectorySink(directory), mode=mode)
        interpreter = prodture.Interpreter({Probe: _perform_probe}, recorder=recorder)
        outcomes = []
        for fail in (False, True):
            outcomes.append(interpreter.run(probing, fail))
            outcomes.append(asyncio.run(interpreter.run_async(probing_async, fail)))
        assert recorder.flush(timeout=120)
        written = {prodture.read_trace(p).header.trace_id for p in directory.glob("*.prodtrace")}
        kept = [o for o in outcomes if mode == prodture.ALWAYS or not o.ok]
        assert len(kept) == len(written) and {o.trace_id for o in kept} == written
        for o in outcomes:
            if o.ok:  # the id the handler saw while running; on the outcome only when kept
                assert o.value is not None and o.trace_id == (o.value if o in kept else None)
        recorder.close()
