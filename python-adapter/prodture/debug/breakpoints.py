"""Breakpoints of the step engine: conditions, hit counts and log points.

The engine keeps them by location (``code index << 24 | line``) and asks ``fires(frame, step)``
only on a line that has one; the per-line tracer itself reads nothing here.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from .contract import ExceptionInfo

__all__ = ["Breakpoint", "hit_matches"]


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
