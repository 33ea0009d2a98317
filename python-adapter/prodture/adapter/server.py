"""The prodture debug adapter: a DAP server on stdio between a client and debugpy.

One component per peer, as in debugpy's adapter: :class:`~.client.Client` talks to the DAP client
(stdin/stdout), :class:`~.debuggee.Debuggee` to the debuggee process (debugpy's DAP socket,
prodture's control socket, its stdout/stderr); :class:`~.stops.StopPairing` joins the two halves
of a stop; :mod:`.launch` checks launch attributes. What the client asks that debugpy can answer
(threads, stack, scopes, variables, evaluate, breakpoint verification) is forwarded with ``seq``
renumbered; what debugpy cannot do (step back, reverse continue, effect-aware stops, jump to
effect, restart) becomes a control command (:mod:`prodture.debug.control`) for the step engine
inside the debuggee. The adapter imports no engine code: the debuggee may run another Python.

All input funnels into one queue consumed by one thread (:meth:`Session.serve`), so there is no
locking of state; every wait has a deadline, so nothing hangs.
"""

from __future__ import annotations

import itertools
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .client import Client
from .debuggee import Debuggee
from .launch import LAUNCH_TIMEOUT, LaunchError
from .stops import StopPairing
from .streams import DapStream


class Session:
    """The adapter's event loop: the client, the current debuggee, the stop pairing, timers."""

    def __init__(self, stdin: Any, stdout: Any) -> None:
        self.queue: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.client = Client(self, DapStream(stdin, stdout))
        self.stops = StopPairing(self.client)
        self.debuggee: Debuggee | None = None
        self.generation = 0
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.timer_ids = itertools.count()
        self.running = True

    def post(self, kind: str, generation: int, payload: Any) -> None:
        """From any thread: ``client`` (a client message) or a debuggee's ``control`` / ``dap`` /
        ``output`` / ``exit``."""
        self.queue.put((kind, generation, payload))

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the session's thread in ``seconds``."""
        self.timers.append((time.monotonic() + seconds, next(self.timer_ids), fn))
        self.timers.sort()

    def serve(self) -> int:
        threading.Thread(target=self.client.read, daemon=True).start()
        try:
            while self.running:
                timeout = 0.5
                if self.timers:
                    timeout = max(0.0, min(timeout, self.timers[0][0] - time.monotonic()))
                try:
                    kind, generation, payload = self.queue.get(timeout=timeout)
                except queue.Empty:
                    kind = ""
                now = time.monotonic()
                while self.timers and self.timers[0][0] <= now:
                    _, _, fn = self.timers.pop(0)
                    fn()
                if not kind:
                    continue
                if kind == "client":
                    if payload is None:
                        break
                    self.client.dispatch(payload)
                    continue
                debuggee = self.debuggee
                if debuggee is None or generation != debuggee.generation:
                    continue  # from a debuggee we already replaced (restart) or killed
                getattr(debuggee, f"on_{kind}")(payload)
        finally:
            if self.debuggee is not None:
                self.debuggee.kill()
        return 0

    def start_debuggee(self, args: dict[str, Any], done: Callable[[str | None], None]) -> None:
        """Spawn a debuggee for launch attributes ``args``; ``done(None)`` once its debugpy is
        attached, ``done(error)`` when it cannot start (within :data:`LAUNCH_TIMEOUT`)."""
        self.generation += 1
        debuggee = Debuggee(self, self.generation, args)
        self.debuggee = debuggee
        self.stops.reset()
        finished = [False]

        def finish(error: str | None) -> None:
            if finished[0]:
                return
            finished[0] = True
            debuggee.on_started = None
            if error:
                debuggee.kill()
            done(error)

        debuggee.on_started = finish
        try:
            debuggee.spawn()
        except LaunchError as e:
            finish(str(e))
            return
        self.after(
            LAUNCH_TIMEOUT,
            lambda: finish(f"the debuggee did not start within {LAUNCH_TIMEOUT:.0f} s"),
        )


def main() -> int:
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    # nothing else may write to the DAP stream
    sys.stdout = sys.stderr
    code = Session(stdin, stdout).serve()
    try:
        stdout.flush()
    finally:
        # reader threads are blocked on stdin and sockets: leave without joining them
        os._exit(code)
