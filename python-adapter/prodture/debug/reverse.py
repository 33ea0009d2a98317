"""Reverse continue: the latest earlier step where a breakpoint fires.

Answered from the step history (``history.py``) where it can be: a breakpoint without a condition
fires at its last earlier hit, and a condition fires where its recorded result says so (replay is
deterministic; ``Breakpoint.results``). Only the conditions not yet evaluated at an earlier hit
that matters need a re-run, and that re-run watches only their lines, as a fast-forward does
(:func:`narrow_scan_watch`); hit counts need every hit from the start, so the engine's general
scan (a fully traced re-run) serves them. Kept apart from the engine so that the per-line path
stays free of it: none of this runs before the user asks to go back.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from typing import Any

from .breakpoints import Breakpoint
from .contract import StopKind
from .fastforward import Watch, entry_line
from .history import LINE_BITS, LINE_MASK, StepHistory, last_index, steps_of
from .runmode import Rewind

__all__ = ["reverse_target", "narrow_scan_watch"]


def reverse_target(history: StepHistory, by_loc: Mapping[int, Breakpoint], current: int) -> Rewind:
    """Where a reverse continue from step ``current`` goes: a step (or the start), or a scan.

    ``by_loc`` maps locations to their breakpoints (log points never stop). The scan is narrowed
    (``scan_hits``: the earlier hits of each location whose condition is still to evaluate, after
    ``scan_floor``, the latest step known to fire) unless a hit condition needs the general one.
    """
    stops = [(loc, bp) for loc, bp in by_loc.items() if bp.log_message is None]
    if not stops:
        return Rewind(1, StopKind.ENTRY)
    if any(bp.hit_condition for _, bp in stops):
        # hit counts need every hit from the start: the general scan
        return Rewind(0, StopKind.BREAKPOINT, scan_until=current)
    earlier = history.locs[: max(0, current - 1)]  # steps 1 .. current-1
    best = max((last_index(earlier, loc) + 1 for loc, bp in stops if not bp.condition), default=0)
    to_evaluate: dict[int, list[int]] = {}
    for loc, bp in stops:
        if not bp.condition:
            continue
        steps = steps_of(earlier, loc)
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
            0, StopKind.BREAKPOINT, scan_until=current, scan_floor=best, scan_hits=to_evaluate
        )
    return Rewind(best, StopKind.BREAKPOINT) if best else Rewind(1, StopKind.ENTRY)


def narrow_scan_watch(
    target: Rewind,
    by_loc: Mapping[int, Breakpoint],
    codes: list[Any],
    finish: Callable[[Rewind], BaseException],
) -> tuple[Watch, bool]:
    """The lines a narrowed scan watches (for a fast-forward strategy's ``scan``), and whether
    one of them is its code's entry line (see :func:`.fastforward.entry_line`).

    Each condition is evaluated at its earlier hits after ``target.scan_floor``; once the last
    of them is visited the scan ends by raising ``finish(Rewind(...))`` to the latest true one
    (or the floor, or the start)."""
    plan = target.scan_hits or {}
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
                raise finish(Rewind(best or 1, kind))

        return visit

    watch: Watch = {}
    on_entry_line = False
    for loc, steps in plan.items():
        code = codes[loc >> LINE_BITS]
        line = loc & LINE_MASK
        watch.setdefault(code, {})[line] = visitor(by_loc[loc], steps)
        on_entry_line = on_entry_line or line == entry_line(code)
    return watch, on_entry_line
