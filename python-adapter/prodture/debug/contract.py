"""The step engine's own vocabulary: what it is told and what it reports. No DAP in here.

The engine (:mod:`prodture.debug.engine`) takes :class:`Move` commands and a :class:`StopPolicy`,
and hands each stop to its presenter as a :class:`Stop` with structured data (an exception's type
name and message apart, the effect record itself, the divergence object). Turning that into a
protocol — DAP reasons, filter ids, camelCase bodies, sentences for the user — is the runner's
job (:mod:`prodture.debug.runner`), as ``mockDebug.ts`` translates for ``mockRuntime.ts`` in
vscode-mock-debug, and as rr's ``ReplayTimeline`` takes ``RunCommand`` / ``RunDirection``.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

__all__ = [
    "Command",
    "Direction",
    "Move",
    "StopKind",
    "StopPolicy",
    "ExceptionInfo",
    "Stop",
    "Position",
    "ReplayView",
]


class Direction(enum.Enum):
    FORWARD = "forward"
    BACKWARD = "backward"


class Command(enum.Enum):
    """How the replay moves on from a stop."""

    NEXT = "next"  # to the next step at this call depth or an outer one
    STEP_IN = "step in"  # to the next step
    STEP_OUT = "step out"  # to the next step at an outer call depth
    CONTINUE = "continue"  # to the next stop the policy or a breakpoint asks for
    STEP_BACK = "step back"  # to the previous step at this call depth or an outer one
    REVERSE_CONTINUE = "reverse continue"  # to the latest earlier breakpoint hit, or the start
    JUMP_TO_EFFECT = "jump to effect"  # to the line that yields effect N, stopping nowhere else
    TERMINATE = "terminate"  # end the replay

    @property
    def direction(self) -> Direction:
        backward = (Command.STEP_BACK, Command.REVERSE_CONTINUE)
        return Direction.BACKWARD if self in backward else Direction.FORWARD


@dataclasses.dataclass(frozen=True)
class Move:
    """A presenter's answer: the command, and for JUMP_TO_EFFECT the effect number (from 1)."""

    command: Command
    effect: int | None = None


class StopKind(enum.Enum):
    ENTRY = "entry"  # the first step (stop on entry; a reverse continue that found no hit)
    STEP = "step"  # a step command arrived
    BREAKPOINT = "breakpoint"  # a breakpoint fired (condition_error: its condition raised)
    PAUSE = "pause"  # a pause request arrived
    GOTO = "goto"  # a jump to an effect arrived: the line that yields it, not performed yet
    EFFECT_PERFORMED = "effect performed"  # the handler received an effect's recorded result
    EFFECT_FAILED = "effect failed"  # an effect's recorded error is thrown into the handler
    RAISED = "raised"  # the handler's code raised an exception
    DIVERGENCE = "divergence"  # the code no longer does what the recording says
    UNCAUGHT = "uncaught"  # end of replay: an exception leaves the handler
    END = "end"  # end of replay: the handler returns (or raises, uncaught stops off)


@dataclasses.dataclass(frozen=True)
class StopPolicy:
    """Which events stop the replay besides steps and breakpoints."""

    effect_failed: bool = True
    every_effect: bool = False
    raised: bool = False
    uncaught: bool = True

    @property
    def effect_stops(self) -> bool:
        return self.effect_failed or self.every_effect


@dataclasses.dataclass(frozen=True)
class ExceptionInfo:
    type_name: str
    message: str

    @classmethod
    def of(cls, error: BaseException) -> ExceptionInfo:
        from ..trace.format import describe_error

        name = (getattr(error, "type_name", None) or type(error).__name__).rsplit(".", 1)[-1]
        text = describe_error(error)  # "Name: message", or "Name" alone
        return cls(name, text[len(name) + 2 :] if text.startswith(name + ": ") else "")


@dataclasses.dataclass
class Stop:
    """One presented stop. ``frame`` is the user frame to show; ``step`` the step index;
    ``effect`` how many effects were performed. ``end`` marks the end-of-replay stop (kinds END,
    UNCAUGHT, DIVERGENCE). ``exception``: the effect's recorded error (EFFECT_FAILED), the raised
    exception (RAISED), the handler's (UNCAUGHT, or END when uncaught stops are off).
    ``record``: the effect's record (EFFECT_PERFORMED / EFFECT_FAILED; None for a speculative one,
    then ``effect_seq``/``effect_type`` say which). ``divergence``: the replayer's Divergence.
    ``condition_error``: the breakpoint condition's error, when it failed to evaluate.
    ``outcome``: at an end stop, the Success or Failure this run ends with (None if unknown)."""

    kind: StopKind
    step: int
    effect: int
    frame: Any
    end: bool = False
    exception: ExceptionInfo | None = None
    record: Any = None
    effect_seq: int | None = None
    effect_type: str | None = None
    divergence: Any = None
    condition_error: ExceptionInfo | None = None
    outcome: Any = None


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a stop is in the replay. ``next_effect``: seq of the next recorded effect, None when
    all are performed."""

    step: int
    effect: int
    effect_count: int
    path: str | None
    line: int | None
    next_effect: int | None
    end: bool


@dataclasses.dataclass(frozen=True)
class ReplayView:
    """What the replay looks like at a stop: records, not renderings (the runner renders)."""

    step: int
    effect: int
    effect_count: int
    mode: str
    last: Any  # EffectRecord of the last performed effect, None before the first
    speculative_last: bool  # the last effect went past the recording (answered by a stub)
    next: Any  # EffectRecord of the next recorded effect, None when all are performed
    outcome: Any  # the recorded OutcomeRecord, None for an incomplete recording
    divergence: Any  # the Divergence found so far, or None
