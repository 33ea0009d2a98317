"""The step engine: time travel over a deterministic replay, with no DAP and no debugpy in sight.

The engine owns the replay thread's tracing (``sys.settrace``; on 3.12+ that is the legacy-trace
tool of ``sys.monitoring``, which coexists with pydevd's own tool). It counts *steps* — line events
in user code — and keeps a compact history (location and user-call depth per step). Going back to
step *k* means: raise :class:`Rewind` from the trace function to unwind the handler, re-run the
handler from the start answering effects from the trace, fast-forward to step *k* with tracing
narrowed to the code object of step *k*, and stop there. Replay is deterministic because every
source of non-determinism is an effect answered from the recording.

A stop is *presented* through ``presenter(stop) -> command``: the runner hands it to pydevd so a
client can look at the stack; tests hand it to a script. The engine never blocks on anything else.
"""

from __future__ import annotations

import bisect
import dataclasses
import dis
import enum
import os
import sys
from array import array
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..codefilter import UserCode
from ..replay import STRICT, ReplayDiverged, TracePerformer
from ..runtime import EffectCall, Failure, Success, run_sync
from ..trace.format import EffectRecord, Trace
from .breakpoints import Breakpoint
from .contract import (
    Command,
    ExceptionInfo,
    Move,
    Position,
    ReplayView,
    Stop,
    StopKind,
    StopPolicy,
)
from .fastforward import MONITORING, MonitoringFastForward, SettraceFastForward
from .modstate import ModuleState

__all__ = ["StepEngine", "Stop", "Rewind", "Breakpoint", "Terminate", "Move", "Command"]

_LINE_BITS = 24
_LINE_MASK = (1 << _LINE_BITS) - 1
_NEVER = 1 << 62  # a step number never reached
_RETURN_OPS = {dis.opmap[name] for name in ("RETURN_VALUE", "RETURN_CONST") if name in dis.opmap}
_YIELD_VALUE = dis.opmap["YIELD_VALUE"]

_RESUME = dis.opmap.get("RESUME", -1)
# 3.10 suspends `await` / `yield from` with f_lasti on the instruction before YIELD_FROM
_YIELD_FROM = dis.opmap.get("YIELD_FROM", -1)
_GEN_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR


class RunMode(enum.Enum):
    """What a run of the handler is for."""

    RUN = "run"  # stepping as commanded: every stop may happen
    FAST_FORWARD = "fast-forward"  # re-run to a seen step, only its code watched (no stops)
    QUIET = "quiet"  # full tracing, no stop until check_step (an unseen step) or a jump's effect
    SCAN = "scan"  # full tracing to _scan_until, noting the last breakpoint hit (reverse continue)


# no end-of-replay or divergence stop while fast-forwarding or scanning: they stop elsewhere
_NO_END_STOP = frozenset((RunMode.FAST_FORWARD, RunMode.SCAN))
# runs that record the history as they go: fork checkpoints are taken in them
_HISTORY_MODES = frozenset((RunMode.RUN, RunMode.QUIET))


class Rewind(BaseException):
    """Unwinds the handler so the engine can re-run it to ``step``. A BaseException so a
    handler's ``except Exception`` cannot swallow it."""

    def __init__(
        self,
        step: int,
        kind: StopKind = StopKind.STEP,
        divergence: Any = None,
        scan_until: int = 0,
        present: bool = True,
        scan_floor: int = 0,
        scan_hits: dict[int, list[int]] | None = None,
    ) -> None:
        super().__init__(step)
        self.step = step
        self.kind = kind
        self.divergence = divergence
        self.scan_until = scan_until
        # a narrowed scan (reverse continue): the latest step known to fire (0: none), and the
        # steps of the earlier hits of each location whose condition is still to be evaluated
        self.scan_floor = scan_floor
        self.scan_hits = scan_hits
        self.present = present  # False: arrive and run on (the end of a Command handler)


class Terminate(BaseException):
    """Ends the replay (the client disconnected)."""


def _norm(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


class StepEngine:
    """Time-travel stepping over one trace and one handler.

    ``presenter(stop)`` is called at every stop and returns the next :class:`Move`: a
    :class:`Command` (for ``JUMP_TO_EFFECT`` with the effect number, from 1).
    ``output(text)`` receives log-point messages.
    """

    def __init__(
        self,
        trace: Trace,
        handler: Callable[..., Any],
        presenter: Callable[[Stop], Move],
        *,
        mode: str = STRICT,
        just_my_code: bool = True,
        stop_on_entry: bool = False,
        output: Callable[[str], None] | None = None,
        warn: Callable[[str], None] | None = None,
        settrace: Callable[[Any], None] | None = None,
        stubs: Any = None,
    ) -> None:
        # pydevd wraps sys.settrace with a warning: the runner passes the original one
        self._settrace = settrace or sys.settrace
        self.trace = trace
        self.handler = handler
        self.presenter = presenter
        self.mode = mode
        self.just_my_code = just_my_code
        self.stop_on_entry = stop_on_entry
        self.output = output or (lambda text: None)
        self.warn = warn or (lambda text: None)
        self.performer = TracePerformer(trace, mode=mode, stubs=stubs, observer=self._observe)
        # the handler's own code when it is a generator or coroutine function: its frame's last
        # return is the end of the replay. Other handlers (Command handlers, pipelines) end in
        # the runtime's code: their end is known once a run completes (end_step).
        root = getattr(getattr(handler, "__wrapped__", handler), "__code__", None)
        self.root_code = root if root is not None and root.co_flags & _GEN_FLAGS else None
        # the last step of a complete run, once one ran: a depth-1 return at or after it ends
        self.end_step = _NEVER
        self._final_divergence: Any = None  # the end divergence of a complete run
        # the stubs stand in for the outside world: their files are never stepped through
        self.user_code = UserCode(
            just_my_code,
            (
                code.co_filename
                for code in (
                    getattr(getattr(stub, "__wrapped__", stub), "__code__", None)
                    for stub in (stubs or {}).values()
                )
                if code is not None
            ),
        )
        # code object -> local tracer (None: not user code); index <-> code for history entries
        self._tracers: dict[Any, Any] = {}
        self._codes: list[Any] = []
        self._code_files: list[str] = []
        self._code_lines: list[frozenset[int]] = []
        # history: step i (1-based) is entry i-1
        self.hist_loc = array("q")
        self.hist_depth = array("i")
        self.effect_steps = array("q")  # step at which effect n (1-based) was yielded
        self.step = 0
        self.depth = 0
        self.effects_done = 0
        # stepping state read by the hot path
        self.stop_depth = -1
        self.check_step = _NEVER
        self.bp_locs: frozenset[int] | set[int] = frozenset()
        # breakpoints: normalized file -> {line: Breakpoint}
        self.breakpoints: dict[str, dict[int, Breakpoint]] = {}
        self._bp_by_loc: dict[int, Breakpoint] = {}
        self.policy = StopPolicy()
        self.pause_requested = False
        # per-run state
        self.run_mode = RunMode.RUN
        self._scan_until = 0  # SCAN: the step the scan runs to
        self._scan_hit = 0
        self._jump_effect = 0
        self._end_shown = False
        self._pending_effect: tuple[EffectCall, EffectRecord | None] | None = None
        self._exc_frame: Any = None
        self._last_exc: Any = None
        self._last_exc_stop: tuple[int, int] | None = None
        self._divergence_step = 0
        self.divergence: Any = None
        self._base_frame: Any = None
        self.finished: Any = None  # the Outcome once the handler ran to its end
        self.stops = 0
        #: fork checkpoints (:class:`.checkpoints.ForkCheckpoints`, set by the runner), or None:
        #: going back then always re-runs in-process
        self.checkpoints: Any = None
        # a Rewind / Terminate on its way out of the handler; kept so a handler that swallows it
        # (bare `except:`) cannot lose it: see _perform and run
        self._unwinding: BaseException | None = None
        # fast-forward from an effect checkpoint: (effect number, installs the narrowed watcher)
        self._ff_install: tuple[int, Callable[[Any], None]] | None = None
        # the fast-forward strategies (see fastforward.py); the settrace one calls self._settrace
        # late, as the runner replaces it after construction
        self._settrace_ff = SettraceFastForward(lambda tracer: self._settrace(tracer))
        self._monitoring = MonitoringFastForward() if MONITORING else None
        self._modules = ModuleState(self.user_code)
        self._restored_reported: set[str] = set()

    # -- configuration (may be called from another thread while the replay thread is stopped) ---

    def set_breakpoints(self, path: str, bps: list[Breakpoint]) -> None:
        self.breakpoints[_norm(path)] = {bp.line: bp for bp in bps}
        self._rebuild_bp_locs()

    def set_policy(self, policy: StopPolicy) -> None:
        self.policy = policy

    def request_pause(self) -> None:
        self.pause_requested = True
        self.stop_depth = _NEVER  # the next user line stops

    def _rebuild_bp_locs(self) -> None:
        by_loc: dict[int, Breakpoint] = {}
        for index, path in enumerate(self._code_files):
            file_bps = self.breakpoints.get(path)
            if not file_bps:
                continue
            lines = self._code_lines[index]
            for line, bp in file_bps.items():
                if line in lines:
                    by_loc[(index << _LINE_BITS) | line] = bp
        self._bp_by_loc = by_loc
        # quiet runs (a jump, a re-run to an unseen step) stop at no breakpoint on the way
        self.bp_locs = frozenset() if self.run_mode is RunMode.QUIET else frozenset(by_loc)

    # -- user code ----------------------------------------------------------------------------

    def is_user_code(self, filename: str) -> bool:
        return self.user_code.is_user_code(filename)

    def _register(self, code: Any) -> Any:
        """The local tracer of ``code`` (creating it), or None when it is not user code."""
        if not self.is_user_code(code.co_filename):
            self._tracers[code] = None
            return None
        index = len(self._codes)
        self._codes.append(code)
        self._code_files.append(_norm(code.co_filename))
        self._code_lines.append(
            frozenset(line for _, _, line in code.co_lines() if line is not None)
        )
        local = self._make_local(index)
        self._tracers[code] = local
        if self.breakpoints.get(self._code_files[index]):
            self._rebuild_bp_locs()
        return local

    def _chain_depth(self, frame: Any) -> int:
        """How many user frames the frame chain holds from ``frame`` down to the handler's caller."""
        tracers = self._tracers
        base = self._base_frame
        depth = 0
        while frame is not None and frame is not base:
            code = frame.f_code
            try:
                if tracers[code] is not None:
                    depth += 1
            except KeyError:
                if self._register(code) is not None:
                    depth += 1
            frame = frame.f_back
        return depth

    def code_index(self, code: Any) -> int:
        if code not in self._tracers:
            self._register(code)
        return self._codes.index(code) if self._tracers.get(code) is not None else -1

    # -- the hot path -------------------------------------------------------------------------

    def _global(self, frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        try:
            local = self._tracers[code]
        except KeyError:
            local = self._register(code)
        if local is None:
            return None
        # from the frame chain, not by pairing call/return events: a value or error thrown into a
        # delegating chain (`yield from`, `await`) resumes frames without a call event
        self.depth = self._chain_depth(frame)
        if self._pending_effect is not None:
            self._on_resume(frame)
        return local

    def _make_local(self, index: int) -> Any:
        base = index << _LINE_BITS
        engine = self
        hist_loc = self.hist_loc
        hist_depth = self.hist_depth

        def local(frame: Any, event: str, arg: Any) -> Any:
            if event == "line":
                step = engine.step + 1
                engine.step = step
                loc = base | frame.f_lineno
                hist_loc.append(loc)
                depth = engine.depth
                hist_depth.append(depth)
                if depth <= engine.stop_depth or loc in engine.bp_locs or step >= engine.check_step:
                    engine._on_line(frame, step, loc)
                elif engine._exc_frame is frame:
                    engine._exc_frame = None
            elif event == "return":
                if (
                    engine.depth == 1
                    and (frame.f_code is engine.root_code or engine.step >= engine.end_step)
                    and engine.run_mode not in _NO_END_STOP
                ):
                    # before the depth drops: the frame is still there
                    engine._on_root_return(frame, arg)
                engine.depth -= 1
            elif event == "exception":
                engine.depth = engine._chain_depth(frame)
                engine._on_exception(frame, arg)
            return local

        return local

    # -- stops --------------------------------------------------------------------------------

    def _on_line(self, frame: Any, step: int, loc: int) -> None:
        if self._exc_frame is frame:
            self._exc_frame = None
        if step >= self.check_step and self.run_mode is not RunMode.SCAN:
            self.check_step = _NEVER
            if self.run_mode is RunMode.QUIET:
                self.run_mode = RunMode.RUN
                self.bp_locs = frozenset(self._bp_by_loc)
            target = self._check_target
            if target.present:
                self._stop(
                    Stop(target.kind, step, self.effects_done, frame, divergence=target.divergence)
                )
            return
        if self.run_mode is RunMode.SCAN:
            if step >= self._scan_until:
                found = self._scan_hit or 1
                kind = StopKind.BREAKPOINT if self._scan_hit else StopKind.ENTRY
                raise self._rewind(Rewind(found, kind))
            bp = self._bp_by_loc.get(loc)
            if bp is not None and bp.log_message is None and bp.fires(frame, step) is not False:
                self._scan_hit = step
            return
        bp = self._bp_by_loc.get(loc) if loc in self.bp_locs else None
        if bp is not None:
            hit = bp.fires(frame, step)
            if hit is not False:
                if bp.log_message is not None:
                    self.output(bp.log_text(frame) + "\n")
                else:
                    error = hit if isinstance(hit, ExceptionInfo) else None
                    self._stop(
                        Stop(
                            StopKind.BREAKPOINT,
                            step,
                            self.effects_done,
                            frame,
                            condition_error=error,
                        )
                    )
                    return
        if self.depth <= self.stop_depth:
            kind = StopKind.PAUSE if self.pause_requested else StopKind.STEP
            self.pause_requested = False
            self._stop(Stop(kind, step, self.effects_done, frame))

    def _on_resume(self, frame: Any) -> None:
        call, record = self._pending_effect  # type: ignore[misc]
        code = frame.f_code
        if record is not None and not record.ok:
            # a generator or coroutine gets the error thrown in next (the exception event
            # stops); a Command / pipeline handler gets it as an argument of the Command's
            # on_error (a method's second): this call is where it arrives
            error = record.error
            if error is not None and self.run_mode is RunMode.RUN and code.co_argcount:
                values = frame.f_locals
                if any(values.get(name) is error for name in code.co_varnames[: code.co_argcount]):
                    self._on_effect_failed(frame, call, record, error)
            return
        site = call.site
        if site is not None and (code.co_filename != site[0] or frame.f_lineno != site[1]):
            return
        self._pending_effect = None
        if self.policy.every_effect and self.run_mode is RunMode.RUN:
            self._stop(
                Stop(
                    StopKind.EFFECT_PERFORMED,
                    self.step,
                    self.effects_done,
                    frame,
                    record=record,
                    effect_seq=call.seq,
                    effect_type=type(call.effect).__name__,
                )
            )

    def _on_effect_failed(
        self, frame: Any, call: EffectCall, record: EffectRecord, error: BaseException
    ) -> bool:
        """An effect's recorded ``error`` arrives in ``frame``: stop there if the policy says so
        (True when it stopped)."""
        self._pending_effect = None
        if not self.policy.effect_stops:
            return False
        self._last_exc_stop = (id(error), self.step)
        self._stop(
            Stop(
                StopKind.EFFECT_FAILED,
                self.step,
                self.effects_done,
                frame,
                exception=ExceptionInfo.of(error),
                record=record,
                effect_seq=call.seq,
                effect_type=type(call.effect).__name__,
            )
        )
        return True

    def _on_exception(self, frame: Any, arg: Any) -> None:
        self._exc_frame = frame
        self._last_exc = arg[1]
        if self.run_mode is not RunMode.RUN:
            return
        exc: BaseException = arg[1]  # arg: (type, value, traceback)
        pending = self._pending_effect
        if pending is not None and pending[1] is not None and pending[1].error is exc:
            # the effect's recorded error, thrown into the frame that yielded it
            if self._on_effect_failed(frame, pending[0], pending[1], exc):
                return
        if self.policy.raised and self._last_exc_stop != (id(exc), self.step):
            self._last_exc_stop = (id(exc), self.step)
            self._stop(
                Stop(
                    StopKind.RAISED,
                    self.step,
                    self.effects_done,
                    frame,
                    exception=ExceptionInfo.of(exc),
                )
            )

    def _on_root_return(self, frame: Any, arg: Any) -> None:
        code = frame.f_code
        offset = frame.f_lasti
        co_code = code.co_code
        op = co_code[offset]
        if (
            op == _YIELD_VALUE
            or (op == _RESUME and co_code[offset + 1] & 3)
            or (offset + 2 < len(co_code) and co_code[offset + 2] == _YIELD_FROM)
        ):
            return  # a yield / await suspends the handler: not its end
        self._end_shown = True
        final = self.finished
        if final is not None:
            # a complete run ended the same way (replay is deterministic): its outcome is exact,
            # where this run may not have seen the exception (a re-run fast-forwards past it, and
            # a bare `raise` fires no exception event)
            failed = not final.ok
            exc = None if final.ok else final.error
            divergence = self._final_divergence
            outcome = final
        else:
            failed = op not in _RETURN_OPS  # left by an exception
            exc = self._last_exc if failed else None
            divergence = self._end_divergence(failed, arg, exc)
            outcome = Success(arg) if not failed else Failure(exc) if exc is not None else None
        info = ExceptionInfo.of(exc) if failed and exc is not None else None
        if divergence is not None:
            # known only now (the code stops before the recorded effects end, or ends otherwise):
            # a stop on the line the handler leaves from, so one can step back to see why
            self.divergence = divergence
            kind = StopKind.DIVERGENCE
        else:
            kind = StopKind.UNCAUGHT if failed and self.policy.uncaught else StopKind.END
        self._stop(
            Stop(
                kind,
                self.step,
                self.effects_done,
                frame,
                end=True,
                exception=info,
                divergence=divergence,
                outcome=outcome,
            )
        )

    def _end_divergence(self, failed: bool, value: Any, exc: Any) -> Any:
        """The divergence the replayer finds at the end (missing effects, other outcome), or None.
        A divergence already announced during the run (speculative mode) is not repeated."""
        performer = self.performer
        if performer.divergence is not None:
            return None
        if failed and not isinstance(exc, Exception):
            return None  # not an outcome (a BaseException leaves run_sync as is)
        outcome = Failure(exc) if failed else Success(value)
        divergence = performer.finish(outcome)
        performer.divergence = (
            None  # run() asks again with the real outcome; the answer is the same
        )
        if divergence is None or divergence.kind not in ("missing", "outcome"):
            return None
        return divergence

    def _stop(self, stop: Stop) -> None:
        self.stop_depth = -1
        if self._jump_effect:  # the jump's target was not reached (the handler ended first)
            self._jump_effect = 0
            self.run_mode = RunMode.RUN
            self.bp_locs = frozenset(self._bp_by_loc)
        self.stops += 1
        command = self.presenter(stop)
        self._apply(command, stop)

    def _apply(self, move: Move, stop: Stop) -> None:
        command = move.command
        if command is Command.NEXT:
            self.stop_depth = self.depth
        elif command is Command.STEP_IN:
            self.stop_depth = _NEVER
        elif command is Command.STEP_OUT:
            self.stop_depth = self.depth - 1
        elif command is Command.CONTINUE:
            self.stop_depth = -1
        elif command is Command.STEP_BACK:
            raise self._rewind(Rewind(self._step_back_target(), StopKind.STEP))
        elif command is Command.REVERSE_CONTINUE:
            raise self._rewind(self._reverse_target())
        elif command is Command.JUMP_TO_EFFECT:
            n = int(move.effect or 0)
            if 1 <= n <= len(self.effect_steps):
                raise self._rewind(Rewind(self.effect_steps[n - 1], StopKind.GOTO))
            # not seen yet: run on with no stop of any kind (breakpoints, effect and exception
            # stops) until the handler yields effect n; a re-run then stops on that line
            self._jump_effect = n
            self.run_mode = RunMode.QUIET
            self.stop_depth = -1
            self.bp_locs = frozenset()
        elif command is Command.TERMINATE:
            self._settrace(None)
            self._unwinding = Terminate()
            raise self._unwinding
        else:
            raise ValueError(f"unknown engine command {move!r}")
        if self.pause_requested:
            self.stop_depth = _NEVER

    def _rewind(self, rewind: Rewind) -> Rewind:
        self._settrace(None)  # nothing of the unwinding (finally blocks) is a step
        checkpoints = self.checkpoints
        if (
            checkpoints is not None
            and rewind.present
            and not rewind.scan_until
            and rewind.divergence is None
        ):
            # returns only when no checkpoint serves the target (else this process is parked)
            checkpoints.restore(max(1, rewind.step), rewind.kind.value, self._settings())
        self._unwinding = rewind
        return rewind

    def _step_back_target(self) -> int:
        """The latest earlier step at the current call depth or an outer one."""
        depth = self.depth
        hist_depth = self.hist_depth
        j = self.step - 1
        while j >= 1:
            if hist_depth[j - 1] <= depth:
                return j
            j -= 1
        return 1

    def _reverse_target(self) -> Rewind:
        """The latest earlier step where a breakpoint fires, or the start.

        From the history alone for breakpoints without a condition and for conditions already
        evaluated at every earlier hit that matters; the other conditions are evaluated on a
        re-run that watches only their lines (:meth:`_start_narrow_scan`), at their hits after
        the latest step known to fire."""
        current = self.step
        stops = [(loc, bp) for loc, bp in self._bp_by_loc.items() if bp.log_message is None]
        if not stops:
            return Rewind(1, StopKind.ENTRY)
        if any(bp.hit_condition for _, bp in stops):
            # hit counts need every hit from the start: the general scan
            return Rewind(0, StopKind.BREAKPOINT, scan_until=current)
        earlier = self.hist_loc[: max(0, current - 1)]  # steps 1 .. current-1
        best = max(
            (_last_index(earlier, loc) + 1 for loc, bp in stops if not bp.condition), default=0
        )
        to_evaluate: dict[int, list[int]] = {}
        for loc, bp in stops:
            if not bp.condition:
                continue
            steps = _steps_of(earlier, loc)
            later = steps[bisect.bisect_right(steps, best) :]
            results = bp.results
            if all(step in results for step in later):
                best = max(best, max((step for step in later if results[step]), default=0))
            else:
                to_evaluate[loc] = steps
        # a hit at or before the best one found cannot be the answer
        to_evaluate = {loc: steps for loc, steps in to_evaluate.items() if steps[-1] > best}
        if to_evaluate:
            return Rewind(
                0,
                StopKind.BREAKPOINT,
                scan_until=current,
                scan_floor=best,
                scan_hits=to_evaluate,
            )
        return Rewind(best, StopKind.BREAKPOINT) if best else Rewind(1, StopKind.ENTRY)

    # -- effects ------------------------------------------------------------------------------

    def _perform(self, call: EffectCall) -> Any:
        if self._unwinding is not None:
            # a bare `except:` / `except BaseException:` swallowed the rewind and the handler
            # went on: raise it again (run() also catches a handler that ends instead)
            raise self._unwinding
        checkpoints = self.checkpoints
        if checkpoints is not None and self.run_mode in _HISTORY_MODES:
            message = checkpoints.at_effect(call.seq)
            if message is not None:  # this process is a checkpoint, restored: fast-forward on
                self._resume_at_checkpoint(call.seq, message, sys._getframe(1))
        install = self._ff_install
        if install is not None and call.seq == install[0]:
            # the checkpoint: the handler resumes after this effect; watch from here on
            self._ff_install = None
            install[1](sys._getframe(1))  # the runtime's driver: its `gen` is the handler's
        if self.run_mode is not RunMode.FAST_FORWARD:
            if call.seq > len(self.effect_steps):
                self.effect_steps.append(self.step)
            if call.seq == self._jump_effect:
                self._jump_effect = 0
                self._rebuild_bp_locs()
                raise self._rewind(Rewind(self.step, StopKind.GOTO))
        performer = self.performer
        before = performer.divergence
        try:
            result = performer(call)
        except ReplayDiverged as stop:
            self.divergence = stop.divergence
            if self.run_mode in _NO_END_STOP or self._divergence_step == self.step:
                raise
            self._divergence_step = self.step
            raise self._rewind(
                Rewind(self.step, StopKind.DIVERGENCE, divergence=stop.divergence)
            ) from None
        except Exception:
            if before is None and performer.divergence is not None:
                self._announce_speculative(performer.divergence)
            raise
        if before is None and performer.divergence is not None:
            self._announce_speculative(performer.divergence)
        return result

    def _announce_speculative(self, divergence: Any) -> None:
        """Speculative mode went past a divergence (a stub answered): stop once on the line
        that yields the diverging effect, as strict mode does; continuing goes on with the stubs."""
        self.divergence = divergence
        if self.run_mode in _NO_END_STOP or self._divergence_step == self.step:
            return
        self._divergence_step = self.step
        raise self._rewind(Rewind(self.step, StopKind.DIVERGENCE, divergence=divergence))

    def _observe(self, call: EffectCall, record: EffectRecord | None) -> None:
        self.effects_done = call.seq
        if self.run_mode is RunMode.RUN and self.policy.effect_stops:
            self._pending_effect = (call, record)

    # -- running ------------------------------------------------------------------------------

    def run(self) -> Any:
        """Replay until the client terminates or the handler runs past its end; returns the
        Outcome (or None after a terminate / an unrecoverable divergence)."""
        previous_hook = sys.unraisablehook

        def unraisable(info: Any) -> None:
            # a rewind raised on a line of a generator that is being finalized (a `finally` run by
            # the garbage collector) cannot leave it: it is kept in _unwinding and raised again
            if not isinstance(info.exc_value, (Rewind, Terminate)):
                previous_hook(info)

        sys.unraisablehook = unraisable
        try:
            return self._run()
        finally:
            sys.unraisablehook = previous_hook
            self._free_monitor_tool()

    def _run(self) -> Any:
        self._clear_outer_traces()
        self._modules.capture()
        self._base_frame = sys._getframe()  # frames at or below this one are not the handler's
        target: Rewind | None = Rewind(1, StopKind.ENTRY) if self.stop_on_entry else None
        self._check_target = Rewind(1, StopKind.ENTRY)
        while True:
            self._reset_run()
            if target is not None and target.scan_until and self._start_narrow_scan(target):
                pass
            elif target is not None and target.scan_until:
                self._clear_history()  # a full re-run from the start records it again
                self.run_mode = RunMode.SCAN
                self._scan_until, self._scan_hit = target.scan_until, 0
                self.check_step = target.scan_until
                self.bp_locs = frozenset(self._bp_by_loc)
                self._settrace(self._global)
            elif target is not None:
                self._start_fast_forward(target)
            else:
                self._settrace(self._global)
            target = None
            try:
                outcome = run_sync(self.handler, self.trace.input, self._perform)
            except Rewind as rewind:
                # its traceback holds the old run's frames: released now, with tracing off, their
                # generators close here (a `finally` in one runs), not inside the next run's steps
                rewind.__traceback__ = rewind.__context__ = None
                target = rewind
                continue
            except Terminate:
                return None
            except ReplayDiverged:
                self._settrace(None)
                if isinstance(self._unwinding, Rewind):
                    target = self._unwinding
                    continue
                return None
            finally:
                self._settrace(None)
                self._stop_monitoring()
                self._last_exc = self._exc_frame = None
            if self._unwinding is not None:
                # the handler swallowed the rewind / terminate (bare `except:`) and ended anyway
                if isinstance(self._unwinding, Terminate):
                    return None
                target = self._unwinding  # type: ignore[assignment]
                continue
            short = self.run_mode is RunMode.FAST_FORWARD or self.check_step != _NEVER
            if short:
                self.warn(
                    "the re-run ended before reaching its target step: the handler is not deterministic "
                    "(module-level state?)"
                )
            first = self.finished is None
            self.finished = outcome
            divergence = self.performer.finish(outcome)
            if divergence is not None and self.divergence is None:
                self.divergence = divergence
            if first and not short:
                self.end_step = self.step
                if divergence is not None and divergence.kind in ("missing", "outcome"):
                    self._final_divergence = divergence
                if not self._end_shown and self.step:
                    # the end was not presented: the handler ends in the runtime's code (a
                    # Command handler, a pipeline). Run again to its last step: the first
                    # depth-1 return from there is the end of the replay.
                    self._restore_modules()
                    target = Rewind(self.step, StopKind.END, present=False)
                    continue
            return outcome

    def _reset_run(self) -> None:
        if self._unwinding is not None:
            self._restore_modules()
        self._unwinding = None
        self._ff_install = None
        self._stop_monitoring()
        self.performer.reset()
        self.step = 0
        self.depth = 0
        self.effects_done = 0
        self.stop_depth = -1
        self.check_step = _NEVER
        self.run_mode = RunMode.RUN
        self._scan_until = 0  # SCAN: the step the scan runs to
        self._pending_effect = None
        self._exc_frame = None
        self._last_exc = None
        self._jump_effect = 0
        self._end_shown = False
        self.bp_locs = frozenset(self._bp_by_loc)
        for bp in self._bp_by_loc.values():  # a run from the start counts hits from zero
            bp.hits = 0

    def _restore_modules(self) -> None:
        changed = self._modules.restore()
        new = [name for name in changed if name not in self._restored_reported]
        if new:
            self._restored_reported.update(new)
            self.output(
                f"prodture: the handler changed module-level state ({', '.join(new)}); "
                "it is put back before every re-run so revisited steps show the same values\n"
            )

    def _clear_history(self) -> None:
        del self.hist_loc[:]
        del self.hist_depth[:]

    def _clear_outer_traces(self) -> None:
        # frames below the handler (the runner's) may carry pydevd's tracer: no events there
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            frame.f_trace = None
            frame = frame.f_back

    def _start_narrow_scan(self, target: Rewind) -> bool:
        """A reverse continue over conditional breakpoints (in one or several code objects):
        re-run watching only their lines (as a fast-forward does), evaluate each condition at its
        earlier hits after ``target.scan_floor``, then rewind to the latest true one (or the
        floor). False when the general scan is needed (hit counts)."""
        plan = target.scan_hits
        if not plan:
            return False
        floor = target.scan_floor
        best = floor
        # hits still to evaluate (after the floor), over every location
        left = sum(len(steps) - bisect.bisect_right(steps, floor) for steps in plan.values())

        def visitor(bp: Breakpoint, steps: list[int]) -> Callable[[Any], None]:
            """Visits the hits of one location: its n-th hit on the re-run is steps[n]."""
            seen = 0
            first = bisect.bisect_right(steps, floor)  # the hits before are not evaluated
            results = bp.results

            def visit(frame: Any) -> None:
                nonlocal seen, best, left
                n = seen
                seen = n + 1
                if n < first or n >= len(steps):  # after the last: the re-run's end warns
                    return
                step = steps[n]
                left -= 1
                fires = results.get(step)  # evaluated before (replay is deterministic)
                if fires is None:
                    fires = bp.fires(frame, step) is not False  # a condition error stops too
                if fires:
                    best = step  # hits come in step order: a later true one is the latest
                if not left:
                    kind = StopKind.BREAKPOINT if best else StopKind.ENTRY
                    raise self._rewind(Rewind(best or 1, kind))

            return visit

        watch: dict[Any, dict[int, Callable[[Any], None]]] = {}
        entry_lines = False
        for loc, steps in plan.items():
            code = self._codes[loc >> _LINE_BITS]
            line = loc & _LINE_MASK
            watch.setdefault(code, {})[line] = visitor(self._bp_by_loc[loc], steps)
            # sys.monitoring may fire no LINE event on the code's entry line (see fast-forward)
            entry = next((ln for _, _, ln in code.co_lines() if ln is not None), None)
            entry_lines = entry_lines or line == entry
        monitoring = self._monitoring
        if monitoring is not None and not entry_lines and monitoring.available():
            strategy: Any = monitoring
        else:
            strategy = self._settrace_ff
        self.run_mode = RunMode.FAST_FORWARD  # no stops, no history on the way
        strategy.scan(watch)
        return True

    def _start_fast_forward(self, target: Rewind) -> None:
        """Re-run to ``target.step`` watching only the code object of that step.

        Two narrowings: (1) effect checkpoints — the lines before the last effect yielded before
        step k run with no tracing at all (the count of the target location restarts after that
        effect, see ``_perform``); (2) from there on only the target code object is watched:
        ``sys.monitoring`` LINE/JUMP events on that code alone on 3.12+ (other lines DISABLEd),
        a ``sys.settrace`` local tracer on that code alone before.
        """
        k = max(1, target.step)
        if k > len(self.hist_loc):
            # never seen: run with full tracing and stop when step k is reached
            self._clear_history()  # a full re-run from the start records it again
            self.check_step, self._check_target = k, target
            self.run_mode = RunMode.QUIET  # no breakpoint or effect stops on the way
            self.bp_locs = frozenset()
            self._settrace(self._global)
            return
        loc = self.hist_loc[k - 1]
        # effects yielded before step k: the last one is the checkpoint (steps after it are counted)
        checkpoint = bisect.bisect_left(self.effect_steps, k)
        first = self.effect_steps[checkpoint - 1] if checkpoint else 0
        nth = self.hist_loc[first:k].count(loc)
        code = self._codes[loc >> _LINE_BITS]
        line = loc & _LINE_MASK
        self.run_mode = RunMode.FAST_FORWARD
        # sys.monitoring may fire no LINE event for a line on the code's entry line (3.13: a
        # lambda's body), where the legacy tracer that recorded the history reports one
        entry_line = next((ln for _, _, ln in code.co_lines() if ln is not None), None)
        monitoring = self._monitoring
        if monitoring is not None and line != entry_line and monitoring.available():
            strategy: Any = monitoring
        else:
            strategy = self._settrace_ff
        install = strategy.prepare(code, line, nth, lambda frame: self._arrive(frame, k, target))
        if checkpoint:
            self._ff_install = (checkpoint, install)
            self._settrace(None)
        else:
            install(None)

    # -- fork checkpoints (see checkpoints.py) ---------------------------------------------------

    def checkpoint_key(self) -> tuple[Any, int]:
        """(what a checkpoint must share with the debuggee to serve it, code objects seen)."""
        session = (
            self.finished is None,
            self.end_step,
            self._final_divergence is None,
            self.divergence is None,
            self._divergence_step,
        )
        return session, len(self._codes)

    def install_effect(self, k: int) -> int:
        """The effect after which a re-run to step ``k`` starts watching (0: from the start)."""
        return bisect.bisect_left(self.effect_steps, k)

    def code_index_max(self, start: int, end: int) -> int:
        """The highest code-object index in the history of steps ``start+1 .. end``."""
        return max(self.hist_loc[start:end], default=0) >> _LINE_BITS

    def _settings(self) -> dict[str, Any]:
        """Breakpoints and stop policy, as a restored checkpoint applies them."""
        return {
            "breakpoints": {
                path: [[b.line, b.condition, b.hit_condition, b.log_message] for b in bps.values()]
                for path, bps in self.breakpoints.items()
            },
            "policy": dataclasses.asdict(self.policy),
        }

    def _resume_at_checkpoint(self, seq: int, message: dict[str, Any], driver: Any) -> None:
        """This process is the checkpoint taken at effect ``seq``, restored by the old debuggee:
        take the history it sent, its breakpoints and policy, and go on as a re-run from the start
        would at this effect (``_start_fast_forward`` to the target step)."""
        from .checkpoints import history

        self._settrace(None)
        locs, depths = history(message)
        del self.hist_loc[self.step :]
        self.hist_loc.extend(locs)
        del self.hist_depth[self.step :]
        self.hist_depth.extend(depths)
        del self.effect_steps[seq - 1 :]
        self.effect_steps.extend(message["effect_steps"])
        settings = self._settings()
        if message["breakpoints"] != settings["breakpoints"]:
            for path in set(self.breakpoints) | set(message["breakpoints"]):
                specs = message["breakpoints"].get(path, [])
                self.set_breakpoints(path, [Breakpoint(*spec) for spec in specs])
        if message["policy"] != settings["policy"]:
            self.set_policy(StopPolicy(**message["policy"]))
        # the handler's suspended frames carry this run's local tracers; a re-run's carry none
        obj = driver.f_locals.get("gen")
        while obj is not None:
            frame = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)
            if frame is None:
                break
            frame.f_trace = None
            obj = getattr(obj, "gi_yieldfrom", None) or getattr(obj, "cr_await", None)
        # the per-run state of a re-run (see _reset_run), at this effect
        self._unwinding = None
        self._ff_install = None
        self.stop_depth = -1
        self.check_step = _NEVER
        self.run_mode = RunMode.RUN
        self._pending_effect = None
        self._exc_frame = None
        self._last_exc = None
        self._jump_effect = 0
        self._end_shown = False
        for bp in self._bp_by_loc.values():
            bp.hits = 0
        self.bp_locs = frozenset(self._bp_by_loc)
        self._start_fast_forward(Rewind(message["step"], StopKind(message["kind"])))

    def _stop_monitoring(self) -> None:
        if self._monitoring is not None:
            self._monitoring.stop()

    def _free_monitor_tool(self) -> None:
        if self._monitoring is not None:
            self._monitoring.close()

    def _arrive(self, frame: Any, k: int, target: Rewind) -> Any:
        """Fast-forward reached step ``k``: restore full tracing and present the stop."""
        self.run_mode = RunMode.RUN
        self.step = k
        del self.hist_loc[k:]
        del self.hist_depth[k:]
        depth = 0
        f = frame
        frames = []
        while f is not None and f is not self._base_frame:
            local = self._tracers.get(f.f_code)
            if local is None and f.f_code not in self._tracers:
                local = self._register(f.f_code)
            if local is not None:
                depth += 1
                frames.append((f, local))
            f = f.f_back
        self.depth = depth
        if depth != self.hist_depth[k - 1]:
            self.warn(
                f"step {k}: the re-run reached call depth {depth}, the first run {self.hist_depth[k - 1]}: "
                "the handler is not deterministic (module-level state?)"
            )
        for f, local in frames:
            f.f_trace = local
            f.f_trace_lines = True
        self._settrace(self._global)
        self._recount_hits(k)
        exc = sys.exc_info()[1]
        if exc is not None:  # raised before step k; a bare `raise` may re-raise it, unseen
            self._last_exc = exc
        if target.present:  # else run on to the depth-1 return that ends the replay (see _run)
            self._stop(Stop(target.kind, k, self.effects_done, frame, divergence=target.divergence))
        return frames[0][1]  # the frame's tracer from now on (a tracer's return value is f_trace)

    def _recount_hits(self, k: int) -> None:
        for loc, bp in self._bp_by_loc.items():
            if bp.hit_condition:
                bp.hits = self.hist_loc[:k].count(loc)

    # -- views the presenters use ------------------------------------------------------------

    def user_frames(self, frame: Any) -> list[Any]:
        out = []
        while frame is not None and frame is not self._base_frame:
            if self._tracers.get(frame.f_code) is not None:
                out.append(frame)
            frame = frame.f_back
        return out

    def position(self, stop: Stop) -> Position:
        count = len(self.trace.effects)
        nxt = stop.effect + 1
        frame = stop.frame
        return Position(
            step=stop.step,
            effect=stop.effect,
            effect_count=count,
            path=frame.f_code.co_filename if frame is not None else None,
            line=frame.f_lineno if frame is not None else None,
            next_effect=nxt if nxt <= count else None,
            end=stop.end,
        )

    def replay_view(self, stop: Stop) -> ReplayView:
        """Where the replay is at ``stop``, as records (the runner renders the Replay scope)."""
        effects = self.trace.effects
        count = len(effects)
        return ReplayView(
            step=stop.step,
            effect=stop.effect,
            effect_count=count,
            mode=self.mode,
            last=effects[stop.effect - 1] if 1 <= stop.effect <= count else None,
            speculative_last=stop.effect > count,
            next=effects[stop.effect] if stop.effect < count else None,
            outcome=self.trace.outcome,
            divergence=self.divergence,
        )


def _last_index(values: array, value: int) -> int:
    """The index of the last ``value`` in ``values`` (-1 if none), searched at C speed."""
    data = values.tobytes()
    needle = array(values.typecode, [value]).tobytes()
    size = values.itemsize
    end = len(data)
    while True:
        i = data.rfind(needle, 0, end)
        if i < 0:
            return -1
        if i % size == 0:
            return i // size
        end = i + size - 1  # a match across two entries: look before it


def _steps_of(values: array, value: int) -> list[int]:
    """The steps (1-based) of every ``value`` in ``values``, in order, searched at C speed."""
    steps = []
    index = values.index
    i = -1
    try:
        while True:
            i = index(value, i + 1)
            steps.append(i + 1)
    except ValueError:
        return steps
