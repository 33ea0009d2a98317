"""The recorder: modes, redaction, failing sinks, concurrency, and a writer killed mid-run."""

from __future__ import annotations

import asyncio
import dataclasses
import glob
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

import prodture
from prodture import (
    ALWAYS,
    ON_FAILURE,
    DirectorySink,
    Effect,
    Failure,
    Interpreter,
    MemorySink,
    Recorder,
    Redactor,
    Sampled,
    Success,
    read_trace,
    secret,
)
from prodture.trace import REDACTED, Opaque, RecordedError
from prodture.trace.codec import OPAQUE_REPR_WITHHELD

ROOT = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class Fetch(Effect, name="test_rec.Fetch"):
    key: str


@dataclasses.dataclass(frozen=True)
class Login(Effect, name="test_rec.Login"):
    user: str
    password: str


@dataclasses.dataclass(frozen=True)
class Charge(Effect, name="test_rec.Charge"):
    amount: Decimal
    pan: str = secret(default="")


@prodture.register(name="test_rec.Session")
@dataclasses.dataclass(frozen=True)
class Session:
    user: str
    cookie: str = secret(default="")


@prodture.register(name="test_rec.NotFound")
class NotFound(Exception):
    pass


class Unregistered(Exception):
    pass


def fetch(effect: Fetch) -> dict:
    if effect.key.startswith("missing"):
        raise NotFound(f"no {effect.key}")
    return {"key": effect.key, "n": len(effect.key)}


def two_fetches(keys):
    first = yield Fetch(keys[0])
    second = yield Fetch(keys[1])
    return [first["n"], second["n"]]


def record(handler, input, *, mode=ALWAYS, redact=Redactor(), performers=None, sink=None):  # noqa: B008 -- Redactor is immutable
    sink = sink or MemorySink()
    recorder = Recorder(sink, mode=mode, redact=redact)
    outcome = Interpreter(performers or {Fetch: fetch}, recorder=recorder).run(handler, input)
    assert recorder.flush(timeout=30)
    return outcome, sink, recorder


def test_always_mode_writes_input_effects_and_outcome(tmp_path):
    """In 'always' mode every run leaves one trace file with the input, each effect's request and result, and the outcome."""
    sink = DirectorySink(tmp_path)
    outcome, _, recorder = record(two_fetches, ["ab", "cde"], sink=sink)
    assert outcome == Success([2, 3])
    files = glob.glob(str(tmp_path / "*.prodtrace"))
    assert len(files) == 1 and "two_fetches" in os.path.basename(files[0])
    trace = read_trace(files[0])
    assert trace.complete and not trace.truncated
    assert trace.handler.endswith(":two_fetches") and trace.input == ["ab", "cde"]
    assert [(e.seq, e.type, e.request, e.ok, e.result) for e in trace.effects] == [
        (1, "test_rec.Fetch", {"key": "ab"}, True, {"key": "ab", "n": 2}),
        (2, "test_rec.Fetch", {"key": "cde"}, True, {"key": "cde", "n": 3}),
    ]
    assert trace.effects[0].site[2] == "two_fetches" and trace.effects[0].duration_ns >= 0
    assert trace.outcome.ok and trace.outcome.value == [2, 3]
    assert recorder.stats.traces_written == 1 and recorder.stats.sink_errors == 0


def test_trace_files_are_readable_by_their_owner_only(tmp_path):
    """Trace files hold customer data: DirectorySink creates them 0600 unless told otherwise."""
    record(two_fetches, ["ab", "cde"], sink=DirectorySink(tmp_path))
    record(two_fetches, ["ab", "cde"], sink=DirectorySink(tmp_path / "shared", file_mode=0o640))
    (private,) = glob.glob(str(tmp_path / "*.prodtrace"))
    (shared,) = glob.glob(str(tmp_path / "shared" / "*.prodtrace"))
    old_umask = os.umask(0)
    os.umask(old_umask)
    assert os.stat(private).st_mode & 0o777 == 0o600
    assert os.stat(shared).st_mode & 0o777 == 0o640 & ~old_umask


def test_failed_effect_is_recorded_with_its_error():
    """A failed effect is recorded with its exception type and message, and the outcome names it."""
    outcome, sink, _ = record(two_fetches, ["ok", "missing-1"])
    assert isinstance(outcome, Failure) and outcome.effect_seq == 2
    trace = read_trace(sink.traces[0])
    failed = trace.effects[1]
    assert not failed.ok and type(failed.error) is NotFound and str(failed.error) == "no missing-1"
    assert trace.outcome.ok is False and trace.outcome.failed_effect == 2
    assert (
        type(trace.outcome.error) is NotFound
        and "NotFound: no missing-1" in trace.outcome.traceback
    )
    assert trace.failed_effect is failed


def test_unregistered_error_is_recorded_by_name_and_message():
    """An exception type that is not registered comes back as a RecordedError with its type name and message."""

    def h(_):
        yield Fetch("x")

    def fail(_):
        raise Unregistered("it broke")

    _, sink, _ = record(h, None, performers={Fetch: fail})
    error = read_trace(sink.traces[0]).effects[0].error
    assert isinstance(error, RecordedError)
    assert error.type_name == f"{__name__}.Unregistered" and error.message == "it broke"


def test_on_failure_mode_writes_only_failed_runs():
    """'on-failure' keeps a run in memory and writes it only when the handler fails (all its effects included)."""
    sink = MemorySink()
    recorder = Recorder(sink, mode=ON_FAILURE)
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    assert interpreter.run(two_fetches, ["a", "b"]).ok
    assert sink.traces == [] and recorder.stats.traces_discarded == 1
    assert not interpreter.run(two_fetches, ["a", "missing"]).ok
    assert len(sink.traces) == 1 and recorder.stats.traces_written == 1
    trace = read_trace(sink.traces[0])
    assert trace.complete and len(trace.effects) == 2 and trace.outcome.failed_effect == 2


@pytest.mark.parametrize("mode", [ALWAYS, ON_FAILURE])
def test_one_recorder_gives_each_run_its_own_header_meta(mode):
    """``run(..., meta=)`` adds to that run's header only (over the recorder's meta): one
    recorder, and its writer, serves runs that each say which execution they were."""
    sink = MemorySink()
    recorder = Recorder(sink, mode=mode, meta={"service": "bank", "run": "default"})
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    interpreter.run(two_fetches, ["a", "missing-1"], meta={"run": "first", "n": 1})
    asyncio.run(interpreter.run_async(two_fetches, ["b", "missing-2"], meta={"run": "second"}))
    interpreter.run(two_fetches, ["c", "missing-3"])
    assert recorder.flush(timeout=30)
    metas = [read_trace(t).header.meta for t in sink.traces]
    assert metas == [
        {"service": "bank", "run": "first", "n": 1},
        {"service": "bank", "run": "second"},
        {"service": "bank", "run": "default"},
    ]
    assert recorder.meta == {"service": "bank", "run": "default"}


def test_sampled_mode_records_the_given_fraction():
    """Sampled(0) records nothing, Sampled(1) everything, Sampled(0.5) some but not all runs."""
    for rate, check in (
        (0.0, lambda n: n == 0),
        (1.0, lambda n: n == 200),
        (0.5, lambda n: 40 < n < 160),
    ):
        sink = MemorySink()
        interpreter = Interpreter({Fetch: fetch}, recorder=Recorder(sink, mode=Sampled(rate)))
        random.seed(1234)
        for _ in range(200):
            assert interpreter.run(two_fetches, ["a", "b"]).ok
        assert check(len(sink.traces)), (rate, len(sink.traces))


def test_bad_mode_and_rate_are_refused_with_the_fix():
    """An unknown mode or a rate outside 0..1 raises ValueError naming the valid choices."""
    with pytest.raises(ValueError, match="'always', 'on-failure' or Sampled"):
        Recorder(MemorySink(), mode="sometimes")
    with pytest.raises(ValueError, match="between 0 and 1"):
        Sampled(1.5)


SECRETS = ["hunter2-PASSWORD", "tok-SESSION-COOKIE", "4111-1111-1111-1111", "sk_live_APIKEY"]


def secretive(input):
    session = yield Login(user="ada", password=SECRETS[0])
    yield Charge(Decimal("9.99"), pan=SECRETS[2])
    return {"session": session, "card_number": SECRETS[2], "ok": True}


def test_redaction_keeps_secrets_out_of_the_file(tmp_path):
    """Secret-named fields and secret() fields are redacted in input, requests, results and outcome: their bytes never reach the file."""
    performers = {Login: lambda e: Session(e.user, cookie=SECRETS[1]), Charge: lambda e: "ch_1"}
    sink = DirectorySink(tmp_path)
    outcome, _, recorder = record(
        secretive,
        {"user": "ada", "api_key": SECRETS[3], "nested": [{"Password": SECRETS[0]}]},
        performers=performers,
        sink=sink,
    )
    assert (
        outcome.ok and outcome.value["session"].cookie == SECRETS[1]
    )  # the handler saw the real values
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    data = Path(path).read_bytes()
    for s in SECRETS:
        assert s.encode() not in data
    trace = read_trace(path)
    assert trace.input["api_key"] is REDACTED and trace.input["nested"][0]["Password"] is REDACTED
    assert trace.input["user"] == "ada"
    login, charge = trace.effects
    assert login.request == {"user": "ada", "password": REDACTED}
    assert login.result == Session("ada", REDACTED)
    assert charge.request == {"amount": Decimal("9.99"), "pan": REDACTED}
    assert trace.outcome.value["card_number"] is REDACTED and trace.outcome.value["ok"] is True


def test_custom_redaction_patterns_and_no_redaction():
    """redact=[patterns] redacts matching field names (regex, case-insensitive); redact=None records everything."""

    def h(_):
        return (yield Fetch("SSN-123"))

    performers = {Fetch: lambda e: {"internal_note": "classified", "public": "x"}}
    _, sink, _ = record(
        h, {"Customer_Email": "a@b.c"}, redact=[r"email$", "internal"], performers=performers
    )
    trace = read_trace(sink.traces[0])
    assert trace.input == {"Customer_Email": REDACTED}
    assert trace.effects[0].result == {"internal_note": REDACTED, "public": "x"}
    _, sink, _ = record(h, {"password": "plain"}, redact=None, performers=performers)
    assert read_trace(sink.traces[0]).input == {"password": "plain"}


class ExplodingSink:
    def __init__(self, where: str) -> None:
        self.where = where

    def open(self, info):
        if self.where == "open":
            raise OSError("disk full")
        return self

    def write(self, data):
        if self.where == "write":
            raise OSError("disk full")

    def close(self):
        if self.where == "close":
            raise OSError("disk full")


@pytest.mark.parametrize("where", ["open", "write", "close"])
def test_failing_sink_never_changes_the_handler_result(where, caplog):
    """A sink that raises is counted in stats.sink_errors and logged; the handler's outcome is unchanged."""
    outcome, _, recorder = record(two_fetches, ["a", "bb"], sink=ExplodingSink(where))
    assert outcome == Success([1, 2])
    assert recorder.stats.sink_errors == 1 and recorder.stats.traces_written == 0
    assert "sink" in caplog.text
    failed, _, recorder = record(two_fetches, ["a", "missing"], sink=ExplodingSink(where))
    assert isinstance(failed.error, NotFound) and recorder.stats.sink_errors == 1


def test_unencodable_values_are_recorded_as_opaque():
    """Values msgpack cannot carry (objects, ints beyond 64 bits) are recorded as their type and repr (an object's repr only with Redactor(opaque_repr=True): withheld by default), never failing the run."""

    class Thing:
        def __repr__(self):
            return "<Thing 7>"

    def h(_):
        a = yield Fetch("a")
        b = yield Fetch("b")
        return a, b

    values = {"a": Thing(), "b": 2**70}
    performers = {Fetch: lambda e: values[e.key]}
    _, withheld, _ = record(h, None, performers=performers)
    thing = read_trace(withheld.traces[0]).effects[0].result
    assert thing == Opaque(thing.type_name, OPAQUE_REPR_WITHHELD) and "Thing" in thing.type_name
    outcome, sink, recorder = record(
        h, None, performers=performers, redact=Redactor(opaque_repr=True)
    )
    assert outcome.ok and recorder.stats.encode_errors == 0
    trace = read_trace(sink.traces[0])
    assert trace.complete
    assert trace.effects[0].result == Opaque(trace.effects[0].result.type_name, "<Thing 7>")
    assert isinstance(trace.effects[1].result, Opaque) and trace.effects[1].result.repr == str(
        2**70
    )


def test_eight_threads_record_into_one_directory_without_loss_or_mixing(tmp_path):
    """Eight threads sharing one Recorder and DirectorySink each get complete traces of their own runs only."""
    recorder = Recorder(DirectorySink(tmp_path))
    interpreter = Interpreter({Fetch: fetch}, recorder=recorder)
    runs_per_thread = 40
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(runs_per_thread):
                keys = [f"t{t}-r{i}-x", f"t{t}-r{i}-" + "y" * (i % 7)]
                assert interpreter.run(two_fetches, keys).ok
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert recorder.flush(timeout=60)
    _assert_unmixed(tmp_path, 8 * runs_per_thread)
    assert recorder.stats.traces_written == 8 * runs_per_thread and recorder.stats.sink_errors == 0


def test_asyncio_tasks_record_concurrently_without_loss_or_mixing(tmp_path):
    """Interleaved asyncio tasks under run_async each produce their own complete trace."""
    recorder = Recorder(DirectorySink(tmp_path))

    async def slow_fetch(effect: Fetch) -> dict:
        await asyncio.sleep(0)
        return fetch(effect)

    interpreter = Interpreter({Fetch: slow_fetch}, recorder=recorder)

    async def main() -> list:
        return await asyncio.gather(
            *(interpreter.run_async(two_fetches, [f"t{t}-r0-x", f"t{t}-r0-yy"]) for t in range(64))
        )

    assert all(o.ok for o in asyncio.run(main()))
    assert recorder.close(timeout=60)
    _assert_unmixed(tmp_path, 64)


def _assert_unmixed(directory: Path, expected: int) -> None:
    files = glob.glob(str(directory / "*.prodtrace"))
    assert len(files) == expected
    inputs = set()
    for path in files:
        trace = read_trace(path)
        assert trace.complete, path
        prefix = trace.input[0].rsplit("-", 1)[0]
        assert [e.request["key"] for e in trace.effects] == trace.input
        assert all(e.result["key"].startswith(prefix) for e in trace.effects)
        assert trace.outcome.value == [len(k) for k in trace.input]
        inputs.add(tuple(trace.input))
    assert len(inputs) == expected


KILLED_WRITER = textwrap.dedent(
    """
    import dataclasses, sys, time
    import prodture

    @dataclasses.dataclass(frozen=True)
    class Step(prodture.Effect, name="killed.Step"):
        n: int

    def perform(effect):
        if effect.n == STOP_AT:
            print("ready", flush=True)
            time.sleep(60)
        if IMMUTABLE:  # kept by reference at first, then encoded as they come
            return (effect.n, "x" * (effect.n * 37 % 300))
        return {"n": effect.n, "payload": "x" * (effect.n * 37 % 300)}

    @prodture.handler
    def many(count):
        total = 0
        for n in range(1, count + 1):
            result = yield Step(n)
            total += result[0] if IMMUTABLE else result["n"]
        return total

    STOP_AT = int(sys.argv[2])
    IMMUTABLE = sys.argv[3] == "immutable"
    recorder = prodture.Recorder(prodture.DirectorySink(sys.argv[1]))
    prodture.Interpreter({Step: perform}, recorder=recorder).run(many, 10_000)
    """
)


def _wait_for_effects(directory: Path, count: int, timeout: float = 60.0) -> None:
    """Until the one trace in ``directory`` holds ``count`` effects (the writer thread writes a
    running execution's records every flush_interval); fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        paths = glob.glob(str(directory / "*.prodtrace"))
        if paths and len(read_trace(paths[0]).effects) >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the running execution's first {count} effects never reached the file")


@pytest.mark.parametrize("results", ["mutable", "immutable"])
def test_sigkilled_writer_leaves_a_readable_prefix(tmp_path, results):
    """A long execution's records reach the file while it runs (the writer streams them, and
    values kept by reference are encoded once it has run flush_interval); a SIGKILL then leaves
    every written effect readable, the trace marked complete=False."""
    stop_at = 500
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(tmp_path), str(stop_at), results],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == "ready", proc.stderr.read()
        _wait_for_effects(tmp_path, stop_at - 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    (path,) = glob.glob(str(tmp_path / "*.prodtrace"))
    trace = read_trace(path)
    assert not trace.complete and trace.outcome is None and not trace.truncated
    assert trace.input == 10_000
    assert [e.seq for e in trace.effects] == list(range(1, stop_at))
    if results == "immutable":
        assert all(e.result[0] == e.seq for e in trace.effects)
    else:
        assert all(e.result["n"] == e.seq for e in trace.effects)


def test_a_recording_session_starts_with_every_field_of_a_pending_trace():
    """``_StreamSession.__init__`` sets ``_Pending``'s fields itself (one call fewer per
    execution): a field added to ``_Pending`` but not there would be missing at first use."""
    from prodture.recorder import _Pending, _StreamSession, _trace_id

    recorder = Recorder(MemorySink())
    session = _StreamSession(recorder, "test:handler", "input")
    pending = _Pending(recorder, "test:handler", _trace_id(), session.t0)
    for name in _Pending.__slots__:
        assert hasattr(session, name), f"_StreamSession.__init__ does not set {name}"
        if name not in ("trace_id", "t0", "records"):
            assert getattr(session, name) == getattr(pending, name), name
    assert type(session.records) is type(pending.records) and not session.records
    assert len(session.trace_id) == 32 and session.trace_id != pending.trace_id


def test_trace_ids_are_distinct_random_uuids_across_batches():
    """Trace ids are made in batches: over several batches, each is 32 hex digits laid out as a
    version 4, RFC 4122 UUID (as the format asks), and none repeats."""
    import uuid

    recorder = Recorder(MemorySink())
    interpreter = Interpreter({}, recorder=recorder)
    ids = [interpreter.run(lambda x: x, i).trace_id for i in range(300)]
    assert len(set(ids)) == 300
    for trace_id in ids:
        assert trace_id is not None and len(trace_id) == 32
        parsed = uuid.UUID(trace_id)
        assert (parsed.hex, parsed.version, parsed.variant) == (trace_id, 4, uuid.RFC_4122)
