"""The step engine's tracers: which code objects are user code, and the per-line tracer.

:class:`CodeRegistry` decides once per code object whether it is user code (``codefilter``) and
gives each user code object an index: a step's location is ``index << LINE_BITS | line``. Depth
is counted on the frame chain down to the handler's caller (``base_frame``), never by pairing
call / return events: a value or error thrown into a delegating chain (``yield from``, ``await``)
resumes frames without a call event.

:func:`make_local` is the tracer that runs on every line of user code. It reads only plain
attributes of the engine and locals bound when it is made, and calls the engine (``_on_line``)
only when the line may stop: every cost added here is paid per traced line.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..codefilter import UserCode
from .history import LINE_BITS, StepHistory
from .runmode import NO_END_STOP

if TYPE_CHECKING:
    from .engine import StepEngine

__all__ = ["CodeRegistry", "make_local", "make_global", "norm_path"]

Tracer = Callable[[Any, str, Any], Any]


def norm_path(path: str) -> str:
    """The one spelling of a file's path that breakpoints and code objects are matched on."""
    return os.path.normcase(os.path.realpath(path))


class CodeRegistry:
    """User code objects seen so far: their local tracer (None: not user code) and, by index,
    their code, normalized file and lines."""

    def __init__(
        self,
        user_code: UserCode,
        make_tracer: Callable[[int], Tracer],
        on_new: Callable[[int], None],
    ) -> None:
        self.user_code = user_code
        self._make_tracer = make_tracer
        self._on_new = on_new  # a new user code object got index i (its breakpoints apply now)
        self.tracers: dict[Any, Tracer | None] = {}
        self.codes: list[Any] = []
        self.files: list[str] = []
        self.lines: list[frozenset[int]] = []
        self.base_frame: Any = None  # the handler's caller: frames at or below it are not user code

    def register(self, code: Any) -> Tracer | None:
        """The local tracer of ``code`` (creating it), or None when it is not user code."""
        if not self.user_code.is_user_code(code.co_filename):
            self.tracers[code] = None
            return None
        index = len(self.codes)
        self.codes.append(code)
        self.files.append(norm_path(code.co_filename))
        self.lines.append(frozenset(line for _, _, line in code.co_lines() if line is not None))
        local = self._make_tracer(index)
        self.tracers[code] = local
        self._on_new(index)
        return local

    def tracer_of(self, code: Any) -> Tracer | None:
        try:
            return self.tracers[code]
        except KeyError:
            return self.register(code)

    def index(self, code: Any) -> int:
        return self.codes.index(code) if self.tracer_of(code) is not None else -1

    def chain_depth(self, frame: Any) -> int:
        """How many user frames the chain holds from ``frame`` down to the handler's caller."""
        tracers = self.tracers
        base = self.base_frame
        depth = 0
        while frame is not None and frame is not base:
            code = frame.f_code
            try:
                if tracers[code] is not None:
                    depth += 1
            except KeyError:
                if self.register(code) is not None:
                    depth += 1
            frame = frame.f_back
        return depth

    def user_chain(self, frame: Any) -> list[tuple[Any, Tracer]]:
        """The user frames from ``frame`` down to the handler's caller, with their tracers."""
        out = []
        while frame is not None and frame is not self.base_frame:
            local = self.tracer_of(frame.f_code)
            if local is not None:
                out.append((frame, local))
            frame = frame.f_back
        return out

    def user_frames(self, frame: Any) -> list[Any]:
        """The user frames from ``frame`` down (code objects not seen yet are not counted)."""
        out = []
        while frame is not None and frame is not self.base_frame:
            if self.tracers.get(frame.f_code) is not None:
                out.append(frame)
            frame = frame.f_back
        return out


def make_global(engine: StepEngine, registry: CodeRegistry) -> Tracer:
    """The tracer of call events: a user frame gets its code's local tracer, and the depth."""
    tracers = registry.tracers
    register = registry.register
    chain_depth = registry.chain_depth
    effect_stops = engine.effect_stops

    def global_tracer(frame: Any, event: str, arg: Any) -> Any:
        code = frame.f_code
        try:
            local = tracers[code]
        except KeyError:
            local = register(code)
        if local is None:
            return None
        engine.depth = chain_depth(frame)
        if effect_stops.pending is not None:
            engine._on_resume(frame)
        return local

    return global_tracer


def make_local(engine: StepEngine, history: StepHistory, index: int) -> Tracer:
    """The local tracer of the user code object ``index``: counts and records each line as a
    step, and hands the line to the engine only when it may stop there (the stop depth, a
    breakpoint's location, the step a quiet re-run checks for)."""
    base = index << LINE_BITS
    hist_loc = history.locs
    hist_depth = history.depths

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
                and engine.run_mode not in NO_END_STOP
            ):
                # before the depth drops: the frame is still there
                engine._on_root_return(frame, arg)
            engine.depth -= 1
        elif event == "exception":
            engine.depth = engine._chain_depth(frame)
            engine._on_exception(frame, arg)
        return local

    return local
