"""A run knows its trace id: on the Outcome, and in a context variable while it runs."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from typing import Any

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


class _Session:
    """A third-party observer's session: ``trace_id`` is optional in the protocol."""

    def __init__(self, trace_id: object) -> None:
        self._trace_id = trace_id
        self.outcomes: list[object] = []

    def effect(self, call, ok, value, start_ns, duration_ns) -> None:  # noqa: ANN001 -- protocol
        pass

    def finish(self, outcome) -> None:  # noqa: ANN001 -- the protocol's signature
        self.outcomes.append(outcome)

    @property
    def trace_id(self) -> object:
        if isinstance(self._trace_id, Exception):
            raise self._trace_id
        return self._trace_id


class _NoIdSession:
    def effect(self, call, ok, value, start_ns, duration_ns) -> None:  # noqa: ANN001 -- protocol
        pass

    def finish(self, outcome) -> None:  # noqa: ANN001 -- the protocol's signature
        pass


class _Observer:
    def __init__(self, session: object) -> None:
        self.session = session

    def begin(self, handler_name: str, input: object) -> Any:  # the protocol's session
        return self.session


def test_an_observer_session_without_a_usable_id_leaves_the_outcome_without_one() -> None:
    """Only a non-empty string id reaches the Outcome; a session with none, an id that is not a
    string, or one whose ``trace_id`` raises changes nothing else about the run."""
    for session, expected in (
        (_Session("t-1"), "t-1"),
        (_Session(""), None),
        (_Session(42), None),
        (_Session(None), None),
        (_Session(RuntimeError("the observer's own bug")), None),
        (_NoIdSession(), None),
    ):
        for fail in (False, True):
            outcome = prodture.Interpreter(
                {Probe: _perform_probe}, recorder=_Observer(session)
            ).run(probing, fail)
            assert outcome.ok is not fail and outcome.trace_id == expected, (session, fail)
            if isinstance(session, _Session):
                assert session.outcomes[-1] is outcome
