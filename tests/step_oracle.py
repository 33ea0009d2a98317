"""A differential oracle for the step engine: ground truth from ``sys.settrace``, a reference model
of what each command must do, and a driver that checks every stop of the engine against both.

Ground truth: the handler replayed headless (``run_sync`` + ``TracePerformer``) under a plain
``sys.settrace`` tracer that records every line event in the user file — its line, function, call
depth counted on the frame chain, locals (reprs without addresses) and effects performed so far —
plus where each recorded error arrives in a user frame (thrown into the frame that yielded the effect,
or passed to a Command's ``on_error`` at its call), at which step each effect is yielded,
the state at the handler's last return and its outcome. Nothing of the engine is used.

Reference model: from the ground truth alone, the stop each command must reach (``next`` /
``stepIn`` / ``stepOut`` / ``continue`` forward over line events, effect-failed events and the end;
``stepBack`` / ``reverseContinue`` backward; ``jumpToEffect`` to the step that yields effect N).

The driver runs the real engine (no DAP) with a presenter that, at every stop, compares the stop's
kind, step and the state of its frame (file, line, function, depth from ``user_frames``, locals,
effects performed) with the model's expectation, then issues the next command of a script or of a
seeded random walk. A mismatch is recorded (and the model follows the engine from there), so one
run reports every difference, not only the first.
"""

from __future__ import annotations

import dataclasses
import random
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prodture.debug import engine as engine_module
from prodture.debug.contract import Command, Move, StopKind, StopPolicy
from prodture.replay import TracePerformer
from prodture.runtime import run_sync

LINE, EFFECT_FAILED, END = 0, 1, 2  # the kinds of events a forward run passes, in order at a step
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


@dataclasses.dataclass(frozen=True)
class State:
    """What a client sees at one place: where, how deep, the locals, effects performed."""

    line: int
    function: str
    depth: int
    locals: tuple[tuple[str, str], ...]
    effects: int

    def describe(self) -> str:
        return f"{self.function}:{self.line} depth {self.depth} effects {self.effects} locals {dict(self.locals)}"


def _locals(frame: Any) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in frame.f_locals.items():
        try:
            text = repr(value)
        except Exception as e:  # pragma: no cover - a repr that fails is shown as such
            text = f"<repr failed: {type(e).__name__}>"
        out.append((name, _ADDRESS.sub("", text)))
    return tuple(sorted(out))


def _depth(frame: Any, user_file: str) -> int:
    depth = 0
    while frame is not None:
        if frame.f_code.co_filename == user_file:
            depth += 1
        frame = frame.f_back
    return depth


def snapshot(frame: Any, user_file: str, effects: int) -> State:
    return State(
        frame.f_lineno, frame.f_code.co_name, _depth(frame, user_file), _locals(frame), effects
    )


@dataclasses.dataclass
class GroundTruth:
    states: list[State]  # step k (1-based) is states[k - 1]
    failed: dict[int, State]  # step -> the frame the recorded error was thrown into, there
    effect_steps: list[int]  # effect n (1-based) is yielded at step effect_steps[n - 1]
    end: State  # at the handler's last return (the end-of-replay stop)
    error: tuple[str, str] | None  # the uncaught exception (type name, message), or None
    condition_true: dict[tuple[int, str], set[int]]  # (line, condition) -> steps where true

    @property
    def last(self) -> int:
        return len(self.states)


def ground_truth(
    trace: Any, fn: Callable[..., Any], user_file: str, conditions: Iterable[tuple[int, str]] = ()
) -> GroundTruth:
    """Replay ``fn`` headless under ``sys.settrace`` and record every line event of ``user_file``."""
    states: list[State] = []
    failed: dict[int, State] = {}
    effect_steps: list[int] = []
    condition_true: dict[tuple[int, str], set[int]] = {c: set() for c in conditions}
    by_line: dict[int, list[str]] = {}
    for line, condition in condition_true:
        by_line.setdefault(line, []).append(condition)
    effects = 0
    thrown: Any = None  # the recorded error of the effect just performed, until a frame gets it
    end: State | None = None

    def observer(call: Any, record: Any) -> None:
        nonlocal effects, thrown
        effects = call.seq
        effect_steps.append(len(states))
        thrown = record.error if record is not None and not record.ok else None

    def receives_thrown(frame: Any) -> bool:
        """A Command's ``on_error`` called with the recorded error (a Command / ``pipeline``
        handler gets the error as an argument, not thrown into a frame)."""
        code = frame.f_code
        values = frame.f_locals
        return any(values.get(name) is thrown for name in code.co_varnames[: code.co_argcount])

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal thrown, end
        if event == "call":
            if thrown is not None and receives_thrown(frame):
                failed[len(states)] = snapshot(frame, user_file, effects)
                thrown = None
        elif event == "line":
            states.append(snapshot(frame, user_file, effects))
            for condition in by_line.get(frame.f_lineno, ()):
                try:
                    if eval(condition, frame.f_globals, frame.f_locals):
                        condition_true[(frame.f_lineno, condition)].add(len(states))
                except Exception:
                    pass
        elif event == "exception":
            if thrown is not None and arg[1] is thrown:
                failed[len(states)] = snapshot(frame, user_file, effects)
                thrown = None
        elif event == "return" and _depth(frame, user_file) == 1:
            end = snapshot(frame, user_file, effects)
        return local

    def global_(frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != user_file:
            return None
        return local(
            frame, event, arg
        )  # the call event: a Command's on_error may receive the error

    performer = TracePerformer(trace, observer=observer)
    sys.settrace(global_)
    try:
        outcome = run_sync(fn, trace.input, performer)
    finally:
        sys.settrace(None)
    assert performer.finish(outcome) is None, "the oracle's own replay diverged"
    assert end is not None and states
    error = None if outcome.ok else (type(outcome.error).__name__, str(outcome.error))
    return GroundTruth(states, failed, effect_steps, end, error, condition_true)


# -- the reference model ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Expected:
    kind: str  # entry | step | breakpoint | goto | effect_failed | end
    step: int
    event: int  # LINE | EFFECT_FAILED | END
    state: State


class Model:
    """Where each command must stop, computed from the ground truth alone."""

    def __init__(self, truth: GroundTruth) -> None:
        self.truth = truth
        events = [(k, LINE) for k in range(1, truth.last + 1)]
        events += [(k, EFFECT_FAILED) for k in truth.failed]
        events.append((truth.last, END))
        self.events = sorted(events)
        self.breakpoints: set[tuple[int, str | None]] = set()
        self.effect_failed_stops = True

    def state(self, step: int, event: int) -> State:
        if event == LINE:
            return self.truth.states[step - 1]
        if event == EFFECT_FAILED:
            return self.truth.failed[step]
        return self.truth.end

    def expect(self, kind: str, step: int, event: int = LINE) -> Expected:
        return Expected(kind, step, event, self.state(step, event))

    def _breakpoint_at(self, step: int) -> bool:
        line = self.truth.states[step - 1].line
        for bp_line, condition in self.breakpoints:
            if bp_line != line:
                continue
            if condition is None or step in self.truth.condition_true[(bp_line, condition)]:
                return True
        return False

    def forward(self, command: str, at: Expected) -> Expected:
        depth = at.state.depth
        stop_depth = {"next": depth, "stepIn": 1 << 30, "stepOut": depth - 1, "continue": -1}[
            command
        ]
        start = (at.step, at.event)
        import bisect

        for step, event in self.events[bisect.bisect_right(self.events, start) :]:
            if event == END:
                return self.expect("end", step, END)
            if event == EFFECT_FAILED:
                if self.effect_failed_stops:
                    return self.expect("effect_failed", step, EFFECT_FAILED)
                continue
            if self._breakpoint_at(step):
                return self.expect("breakpoint", step)
            if self.truth.states[step - 1].depth <= stop_depth:
                return self.expect("step", step)
        raise AssertionError("unreachable: the end event is last")

    def step_back(self, at: Expected) -> Expected:
        depth = at.state.depth
        for step in range(at.step - 1, 0, -1):
            if self.truth.states[step - 1].depth <= depth:
                return self.expect("step", step)
        return self.expect("step", 1)

    def reverse_continue(self, at: Expected) -> Expected:
        for step in range(at.step - 1, 0, -1):
            if self._breakpoint_at(step):
                return self.expect("breakpoint", step)
        return self.expect("entry", 1)

    def jump(self, effect: int) -> Expected:
        return self.expect("goto", self.truth.effect_steps[effect - 1])


# -- the engine side: what a stop shows, and how commands are given ----------------------------


_KINDS = {
    StopKind.ENTRY: "entry",
    StopKind.STEP: "step",
    StopKind.BREAKPOINT: "breakpoint",
    StopKind.GOTO: "goto",
    StopKind.EFFECT_FAILED: "effect_failed",
    StopKind.END: "end",
    StopKind.UNCAUGHT: "end",
}


def stop_kind(stop: Any) -> str:
    """The engine's stop, in the oracle's words (every end-of-replay stop is "end")."""
    return _KINDS.get(stop.kind, stop.kind.value)


def stop_error(stop: Any) -> tuple[str, str] | None:
    """The exception an end-of-replay stop reports (type name, message), or None."""
    if not stop.end or stop.exception is None:
        return None
    return stop.exception.type_name, stop.exception.message


def stop_state(engine: Any, stop: Any, user_file: str) -> State:
    frame = stop.frame
    depth = sum(1 for f in engine.user_frames(frame) if f.f_code.co_filename == user_file)
    return State(frame.f_lineno, frame.f_code.co_name, depth, _locals(frame), stop.effect)


def set_policy(engine: Any, effect_failed: bool) -> None:
    engine.set_policy(StopPolicy(effect_failed=effect_failed, uncaught=True))


def set_breakpoints(engine: Any, path: str, breakpoints: set[tuple[int, str | None]]) -> None:
    engine.set_breakpoints(
        path, [engine_module.Breakpoint(line, condition) for line, condition in sorted(breakpoints)]
    )


_COMMANDS = {
    "next": Command.NEXT,
    "stepIn": Command.STEP_IN,
    "stepOut": Command.STEP_OUT,
    "continue": Command.CONTINUE,
    "stepBack": Command.STEP_BACK,
    "reverseContinue": Command.REVERSE_CONTINUE,
    "jumpToEffect": Command.JUMP_TO_EFFECT,
    "terminate": Command.TERMINATE,
}


def command(name: str, arg: Any = None) -> Any:
    """The engine's Move for a command of a script (named as DAP requests are)."""
    return Move(_COMMANDS[name], arg)


# -- the driver ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Report:
    compared: int = 0
    mismatches: list[str] = dataclasses.field(default_factory=list)

    def add(self, other: Report) -> None:
        self.compared += other.compared
        self.mismatches += other.mismatches


Chooser = Callable[["Session", Expected], Any]


class Session:
    """One engine run checked stop by stop. ``chooser(session, at)`` returns the next command as
    ``(name, arg)``; ``("breakpoints", {(line, condition), …})`` changes breakpoints and is
    followed by another choice; ``("terminate", None)`` ends the run."""

    def __init__(
        self,
        name: str,
        trace: Any,
        fn: Callable[..., Any],
        truth: GroundTruth,
        user_file: str,
        chooser: Chooser,
        *,
        effect_failed: bool = True,
        max_stops: int = 200,
    ) -> None:
        self.name = name
        self.truth = truth
        self.model = Model(truth)
        self.model.effect_failed_stops = effect_failed
        self.user_file = user_file
        self.chooser = chooser
        self.max_stops = max_stops
        self.report = Report()
        self.warnings: list[str] = []
        self.expected: Expected | None = None
        self.stops = 0
        self.terminated = False
        self.engine = engine_module.StepEngine(
            trace, fn, self._present, stop_on_entry=True, warn=self.warnings.append
        )
        set_policy(self.engine, effect_failed)

    def run(self) -> Report:
        self.expected = self.model.expect("entry", 1)
        self.engine.run()
        if not self.terminated:
            self._mismatch(
                f"the engine ended the session while a stop was expected: {self.expected}"
            )
        for text in self.warnings:
            self._mismatch(f"engine warning: {text}")
        return self.report

    def _mismatch(self, text: str) -> None:
        self.report.mismatches.append(f"{self.name} stop {self.stops}: {text}")

    def _present(self, stop: Any) -> Any:
        self.stops += 1
        expected = self.expected
        assert expected is not None
        actual_state = stop_state(self.engine, stop, self.user_file)
        actual = (stop_kind(stop), stop.step, actual_state)
        self.report.compared += 1
        if actual != (expected.kind, expected.step, expected.state):
            self._mismatch(
                f"expected {expected.kind} at step {expected.step} ({expected.state.describe()}), "
                f"engine {actual[0]} at step {actual[1]} ({actual_state.describe()})"
            )
            # follow the engine from here so later commands are still checked
            event = {"end": END, "effect_failed": EFFECT_FAILED}.get(actual[0], LINE)
            if event == EFFECT_FAILED and stop.step not in self.truth.failed:
                event = LINE
            if 1 <= stop.step <= self.truth.last:
                expected = Expected(actual[0], stop.step, event, self.model.state(stop.step, event))
            else:
                return self._terminate()
        if expected.event == END and self.truth.error is not None:
            self.report.compared += 1
            if stop_error(stop) != self.truth.error:
                self._mismatch(
                    f"end-of-replay exception: expected {self.truth.error}, engine {stop_error(stop)} ({stop.text!r})"
                )
        if self.stops >= self.max_stops:
            return self._terminate()
        while True:
            name, arg = self.chooser(self, expected)
            if name != "breakpoints":
                break
            self.model.breakpoints = set(arg)
            set_breakpoints(self.engine, self.user_file, self.model.breakpoints)
        if name == "terminate":
            return self._terminate()
        if name in ("next", "stepIn", "stepOut", "continue"):
            if expected.event == END:
                return self._terminate()  # forward from the end: the replay is over
            self.expected = self.model.forward(name, expected)
        elif name == "stepBack":
            self.expected = self.model.step_back(expected)
        elif name == "reverseContinue":
            self.expected = self.model.reverse_continue(expected)
        elif name == "jumpToEffect":
            self.expected = self.model.jump(arg)
        else:
            raise AssertionError(f"unknown command {name}")
        return command(name, arg)

    def _terminate(self) -> Any:
        self.terminated = True
        return command("terminate")


def scripted(commands: list[Any]) -> Chooser:
    """A chooser that plays ``commands`` (names or (name, arg) pairs), then terminates."""
    queue = list(commands)

    def choose(session: Session, at: Expected) -> Any:
        if not queue:
            return ("terminate", None)
        item = queue.pop(0)
        return item if isinstance(item, tuple) else (item, None)

    return choose


def walk_through(then: list[Any] | None = None) -> Chooser:
    """stepIn over every step to the end (every state compared once), then ``then``."""
    after = scripted(then or [])

    def choose(session: Session, at: Expected) -> Any:
        if at.event != END and not getattr(session, "_walked", False):
            return ("stepIn", None)
        session._walked = True  # type: ignore[attr-defined]
        return after(session, at)

    return choose


def random_walk(seed: int, breakpoint_menu: Sequence[tuple[int, str | None]]) -> Chooser:
    """A seeded random walk over every command, breakpoint changes included."""
    rng = random.Random(seed)

    def choose(session: Session, at: Expected) -> Any:
        effects = len(session.truth.effect_steps)
        backward = ["stepBack", "stepBack", "reverseContinue", "jump", "breakpoints"]
        forward = ["next", "next", "stepIn", "stepIn", "stepOut", "continue", "continue"]
        choice = rng.choice(backward if at.event == END else forward + backward)
        if choice == "jump":
            return ("jumpToEffect", rng.randint(1, effects)) if effects else ("stepBack", None)
        if choice == "breakpoints":
            count = rng.randint(0, min(3, len(breakpoint_menu)))
            return ("breakpoints", set(rng.sample(breakpoint_menu, count)))
        return (choice, None)

    return choose
