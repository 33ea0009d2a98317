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

This module is the coordinator: it decides when to stop and where a re-run goes. The parts live
in their own modules — the vocabulary (``contract.py``), how a run goes (``runmode.py``), user
code and the per-line tracer (``tracer.py``), the step history and what it answers
(``history.py``), breakpoints (``breakpoints.py``), reverse continue (``reverse.py``), effect and
exception stops (``effectstops.py``), the end of the replay (``endstop.py``), fast-forward
(``fastforward.py``), module state put back before a re-run (``modstate.py``) and fork
checkpoints (``checkpoints.py``).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

from ..codefilter import UserCode
from ..replay import STRICT, ReplayDiverged, TracePerformer
from ..runtime import EffectCall, run_sync
from ..trace.format import EffectRecord, Trace
from .breakpoints import Breakpoint, BreakpointTable
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
from .effectstops import EffectStops
from .endstop import end_of_replay, suspends
from .fastforward import FastForwards, entry_line, suspended_frames
from .history import LINE_BITS, LINE_MASK, StepHistory
from .modstate import ModuleState
from .reverse import narrow_scan_watch, reverse_target
from .runmode import HISTORY_MODES, NEVER, NO_END_STOP, Rewind, RunMode, Terminate
from .tracer import CodeRegistry, make_global, make_local, norm_path

__all__ = [
    "StepEngine",
    "Stop",
    "Rewind",
    "Breakpoint",
    "Terminate",
    "Move",
    "Command",
    "RunMode",
]

_GEN_FLAGS = 0x20 | 0x80 | 0x200  # CO_GENERATOR | CO_COROUTINE | CO_ASYNC_GENERATOR


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
        self.end_step = NEVER
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
        self.history = StepHistory()
        # the history's arrays, by the names the checkpoints and the tests read (never replaced)
        self.hist_loc = self.history.locs
        self.hist_depth = self.history.depths
        self.effect_steps = self.history.effect_steps
        self.bps = BreakpointTable()
        self.effect_stops = EffectStops()  # effect-performed, effect-failed and raised stops
        self.codes = CodeRegistry(
            self.user_code, lambda index: make_local(self, self.history, index), self._on_new_code
        )
        self._chain_depth = self.codes.chain_depth  # the tracer's exception path calls it
        self._global = make_global(self, self.codes)
        self.policy = StopPolicy()
        self.pause_requested = False
        self._divergence_step = 0
        self.divergence: Any = None
        self.finished: Any = None  # the Outcome once the handler ran to its end
        self.stops = 0
        #: fork checkpoints (:class:`.checkpoints.ForkCheckpoints`, set by the runner), or None:
        #: going back then always re-runs in-process
        self.checkpoints: Any = None
        # the fast-forward strategies (see fastforward.py); the settrace one calls self._settrace
        # late, as the runner replaces it after construction
        self._fast_forwards = FastForwards(lambda tracer: self._settrace(tracer))
        self._modules = ModuleState(self.user_code)
        self._restored_reported: set[str] = set()
        self._check_target = Rewind(1, StopKind.ENTRY)
        self.step = 0
        self.depth = 0
        self.effects_done = 0
        self._start_run_state()

    def _start_run_state(self) -> None:
        """The state of one run of the handler as it is at its start, in one place: at
        construction, for a re-run from the start (:meth:`_reset_run`) and for a restored fork
        checkpoint taking over at an effect (:meth:`_resume_at_checkpoint`). What the per-line
        tracer reads (``stop_depth``, ``check_step``, ``bp_locs``, ``run_mode``, ``_exc_frame``)
        stays in plain attributes."""
        # a Rewind / Terminate on its way out of the handler; kept so a handler that swallows it
        # (bare `except:`) cannot lose it: see _perform and run
        self._unwinding: BaseException | None = None
        # fast-forward from an effect checkpoint: (effect number, installs the narrowed watcher)
        self._ff_install: tuple[int, Callable[[Any], None]] | None = None
        self.stop_depth = -1
        self.check_step = NEVER
        self.run_mode = RunMode.RUN
        self._scan_until = 0  # SCAN: the step the scan runs to
        self._scan_hit = 0  # SCAN: the last step a breakpoint fired at
        self.effect_stops.pending = None
        self._exc_frame: Any = None
        self._last_exc: Any = None
        self._jump_effect = 0
        self._end_shown = False
        self.bps.reset_hits()  # a run from the start counts hits from zero
        self.bp_locs: frozenset[int] = frozenset(self.bps.by_loc)

    # -- configuration (may be called from another thread while the replay thread is stopped) ---

    def set_breakpoints(self, path: str, bps: list[Breakpoint]) -> None:
        self.bps.set_file(norm_path(path), bps)
        self._locate_breakpoints()

    def set_policy(self, policy: StopPolicy) -> None:
        self.policy = policy

    def request_pause(self) -> None:
        self.pause_requested = True
        self.stop_depth = NEVER  # the next user line stops

    def _locate_breakpoints(self) -> None:
        self.bps.locate(self.codes.files, self.codes.lines)
        # quiet runs (a jump, a re-run to an unseen step) stop at no breakpoint on the way
        self.bp_locs = frozenset() if self.run_mode is RunMode.QUIET else frozenset(self.bps.by_loc)

    def _on_new_code(self, index: int) -> None:
        if self.bps.by_file.get(self.codes.files[index]):
            self._locate_breakpoints()

    # -- user code ----------------------------------------------------------------------------

    def is_user_code(self, filename: str) -> bool:
        return self.user_code.is_user_code(filename)

    def code_index(self, code: Any) -> int:
        return self.codes.index(code)

    # -- stops --------------------------------------------------------------------------------

    def _on_line(self, frame: Any, step: int, loc: int) -> None:
        if self._exc_frame is frame:
            self._exc_frame = None
        if step >= self.check_step and self.run_mode is not RunMode.SCAN:
            self.check_step = NEVER
            if self.run_mode is RunMode.QUIET:
                self.run_mode = RunMode.RUN
                self.bp_locs = frozenset(self.bps.by_loc)
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
            bp = self.bps.by_loc.get(loc)
            if bp is not None and bp.log_message is None and bp.fires(frame, step) is not False:
                self._scan_hit = step
            return
        bp = self.bps.by_loc.get(loc) if loc in self.bp_locs else None
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
        """A user frame is called or resumed while an effect's arrival is pending."""
        stop = self.effect_stops.on_resume(
            frame, self.step, self.effects_done, self.policy, self.run_mode is RunMode.RUN
        )
        if stop is not None:
            self._stop(stop)

    def _on_exception(self, frame: Any, arg: Any) -> None:
        exc = arg[1]  # arg: (type, value, traceback)
        self._exc_frame = frame
        self._last_exc = exc
        if self.run_mode is RunMode.RUN:
            stop = self.effect_stops.on_exception(
                frame, exc, self.step, self.effects_done, self.policy
            )
            if stop is not None:
                self._stop(stop)

    def _on_root_return(self, frame: Any, arg: Any) -> None:
        if suspends(frame):
            return  # a yield / await suspends the handler: not its end
        self._end_shown = True
        end = end_of_replay(
            frame,
            arg,
            finished=self.finished,
            final_divergence=self._final_divergence,
            last_exception=self._last_exc,
            performer=self.performer,
        )
        if end.divergence is not None:
            # known only now (the code stops before the recorded effects end, or ends otherwise):
            # a stop on the line the handler leaves from, so one can step back to see why
            self.divergence = end.divergence
            kind = StopKind.DIVERGENCE
        else:
            kind = StopKind.UNCAUGHT if end.failed and self.policy.uncaught else StopKind.END
        exc = end.exception
        self._stop(
            Stop(
                kind,
                self.step,
                self.effects_done,
                frame,
                end=True,
                exception=ExceptionInfo.of(exc) if end.failed and exc is not None else None,
                divergence=end.divergence,
                outcome=end.outcome,
            )
        )

    def _stop(self, stop: Stop) -> None:
        self.stop_depth = -1
        if self._jump_effect:  # the jump's target was not reached (the handler ended first)
            self._jump_effect = 0
            self.run_mode = RunMode.RUN
            self.bp_locs = frozenset(self.bps.by_loc)
        self.stops += 1
        command = self.presenter(stop)
        self._apply(command, stop)

    def _apply(self, move: Move, stop: Stop) -> None:
        command = move.command
        if command is Command.NEXT:
            self.stop_depth = self.depth
        elif command is Command.STEP_IN:
            self.stop_depth = NEVER
        elif command is Command.STEP_OUT:
            self.stop_depth = self.depth - 1
        elif command is Command.CONTINUE:
            self.stop_depth = -1
        elif command is Command.STEP_BACK:
            target = self.history.step_back_target(self.step, self.depth)
            raise self._rewind(Rewind(target, StopKind.STEP))
        elif command is Command.REVERSE_CONTINUE:
            raise self._rewind(reverse_target(self.history, self.bps.by_loc, self.step))
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
            self.stop_depth = NEVER

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

    # -- effects ------------------------------------------------------------------------------

    def _perform(self, call: EffectCall) -> Any:
        if self._unwinding is not None:
            # a bare `except:` / `except BaseException:` swallowed the rewind and the handler
            # went on: raise it again (run() also catches a handler that ends instead)
            raise self._unwinding
        checkpoints = self.checkpoints
        if checkpoints is not None and self.run_mode in HISTORY_MODES:
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
                self._locate_breakpoints()
                raise self._rewind(Rewind(self.step, StopKind.GOTO))
        performer = self.performer
        before = performer.divergence
        try:
            result = performer(call)
        except ReplayDiverged as stop:
            self.divergence = stop.divergence
            if self.run_mode in NO_END_STOP or self._divergence_step == self.step:
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
        if self.run_mode in NO_END_STOP or self._divergence_step == self.step:
            return
        self._divergence_step = self.step
        raise self._rewind(Rewind(self.step, StopKind.DIVERGENCE, divergence=divergence))

    def _observe(self, call: EffectCall, record: EffectRecord | None) -> None:
        self.effects_done = call.seq
        if self.run_mode is RunMode.RUN:
            self.effect_stops.performed(call, record, self.policy)

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
            self._fast_forwards.close()

    def _run(self) -> Any:
        self._clear_outer_traces()
        self._modules.capture()
        self.codes.base_frame = sys._getframe()  # frames at or below it are not the handler's
        target: Rewind | None = Rewind(1, StopKind.ENTRY) if self.stop_on_entry else None
        self._check_target = Rewind(1, StopKind.ENTRY)
        while True:
            self._reset_run()
            if target is None:
                self._settrace(self._global)
            elif target.scan_until:
                if not self._start_narrow_scan(target):
                    self._start_scan(target)
            else:
                self._start_fast_forward(target)
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
                self._fast_forwards.stop()
                self._last_exc = self._exc_frame = None
            if self._unwinding is not None:
                # the handler swallowed the rewind / terminate (bare `except:`) and ended anyway
                if isinstance(self._unwinding, Terminate):
                    return None
                target = self._unwinding  # type: ignore[assignment]
                continue
            short = self.run_mode is RunMode.FAST_FORWARD or self.check_step != NEVER
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
        """Before a run from the start: module state put back after an unwound run, and every
        per-run field as at the start."""
        if self._unwinding is not None:
            self._restore_modules()
        self._fast_forwards.stop()
        self.performer.reset()
        self.step = 0
        self.depth = 0
        self.effects_done = 0
        self._start_run_state()

    def _restore_modules(self) -> None:
        changed = self._modules.restore()
        new = [name for name in changed if name not in self._restored_reported]
        if new:
            self._restored_reported.update(new)
            self.output(
                f"prodture: the handler changed module-level state ({', '.join(new)}); "
                "it is put back before every re-run so revisited steps show the same values\n"
            )

    def _clear_outer_traces(self) -> None:
        # frames below the handler (the runner's) may carry pydevd's tracer: no events there
        frame: FrameType | None = sys._getframe(1)
        while frame is not None:
            frame.f_trace = None
            frame = frame.f_back

    def _start_scan(self, target: Rewind) -> None:
        """The general scan of a reverse continue (hit conditions count every hit from the
        start): a fully traced re-run to ``target.scan_until`` noting the last breakpoint hit."""
        self.history.clear()  # a full re-run from the start records it again
        self.run_mode = RunMode.SCAN
        self._scan_until, self._scan_hit = target.scan_until, 0
        self.check_step = target.scan_until
        self.bp_locs = frozenset(self.bps.by_loc)
        self._settrace(self._global)

    def _start_narrow_scan(self, target: Rewind) -> bool:
        """A reverse continue over conditional breakpoints (in one or several code objects):
        re-run watching only their lines (as a fast-forward does), evaluate each condition at its
        earlier hits after ``target.scan_floor``, then rewind to the latest true one (or the
        floor); see ``reverse.py``. False when the general scan is needed (hit counts)."""
        if not target.scan_hits:
            return False
        watch, on_entry_line = narrow_scan_watch(
            target, self.bps.by_loc, self.codes.codes, self._rewind
        )
        strategy = self._fast_forwards.pick(on_entry_line)
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
        if k > len(self.history):
            # never seen: run with full tracing and stop when step k is reached
            self.history.clear()  # a full re-run from the start records it again
            self.check_step, self._check_target = k, target
            self.run_mode = RunMode.QUIET  # no breakpoint or effect stops on the way
            self.bp_locs = frozenset()
            self._settrace(self._global)
            return
        # effects yielded before step k: the last one is the checkpoint (steps after it are counted)
        loc, checkpoint, nth = self.history.fast_forward_target(k)
        code = self.codes.codes[loc >> LINE_BITS]
        line = loc & LINE_MASK
        self.run_mode = RunMode.FAST_FORWARD
        strategy = self._fast_forwards.pick(line == entry_line(code))
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
        return session, len(self.codes.codes)

    def watch_start_effect(self, k: int) -> int:
        """The effect after which a re-run to step ``k`` starts watching (0: from the start)."""
        return self.history.watch_start_effect(k)

    def code_index_max(self, start: int, end: int) -> int:
        """The highest code-object index in the history of steps ``start+1 .. end``."""
        return self.history.code_index_max(start, end)

    def _settings(self) -> dict[str, Any]:
        """Breakpoints and stop policy, as a restored checkpoint applies them."""
        return {"breakpoints": self.bps.specs(), "policy": dataclasses.asdict(self.policy)}

    def _resume_at_checkpoint(self, seq: int, message: dict[str, Any], driver: Any) -> None:
        """This process is the checkpoint taken at effect ``seq``, restored by the old debuggee:
        take the history it sent, its breakpoints and policy, and go on as a re-run from the start
        would at this effect (``_start_fast_forward`` to the target step)."""
        from .checkpoints import history

        self._settrace(None)
        locs, depths = history(message)
        self.history.adopt(self.step, locs, depths, seq, message["effect_steps"])
        settings = self._settings()
        if message["breakpoints"] != settings["breakpoints"]:
            for path in set(self.bps.by_file) | set(message["breakpoints"]):
                specs = message["breakpoints"].get(path, [])
                self.set_breakpoints(path, [Breakpoint(*spec) for spec in specs])
        if message["policy"] != settings["policy"]:
            self.set_policy(StopPolicy(**message["policy"]))
        # the handler's suspended frames carry this run's local tracers; a re-run's carry none
        for frame in suspended_frames(driver):
            frame.f_trace = None
        self._start_run_state()  # as a re-run from the start is at this effect
        self._start_fast_forward(Rewind(message["step"], StopKind(message["kind"])))

    def _arrive(self, frame: Any, k: int, target: Rewind) -> Any:
        """Fast-forward reached step ``k``: restore full tracing and present the stop."""
        self.run_mode = RunMode.RUN
        self.step = k
        self.history.truncate(k)
        frames = self.codes.user_chain(frame)
        depth = self.depth = len(frames)
        if depth != self.hist_depth[k - 1]:
            self.warn(
                f"step {k}: the re-run reached call depth {depth}, the first run {self.hist_depth[k - 1]}: "
                "the handler is not deterministic (module-level state?)"
            )
        for f, local in frames:
            f.f_trace = local
            f.f_trace_lines = True
        self._settrace(self._global)
        self.bps.recount_hits(self.history, k)
        exc = sys.exc_info()[1]
        if exc is not None:  # raised before step k; a bare `raise` may re-raise it, unseen
            self._last_exc = exc
        if target.present:  # else run on to the depth-1 return that ends the replay (see _run)
            self._stop(Stop(target.kind, k, self.effects_done, frame, divergence=target.divergence))
        return frames[0][1]  # the frame's tracer from now on (a tracer's return value is f_trace)

    # -- views the presenters use ------------------------------------------------------------

    def user_frames(self, frame: Any) -> list[Any]:
        return self.codes.user_frames(frame)

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
