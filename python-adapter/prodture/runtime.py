"""The interpreter: drives a handler, hands each effect it yields to a performer, returns an Outcome.

Three handler forms share one driver:

* generator handlers: ``result = yield ChargeCard(...)``;
* ``async def`` handlers: ``result = await ChargeCard(...)``;
* pure functions returning :class:`~prodture.effects.Command` objects (effect + continuation).

Whatever performs the effects — real performers in production, a trace in replay, a stub in a
test — sits behind one callable, ``perform(call) -> result``. An ``Exception`` it raises is thrown
into the handler at the yield, so the handler can catch it; a ``BaseException`` that is not an
``Exception`` (a replay divergence, a rewind) aborts the run instead.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import os
import random
import threading
import time
import traceback as _traceback
import types
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any, Protocol

from .codefilter import PACKAGE_DIR as PACKAGE_DIR  # re-exported: prodture's own files
from .codefilter import is_library_file, is_runtime_file
from .effects import (
    Command,
    Effect,
    GetEnv,
    MonotonicNow,
    NewUUID,
    Now,
    RandomFloat,
    RandomInt,
    Sleep,
)

__all__ = [
    "Success",
    "Failure",
    "Outcome",
    "EffectCall",
    "Interpreter",
    "HandlerNotRegistered",
    "handler",
    "handlers",
    "handler_name",
    "pipeline",
    "drive",
    "run_sync",
    "is_runtime_file",
]

log = logging.getLogger("prodture")


@dataclasses.dataclass(frozen=True)
class Success:
    """The handler returned ``value``."""

    value: Any
    ok = True


@dataclasses.dataclass(frozen=True)
class Failure:
    """The handler raised ``error``.

    ``effect_seq`` is the number of the effect whose error escaped the handler (``None`` when the
    handler raised on its own); ``traceback`` is the formatted traceback without runtime frames.
    """

    error: BaseException
    effect_seq: int | None = None
    traceback: str = ""
    ok = False


Outcome = Success | Failure


@dataclasses.dataclass(slots=True)
class EffectCall:
    """One effect as the interpreter sees it: its number (from 1), value and call site.

    Treat it as immutable (not ``frozen=True`` only because a frozen dataclass costs a third of a
    microsecond more per effect to build)."""

    seq: int
    effect: Effect
    site: tuple[str, int, str] | None


Perform = Callable[[EffectCall], Any]


class RecordingSession(Protocol):
    def effect(
        self, call: EffectCall, ok: bool, value: Any, start_ns: int, duration_ns: int
    ) -> None: ...

    def finish(self, outcome: Outcome) -> None: ...


class Observer(Protocol):
    """What the interpreter tells a recorder; see :class:`prodture.recorder.Recorder`."""

    def begin(self, handler_name: str, input: Any) -> RecordingSession | None: ...


# ---------------------------------------------------------------------------------------------
# Handler registry: the only functions a trace may ask us to run.

handlers: dict[str, Callable[..., Any]] = {}
_handlers_lock = threading.Lock()


class HandlerNotRegistered(LookupError):
    pass


def handler_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__prodture_handler__", None) or f"{fn.__module__}:{fn.__qualname__}"


def handler(fn: Callable[..., Any] | None = None, *, name: str | None = None) -> Any:
    """Register ``fn`` as a handler: recorded under ``module:qualname`` (or ``name``).

    Only registered handlers can be named by a trace and run by the replayer. A name already taken
    by another handler is refused (a trace of one would replay the other); the same definition
    again (a module imported twice, reloaded) replaces the earlier one.
    """

    def apply(f: Callable[..., Any]) -> Callable[..., Any]:
        key = name or f"{f.__module__}:{f.__qualname__}"
        with _handlers_lock:
            existing = handlers.get(key)
            if existing is not None and _definition(existing) != _definition(f):
                raise ValueError(
                    f"handler name {key!r} is already registered for {_describe_handler(existing)}; "
                    f"refusing to register {_describe_handler(f)} under the same name (a trace of "
                    "one would replay the other): pass another name=, e.g. "
                    "prodture.handler(prodture.pipeline(...), name='orders:checkout')"
                )
            handlers[key] = f
        f.__prodture_handler__ = key  # type: ignore[attr-defined]
        return f

    return apply(fn) if fn is not None else apply


def _definition(f: Callable[..., Any]) -> tuple[str, ...]:
    """What makes two registrations the same handler: module and qualname, or a pipeline's steps."""
    steps = getattr(f, "__prodture_steps__", None)
    if steps is not None:
        return ("pipeline", *(f"{s.__module__}:{s.__qualname__}" for s in steps))
    return (getattr(f, "__module__", "?"), getattr(f, "__qualname__", repr(f)))


def _describe_handler(f: Callable[..., Any]) -> str:
    definition = _definition(f)
    if definition[0] == "pipeline":
        return f"pipeline({', '.join(definition[1:])})"
    return ":".join(definition)


# ---------------------------------------------------------------------------------------------
# The driver.

_AWAIT_CODE = Effect.__await__.__code__
_GENERATOR = types.GeneratorType


def _site_of(obj: Any) -> tuple[str, int, str] | None:
    """The innermost user frame suspended in a generator/coroutine chain."""
    if type(obj) is _GENERATOR and obj.gi_yieldfrom is None:  # the common case, fast
        frame = obj.gi_frame
        code = frame.f_code
        return (code.co_filename, frame.f_lineno, code.co_name)
    frame = None
    while obj is not None:
        f = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)
        if f is None or f.f_code is _AWAIT_CODE:
            break
        frame = f
        obj = getattr(obj, "gi_yieldfrom", None) or getattr(obj, "cr_await", None)
    if frame is None:
        return None
    code = frame.f_code
    return (code.co_filename, frame.f_lineno, code.co_name)


def _not_an_effect(value: Any, gen: Any) -> TypeError:
    """The error for a non-effect: names the handler's own line (``await asyncio.sleep(0)``),
    not the library frame that actually yielded, and that frame too when they differ."""
    frames = []
    obj = gen
    while obj is not None:
        f = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)
        if f is None:
            break
        frames.append(f)
        obj = getattr(obj, "gi_yieldfrom", None) or getattr(obj, "cr_await", None)
    user = [
        f
        for f in frames
        if not (is_runtime_file(f.f_code.co_filename) or is_library_file(f.f_code.co_filename))
    ]
    where = "an unknown line"
    if frames:
        site = (user or frames)[-1]
        where = f"{site.f_code.co_filename}:{site.f_lineno} in {site.f_code.co_name}"
        inner = frames[-1]
        if inner is not site:
            where += f" (via {inner.f_code.co_filename}:{inner.f_lineno} in {inner.f_code.co_name})"
    return TypeError(
        f"handler awaited/yielded {_short_repr(value)} at {where}, which is not a prodture effect; "
        "wrap that I/O in an Effect so it can be recorded and replayed"
    )


def _short_repr(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<{type(value).__name__}>"
    return text if len(text) <= 80 else text[:79] + "…"


class _Run:
    """State of one handler execution (the pieces both sync and async drivers share)."""

    __slots__ = ("seq", "last_error", "last_error_seq")

    def __init__(self) -> None:
        self.seq = 0
        self.last_error: BaseException | None = None
        self.last_error_seq: int | None = None


def drive(fn: Callable[..., Any], input: Any, perform: Perform) -> Any:
    """Run a handler of any form to completion, synchronously; returns its value or raises.

    ``perform`` must return plain values (no awaitables): that is the replay and test path.
    """
    state = _Run()
    return _drive_sync(fn, input, perform, state)


def _drive_sync(fn: Callable[..., Any], input: Any, perform: Perform, state: _Run) -> Any:
    started = fn(input)
    if inspect.isgenerator(started) or inspect.iscoroutine(started):
        return _drive_suspendable(started, perform, state)
    return _drive_commands(started, perform, state)


def _drive_suspendable(gen: Any, perform: Perform, state: _Run) -> Any:
    send_value: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    yielded = gen.throw(exc)
                else:
                    yielded = gen.send(send_value)
            except StopIteration as stop:
                return stop.value
            if not isinstance(yielded, Effect):
                to_throw = _not_an_effect(yielded, gen)
                continue
            seq = state.seq = state.seq + 1
            try:
                send_value = perform(EffectCall(seq, yielded, _site_of(gen)))
            except Exception as error:  # thrown into the handler at the yield
                state.last_error, state.last_error_seq = error, seq
                to_throw = error
    finally:
        gen.close()


def _drive_commands(result: Any, perform: Perform, state: _Run) -> Any:
    while isinstance(result, Command):
        command = result
        state.seq += 1
        call = EffectCall(state.seq, command.effect, command.site)
        try:
            value = perform(call)
        except Exception as error:
            state.last_error, state.last_error_seq = error, call.seq
            if command.on_error is None:
                raise
            result = command.on_error(error)
            continue
        result = command.then(value) if command.then is not None else value
    return result


def pipeline(*steps: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Compose pure functions returning ``Command`` objects: each step's final value feeds the next.

    ``pipeline(load, price, charge)(order_id)`` is itself a Command-returning handler.
    """

    def bind(result: Any, k: Callable[[Any], Any]) -> Any:
        if not isinstance(result, Command):
            return k(result)
        then, on_error = result.then, result.on_error
        return Command(
            result.effect,
            then=lambda value: bind(then(value) if then is not None else value, k),
            on_error=(lambda error: bind(on_error(error), k)) if on_error is not None else None,
            site=result.site,
        )

    def run_from(i: int, value: Any) -> Any:
        if i == len(steps):
            return value
        return bind(steps[i](value), lambda v: run_from(i + 1, v))

    def composed(value: Any) -> Any:
        return run_from(0, value)

    composed.__qualname__ = (
        "pipeline(" + ", ".join(getattr(s, "__qualname__", "?") for s in steps) + ")"
    )
    composed.__prodture_steps__ = steps  # type: ignore[attr-defined]
    return composed


def format_user_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without the runtime's frames."""
    frames = [
        f for f in _traceback.extract_tb(error.__traceback__) if not is_runtime_file(f.filename)
    ]
    lines = ["Traceback (most recent call last):\n"]
    lines += _traceback.format_list(frames)
    lines += _traceback.format_exception_only(type(error), error)
    return "".join(lines)


# ---------------------------------------------------------------------------------------------
# Production performers for the built-in effects.


def _perform_sleep(effect: Sleep) -> None:
    time.sleep(effect.seconds)


async def _perform_sleep_async(effect: Sleep) -> None:
    await asyncio.sleep(effect.seconds)


BUILTIN_PERFORMERS: dict[type, Callable[[Any], Any]] = {
    Now: lambda e: datetime.now(timezone.utc),
    MonotonicNow: lambda e: time.monotonic(),
    RandomFloat: lambda e: random.random(),
    RandomInt: lambda e: random.randint(e.low, e.high),
    NewUUID: lambda e: uuid.uuid4(),
    Sleep: _perform_sleep,
    GetEnv: lambda e: os.environ.get(e.name, e.default),
}


class Interpreter:
    """Runs handlers in production: real performers, optional recording.

    ``performers`` maps effect types to callables ``performer(effect) -> result``; for
    ``run_async`` a performer may also return an awaitable. The built-in effects have defaults.
    """

    def __init__(
        self,
        performers: Mapping[type, Callable[[Any], Any]] | None = None,
        *,
        recorder: Observer | None = None,
    ) -> None:
        self.performers: dict[type, Callable[[Any], Any]] = dict(BUILTIN_PERFORMERS)
        self.performers.update(performers or {})
        self.recorder = recorder

    def performer_for(self, effect: Effect) -> Callable[[Any], Any]:
        performers = self.performers
        cls = type(effect)
        found = performers.get(cls)
        if found is None:
            for base in cls.__mro__[1:]:
                found = performers.get(base)
                if found is not None:
                    break
            else:
                raise LookupError(
                    f"no performer registered for effect {type(effect).__name__}; "
                    "pass it in Interpreter(performers={...})"
                )
        return found

    # -- synchronous -------------------------------------------------------------------------

    def run(self, fn: Callable[..., Any], input: Any) -> Outcome:
        """Run ``fn(input)`` to completion and return ``Success`` or ``Failure``; never raises
        for an error of the handler's own."""
        session = self._begin(fn, input)
        state = _Run()
        perform = self._performer(session)
        try:
            outcome: Outcome = Success(_drive_sync(fn, input, perform, state))
        except Exception as error:
            outcome = _failure(error, state)
        if session is not None:
            _finish(session, outcome)
        return outcome

    def _performer(self, session: RecordingSession | None) -> Perform:
        performer_for = self.performer_for
        if session is None:
            return lambda call: performer_for(call.effect)(call.effect)
        clock = time.perf_counter_ns

        def perform(call: EffectCall) -> Any:
            start = clock()
            try:
                value = performer_for(call.effect)(call.effect)
            except Exception as error:
                _record(session, call, False, error, start, clock() - start)
                raise
            _record(session, call, True, value, start, clock() - start)
            return value

        return perform

    # -- asynchronous ------------------------------------------------------------------------

    async def run_async(self, fn: Callable[..., Any], input: Any) -> Outcome:
        """Like :meth:`run`, inside an event loop: awaitable performer results are awaited."""
        session = self._begin(fn, input)
        state = _Run()
        try:
            outcome: Outcome = Success(await self._drive_async(fn, input, session, state))
        except Exception as error:
            outcome = _failure(error, state)
        if session is not None:
            _finish(session, outcome)
        return outcome

    async def _perform_async(self, call: EffectCall, session: RecordingSession | None) -> Any:
        clock = time.perf_counter_ns
        start = clock()
        try:
            value = self.performer_for(call.effect)(call.effect)
            if inspect.isawaitable(value):
                value = await value
        except Exception as error:
            if session is not None:
                _record(session, call, False, error, start, clock() - start)
            raise
        if session is not None:
            _record(session, call, True, value, start, clock() - start)
        return value

    async def _drive_async(
        self, fn: Callable[..., Any], input: Any, session: RecordingSession | None, state: _Run
    ) -> Any:
        started = fn(input)
        if not (inspect.isgenerator(started) or inspect.iscoroutine(started)):
            result = started
            while isinstance(result, Command):
                command = result
                state.seq += 1
                call = EffectCall(state.seq, command.effect, command.site)
                try:
                    value = await self._perform_async(call, session)
                except Exception as error:
                    state.last_error, state.last_error_seq = error, call.seq
                    if command.on_error is None:
                        raise
                    result = command.on_error(error)
                    continue
                result = command.then(value) if command.then is not None else value
            return result
        gen = started
        send_value: Any = None
        to_throw: BaseException | None = None
        try:
            while True:
                try:
                    if to_throw is not None:
                        exc, to_throw = to_throw, None
                        yielded = gen.throw(exc)
                    else:
                        yielded = gen.send(send_value)
                except StopIteration as stop:
                    return stop.value
                site = _site_of(gen)
                if not isinstance(yielded, Effect):
                    to_throw = _not_an_effect(yielded, gen)
                    continue
                state.seq += 1
                call = EffectCall(state.seq, yielded, site)
                try:
                    send_value = await self._perform_async(call, session)
                except Exception as error:
                    state.last_error, state.last_error_seq = error, call.seq
                    to_throw = error
        finally:
            gen.close()

    def _begin(self, fn: Callable[..., Any], input: Any) -> RecordingSession | None:
        if self.recorder is None:
            return None
        try:
            return self.recorder.begin(handler_name(fn), input)
        except Exception:  # recording must never break the handler
            log.exception("prodture: recorder failed to start a trace; handler runs unrecorded")
            return None


def _failure(error: Exception, state: _Run) -> Failure:
    seq = state.last_error_seq if error is state.last_error else None
    return Failure(error, seq, format_user_traceback(error))


def _record(
    session: RecordingSession, call: EffectCall, ok: bool, value: Any, start: int, dur: int
) -> None:
    try:
        session.effect(call, ok, value, start, dur)
    except Exception:
        log.exception("prodture: recorder failed on effect #%d; handler unaffected", call.seq)


def _finish(session: RecordingSession, outcome: Outcome) -> None:
    try:
        session.finish(outcome)
    except Exception:
        log.exception("prodture: recorder failed to finish a trace; handler unaffected")


def run_sync(fn: Callable[..., Any], input: Any, perform: Perform) -> Outcome:
    """Drive ``fn`` with ``perform`` and wrap the result as an Outcome (used by replay and tests)."""
    state = _Run()
    try:
        return Success(_drive_sync(fn, input, perform, state))
    except Exception as error:
        return _failure(error, state)
