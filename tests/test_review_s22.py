"""Adversarial review of the recorder and the codec (session 22): what broke, each with the test
that failed before its fix. The promises checked: recording never changes a handler's result,
redacted values never reach the file, a reader can always read what a writer wrote, nothing a
user recorded is lost.

No test depends on timing: every wait has a generous bound, so a bug fails a test instead of
hanging it.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from typing import Any

import pytest

from prodture import DirectorySink, Effect, Interpreter, Recorder, read_trace
from prodture.trace import Redactor, codec, fastpack

SECRET = "hunter2-s22-do-not-leak"


@dataclasses.dataclass(frozen=True)
class Carry(Effect, name="test_review_s22.Carry"):
    value: Any


def _record(tmp_path: Any, value: Any, redact: Any = None, after: Any = None) -> tuple[Any, bytes]:
    """One execution whose effect returns ``value`` and which returns it too, recorded into a
    DirectorySink (``after(value)`` runs right after the effect): its outcome and file bytes."""

    def handler(arg: Any):
        result = yield Carry("x")
        if after is not None:
            after(result)
        return "done"

    kwargs = {} if redact is None else {"redact": redact}
    recorder = Recorder(DirectorySink(tmp_path), **kwargs)
    outcome = Interpreter({Carry: lambda e: value}, recorder=recorder).run(handler, None)
    assert recorder.close(timeout=60)
    (path,) = tmp_path.glob("*.prodtrace")
    return outcome, path.read_bytes()


# -- 1. a __repr__ raising a BaseException -----------------------------------------------------


class ReprExits:
    """An object the codec cannot encode, whose ``__repr__`` raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __repr__(self) -> str:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [SystemExit(3), GeneratorExit(), pytest.importorskip("asyncio").CancelledError()],
    ids=["SystemExit", "GeneratorExit", "CancelledError"],
)
def test_a_repr_raising_a_base_exception_gives_a_marked_placeholder(tmp_path, error):
    """Recording never changes a handler's result: an opaque value whose ``__repr__`` raises
    SystemExit, GeneratorExit or CancelledError (not Exceptions) while it is recorded with
    Redactor(opaque_repr=True) is recorded as a placeholder marking the failed repr; before, the
    exception came out of the recorder into the handler."""
    outcome, data = _record(tmp_path, ReprExits(error), redact=Redactor(opaque_repr=True))
    assert outcome.ok and outcome.value == "done"
    result = read_trace(data).effects[0].result
    assert isinstance(result, codec.Opaque) and result.type_name.endswith("ReprExits")
    assert result.repr == f"<ReprExits (repr failed: {type(error).__name__})>"


class StrExits(Exception):
    """An error whose ``__str__`` (the message a trace records) raises SystemExit."""

    def __str__(self) -> str:
        raise SystemExit(4)


def test_an_error_whose_str_raises_system_exit_is_recorded_by_its_repr(tmp_path):
    """Recording never changes a handler's result: an effect fails with an error whose
    ``__str__`` raises SystemExit, and the handler handles the error; the recorder, which makes
    the error's message, recorded it with its repr instead. Before, the SystemExit came out of
    the recorder into the handler."""

    def fail(effect: Carry) -> Any:
        raise StrExits("boom")

    def handler(arg: Any):
        try:
            yield Carry("x")
        except StrExits:
            return "handled"
        return "not raised"

    recorder = Recorder(DirectorySink(tmp_path))
    outcome = Interpreter({Carry: fail}, recorder=recorder).run(handler, None)
    assert recorder.close(timeout=60)
    assert outcome.ok and outcome.value == "handled"
    (path,) = tmp_path.glob("*.prodtrace")
    error = read_trace(path).effects[0].error
    assert error is not None and "StrExits('boom')" in str(error)


def test_a_ctrl_c_during_a_repr_still_interrupts_the_program(tmp_path):
    """Recording must not swallow the user's Ctrl-C: a KeyboardInterrupt raised while a repr is
    made (the signal arrived then: the handler's thread would have raised it at its next
    instruction anyway) goes on, as it would without the recorder."""

    def handler(arg: Any):
        yield Carry("x")
        return "done"

    recorder = Recorder(DirectorySink(tmp_path), redact=Redactor(opaque_repr=True))
    interpreter = Interpreter({Carry: lambda e: ReprExits(KeyboardInterrupt())}, recorder=recorder)
    with pytest.raises(KeyboardInterrupt):
        interpreter.run(handler, None)
    assert recorder.close(timeout=60)


# -- 2. an enum member holding a list ------------------------------------------------------------


class Tiers(enum.Enum):
    """An enum with a member whose value is a list: the list can change after the member is used."""

    GOLD = ["gold"]
    BRONZE = "bronze"


def test_an_enum_member_holding_a_list_is_recorded_as_it_was_at_the_effect(tmp_path):
    """What the file holds is what the handler saw: an effect returns an enum member whose value
    is a list, and the handler changes that list right after; the trace still holds the value as
    the effect returned it. Before, the member was kept by reference (as if immutable) and encoded
    later by the writer, with the change."""
    try:
        outcome, data = _record(tmp_path, Tiers.GOLD, after=lambda m: m.value.append("changed"))
    finally:
        del Tiers.GOLD.value[1:]
    assert outcome.ok
    assert b"changed" not in data
    result = read_trace(data).effects[0].result
    # (a list value cannot be looked up among the members: read back as the recorded value)
    assert (result.type_name, result.fields) == (codec.type_name(Tiers), ["gold"])
    # A member whose value cannot change is still kept as itself (encoded by the writer).
    from prodture.recorder import _kept

    assert _kept(Tiers.BRONZE) is Tiers.BRONZE


# -- 3. a pair or key whose name is a memoryview -------------------------------------------------


@pytest.mark.parametrize("accelerated", [True, False], ids=["msgspec", "msgpack"])
@pytest.mark.parametrize("kind", ["memoryview", "bytes", "bytearray"])
def test_a_secret_pair_or_key_named_by_a_memoryview_is_redacted(
    tmp_path, kind, accelerated, monkeypatch
):
    """Redacted values never reach the file: a ``(name, value)`` pair (a tuple, a list) and a
    map key whose name is a ``memoryview`` of ``b"password"`` lose their value, as they do with a
    ``bytes`` or ``bytearray`` name (headers read from a buffer). Before, a memoryview name was
    not looked at and the secret was written."""
    monkeypatch.setattr(fastpack, "enabled", accelerated and fastpack.encode is not None)
    name = {"memoryview": memoryview, "bytes": bytes, "bytearray": bytearray}[kind](b"password")
    value: Any = {
        "tuple": (name, SECRET),
        "list": [name, SECRET],
        "headers": [(b"accept", b"text/html"), (name, SECRET.encode())],
    }
    if kind != "bytearray":  # (a bytearray is not hashable: never a key)
        value["map"] = {name: SECRET}
    outcome, data = _record(tmp_path, value, redact=Redactor())
    assert outcome.ok
    assert SECRET.encode() not in data
    assert read_trace(data).effects[0].result["headers"][0] == (b"accept", b"text/html")


# -- 4. a fork while another thread holds the codec's opaque-type lock ---------------------------


class NeverSeenInTheParent:
    """A type the codec cannot encode, first recorded in a forked child (so its name is not yet
    in the codec's set of logged opaque types: the child takes the lock to add it)."""


def _wait_for_child(pid: int, seconds: float) -> int | None:
    """The child's exit code, or None when it has not ended within ``seconds`` (it is then
    killed: a hung child fails the test instead of hanging it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_child_forked_while_a_thread_holds_the_opaque_lock_records_opaque_values(tmp_path):
    """Recording never changes a handler's result (never hangs it): a fork while another thread
    of the parent holds the codec's lock for opaque type names (logging a new one) left the
    child a lock held by a thread it does not have; its first opaque value of a new type waited
    on it for ever. The child's lock is made anew after a fork."""
    held, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:
        with codec._opaque_lock:
            held.set()
            release.wait(60)

    holder = threading.Thread(target=hold_the_lock, daemon=True)
    holder.start()
    assert held.wait(60)
    try:
        with warnings.catch_warnings():  # 3.12+: "use of fork() may lead to deadlocks": this one
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            code = 1
            try:
                recorder = Recorder(DirectorySink(tmp_path), redact=Redactor(opaque_repr=True))
                interpreter = Interpreter(
                    {Carry: lambda e: NeverSeenInTheParent()}, recorder=recorder
                )

                def handler(arg: Any):
                    yield Carry("x")
                    return "done"

                outcome = interpreter.run(handler, None)
                ok = outcome.ok and recorder.close(timeout=30)
                code = 0 if ok and recorder.stats.opaque_values == 1 else 1
            finally:
                os._exit(code)
        exit_code = _wait_for_child(pid, 60)
    finally:
        release.set()
        holder.join(60)
    assert exit_code == 0, "the child hung on the opaque lock (None) or failed its checks"
    (path,) = tmp_path.glob("*.prodtrace")
    assert read_trace(path).effects[0].result.type_name.endswith("NeverSeenInTheParent")


# -- 5. a value type registered while another thread compiles its dataclass encoder -------------


def _held(lock: Any) -> bool:
    """Whether ``lock`` (a Lock or an RLock) is held, as another thread finds it."""
    free: list[bool] = []

    def try_it() -> None:
        free.append(lock.acquire(blocking=False))
        if free[0]:
            lock.release()

    probe = threading.Thread(target=try_it)
    probe.start()
    probe.join(60)
    return free == [False]


def test_a_value_type_registered_while_its_dataclass_encoder_is_compiled_stays_registered(
    monkeypatch,
):
    """A reader can always read what a writer wrote, as the type's registration says: a thread
    encoding the first value of a dataclass type compiles its encoder while another thread
    registers the type (register_value_type, e.g. an integration imported late); the compiled
    dataclass encoder was then stored over the registered one, and every later value of the type
    was written as a dataclass, which its from_fields never sees. The interleaving is forced: the
    registration runs (in another thread) inside the compile."""

    @dataclasses.dataclass
    class Money:
        cents: int

    name = "test_review_s22.Money"
    compile_encoders = codec._object_encoders

    def compile_while_another_thread_registers(t: type) -> Any:
        compiled = compile_encoders(t)
        if t is Money:
            registering = threading.Thread(
                target=codec.register_value_type,
                args=(Money, name, lambda m: {"amount": m.cents}, lambda f: Money(f["amount"])),
            )
            registering.start()
            registering.join(60)
            assert not registering.is_alive()
        return compiled

    monkeypatch.setattr(codec, "_object_encoders", compile_while_another_thread_registers)
    try:
        codec.encode_value(Money(1))  # (the first value: its encoder is compiled for it)
        later = codec.decode_value(codec.encode_value(Money(2)))
        assert codec.plain_object_encoder(Money) is None  # registered: not a dataclass's
    finally:
        codec._custom_types.pop(Money, None)
        codec._FIXED_ENCODERS.pop(Money, None)
        codec._FAST.pop(Money, None)
        codec._PLAIN_OBJECT.pop(Money, None)
    assert later == Money(2), "the registration was lost: written as a dataclass"

    # A full cache is replaced by a copy of the fixed encoders: a registration made between the
    # copy and the store of the copy was lost (the registered type's values became OPAQUE).
    # Forced: the cache is always full, and the registration starts (in another thread) after
    # the copy; it runs there and then unless a lock keeps it until the store.
    class Cents:
        def __init__(self, amount: int) -> None:
            self.amount = amount

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Cents) and other.amount == self.amount

    @dataclasses.dataclass
    class Seen:
        n: int

    copy_cache = codec.remember_beside
    registering: list[threading.Thread] = []

    def copy_then_another_thread_registers(*args: Any) -> Any:
        copied = copy_cache(*args)
        if not registering:
            thread = threading.Thread(
                target=codec.register_value_type,
                args=(Cents, "test_review_s22.Cents", vars, lambda f: Cents(f["amount"])),
            )
            registering.append(thread)
            thread.start()
            lock = getattr(codec, "_fast_lock", None)
            if lock is None or not _held(lock):  # nothing keeps it: let it run to its end
                thread.join(60)
        return copied

    monkeypatch.setattr(codec, "_object_encoders", compile_encoders)
    monkeypatch.setattr(codec, "MAX_CACHED_TYPES", 0)
    monkeypatch.setattr(codec, "remember_beside", copy_then_another_thread_registers)
    try:
        codec.encode_value(Seen(1))  # a new dataclass type: its encoder is stored, in a copy
        registering[0].join(60)
        assert not registering[0].is_alive()
        assert codec.decode_value(codec.encode_value(Cents(5))) == Cents(5), "registration lost"
    finally:
        for cache in (codec._custom_types, codec._FIXED_ENCODERS, codec._FAST):
            cache.pop(Cents, None)


# -- 6. a daemon thread recording during the exit flush ------------------------------------------

EXIT_WHILE_A_DAEMON_THREAD_RECORDS = textwrap.dedent(
    """
    import atexit, dataclasses, json, sys, threading, time
    import prodture

    directory, report = sys.argv[1], sys.argv[2]

    @dataclasses.dataclass(frozen=True)
    class Step(prodture.Effect, name="exiting.Step"):
        n: int

    @prodture.handler(name="exiting:steps")
    def steps(count):
        total = 0
        for n in range(count):
            total += yield Step(n)
        return total

    finished = []  # the trace ids of the executions that returned, in order
    exit_began = []  # [the ids finished before the exit began], once it has

    class SlowDisk(prodture.DirectorySink):
        '''A disk that takes 2 ms a write, and stalls for half a second on the write of a
        trace that finished once the exit began (the interpreter ends the process meanwhile).'''

        def open(self, info):
            return SlowStream(super().open(info), info.trace_id)

    class SlowStream:
        def __init__(self, stream, trace_id):
            self.stream, self.trace_id = stream, trace_id
            self.close, self.abort = stream.close, stream.abort

        def write(self, data):
            stalls = exit_began and self.trace_id not in exit_began[0]
            time.sleep(0.5 if stalls else 0.002)
            self.stream.write(data)

    recorder = prodture.Recorder(SlowDisk(directory), writer_cpu_budget=None)
    interpreter = prodture.Interpreter({Step: lambda e: e.n}, recorder=recorder)

    def record_for_ever():
        while True:
            finished.append(interpreter.run(steps, 3).trace_id)
            time.sleep(0.001)

    @atexit.register  # after prodture's: runs before its exit flush
    def the_exit_begins():
        exit_began.append(frozenset(finished))
        with open(report, "w") as f:
            json.dump(sorted(exit_began[0]), f)

    threading.Thread(target=record_for_ever, daemon=True).start()
    while len(finished) < 100:
        time.sleep(0.01)
    """
)


def test_a_trace_finished_before_the_exit_flush_is_written_and_no_file_is_cut_at_exit(tmp_path):
    """Nothing a user recorded is lost, and a reader can read every file: a process exits while a
    daemon thread records without pause. Every trace finished before the exit flush began is on
    disk, complete; a trace finished after may be lost (counted and logged), but no file is left
    cut short or empty by the exit. Before, the writer went on after the exit flush, taking
    traces the interpreter's end then cut off (an empty file, which no reader can read)."""
    directory, report = tmp_path / "traces", tmp_path / "finished.json"
    directory.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", EXIT_WHILE_A_DAEMON_THREAD_RECORDS, str(directory), str(report)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    finished_before_exit = set(json.loads(report.read_text()))
    assert len(finished_before_exit) >= 100
    written = {}
    for path in directory.glob("*.prodtrace"):
        trace = read_trace(path)  # raises for an empty or unreadable file
        written[trace.header.trace_id] = trace
    assert finished_before_exit <= set(written), "a trace finished before the exit was lost"
    assert all(written[i].complete and written[i].outcome.value == 3 for i in finished_before_exit)
    # A trace finished after the exit flush is counted (dropped), in the process's stats.
    recorder = Recorder(DirectorySink(tmp_path), writer_cpu_budget=None)
    interpreter = Interpreter({Carry: lambda e: "ok"}, recorder=recorder)

    def handler(arg: Any):
        yield Carry(arg)
        return arg

    assert interpreter.run(handler, "before the exit").ok
    writer = recorder._writer
    assert writer.stop(60, at_exit=True) and writer.thread is None
    assert interpreter.run(handler, "after the exit flush").ok
    assert writer.thread is None  # none started for it: the interpreter would cut it off
    assert writer.give_up_at_exit() == 1
    stats = recorder.stats
    assert (stats.traces_started, stats.traces_written, stats.traces_dropped) == (2, 1, 1)
    assert stats.queue_depth == 0 and stats.queue_bytes == 0
    (path,) = tmp_path.glob("*.prodtrace")
    assert read_trace(path).input == "before the exit"
