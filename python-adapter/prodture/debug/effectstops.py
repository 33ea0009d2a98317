"""Stops where an effect's recorded result or error reaches the handler, and where the handler's
code raises.

The replayer answers an effect before the handler sees the answer, so the stop belongs to the
moment the handler receives it, which depends on the handler's shape:

- a generator or coroutine receives a result when its frame resumes on the line that yielded the
  effect (the effect's call site, checked on the next call event), and an error when it is thrown
  into that frame (the exception event);
- a Command / pipeline handler receives an error as an argument of the Command's ``on_error``
  (a method's second): the call that has it among its arguments is where it arrives.

The engine notes each performed effect here (``performed``) and asks at the next call event
(``on_resume``) or exception event (``on_exception``); each answers the stop to present, or None.
An exception passing up through several frames fires an exception event in each: one stop per
exception and step.
"""

from __future__ import annotations

from typing import Any

from ..runtime import EffectCall
from ..trace.format import EffectRecord
from .contract import ExceptionInfo, Stop, StopKind, StopPolicy

__all__ = ["EffectStops"]


class EffectStops:
    """``pending``: the effect performed last whose arrival in the handler is still to be seen
    (the engine's call tracer reads it on every call event, so it is a plain attribute)."""

    __slots__ = ("pending", "_last_exc_stop")

    def __init__(self) -> None:
        self.pending: tuple[EffectCall, EffectRecord | None] | None = None
        self._last_exc_stop: tuple[int, int] | None = None  # (id of the exception, step)

    def performed(self, call: EffectCall, record: EffectRecord | None, policy: StopPolicy) -> None:
        """Effect ``call`` was answered (``record``: None when a stub answered)."""
        if policy.effect_stops:
            self.pending = (call, record)

    def on_resume(
        self, frame: Any, step: int, effects: int, policy: StopPolicy, running: bool
    ) -> Stop | None:
        """A user frame was called or resumed while an effect is pending (``running``: in a run
        where stops may happen)."""
        call, record = self.pending  # type: ignore[misc]
        code = frame.f_code
        if record is not None and not record.ok:
            error = record.error
            if error is not None and running and code.co_argcount:
                values = frame.f_locals
                if any(values.get(name) is error for name in code.co_varnames[: code.co_argcount]):
                    return self._failed(frame, call, record, error, step, effects, policy)
            return None
        site = call.site
        if site is not None and (code.co_filename != site[0] or frame.f_lineno != site[1]):
            return None
        self.pending = None
        if policy.every_effect and running:
            return _effect_stop(StopKind.EFFECT_PERFORMED, step, effects, frame, call, record)
        return None

    def on_exception(
        self, frame: Any, exc: BaseException, step: int, effects: int, policy: StopPolicy
    ) -> Stop | None:
        """``exc`` is raised in (or thrown into) ``frame``, in a run where stops may happen."""
        pending = self.pending
        if pending is not None and pending[1] is not None and pending[1].error is exc:
            # the effect's recorded error, thrown into the frame that yielded it
            stop = self._failed(frame, pending[0], pending[1], exc, step, effects, policy)
            if stop is not None:
                return stop
        if policy.raised and self._last_exc_stop != (id(exc), step):
            self._last_exc_stop = (id(exc), step)
            return Stop(StopKind.RAISED, step, effects, frame, exception=ExceptionInfo.of(exc))
        return None

    def _failed(
        self,
        frame: Any,
        call: EffectCall,
        record: EffectRecord,
        error: BaseException,
        step: int,
        effects: int,
        policy: StopPolicy,
    ) -> Stop | None:
        """An effect's recorded ``error`` arrives in ``frame``: the stop, if the policy has one."""
        self.pending = None
        if not policy.effect_stops:
            return None
        self._last_exc_stop = (id(error), step)
        return _effect_stop(
            StopKind.EFFECT_FAILED, step, effects, frame, call, record, ExceptionInfo.of(error)
        )


def _effect_stop(
    kind: StopKind,
    step: int,
    effects: int,
    frame: Any,
    call: EffectCall,
    record: EffectRecord | None,
    exception: ExceptionInfo | None = None,
) -> Stop:
    return Stop(
        kind,
        step,
        effects,
        frame,
        exception=exception,
        record=record,
        effect_seq=call.seq,
        effect_type=type(call.effect).__name__,
    )
