"""The encoder's per-type caches stay bounded, and release what they held, when a program makes
classes at run time (a dataclass per request): recording must not keep a process's memory
growing. The same for the runtime's call-site cache and functions made per request."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import logging
import weakref
from typing import Any

import pytest

import prodture
from prodture import Effect, Interpreter, MemorySink, Recorder, runtime
from prodture import recorder as recorder_module
from prodture.trace import Redactor, TraceEncoder, codec, fastpack, read_trace
from prodture.trace import format as format_module

ENCODERS = ["msgspec", "msgpack"] if fastpack.available else ["msgpack"]

#: The bound these tests set on every per-type cache, far below the classes they make.
LIMIT = 50
CLASSES = 10_000


@dataclasses.dataclass(frozen=True)
class Carry(Effect, name="test_type_caches.Carry"):
    payload: Any


def per_request_class() -> type:
    """A dataclass made at run time, as a handler making one per request would (a plain one
    for the compiled encoders, and one holding a list: the codec's general OBJECT encoder)."""
    return dataclasses.make_dataclass("PerRequest", [("n", int), ("note", Any)])


@pytest.mark.parametrize("encoder", ENCODERS)
def test_classes_made_per_request_do_not_stay_in_the_caches(encoder, monkeypatch):
    """10,000 dataclass types, each recorded in the input, an effect request and result (alone, in a list, holding a list, with and without a redactor): every per-type cache (the codec's OBJECT encoders, the redactor's kinds and secret fields, the trace encoder's compiled types) stays within its bound, and the classes are freed (before: all 10,000 stayed alive in codec._PLAIN_OBJECT/_FAST). The records still read back."""
    monkeypatch.setattr(fastpack, "enabled", encoder == "msgspec")
    monkeypatch.setattr(codec, "MAX_CACHED_TYPES", LIMIT)
    monkeypatch.setattr(format_module, "_MAX_COMPILED", LIMIT)
    redactor = Redactor()
    alive: list[weakref.ref[type]] = []
    for i in range(CLASSES):
        cls = per_request_class()
        alive.append(weakref.ref(cls))
        plain, nested = cls(i, "x"), cls(i, [i, "y"])
        for r in (redactor, None) if i % 2 else (redactor,):
            enc = TraceEncoder(r)
            data = enc.header("app:handle", trace_id="t", started_at=None, python="3", prodture="0")
            data += enc.input(plain)
            data += enc.effect(1, Carry(nested), True, plain, 0, 1, None)
            data += enc.effect(2, Carry([plain]), True, [nested, plain], 0, 1, None)
            data += enc.effect(3, Carry("k"), True, nested, 0, 1, None)
            data += enc.outcome(True, {"v": plain}, "", None, 1)
            if i % 1000 == 0:
                trace = read_trace(data)
                assert trace.complete and trace.effects[0].result.fields == {"n": i, "note": "x"}
        del cls, plain, nested, enc
    for cache in (
        codec._PLAIN_OBJECT,
        redactor._kinds,
        redactor._field_cache,
        format_module._UNREDACTED.results,
        format_module._UNREDACTED.types,
    ):
        assert len(cache) <= LIMIT
    assert len(codec._FAST) <= LIMIT + len(codec._FIXED_ENCODERS)
    gc.collect()
    still = sum(ref() is not None for ref in alive)
    assert still <= 4 * LIMIT, f"{still} of {CLASSES} per-request classes are still alive"


def test_frozen_classes_made_per_request_do_not_stay_in_the_recorders_keepers(monkeypatch):
    """The recorder keeps frozen values by reference through a keeper compiled per type: 10,000 frozen dataclasses made per request, each the input and an effect's result of a recorded run, leave that cache within its bound and the classes freed, and the traces read back."""
    monkeypatch.setattr(codec, "MAX_CACHED_TYPES", LIMIT)
    monkeypatch.setattr(format_module, "_MAX_COMPILED", LIMIT)
    sink = MemorySink()
    recorder = Recorder(sink, redact=Redactor())
    alive: list[weakref.ref[type]] = []

    def handle(event: Any) -> Any:
        got = yield Carry(event.n)
        return got

    for i in range(CLASSES):
        cls = dataclasses.make_dataclass("Frozen", [("n", int)], frozen=True)
        alive.append(weakref.ref(cls))
        performers: dict[type, Any] = {Carry: lambda e, cls=cls: cls(e.payload + 1)}
        interpreter = Interpreter(performers, recorder=recorder)
        assert interpreter.run(handle, cls(i)).ok
        if i % 1000 == 0:
            assert recorder.flush(timeout=30)
            trace = read_trace(sink.traces[-1])
            assert trace.complete and trace.effects[0].result.fields == {"n": i + 1}
        del cls, interpreter
    assert recorder.flush(timeout=60)
    recorder.close()
    sink.traces.clear()
    assert len(recorder_module._keepers) <= LIMIT + len(recorder_module._FIXED_KEEPERS)
    gc.collect()
    still = sum(ref() is not None for ref in alive)
    assert still <= 4 * LIMIT, f"{still} of {CLASSES} per-request classes are still alive"


def test_opaque_type_names_logged_stay_bounded(monkeypatch):
    """The names of the types already logged as opaque (logged once each) are bounded too: a class per request with a name of its own does not grow that set forever."""
    monkeypatch.setattr(codec, "MAX_CACHED_TYPES", LIMIT)
    monkeypatch.setattr(codec, "_opaque_logged", set())
    for i in range(2_000):
        codec.note_opaque(f"app.Model{i}", codec.UNSUPPORTED_TYPE)
    assert len(codec._opaque_logged) <= LIMIT


def handler_made_per_request(i: int) -> Any:
    """A generator handler whose code object is new for each request (compiled from source
    made per request, as a template engine or a rule engine does), with a large constant."""
    source = (
        "def handle(event):\n"
        f"    blob = {('x' * 100_000 + str(i))!r}\n"
        "    got = yield Carry(event)\n"
        "    return (got, len(blob))\n"
    )
    namespace: dict[str, Any] = {"Carry": Carry}
    exec(compile(source, f"<request {i}>", "exec"), namespace)  # noqa: S102 -- the test's own source
    return namespace["handle"]


def test_the_call_site_cache_keeps_no_function_made_per_request_alive():
    """runtime._sites remembers one call site per yield offset: a handler compiled per request (a new code object each time, with a 100 kB constant) replaces the previous one's entry at the same offset, so running 2,000 of them keeps at most one of their code objects alive (not 2,000, 200 MB), and each run still names its own site."""
    interpreter = Interpreter({Carry: lambda e: "ok"}, recorder=Recorder(MemorySink()))
    codes: list[weakref.ref[Any]] = []
    for i in range(2_000):
        fn = handler_made_per_request(i)
        codes.append(weakref.ref(fn.__code__))
        outcome = interpreter.run(fn, i)
        assert outcome.ok and outcome.value == ("ok", 100_000 + len(str(i)))
        del fn, outcome
    gc.collect()
    assert sum(ref() is not None for ref in codes) <= 1
    assert len(runtime._sites) <= runtime._MAX_SITES
    site = next(iter(v[1] for v in runtime._sites.values() if v[1][0].startswith("<request")))
    assert site == ("<request 1999>", 3, "handle")


def test_code_fingerprints_of_file_names_made_per_request_stay_bounded(tmp_path, monkeypatch):
    """format.code_fingerprint remembers a fingerprint per file name: 10,000 names made per request (generated modules, exec'd code) leave at most the bound (before: all 10,000), and a real file's fingerprint is still its sha256, before and after."""
    monkeypatch.setattr(codec, "MAX_CACHED_TYPES", LIMIT)
    monkeypatch.setattr(format_module, "_fingerprints", {})
    source = tmp_path / "service.py"
    source.write_bytes(b"def handle(event):\n    return event\n")
    expected = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    assert format_module.code_fingerprint(str(source)) == expected
    for i in range(CLASSES):
        assert format_module.code_fingerprint(str(tmp_path / f"generated_{i}.py")) == ""
    assert len(format_module._fingerprints) <= LIMIT
    assert format_module.code_fingerprint(str(source)) == expected


def test_handlers_named_per_request_leave_the_recorders_fingerprints_bounded(tmp_path, monkeypatch):
    """The recorder remembers each handler's code fingerprint by handler name: 10,000 handlers registered under names made per request (a rule engine compiling one per tenant) leave at most the bound in Recorder._fingerprints (before: all 10,000), and every trace's header still holds its handler's file's fingerprint."""
    monkeypatch.setattr(codec, "MAX_CACHED_TYPES", LIMIT)
    monkeypatch.setattr(format_module, "_fingerprints", {})
    path = tmp_path / "rules.py"
    path.write_text("def handle(event):\n    got = yield Carry(event)\n    return got\n")
    expected = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    code = compile(path.read_text(), str(path), "exec")
    sink = MemorySink()
    recorder = Recorder(sink)
    interpreter = Interpreter({Carry: lambda e: "ok"}, recorder=recorder)
    registered = set(runtime.handlers)
    try:
        for i in range(CLASSES):
            namespace: dict[str, Any] = {"Carry": Carry}
            exec(code, namespace)  # noqa: S102 -- the test's own source
            fn = prodture.handler(namespace["handle"], name=f"rules:tenant{i}")
            assert interpreter.run(fn, i).ok
            if i % 1000 == 0:
                header = read_trace(sink.traces[-1]).header
                assert (header.handler, header.fingerprint) == (f"rules:tenant{i}", expected)
        assert len(recorder._fingerprints) <= LIMIT
        assert read_trace(sink.traces[-1]).header.fingerprint == expected
    finally:
        for name in set(runtime.handlers) - registered:
            del runtime.handlers[name]
        recorder.close()


def test_unregistered_handlers_named_per_request_are_warned_once_each_within_a_bound(
    monkeypatch, caplog
):
    """The runtime warns once per unregistered handler name recorded: 10,000 handlers made per request (each its own qualified name) leave at most the bound in the names it remembers (before: all 10,000), and a name still remembered is not warned about twice."""
    monkeypatch.setattr(codec, "MAX_CACHED_TYPES", LIMIT)
    monkeypatch.setattr(runtime, "_warned_unregistered", type(runtime._warned_unregistered)())
    interpreter = Interpreter({Carry: lambda e: "ok"}, recorder=Recorder(MemorySink()))

    def made(i: int) -> Any:
        def handle(event: Any) -> Any:
            return (yield Carry(event))

        handle.__qualname__ = f"tenant{i}.handle"
        return handle

    for i in range(CLASSES):
        assert interpreter.run(made(i), i).ok
    assert len(runtime._warned_unregistered) <= LIMIT
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="prodture"):
        for _ in range(3):
            assert interpreter.run(made(CLASSES), 0).ok
    warnings = [r for r in caplog.records if "not a registered handler" in r.getMessage()]
    assert len(warnings) == 1 and f"tenant{CLASSES}.handle" in warnings[0].getMessage()
