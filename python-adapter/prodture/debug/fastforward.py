"""Fast-forward: re-run the handler to the n-th line event on one line of one code object, with
only that code object watched, then hand the frame to the engine (``arrive(frame)``).

Two strategies behind one interface (``prepare(code, line, nth, arrive) -> install(driver)``,
``stop()``, ``close()``): ``sys.settrace`` with a local tracer on that code alone, and, on 3.12+,
``sys.monitoring`` LINE / JUMP events on that code alone (every other line DISABLEd). Both count
what the legacy tracer that recorded the engine's history reports as line events there.
``install(driver)`` starts watching; ``driver`` is the runtime's driver frame at an effect
checkpoint (its ``gen`` is the handler's generator), or None at the start of the run.
"""

from __future__ import annotations

import bisect
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = [
    "SettraceFastForward",
    "MonitoringFastForward",
    "FastForwards",
    "MONITORING",
    "entry_line",
    "suspended_frames",
]

MONITORING = sys.version_info >= (3, 12)

Arrive = Callable[[Any], Any]  # arrive(frame) -> the frame's tracer from now on (or None)
# a scan's code objects -> {line: visit}; visit(frame) at each line event on that line
Watch = dict[Any, dict[int, Callable[[Any], None]]]
Install = Callable[[Any], None]


class SettraceFastForward:
    def __init__(self, settrace: Callable[[Any], None]) -> None:
        self._settrace = settrace

    def prepare(self, code: Any, line: int, nth: int, arrive: Arrive) -> Install:
        seen = 0

        def ff_local(frame: Any, event: str, arg: Any) -> Any:
            nonlocal seen
            if event == "line" and frame.f_lineno == line:
                seen += 1
                if seen == nth:
                    return arrive(frame)
            return ff_local

        def ff_global(frame: Any, event: str, arg: Any) -> Any:
            return ff_local if frame.f_code is code else None

        def install(driver: Any) -> None:
            # frames of `code` suspended in the handler's generator chain may resume without a
            # call event (an error thrown into a `yield from` / `await` chain): trace them now
            for frame in suspended_frames(driver):
                if frame.f_code is code:
                    frame.f_trace = ff_local
                    frame.f_trace_lines = True
            self._settrace(ff_global)

        return install

    def scan(self, watch: Watch) -> None:
        """From the start of a run, call ``watch[code][line](frame)`` at every line event on a
        watched line of a watched code object (and nowhere else); a visit ends the scan by
        raising."""

        def tracer_of(visits: dict[int, Callable[[Any], None]]) -> Any:
            def scan_local(frame: Any, event: str, arg: Any) -> Any:
                if event == "line":
                    visit = visits.get(frame.f_lineno)
                    if visit is not None:
                        visit(frame)
                return scan_local

            return scan_local

        tracers = {code: tracer_of(visits) for code, visits in watch.items()}
        self._settrace(lambda frame, event, arg: tracers.get(frame.f_code))

    def stop(self) -> None:
        pass  # the engine turns sys.settrace off itself

    def close(self) -> None:
        pass


def _on_resume(code: Any, offset: int) -> None:
    """PY_RESUME is watched for its side effect alone (see :class:`MonitoringFastForward`)."""


class MonitoringFastForward:
    """The 3.12+ strategy. Counts a LINE event on the line, or a backward jump that stays on the
    line (the legacy tracer turns those into line events; LINE does not fire for them).

    The watched code also gets PY_RESUME events, as under the legacy tracer, which always has
    them: CPython does not report a LINE event on an instruction of the line it was reached from
    unless that instruction is RESUME or INSTRUMENTED_RESUME. A frame suspended in a `yield from`
    / `await` that a thrown error resumes enters CLEANUP_THROW, on that line, straight from its
    RESUME; on 3.13 an uninstrumented RESUME is specialized to RESUME_CHECK after its first run,
    so without PY_RESUME that line event (which the legacy tracer reports) never comes.
    """

    def __init__(self) -> None:
        self._tool: int | None = None
        self._monitored: Any = None  # the code object being watched (fast-forward)
        self._scanned: tuple[Any, ...] = ()  # the code objects being watched (scan)

    def available(self) -> bool:
        """Takes our tool id on first use; False when every id is taken (coverage, profilers):
        the settrace strategy works then too."""
        if self._tool is None:
            mon = sys.monitoring  # type: ignore[attr-defined]  # 3.12+ only; mypy checks as 3.10
            for tool in (4, 3, 5, 2, 1):  # 0 (debugger) is pydevd's
                if mon.get_tool(tool) is None:
                    mon.use_tool_id(tool, "prodture fast-forward")
                    self._tool = tool
                    break
        return self._tool is not None

    def prepare(self, code: Any, line: int, nth: int, arrive: Arrive) -> Install:
        mon = sys.monitoring  # type: ignore[attr-defined]  # 3.12+ only; mypy checks as 3.10
        events = mon.events
        disable = mon.DISABLE
        tool = self._tool
        seen = 0
        starts = [start for start, _, _ in code.co_lines()]
        lines = [ln for _, _, ln in code.co_lines()]

        def line_of(offset: int) -> Any:
            return lines[bisect.bisect_right(starts, offset) - 1]

        def reached() -> None:
            mon.set_local_events(tool, code, 0)
            self._monitored = None
            arrive(sys._getframe(2))  # 0: reached, 1: the callback, 2: the watched frame

        def on_line(c: Any, lineno: int) -> Any:
            nonlocal seen
            if c is not code or lineno != line:
                return disable
            seen += 1
            if seen == nth:
                reached()
            return None

        def on_jump(c: Any, source: int, destination: int) -> Any:
            nonlocal seen
            if (
                c is not code
                or destination >= source
                or line_of(destination) != line
                or line_of(source) != line
            ):
                return disable  # a jump's ends never change: never ask again for this one
            seen += 1
            if seen == nth:
                reached()
            return None

        def install(driver: Any) -> None:
            mon.restart_events()  # lines DISABLEd by an earlier fast-forward count again
            mon.register_callback(tool, events.LINE, on_line)
            mon.register_callback(tool, events.JUMP, on_jump)
            mon.register_callback(tool, events.PY_RESUME, _on_resume)
            self._monitored = code
            mon.set_local_events(tool, code, events.LINE | events.JUMP | events.PY_RESUME)

        return install

    def scan(self, watch: Watch) -> None:
        """As :meth:`SettraceFastForward.scan`, with LINE / JUMP events on the watched code
        objects alone."""
        mon = sys.monitoring  # type: ignore[attr-defined]  # 3.12+ only; mypy checks as 3.10
        events = mon.events
        disable = mon.DISABLE
        line_tables = {
            code: ([start for start, _, _ in code.co_lines()], [ln for _, _, ln in code.co_lines()])
            for code in watch
        }

        def on_line(c: Any, lineno: int) -> Any:
            visits = watch.get(c)
            visit = visits.get(lineno) if visits is not None else None
            if visit is None:
                return disable
            visit(sys._getframe(1))
            return None

        def on_jump(c: Any, source: int, destination: int) -> Any:
            visits = watch.get(c)
            if visits is None or destination >= source:
                return disable
            starts, numbers = line_tables[c]
            line = numbers[bisect.bisect_right(starts, source) - 1]
            visit = visits.get(line)
            if visit is None or numbers[bisect.bisect_right(starts, destination) - 1] != line:
                return disable  # a jump's ends never change: never ask again for this one
            visit(sys._getframe(1))
            return None

        mon.restart_events()
        mon.register_callback(self._tool, events.LINE, on_line)
        mon.register_callback(self._tool, events.JUMP, on_jump)
        mon.register_callback(self._tool, events.PY_RESUME, _on_resume)
        self._scanned = tuple(watch)
        for code in watch:
            mon.set_local_events(self._tool, code, events.LINE | events.JUMP | events.PY_RESUME)

    def stop(self) -> None:
        if self._monitored is not None:
            sys.monitoring.set_local_events(self._tool, self._monitored, 0)  # type: ignore[attr-defined]  # 3.12+ only
            self._monitored = None
        for code in self._scanned:
            sys.monitoring.set_local_events(self._tool, code, 0)  # type: ignore[attr-defined]  # 3.12+ only
        self._scanned = ()

    def close(self) -> None:
        """Frees the tool id (the engine's run is over)."""
        if self._tool is not None:
            self.stop()
            mon = sys.monitoring  # type: ignore[attr-defined]  # 3.12+ only; mypy checks as 3.10
            for event in (mon.events.LINE, mon.events.JUMP, mon.events.PY_RESUME):
                mon.register_callback(self._tool, event, None)
            mon.free_tool_id(self._tool)
            self._tool = None


def suspended_frames(driver: Any) -> Iterator[Any]:
    """The frames of the handler's suspended generator / coroutine chain, outermost first:
    ``driver`` is the runtime's driver frame at an effect (its ``gen`` is the handler's), or
    None (no frames)."""
    obj = driver.f_locals.get("gen") if driver is not None else None
    while obj is not None:
        frame = getattr(obj, "gi_frame", None) or getattr(obj, "cr_frame", None)
        if frame is None:
            return
        yield frame
        obj = getattr(obj, "gi_yieldfrom", None) or getattr(obj, "cr_await", None)


def entry_line(code: Any) -> int | None:
    """The first line of ``code``. ``sys.monitoring`` may fire no LINE event for a line on the
    code's entry line (3.13: a lambda's body), where the legacy tracer that recorded the history
    reports one: a fast-forward or scan watching that line uses the settrace strategy."""
    return next((ln for _, _, ln in code.co_lines() if ln is not None), None)


class FastForwards:
    """The engine's two strategies and the choice between them: ``sys.monitoring`` where it is
    there (3.12+), a tool id is free and no watched line is a code's entry line; else
    ``sys.settrace``. ``settrace`` is called late: the runner replaces the engine's after
    construction."""

    def __init__(self, settrace: Callable[[Any], None]) -> None:
        self._settrace = SettraceFastForward(settrace)
        self._monitoring = MonitoringFastForward() if MONITORING else None

    def pick(self, on_entry_line: bool) -> SettraceFastForward | MonitoringFastForward:
        monitoring = self._monitoring
        if monitoring is not None and not on_entry_line and monitoring.available():
            return monitoring
        return self._settrace

    def stop(self) -> None:
        """Stop watching (the run ended or a new one starts)."""
        if self._monitoring is not None:
            self._monitoring.stop()

    def close(self) -> None:
        """Free the monitoring tool id (the engine's replay is over)."""
        if self._monitoring is not None:
            self._monitoring.close()
