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
import contextvars
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
from typing import Any, ClassVar, Literal, Protocol

from .codefilter import PACKAGE_DIR as PACKAGE_DIR  # re-exported: prodture's own files
from .codefilter import is_library_file, is_runtime_file
from .effects import (
    All,
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
    "handler",
    "handlers",
    "handler_name",
    "pipeline",
    "drive",
    "run_sync",
    "is_runtime_file",
    "current_trace_id",
    "TraceIdLogFilter",
    "user_traceback",
]

log = logging.getLogger("prodture")


#: The id of the trace being recorded for the execution running in this thread or task (``None``
#: outside a recorded execution): ``current_trace_id.get()`` in a log filter or middleware ties a
#: log line or an HTTP 500 to its trace.
current_trace_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "prodture_trace_id", default=None
)


class TraceIdLogFilter(logging.Filter):
    """Puts the current execution's trace id on log records as ``trace_id`` (``-`` outside one):
    ``log_handler.addFilter(TraceIdLogFilter())`` and ``%(trace_id)s`` in the format."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id.get() or "-"
        return True


@dataclasses.dataclass(frozen=True)
class Success:
    """The handler returned ``value``. ``trace_id``: the recorded trace's id (``None`` when this
    execution was not recorded, or kept only on failure and it succeeded)."""

    value: Any
    trace_id: str | None = dataclasses.field(default=None, compare=False, kw_only=True)
    ok: ClassVar[Literal[True]] = True  # a Literal: `if outcome.ok` narrows the type


@dataclasses.dataclass(frozen=True)
class Failure:
    """The handler raised ``error``.

    ``effect_seq`` is the number of the effect whose error escaped the handler (``None`` when the
    handler raised on its own); ``traceback`` is the formatted traceback without runtime frames.
    """

    error: BaseException
    effect_seq: int | None = None
    traceback: str = ""
    trace_id: str | None = dataclasses.field(default=None, compare=False, kw_only=True)
    ok: ClassVar[Literal[False]] = False


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

    # Optional: ``trace_id`` (str | None), the id of the trace this session records; the
    # interpreter puts it in :data:`current_trace_id` during the run and on the Outcome.


class Observer(Protocol):
    """What the interpreter tells a recorder; see :class:`prodture.recorder.Recorder`.

    ``begin`` is called with ``meta=`` only when the run was given one (``Interpreter.run(...,
    meta=...)``); an observer that records no header may leave the parameter out.

    Optional: ``begin_handler(fn, input, meta)`` (``meta`` None or a dict), called instead of
    ``begin`` when the observer has it: the handler itself, so that an execution the observer
    will not record (a full queue drops nearly every one under overload) costs no name (see
    :func:`recorded_handler_name`, which it calls for one it records)."""

    def begin(self, handler_name: str, input: Any) -> RecordingSession | None: ...


# ---------------------------------------------------------------------------------------------
# Handler registry: the only functions a trace may ask us to run.

handlers: dict[str, Callable[..., Any]] = {}
_handlers_lock = threading.Lock()


def handler_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__prodture_handler__", None) or f"{fn.__module__}:{fn.__qualname__}"


def recorded_handler_name(fn: Callable[..., Any]) -> str:
    """The name a trace of ``fn`` is recorded under (warned about once when it is not a
    registered handler: its traces cannot be replayed)."""
    # handler_name's common case (a registered handler), inline: once per recorded execution
    name = getattr(fn, "__prodture_handler__", None) or handler_name(fn)
    if name not in handlers and name not in _warned_unregistered:
        _warn_unregistered(name)
    return name


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
_COROUTINE = types.CoroutineType


#: The call site of each yield of a generator handler, by the yield's instruction offset
#: (``f_lasti``): ``{offset: (code object, site)}``. The entry is used only for the code object
#: it was made for, compared by identity (the functions of two files can be equal code objects;
#: a reloaded file's are new ones); a yield of another code object at the same offset replaces
#: it. Bounded by ``_MAX_SITES`` offsets. Finding a line (``f_lineno``) walks the code's line
#: table at every effect; this lookup costs about a third of that (``benchmarks/bench_recorder.py``
#: and the unrecorded path alike: every run names each effect's site).
#:
#: It holds its code objects strongly, on purpose: the identity check is on the per-effect path,
#: and a weak reference would add a call there. What that keeps alive is bounded by offsets, not
#: by code objects: one code object (with its constants; never a function, its globals or its
#: closure) per yield offset. A function compiled per request (a new code object each time) puts
#: its yields at the offsets the previous one used, and replaces their entries: the previous
#: code object is freed (``tests/test_type_caches.py``). Only code objects each yielding at
#: offsets no other one does stay, at most ``_MAX_SITES`` of them, then the cache is emptied.
_sites: dict[int, tuple[types.CodeType, tuple[str, int, str]]] = {}
_MAX_SITES = 4096


def _new_site(frame: types.FrameType) -> tuple[str, int, str]:
    """A suspended generator frame's site, computed and remembered in ``_sites``."""
    code = frame.f_code
    site = (code.co_filename, frame.f_lineno, code.co_name)
    if len(_sites) >= _MAX_SITES:
        _sites.clear()
    _sites[frame.f_lasti] = (code, site)
    return site


def _site_of(obj: Any) -> tuple[str, int, str] | None:
    """The innermost user frame suspended in a generator/coroutine chain."""
    if type(obj) is _GENERATOR and obj.gi_yieldfrom is None:  # the common case, fast
        gen_frame = obj.gi_frame  # None only once the generator has ended
        if gen_frame is not None:
            code = gen_frame.f_code
            return (code.co_filename, gen_frame.f_lineno, code.co_name)
    if type(obj) is _CommandChain:  # where the pure function built the Command
        return obj.site
    frame = None
    if type(obj) is _COROUTINE:  # an async handler awaiting an effect itself: fast too
        awaited = obj.cr_await
        if type(awaited) is _GENERATOR and awaited.gi_code is _AWAIT_CODE:
            frame = obj.cr_frame
            obj = None
    while obj is not None:
        f = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)
        if f is None or f.f_code is _AWAIT_CODE:
            break
        frame = f
        obj = getattr(obj, "gi_yieldfrom", None) or getattr(obj, "cr_await", None)
    if frame is None:
        return None
    known = _sites.get(frame.f_lasti)  # an async handler's await: remembered as a yield is
    if known is not None and known[0] is frame.f_code:
        return known[1]
    return _new_site(frame)


def _what(value: Any) -> str:
    """A non-effect as its error message names it: a number as itself, anything else by its type
    only. The message is recorded unredacted in the trace (an exception's), and the value may
    hold a secret (``yield {"password": ...}``)."""
    if type(value) in (int, float, bool, type(None)):
        return repr(value)
    return f"a {type(value).__module__}.{type(value).__qualname__} value"


def _not_an_effect(value: Any, gen: Any) -> TypeError:
    """The error for a non-effect: names the handler's own line (``await asyncio.sleep(0)``),
    not the library frame that actually yielded, and that frame too when they differ."""
    if type(gen) is _CommandChain:
        site = _site_of(gen)
        where = f"{site[0]}:{site[1]} in {site[2]}" if site else "an unknown line"
        return TypeError(
            f"Command of {_what(value)} at {where}, which is not a prodture effect; "
            "wrap that I/O in an Effect so it can be recorded and replayed"
        )
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
    if isinstance(value, asyncio.Future):
        # asyncio.gather(...) of effects: effects run one at a time unless gathered by prodture.
        if not value.cancel() and not value.cancelled():
            value.exception()  # retrieved: no "exception was never retrieved" at shutdown
        return TypeError(
            f"handler awaited {_what(value)} at {where}: asyncio.gather/create_task cannot "
            "run prodture effects; use `await prodture.gather(effect1, effect2, ...)` to perform "
            "effects concurrently (recorded and replayed deterministically)"
        )
    return TypeError(
        f"handler awaited/yielded {_what(value)} at {where}, which is not a prodture effect; "
        "wrap that I/O in an Effect so it can be recorded and replayed"
    )


class _Run:
    """State of one handler execution: the effect count and the last effect error (to tell
    whether the error that ended the run came from an effect, and from which)."""

    __slots__ = ("seq", "last_error", "last_error_seq")

    def __init__(self) -> None:
        self.seq = 0
        self.last_error: BaseException | None = None
        self.last_error_seq: int | None = None


class _CommandChain:
    """A Command-returning handler seen as a generator: ``send`` performs ``then``, ``throw``
    performs ``on_error``, so one driver runs all three handler forms."""

    __slots__ = ("command", "result", "site")

    def __init__(self, result: Any) -> None:
        self.result = result
        self.command: Command | None = None
        #: the current Command's site: where the pure function built it
        self.site: tuple[str, int, str] | None = None

    def send(self, value: Any) -> Any:
        command = self.command
        if command is None:
            result = self.result
        elif command.then is not None:
            result = command.then(value)
        else:
            result = value
        if isinstance(result, Command):
            self.command = result
            self.site = result.site
            return result.effect
        raise StopIteration(result)

    def throw(self, error: BaseException) -> Any:
        command = self.command
        if command is None or command.on_error is None:
            raise error
        result = command.on_error(error)
        if isinstance(result, Command):
            self.command = result
            self.site = result.site
            return result.effect
        raise StopIteration(result)

    def close(self) -> None:
        self.command = None


def _start(fn: Callable[..., Any], input: Any) -> Any:
    """The handler started: a generator or coroutine to drive, or a Command chain."""
    started = fn(input)
    if isinstance(started, (_GENERATOR, _COROUTINE)) or inspect.isgenerator(started):
        return started
    if inspect.iscoroutine(started):
        return started
    return _CommandChain(started)


async def _drive(
    fn: Callable[..., Any],
    input: Any,
    perform: Perform,
    state: _Run,
    session: RecordingSession | None,
    awaiting: bool,
) -> Any:
    """The one driver for every handler form, synchronous or not.

    It is a coroutine that suspends only to await a performer's awaitable result, which happens
    only when ``awaiting`` (``run_async``); synchronous runs complete it with one ``send``
    (:func:`_complete`). ``session`` (a recording) is told each effect, timed around the
    performer and the await.
    """
    gen = _start(fn, input)
    chain = type(gen) is _CommandChain
    plain = type(gen) is _GENERATOR  # a generator handler: its site is found inline
    sites = _sites
    send = gen.send
    clock = time.perf_counter_ns
    record = session.effect if session is not None else None
    send_value: Any = None
    to_throw: BaseException | None = None
    try:
        while True:
            try:
                if to_throw is not None:
                    exc, to_throw = to_throw, None
                    yielded = gen.throw(exc)
                else:
                    yielded = send(send_value)
            except StopIteration as stop:
                return stop.value
            if not isinstance(yielded, Effect):
                to_throw = _not_an_effect(yielded, gen)
                continue
            seq = state.seq = state.seq + 1
            if chain:
                site = gen.site
            elif plain and gen.gi_yieldfrom is None:  # _site_of's common case, without a call
                frame = gen.gi_frame
                known = sites.get(frame.f_lasti)
                if known is not None and known[0] is frame.f_code:
                    site = known[1]
                else:
                    site = _new_site(frame)
            else:
                site = _site_of(gen)
            call = EffectCall(seq, yielded, site)
            try:
                if record is None:
                    send_value = perform(call)
                    if awaiting and inspect.isawaitable(send_value):
                        send_value = await send_value
                else:
                    start = clock()
                    try:
                        send_value = perform(call)
                        if awaiting and inspect.isawaitable(send_value):
                            send_value = await send_value
                    except Exception as error:
                        _record(record, call, False, error, start, clock() - start)
                        raise
                    duration = clock() - start
                    try:  # inline: this is the per-effect path
                        record(call, True, send_value, start, duration)
                    except Exception:
                        _recorder_failed(call)
            except Exception as error:  # thrown into the handler at the yield
                state.last_error, state.last_error_seq = error, seq
                to_throw = error
    finally:
        gen.close()


def _complete(coro: Any) -> Any:
    """Run a driver coroutine that cannot suspend (a synchronous run) to its end."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()  # pragma: no cover - only an awaiting driver suspends
    raise RuntimeError("prodture: a synchronous run suspended; use Interpreter.run_async")


def drive(fn: Callable[..., Any], input: Any, perform: Perform) -> Any:
    """Run a handler of any form to completion, synchronously; returns its value or raises.

    ``perform`` must return plain values (no awaitables): that is the replay and test path.
    """
    return _complete(_drive(fn, input, perform, _Run(), None, False))


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


def user_traceback(error: BaseException) -> types.TracebackType | None:
    """``error``'s traceback without the runtime's frames: ``raise
    failure.error.with_traceback(user_traceback(failure.error))`` re-raises a handler's error
    with only the handler's own frames (and the re-raising one)."""
    kept = []
    tb = error.__traceback__
    while tb is not None:
        if not is_runtime_file(tb.tb_frame.f_code.co_filename):
            kept.append(tb)
        tb = tb.tb_next
    rebuilt = None
    for tb in reversed(kept):
        rebuilt = types.TracebackType(rebuilt, tb.tb_frame, tb.tb_lasti, tb.tb_lineno)
    return rebuilt


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
        self.performers.setdefault(All, self._perform_all)
        self.recorder = recorder

    @property
    def recorder(self) -> Observer | None:
        return self._recorder

    @recorder.setter
    def recorder(self, recorder: Observer | None) -> None:
        self._recorder = recorder
        #: The observer's ``begin_handler`` when it has one (see Observer): looked up here,
        #: once, not per execution.
        self._begin_handler: Callable[..., RecordingSession | None] | None = getattr(
            recorder, "begin_handler", None
        )

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

    def _perform_all(self, effect: All) -> Any:
        """The built-in performer of :class:`~prodture.effects.All` under :meth:`run`: each
        child's performer is started; awaitable results are awaited together (which only
        :meth:`run_async` can do)."""
        return _all_of([self.performer_for(e)(e) for e in effect.effects])

    def _perform_all_async(self, effect: All) -> Any:
        """The same under :meth:`run_async`: children go through :meth:`_perform_async` (the
        default ``Sleep`` of a child sleeps with ``asyncio.sleep``)."""
        return _all_of([self._perform_child_async(e) for e in effect.effects])

    # -- running -----------------------------------------------------------------------------

    def run(
        self, fn: Callable[..., Any], input: Any, *, meta: dict[str, Any] | None = None
    ) -> Outcome:
        """Run ``fn(input)`` to completion and return ``Success`` or ``Failure``; never raises
        for an error of the handler's own. ``meta`` adds to this run's trace header ``meta``
        (over the recorder's own), so one recorder serves runs that each say what they are."""
        session = self._begin(fn, input, meta)
        state = _Run()
        token = current_trace_id.set(None if session is None else _trace_id_of(session))
        try:
            outcome: Outcome = Success(
                _complete(_drive(fn, input, self._perform, state, session, False))
            )
        except Exception as error:
            outcome = _failure(error, state)
        except BaseException as error:  # KeyboardInterrupt...: the trace still ends
            if session is not None:
                _finish(session, _failure(error, state))
            raise
        finally:
            current_trace_id.reset(token)
        if session is not None:
            outcome = _finish(session, outcome)
        return outcome

    async def run_async(
        self, fn: Callable[..., Any], input: Any, *, meta: dict[str, Any] | None = None
    ) -> Outcome:
        """Like :meth:`run`, inside an event loop: awaitable performer results are awaited, and
        the built-in ``Sleep`` sleeps with ``asyncio.sleep``."""
        session = self._begin(fn, input, meta)
        state = _Run()
        token = current_trace_id.set(None if session is None else _trace_id_of(session))
        try:
            outcome: Outcome = Success(
                await _drive(fn, input, self._perform_async, state, session, True)
            )
        except Exception as error:
            outcome = _failure(error, state)
        except BaseException as error:  # a cancelled task: the trace still ends
            if session is not None:
                _finish(session, _failure(error, state))
            raise
        finally:
            current_trace_id.reset(token)
        if session is not None:
            outcome = _finish(session, outcome)
        return outcome

    def _perform(self, call: EffectCall) -> Any:
        effect = call.effect
        performer = self.performers.get(type(effect))  # performer_for's common case, inline
        if performer is None:
            performer = self.performer_for(effect)
        value = performer(effect)
        if type(value) is _COROUTINE:
            raise _async_performer(call, value)
        return value

    def _perform_async(self, call: EffectCall) -> Any:
        return self._perform_child_async(call.effect)

    def _perform_child_async(self, effect: Effect) -> Any:
        performer = self.performer_for(effect)
        if performer is _perform_sleep:  # the default Sleep must not block the event loop
            performer = _perform_sleep_async
        elif performer == self._perform_all:  # the default All: its children async too
            performer = self._perform_all_async
        return performer(effect)

    def _begin(
        self, fn: Callable[..., Any], input: Any, meta: dict[str, Any] | None
    ) -> RecordingSession | None:
        begin_handler = self._begin_handler
        try:
            if begin_handler is not None:  # (a Recorder: decides to drop before any name)
                return begin_handler(fn, input, meta)
            recorder = self._recorder
            if recorder is None:
                return None
            name = recorded_handler_name(fn)
            if meta:
                return recorder.begin(name, input, meta=meta)  # type: ignore[call-arg]
            return recorder.begin(name, input)
        except Exception:  # recording must never break the handler
            log.exception("prodture: recorder failed to start a trace; handler runs unrecorded")
            return None


def _async_performer(call: EffectCall, coroutine: Any) -> TypeError:
    coroutine.close()  # never awaited: no "coroutine was never awaited" warning
    return TypeError(
        f"the performer of {type(call.effect).__name__} is async (it returned a coroutine); "
        "Interpreter.run cannot await it: use `await interpreter.run_async(...)` in an event loop"
    )


def _all_of(results: list[Any]) -> Any:
    """The children's results, or one awaitable of them all when any is awaitable."""
    if any(inspect.isawaitable(r) for r in results):
        return _gather_all(results)
    return results


async def _gather_all(results: list[Any]) -> list[Any]:
    async def value_of(r: Any) -> Any:
        return (await r) if inspect.isawaitable(r) else r

    done = await asyncio.gather(*(value_of(r) for r in results), return_exceptions=True)
    for item in done:
        if isinstance(item, BaseException):
            raise item
    return list(done)


#: The names of unregistered handlers already warned about (a dict used as a set: bounded by
#: ``codec.remember`` to ``codec.MAX_CACHED_TYPES``, so that handlers named per request do not
#: grow it forever; a name forgotten when it is full is warned about again at its next run).
_warned_unregistered: dict[str, None] = {}


def _warn_unregistered(name: str) -> None:
    # (Imported here: only a recorded execution warns, and recording has imported the codec;
    # the runtime alone does not load it.)
    from .trace import codec

    codec.remember(_warned_unregistered, name, None, codec.MAX_CACHED_TYPES)
    log.warning(
        "prodture: recording %s, which is not a registered handler: its traces cannot be "
        "replayed; decorate it with @prodture.handler (warned once per handler)",
        name,
    )


def _failure(error: BaseException, state: _Run) -> Failure:
    seq = state.last_error_seq if error is state.last_error else None
    return Failure(error, seq, format_user_traceback(error))


def _record(
    record: Callable[[EffectCall, bool, Any, int, int], None],
    call: EffectCall,
    ok: bool,
    value: Any,
    start: int,
    dur: int,
) -> None:
    try:
        record(call, ok, value, start, dur)
    except Exception:
        _recorder_failed(call)


def _recorder_failed(call: EffectCall) -> None:
    log.exception("prodture: recorder failed on effect #%d; handler unaffected", call.seq)


def _trace_id_of(session: RecordingSession) -> str | None:
    try:
        trace_id = session.trace_id  # type: ignore[attr-defined]  # optional: see RecordingSession
    except Exception:  # none (an AttributeError), or a session's own bug
        return None
    return trace_id if isinstance(trace_id, str) else None


def _finish(session: RecordingSession, outcome: Outcome) -> Outcome:
    """Finish the recording; returns ``outcome`` carrying the trace's id when one was kept."""
    try:
        session.finish(outcome)
    except Exception:
        log.exception("prodture: recorder failed to finish a trace; handler unaffected")
    try:  # _trace_id_of, inline: this runs once per recorded execution
        trace_id = session.trace_id  # type: ignore[attr-defined]  # optional: see RecordingSession
    except Exception:
        return outcome
    if trace_id and isinstance(trace_id, str):
        # The outcome is this run's own and not yet returned: its trace id is set in place, as
        # the dataclass's own __init__ sets fields (dataclasses.replace costs ~1.5 µs, a new
        # instance ~0.6 µs, per recorded execution).
        object.__setattr__(outcome, "trace_id", trace_id)
    return outcome


def run_sync(fn: Callable[..., Any], input: Any, perform: Perform) -> Outcome:
    """Drive ``fn`` with ``perform`` and wrap the result as an Outcome (used by replay and tests)."""
    state = _Run()
    try:
        return Success(_complete(_drive(fn, input, perform, state, None, False)))
    except Exception as error:
        return _failure(error, state)
