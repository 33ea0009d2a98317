"""The client peer: the DAP client on the adapter's stdin/stdout.

As in debugpy's adapter, each DAP request this adapter handles itself has a ``<command>_request``
method (``prodture/x`` → ``prodture_x_request``); nothing else is named so, and the dispatch table
:data:`Client.REQUESTS` is built from those names, so a client can only ever reach real request
handlers. Everything else goes to :meth:`Client.request`: refused when it would leave the
recording in a strict replay, answered quietly when it inspects a stop that is gone, otherwise
forwarded to the debuggee's debugpy with ``seq`` renumbered.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..debug import control as ctl
from . import stops
from .launch import check_launch, is_strict
from .streams import DapStream

if TYPE_CHECKING:
    from .server import Session

REQUEST_TIMEOUT = 30.0

EXCEPTION_FILTERS: list[dict[str, Any]] = [
    {
        "filter": "effectFailed",
        "label": "Effect failed (recorded error)",
        "default": True,
        "description": "Stop where an effect's recorded error is thrown into the handler",
    },
    {
        "filter": "everyEffect",
        "label": "Every effect",
        "default": False,
        "description": "Stop each time the handler receives an effect's recorded result",
    },
    {
        "filter": "raised",
        "label": "Raised exceptions",
        "default": False,
        "description": "Stop where the handler raises an exception",
    },
    {
        "filter": "uncaught",
        "label": "Uncaught exceptions",
        "default": True,
        "description": "Stop where an exception leaves the handler",
    },
]

CAPABILITIES = {
    "supportsConfigurationDoneRequest": True,
    "supportsStepBack": True,
    "supportsRestartRequest": True,
    "supportsConditionalBreakpoints": True,
    "supportsHitConditionalBreakpoints": True,
    "supportsLogPoints": True,
    "supportsEvaluateForHovers": True,
    "supportsExceptionInfoRequest": True,
    "supportsTerminateRequest": True,
    "supportsSetVariable": True,
    "supportsSetExpression": True,
    "supportsGotoTargetsRequest": True,
    "supportsValueFormattingOptions": True,
    "supportsDelayedStackTraceLoading": True,
    "supportsClipboardContext": True,
    "exceptionBreakpointFilters": EXCEPTION_FILTERS,
}

# requests that would move execution away from the recording
_DIVERGING = {"setVariable", "setExpression", "goto", "gotoTargets"}
# inspection requests that only make sense while the replay thread is suspended at a stop: while it
# runs (or for references of an earlier stop, which pydevd no longer knows) they get an empty
# success instead of pydevd's "Unable to find thread…" error, which a client shows as a toast
_QUIET_EMPTY: dict[str, dict[str, Any]] = {
    "variables": {"variables": []},
    "scopes": {"scopes": []},
    "stackTrace": {"stackFrames": [], "totalFrames": 0},
}
_INSPECTION = set(_QUIET_EMPTY) | {"evaluate", "setVariable", "setExpression", "completions"}


def exception_stops(filters: list[str]) -> ctl.SetExceptionStops:
    """The exception filters a client enabled, as the control command."""
    return ctl.SetExceptionStops(
        effect_failed="effectFailed" in filters,
        every_effect="everyEffect" in filters,
        raised="raised" in filters,
        uncaught="uncaught" in filters,
    )


class Client:
    """The DAP client: requests in, responses and events out."""

    #: DAP command → name of the method that handles it (filled below the class)
    REQUESTS: dict[str, str] = {}

    def __init__(self, session: Session, stream: DapStream) -> None:
        self.session = session
        self.stream = stream
        self.out_seq = itertools.count(1)
        self.client_init: dict[str, Any] = {}
        self.launch_args: dict[str, Any] = {}
        self.breakpoints: dict[str, dict[str, Any]] = {}  # source path -> setBreakpoints arguments
        self.filters: list[str] = [f["filter"] for f in EXCEPTION_FILTERS if f["default"]]
        self.terminated_sent = False
        self.closing = False  # disconnect / terminate started

    # -- wire ---------------------------------------------------------------------------------

    def read(self) -> None:
        """The reader thread: every client message goes to the session's queue (None at EOF)."""
        while True:
            try:
                message = self.stream.read()
            except (OSError, ValueError):
                message = None
            self.session.post("client", 0, message)
            if message is None:
                return

    def send(self, message: dict[str, Any]) -> None:
        message["seq"] = next(self.out_seq)
        try:
            self.stream.write(message)
        except (OSError, ValueError):
            self.session.running = False

    def respond(
        self, request: dict[str, Any], body: Any = None, *, message: str | None = None
    ) -> None:
        response: dict[str, Any] = {
            "type": "response",
            "request_seq": request["seq"],
            "command": request["command"],
            "success": message is None,
        }
        if message is not None:
            response["message"] = message
            response["body"] = {"error": {"id": 1, "format": message, "showUser": True}}
        elif body is not None:
            response["body"] = body
        self.send(response)

    def event(self, name: str, body: Any = None) -> None:
        message: dict[str, Any] = {"type": "event", "event": name}
        if body is not None:
            message["body"] = body
        self.send(message)

    def notice(self, text: str, *, only_if_running: bool = False) -> None:
        """One ``important`` output line from prodture."""
        if only_if_running and self.terminated_sent:
            return
        self.event("output", {"category": "important", "output": f"prodture: {text}\n"})

    def end_session(self, exit_code: int | None = None) -> None:
        """``exited`` (when the code is known) then ``terminated``, once."""
        if self.terminated_sent:
            return
        self.terminated_sent = True
        if exit_code is not None:
            self.event("exited", {"exitCode": exit_code})
        self.event("terminated")

    # -- dispatch -----------------------------------------------------------------------------

    def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != "request":
            return
        command = message.get("command", "")
        name = self.REQUESTS.get(command)
        try:
            if name is not None:
                getattr(self, name)(message)
            else:
                self.request(message)
        except Exception as e:  # a bug here must not kill the session silently
            self.respond(
                message, message=f"prodture adapter error in {command}: {type(e).__name__}: {e}"
            )

    def _inspects_a_gone_stop(self, request: dict[str, Any]) -> bool:
        return request["command"] in _INSPECTION and (
            self.closing or not self.session.stops.suspended
        )

    def request(self, request: dict[str, Any]) -> None:
        """Any request without a handler of its own."""
        command = request["command"]
        if self._inspects_a_gone_stop(request):
            self._answer_quietly(request)
        elif command in _DIVERGING and is_strict(self.launch_args):
            self.respond(
                request,
                message=(
                    f"{command} is refused in a strict replay: it would move execution away from "
                    'the recording; launch with "replayMode": "speculative" to explore'
                ),
            )
        else:
            self.forward(request)

    def _answer_quietly(self, request: dict[str, Any]) -> None:
        """A request for a stop that is gone: empty success, or an error the client does not show."""
        empty = _QUIET_EMPTY.get(request["command"])
        if empty is not None:
            self.respond(request, dict(empty))
            return
        text = "the replay is running: no stop to inspect"
        self.send(
            {
                "type": "response",
                "request_seq": request["seq"],
                "command": request["command"],
                "success": False,
                "message": text,
                "body": {"error": {"id": 2, "format": text, "showUser": False}},
            }
        )

    def forward(
        self,
        request: dict[str, Any],
        arguments: Any = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        """Ask the debuggee's debugpy; answer the client with its response (``transform``ed)."""
        debuggee = self.session.debuggee
        if debuggee is None or debuggee.dap is None or debuggee.dead:
            self.respond(request, message=f"{request['command']}: no debuggee is running")
            return
        answered = [False]

        def on_response(response: dict[str, Any]) -> None:
            if answered[0]:
                return
            answered[0] = True
            if not response.get("success", False):
                if request["command"] in _QUIET_EMPTY:
                    # a reference of an earlier stop that reached pydevd after the thread resumed
                    self._answer_quietly(request)
                    return
                self.respond(
                    request, message=response.get("message") or f"{request['command']} failed"
                )
                return
            body = response.get("body")
            if transform is not None:
                body = transform(body or {})
            self.respond(request, body)

        def on_timeout() -> None:
            if not answered[0]:
                answered[0] = True
                self.respond(
                    request,
                    message=f"{request['command']}: debugpy did not answer within {REQUEST_TIMEOUT:.0f} s",
                )

        try:
            debuggee.request(
                request["command"],
                arguments if arguments is not None else request.get("arguments"),
                on_response,
            )
        except OSError:
            self.respond(request, message=f"{request['command']}: the debuggee is gone")
            return
        self.session.after(REQUEST_TIMEOUT, on_timeout)

    def _move(self, request: dict[str, Any], motion: ctl.Motion, effect: int | None = None) -> None:
        """Leave the current stop (a stepping, continue or jump request)."""
        command = request["command"]
        debuggee = self.session.debuggee
        if debuggee is None or debuggee.dead:
            self.respond(request, message=f"{command}: no debuggee is running")
            return
        self.session.stops.resumed()

        def on_reply(reply: ctl.Reply) -> None:
            if not reply.ok:
                self.respond(request, message=reply.message or f"{command} failed")
            elif motion in (ctl.Motion.CONTINUE, ctl.Motion.REVERSE_CONTINUE):
                self.respond(request, {"allThreadsContinued": True})
            else:
                self.respond(request, {})

        debuggee.command(ctl.Move(motion=motion, effect=effect), on_reply)

    # -- requests: session --------------------------------------------------------------------

    def initialize_request(self, request: dict[str, Any]) -> None:
        self.client_init = request.get("arguments") or {}
        self.respond(request, CAPABILITIES)

    def attach_request(self, request: dict[str, Any]) -> None:
        self.respond(
            request,
            message='prodture debugs a recorded trace: use a "launch" configuration with "trace"',
        )

    def launch_request(self, request: dict[str, Any]) -> None:
        args = dict(request.get("arguments") or {})
        problem = check_launch(args)
        if problem:
            self._fail_launch(request, problem)
            return
        self.launch_args = args

        def done(error: str | None) -> None:
            if error:
                self._fail_launch(request, error)
            else:
                self.respond(request)
                self.event("initialized")

        self.session.start_debuggee(args, done)

    def _fail_launch(self, request: dict[str, Any], message: str) -> None:
        message = (
            message.strip().splitlines()[0] if message.strip() else "the debuggee failed to start"
        )
        self.respond(request, message=message)
        self.notice(message)
        self.end_session()

    def configurationDone_request(self, request: dict[str, Any]) -> None:
        debuggee = self.session.debuggee

        def on_done(body: Any) -> Any:
            if debuggee is not None:
                # the filters' defaults apply even when the client never sent setExceptionBreakpoints
                debuggee.command(exception_stops(self.filters))
                debuggee.command(ctl.Start())
            return body

        self.forward(request, transform=on_done)

    def restart_request(self, request: dict[str, Any]) -> None:
        if not self.launch_args:
            self.respond(request, message="restart: nothing was launched")
            return
        new_args = (request.get("arguments") or {}).get("arguments")
        if isinstance(new_args, dict) and new_args.get("trace"):
            args = dict(new_args)
            problem = check_launch(args)
            if problem:
                self.respond(request, message=problem)
                return
            self.launch_args = args
        old = self.session.debuggee
        if old is not None:
            old.kill()

        def done(error: str | None) -> None:
            if error:
                self.respond(request, message=error)
                self.notice(error)
                self.end_session()
                return
            self._reconfigure(lambda: self.respond(request))

        self.session.start_debuggee(self.launch_args, done)

    def _reconfigure(self, then: Callable[[], None]) -> None:
        """After a restart: re-send the breakpoints and filters, then start the engine."""
        debuggee = self.session.debuggee
        assert debuggee is not None
        debuggee.command(exception_stops(self.filters))
        for path, args in self.breakpoints.items():
            self._send_breakpoints(path, args)
            debuggee.request("setBreakpoints", args, lambda r: None)

        def on_done(response: dict[str, Any]) -> None:
            debuggee.command(ctl.Start())
            then()

        debuggee.request("configurationDone", None, on_done)

    def disconnect_request(self, request: dict[str, Any]) -> None:
        self.closing = True
        debuggee = self.session.debuggee
        if debuggee is not None:
            debuggee.command(ctl.Terminate())
            debuggee.kill()
        self.respond(request)
        self.terminated_sent = True
        self.session.running = False

    def terminate_request(self, request: dict[str, Any]) -> None:
        self.closing = True
        if self.session.debuggee is not None:
            self.session.debuggee.kill()
        self.respond(request)
        self.end_session()

    # -- requests: breakpoints ----------------------------------------------------------------

    def setBreakpoints_request(self, request: dict[str, Any]) -> None:
        args = request.get("arguments") or {}
        path = (args.get("source") or {}).get("path")
        if path:
            self.breakpoints[path] = args
            self._send_breakpoints(path, args)
        self.forward(request)

    def _send_breakpoints(self, path: str, args: dict[str, Any]) -> None:
        debuggee = self.session.debuggee
        if debuggee is None:
            return
        specs = tuple(
            ctl.BreakpointSpec(
                line=int(b.get("line")),
                condition=b.get("condition") or None,
                hit_condition=b.get("hitCondition") or None,
                log_message=b.get("logMessage") or None,
            )
            for b in args.get("breakpoints") or []
        )
        debuggee.command(ctl.SetBreakpoints(path=path, breakpoints=specs))

    def setExceptionBreakpoints_request(self, request: dict[str, Any]) -> None:
        args = request.get("arguments") or {}
        known = {f["filter"] for f in EXCEPTION_FILTERS}
        filters = [f for f in args.get("filters") or [] if f in known]
        filters += [
            o.get("filterId") for o in args.get("filterOptions") or [] if o.get("filterId") in known
        ]
        self.filters = filters
        if self.session.debuggee is not None:
            self.session.debuggee.command(exception_stops(filters))
        self.respond(request, {"breakpoints": [{"verified": True} for _ in filters]})

    # -- requests: execution ------------------------------------------------------------------

    def next_request(self, request: dict[str, Any]) -> None:
        self._move(request, ctl.Motion.NEXT)

    def stepIn_request(self, request: dict[str, Any]) -> None:
        self._move(request, ctl.Motion.STEP_IN)

    def stepOut_request(self, request: dict[str, Any]) -> None:
        self._move(request, ctl.Motion.STEP_OUT)

    def continue_request(self, request: dict[str, Any]) -> None:
        self._move(request, ctl.Motion.CONTINUE)

    def stepBack_request(self, request: dict[str, Any]) -> None:
        self._move(request, ctl.Motion.STEP_BACK)

    def reverseContinue_request(self, request: dict[str, Any]) -> None:
        self._move(request, ctl.Motion.REVERSE_CONTINUE)

    def prodture_jumpToEffect_request(self, request: dict[str, Any]) -> None:
        debuggee = self.session.debuggee
        raw: Any = (request.get("arguments") or {}).get("effect")  # None: the TypeError below
        try:
            effect = int(raw)
        except (TypeError, ValueError):
            self.respond(request, message='prodture/jumpToEffect needs {"effect": N}')
            return
        count = debuggee.effect_count if debuggee is not None else 0
        if debuggee is not None and not 1 <= effect <= count:
            self.respond(
                request,
                message=f"effect {effect} is not in the trace: it has effects 1 to {count}",
            )
            return
        self._move(request, ctl.Motion.JUMP_TO_EFFECT, effect)

    def pause_request(self, request: dict[str, Any]) -> None:
        if self.session.debuggee is not None:
            self.session.debuggee.command(ctl.Pause())
        self.respond(request)

    # -- requests: inspection -----------------------------------------------------------------

    def prodture_effects_request(self, request: dict[str, Any]) -> None:
        debuggee = self.session.debuggee
        if debuggee is None:
            self.respond(request, message="prodture/effects: no debuggee is running")
            return
        debuggee.command(
            ctl.ListEffects(),
            lambda reply: (
                self.respond(request, reply.body)
                if reply.ok
                else self.respond(request, message=reply.message)
            ),
        )

    def stackTrace_request(self, request: dict[str, Any]) -> None:
        if self._inspects_a_gone_stop(request):
            self._answer_quietly(request)
            return
        args = dict(request.get("arguments") or {})
        start = int(args.pop("startFrame", 0) or 0)
        levels = int(args.pop("levels", 0) or 0)
        debuggee = self.session.debuggee
        runtime_dir = debuggee.runtime_dir if debuggee else ""

        def hide_runtime(body: dict[str, Any]) -> dict[str, Any]:
            frames = [
                f
                for f in body.get("stackFrames", [])
                if not (
                    runtime_dir
                    and os.path.realpath((f.get("source") or {}).get("path") or "").startswith(
                        runtime_dir
                    )
                )
            ]
            total = len(frames)
            frames = frames[start : start + levels] if levels else frames[start:]
            return {"stackFrames": frames, "totalFrames": total}

        self.forward(request, arguments=args, transform=hide_runtime)

    def scopes_request(self, request: dict[str, Any]) -> None:
        if self._inspects_a_gone_stop(request):
            self._answer_quietly(request)
            return

        def add_replay(body: dict[str, Any]) -> dict[str, Any]:
            scopes = list(body.get("scopes", []))
            if self.session.stops.last is not None:
                scopes.append(stops.replay_scope())
            return {"scopes": scopes}

        self.forward(request, transform=add_replay)

    def variables_request(self, request: dict[str, Any]) -> None:
        if (request.get("arguments") or {}).get("variablesReference") == stops.REPLAY_REF:
            self.respond(request, {"variables": stops.replay_variables(self.session.stops.last)})
        elif self._inspects_a_gone_stop(request):
            self._answer_quietly(request)
        else:
            self.forward(request)

    def exceptionInfo_request(self, request: dict[str, Any]) -> None:
        stop = self.session.stops.last
        if stop is None or stop.reason is not ctl.StopReason.EXCEPTION:
            self.forward(request)
            return
        self.respond(request, stops.exception_info(stop))


def _command_of(method: str) -> str:
    """``prodture_jumpToEffect_request`` → ``prodture/jumpToEffect``; ``next_request`` → ``next``."""
    command = method[: -len("_request")]
    return "prodture/" + command[len("prodture_") :] if command.startswith("prodture_") else command


Client.REQUESTS = {_command_of(name): name for name in dir(Client) if name.endswith("_request")}
