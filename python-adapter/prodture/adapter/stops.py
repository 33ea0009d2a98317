"""Stop pairing, and what a stop looks like in DAP.

A stop reaches the adapter twice: the step engine's :class:`~prodture.debug.control.Stopped`
(why, where in the replay) on the control socket and pydevd's ``stopped`` event (the thread is
suspended: stack and variables can be asked) on the DAP socket. The client sees one ``stopped``
event, then ``prodture/position``, once both have arrived. A pydevd stop with no engine stop
(a client's plain pause reaching debugpy) is shown alone after :data:`STOP_PAIR_TIMEOUT`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..debug import control as ctl

if TYPE_CHECKING:
    from .client import Client

STOP_PAIR_TIMEOUT = 2.0

#: variablesReference of the Replay scope; debugpy's own references are small counters.
REPLAY_REF = 2**31 - 7


class StopPairing:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.engine: ctl.Stopped | None = None
        self.pydevd: dict[str, Any] | None = None
        self._pydevd_stops = 0  # pydevd stops seen: a pairing timer belongs to one of them
        #: a pydevd stop shown alone, with no resume since: an engine stop arriving now is its half
        self._shown_alone = False
        #: the stop shown now (or the last one shown): the Replay scope and exceptionInfo read it
        self.last: ctl.Stopped | None = None
        self.thread_id: int | None = None
        #: a stop is presented: pydevd can answer inspection requests
        self.suspended = False

    def reset(self) -> None:
        self.engine = self.pydevd = self.last = None
        self.suspended = self._shown_alone = False

    def resumed(self) -> None:
        """The replay moves on: the shown stop's references are stale from now."""
        self.suspended = self._shown_alone = False

    def engine_stopped(self, stopped: ctl.Stopped) -> None:
        if self._shown_alone and self.pydevd is None:
            # its pydevd half was shown alone (the adapter was starved past the timeout): the
            # client already has the stopped event; give it the rest of this stop
            self._shown_alone = False
            self.last = stopped
            self.client.event("prodture/position", position_body(stopped.position, stopped.end))
            return
        self.engine = stopped
        self._pair()

    def pydevd_stopped(self, body: dict[str, Any]) -> None:
        self.thread_id = body.get("threadId", self.thread_id)
        self.pydevd = body
        self._pydevd_stops += 1
        self._pair()
        if self.engine is None:
            stop = self._pydevd_stops
            self.client.session.after(STOP_PAIR_TIMEOUT, lambda: self._unpaired(stop, False))

    def _unpaired(self, stop: int, confirmed: bool) -> None:
        if self.pydevd is None or self.engine is not None or stop != self._pydevd_stops:
            return  # paired meanwhile, or a later pydevd stop (it has its own timer)
        if not confirmed:
            # the session's thread may have run first after a long descheduling: sleep a moment
            # so the reader threads post what already arrived (the engine's half, usually)
            self.client.session.after(0.05, lambda: self._unpaired(stop, True))
            return
        body, self.pydevd = self.pydevd, None
        self.suspended = self._shown_alone = True
        self.client.event("stopped", body)

    def _pair(self) -> None:
        if self.engine is None or self.pydevd is None:
            return
        engine, pydevd = self.engine, self.pydevd
        self.engine = self.pydevd = None
        self.last = engine
        self.suspended = True
        self._shown_alone = False
        self.client.event("stopped", stopped_body(engine, pydevd.get("threadId", self.thread_id)))
        self.client.event("prodture/position", position_body(engine.position, engine.end))


def stopped_body(stop: ctl.Stopped, thread_id: int | None) -> dict[str, Any]:
    """The DAP ``stopped`` body. As debugpy does, an exception stop's ``text`` is the exception
    id and its ``description`` the full sentence."""
    body: dict[str, Any] = {
        "reason": stop.reason.value,
        "threadId": thread_id,
        "allThreadsStopped": True,
        "preserveFocusHint": False,
    }
    if stop.description:
        body["description"] = stop.description
    if stop.exception_id:
        body["text"] = stop.exception_id
    return body


def position_body(position: ctl.Position, end: bool) -> dict[str, Any]:
    """The ``prodture/position`` event body; ``end``: this is the end-of-replay pause."""
    return {
        "step": position.step,
        "effect": position.effect,
        "effectCount": position.effect_count,
        "path": position.path,
        "line": position.line,
        "nextEffect": position.next_effect,
        "end": end,
    }


def exception_info(stop: ctl.Stopped) -> dict[str, Any]:
    """The ``exceptionInfo`` body of an exception stop the engine made."""
    exception_id = stop.exception_id or "exception"
    description = stop.description or exception_id
    return {
        "exceptionId": exception_id,
        "description": description,
        "breakMode": "always",
        "details": {
            "message": stop.exception_message or description,
            "typeName": exception_id,
        },
    }


def replay_scope() -> dict[str, Any]:
    return {
        "name": "Replay",
        "variablesReference": REPLAY_REF,
        "expensive": False,
        "presentationHint": "registers",
    }


def replay_variables(stop: ctl.Stopped | None) -> list[dict[str, Any]]:
    """The Replay scope's rows: strings, not expandable."""
    return [
        {"name": name, "value": value, "type": "str", "variablesReference": 0}
        for name, value in (stop.replay if stop is not None else ())
    ]
