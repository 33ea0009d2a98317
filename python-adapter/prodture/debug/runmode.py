"""How one run of the handler under the step engine goes: what it is for (:class:`RunMode`) and
the two exceptions that end it early (:class:`Rewind`, :class:`Terminate`).

Apart from the engine so that the modules that plan a re-run (``history.py``, ``reverse.py``)
can name their answer without importing the engine.
"""

from __future__ import annotations

import enum
from typing import Any

from .contract import StopKind

__all__ = ["RunMode", "Rewind", "Terminate", "NEVER", "NO_END_STOP", "HISTORY_MODES"]

NEVER = 1 << 62  # a step number never reached


class RunMode(enum.Enum):
    """What a run of the handler is for."""

    RUN = "run"  # stepping as commanded: every stop may happen
    FAST_FORWARD = "fast-forward"  # re-run to a seen step, only its code watched (no stops)
    QUIET = "quiet"  # full tracing, no stop until check_step (an unseen step) or a jump's effect
    SCAN = "scan"  # full tracing to scan_until, noting the last breakpoint hit (reverse continue)


# no end-of-replay or divergence stop while fast-forwarding or scanning: they stop elsewhere
NO_END_STOP = frozenset((RunMode.FAST_FORWARD, RunMode.SCAN))
# runs that record the history as they go: fork checkpoints are taken in them
HISTORY_MODES = frozenset((RunMode.RUN, RunMode.QUIET))


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
