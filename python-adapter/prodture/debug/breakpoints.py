"""Breakpoints of the step engine: conditions, hit counts and log points.

The engine keeps them by location (``code index << 24 | line``, :class:`BreakpointTable`) and
asks ``fires(frame, step)`` only on a line that has one; the per-line tracer itself reads nothing
here but the engine's ``bp_locs``, a frozen set of those locations.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from .contract import ExceptionInfo
from .history import LINE_BITS, StepHistory

__all__ = ["Breakpoint", "BreakpointTable", "hit_matches"]


@dataclasses.dataclass
class Breakpoint:
    line: int
    condition: str | None = None
    hit_condition: str | None = None
    log_message: str | None = None
    hits: int = 0
    # the condition compiled once (None: not yet; the text itself when it does not compile, so
    # the error shows at the hit, as pydevd does)
    compiled: Any = dataclasses.field(default=None, repr=False, compare=False)
    # condition results by step (replay is deterministic): a reverse continue needs no re-run
    # to evaluate them at steps already evaluated
    results: dict[int, bool] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def condition_code(self) -> Any:
        if self.compiled is None and self.condition:
            try:
                self.compiled = compile(self.condition, "<breakpoint condition>", "eval")
            except SyntaxError:
                self.compiled = self.condition
        return self.compiled

    def fires(self, frame: Any, step: int) -> bool | ExceptionInfo:
        """Whether it fires in ``frame`` at ``step`` (counting its hits); the error when its
        condition failed to evaluate (pydevd also stops then, with the error)."""
        if self.condition:
            try:
                true = bool(eval(self.condition_code(), frame.f_globals, frame.f_locals))
            except Exception as e:
                self.hits += 1
                return ExceptionInfo.of(e)
            self.results[step] = true
            if not true:
                return False
        self.hits += 1
        if self.hit_condition:
            return hit_matches(self.hit_condition, self.hits)
        return True

    def log_text(self, frame: Any) -> str:
        """A log point's message with each ``{expression}`` evaluated in ``frame``."""

        def value(m: re.Match[str]) -> str:
            try:
                return str(eval(m.group(1), frame.f_globals, frame.f_locals))
            except Exception as e:
                return f"<{type(e).__name__}: {e}>"

        return re.sub(r"\{([^{}]+)\}", value, self.log_message or "")


class BreakpointTable:
    """The session's breakpoints as the client set them (by normalized file and line), and the
    same breakpoints by location in the code objects seen so far (``by_loc``)."""

    def __init__(self) -> None:
        self.by_file: dict[str, dict[int, Breakpoint]] = {}
        self.by_loc: dict[int, Breakpoint] = {}

    def set_file(self, path: str, bps: list[Breakpoint]) -> None:
        """Replace the breakpoints of ``path`` (normalized); :meth:`locate` applies them."""
        self.by_file[path] = {bp.line: bp for bp in bps}

    def locate(self, files: list[str], lines: list[frozenset[int]]) -> None:
        """Map the breakpoints to the locations of the code objects ``files[i]`` / ``lines[i]``
        (a breakpoint on a line no code object has stays unlocated, as pydevd does)."""
        by_loc: dict[int, Breakpoint] = {}
        for index, path in enumerate(files):
            file_bps = self.by_file.get(path)
            if not file_bps:
                continue
            code_lines = lines[index]
            for line, bp in file_bps.items():
                if line in code_lines:
                    by_loc[(index << LINE_BITS) | line] = bp
        self.by_loc = by_loc

    def reset_hits(self) -> None:
        """A run from the start counts hits from zero."""
        for bp in self.by_loc.values():
            bp.hits = 0

    def recount_hits(self, history: StepHistory, k: int) -> None:
        """Hit counts as they were at step ``k`` (a fast-forward counted none on the way)."""
        for loc, bp in self.by_loc.items():
            if bp.hit_condition:
                bp.hits = history.hits_before(loc, k)

    def specs(self) -> dict[str, list[list[Any]]]:
        """Every breakpoint as ``[line, condition, hit_condition, log_message]`` by file: what a
        restored fork checkpoint is sent, and rebuilds with ``Breakpoint(*spec)``."""
        return {
            path: [[b.line, b.condition, b.hit_condition, b.log_message] for b in bps.values()]
            for path, bps in self.by_file.items()
        }


def hit_matches(condition: str, hits: int) -> bool:
    """VS Code / debugpy hit conditions: ``N``, ``== N``, ``>= N``, ``> N``, ``% N``…

    A plain ``N`` means ``== N``, as in debugpy (pydevd ``_get_hit_condition_expression``)."""
    text = condition.strip()
    m = re.fullmatch(r"(==|>=|<=|>|<|%)?\s*(\d+)", text)
    if not m:
        return True
    op, n = m.group(1) or "==", int(m.group(2))
    if op == "%":
        return n > 0 and hits % n == 0
    return {"==": hits == n, ">=": hits >= n, "<=": hits <= n, ">": hits > n, "<": hits < n}[op]
