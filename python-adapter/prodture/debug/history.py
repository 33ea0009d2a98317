"""The step history of the step engine, and what is answered from it without a re-run.

Every line event in user code is a *step*; the history keeps, per step, its location
(``code index << LINE_BITS | line``) and its user-call depth, and the step at which each effect
was yielded. Arrays of machine integers: a 10M-step replay keeps 120 MB, not gigabytes of tuples,
and searches run at C speed. The per-line tracer appends to ``locs`` and ``depths`` directly
(bound once, see ``tracer.py``), so these arrays are never replaced, only cut and extended.

Answered from it: the target of a step back, where a fast-forward to a seen step stops watching
and counting, the hits of a location before a step (hit conditions), and the earlier steps of a
location (reverse continue, ``reverse.py``).
"""

from __future__ import annotations

import bisect
from array import array

__all__ = ["StepHistory", "LINE_BITS", "LINE_MASK", "last_index", "steps_of"]

LINE_BITS = 24
LINE_MASK = (1 << LINE_BITS) - 1


class StepHistory:
    """Step *i* (1-based) is entry *i - 1* of ``locs`` and ``depths``; ``effect_steps[n - 1]``
    is the step at which effect *n* was yielded (kept across re-runs: replay is deterministic)."""

    __slots__ = ("locs", "depths", "effect_steps")

    def __init__(self) -> None:
        self.locs = array("q")
        self.depths = array("i")
        self.effect_steps = array("q")

    def __len__(self) -> int:
        return len(self.locs)

    def clear(self) -> None:
        """Forget the steps (a full re-run from the start records them again)."""
        del self.locs[:]
        del self.depths[:]

    def truncate(self, k: int) -> None:
        """Keep steps 1 .. k: a fast-forward arrived at step k records from there."""
        del self.locs[k:]
        del self.depths[k:]

    def adopt(
        self, step: int, locs: array, depths: array, seq: int, effect_steps: list[int]
    ) -> None:
        """Take what a restored checkpoint was sent: the steps after ``step`` and the steps of
        the effects from ``seq`` on."""
        del self.locs[step:]
        self.locs.extend(locs)
        del self.depths[step:]
        self.depths.extend(depths)
        del self.effect_steps[seq - 1 :]
        self.effect_steps.extend(effect_steps)

    def step_back_target(self, step: int, depth: int) -> int:
        """The latest step before ``step`` at call depth ``depth`` or an outer one (else 1)."""
        depths = self.depths
        j = step - 1
        while j >= 1:
            if depths[j - 1] <= depth:
                return j
            j -= 1
        return 1

    def watch_start_effect(self, k: int) -> int:
        """The effect after which a re-run to step ``k`` starts watching (0: from the start):
        the last one yielded before step k."""
        return bisect.bisect_left(self.effect_steps, k)

    def fast_forward_target(self, k: int) -> tuple[int, int, int]:
        """(location of step ``k``, the effect a re-run starts watching after, which line
        event of that location since that effect step k is): what a fast-forward counts."""
        loc = self.locs[k - 1]
        checkpoint = self.watch_start_effect(k)
        first = self.effect_steps[checkpoint - 1] if checkpoint else 0
        return loc, checkpoint, self.locs[first:k].count(loc)

    def hits_before(self, loc: int, k: int) -> int:
        """How many of steps 1 .. k are at ``loc`` (a hit count, re-established on arrival)."""
        return self.locs[:k].count(loc)

    def code_index_max(self, start: int, end: int) -> int:
        """The highest code-object index in steps ``start+1 .. end``."""
        return max(self.locs[start:end], default=0) >> LINE_BITS


def last_index(values: array, value: int) -> int:
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


def steps_of(values: array, value: int) -> list[int]:
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
