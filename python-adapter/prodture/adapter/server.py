"""The prodture debug adapter: a DAP server on stdio between a client and debugpy.

One component per peer: :class:`Adapter` talks to the client (stdin/stdout), :class:`Debuggee`
to the debuggee process (debugpy's DAP socket + prodture's control socket + its stdout/stderr).
Everything the client asks that debugpy can answer (threads, stack, scopes, variables, evaluate,
breakpoint verification) is forwarded with ``seq`` renumbered; what debugpy cannot do (step back,
reverse continue, effect-aware stops, jump to effect, restart) becomes a control command for
the step engine inside the debuggee. This module imports no engine code: the debuggee may run
another Python.

All events funnel into one queue consumed by one thread, so there is no locking of state; every
wait has a deadline, so nothing hangs.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from .streams import DapStream

#: variablesReference of the Replay scope; debugpy's own references are small counters.
REPLAY_REF = 2**31 - 7

LAUNCH_TIMEOUT = 30.0
REQUEST_TIMEOUT = 30.0
STOP_PAIR_TIMEOUT = 2.0

EXCEPTION_FILTERS = [
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
_ENGINE_COMMANDS = {
    "next": "next",
    "stepIn": "stepIn",
    "stepOut": "stepOut",
    "continue": "continue",
    "stepBack": "stepBack",
    "reverseContinue": "reverseContinue",
    "prodture/jumpToEffect": "jumpToEffect",
}


class LaunchError(Exception):
    pass


class Debuggee:
    """One debuggee process: the runner, its DAP socket (debugpy) and control socket."""

    def __init__(self, adapter: Adapter, generation: int, args: dict[str, Any]) -> None:
        self.adapter = adapter
        self.generation = generation
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None
        self.dap: DapStream | None = None
        self.dap_sock: socket.socket | None = None
        self.seq = itertools.count(1)
        self.pending: dict[int, Callable[[dict[str, Any]], None]] = {}
        self.control_ids = itertools.count(1)
        self.control_pending: dict[int, Callable[[dict[str, Any]], None]] = {}
        self.runtime_dir = ""
        self.effect_count = 0
        self.stderr_tail: list[str] = []
        self.dead = False

    def post(self, kind: str, payload: Any) -> None:
        self.adapter.queue.put((kind, self.generation, payload))

    def spawn(self) -> None:
        args = self.args
        python = args.get("python") or sys.executable
        cwd = args.get("cwd") or os.getcwd()
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (args.get("env") or {}).items()})
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        env["PYTHONUNBUFFERED"] = "1"
        command = [
            python,
            "-X",
            "frozen_modules=off",
            "-m",
            "prodture.debug.runner",
            "--control-fd",
            str(child.fileno()),
            "--trace",
            args["trace"],
            "--handler",
            args.get("handler") or "",
            "--cwd",
            cwd,
            "--mode",
            args.get("replayMode") or "strict",
            "--just-my-code",
            "0" if args.get("justMyCode") is False else "1",
            "--stop-on-entry",
            "1" if args.get("stopOnEntry") else "0",
        ]
        if args.get("stubs"):
            command += ["--stubs", args["stubs"]]
        try:
            self.proc = subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=(child.fileno(),),
                start_new_session=True,
            )
        except FileNotFoundError:
            raise LaunchError(
                f'Python interpreter not found: {python}; fix the "python" launch attribute'
            ) from None
        except NotADirectoryError:
            raise LaunchError(
                f'cwd is not a directory: {cwd}; fix the "cwd" launch attribute'
            ) from None
        except PermissionError:
            raise LaunchError(
                f'cannot run {python}: permission denied; fix the "python" launch attribute'
            ) from None
        finally:
            child.close()
        self.control = parent
        threading.Thread(target=self._read_control, daemon=True).start()
        threading.Thread(
            target=self._read_pipe, args=(self.proc.stdout, "stdout"), daemon=True
        ).start()
        threading.Thread(
            target=self._read_pipe, args=(self.proc.stderr, "stderr"), daemon=True
        ).start()
        threading.Thread(target=self._wait, daemon=True).start()

    def _read_control(self) -> None:
        assert self.control is not None
        f = self.control.makefile("rb")
        for line in f:
            try:
                self.post("control", json.loads(line))
            except ValueError:
                continue

    def _read_pipe(self, pipe: Any, category: str) -> None:
        for line in iter(pipe.readline, b""):
            text = line.decode("utf-8", "replace")
            if category == "stderr":
                self.stderr_tail = (self.stderr_tail + [text])[-20:]
            self.post("output", {"category": category, "output": text})

    def _wait(self) -> None:
        assert self.proc is not None
        code = self.proc.wait()
        # let the pipe readers drain first so the last stderr line is known
        time.sleep(0.05)
        self.post("exit", code)

    def connect(self, host: str, port: int) -> None:
        sock = socket.create_connection((host, port), timeout=10)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.dap_sock = sock
        self.dap = DapStream(sock.makefile("rb"), None, write_fn=sock.sendall)
        threading.Thread(target=self._read_dap, daemon=True).start()

    def _read_dap(self) -> None:
        assert self.dap is not None
        while True:
            try:
                message = self.dap.read()
            except (OSError, ValueError):
                message = None
            if message is None:
                return
            self.post("dap", message)

    def request(
        self, command: str, arguments: Any, on_response: Callable[[dict[str, Any]], None]
    ) -> None:
        seq = next(self.seq)
        self.pending[seq] = on_response
        assert self.dap is not None
        message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = arguments
        self.dap.write(message)

    def command(
        self, message: dict[str, Any], on_reply: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        if on_reply is not None:
            message["id"] = ident = next(self.control_ids)
            self.control_pending[ident] = on_reply
        data = (json.dumps(message) + "\n").encode()
        try:
            assert self.control is not None
            self.control.sendall(data)
        except OSError:
            if on_reply is not None:
                self.control_pending.pop(message["id"], None)
                on_reply({"ok": False, "message": "the debuggee is gone"})

    def kill(self) -> None:
        self.dead = True
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                try:
                    self.proc.kill()
                except OSError:
                    pass
            try:
                self.proc.wait(5)  # reap it: no zombie, no orphan
            except subprocess.TimeoutExpired:
                pass
        for s in (self.control, self.dap_sock):
            try:
                if s is not None:
                    s.close()
            except OSError:
                pass


class Adapter:
    def __init__(self, stdin: Any, stdout: Any) -> None:
        self.client = DapStream(stdin, stdout)
        self.queue: queue.Queue[tuple[str, int, Any]] = queue.Queue()
        self.out_seq = itertools.count(1)
        self.client_init: dict[str, Any] = {}
        self.launch_args: dict[str, Any] = {}
        self.breakpoints: dict[str, dict[str, Any]] = {}  # source path -> setBreakpoints arguments
        self.filters: list[str] = [f["filter"] for f in EXCEPTION_FILTERS if f["default"]]
        self.debuggee: Debuggee | None = None
        self.generation = 0
        self.timers: list[tuple[float, int, Callable[[], None]]] = []
        self.timer_ids = itertools.count()
        self.engine_stop: dict[str, Any] | None = None
        self.pydevd_stop: dict[str, Any] | None = None
        self.last_stop: dict[str, Any] | None = None
        self.thread_id: int | None = None
        self.running = True
        self.terminated_sent = False
        self.launch_done: Callable[[str | None], None] | None = None
        self.configured = False
        self.suspended = False  # a stop is presented: pydevd can answer inspection requests
        self.closing = False  # disconnect / terminate started

    # -- client side --------------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        message["seq"] = next(self.out_seq)
        try:
            self.client.write(message)
        except (OSError, ValueError):
            self.running = False

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

    def _read_client(self) -> None:
        while True:
            try:
                message = self.client.read()
            except (OSError, ValueError):
                message = None
            self.queue.put(("client", 0, message))
            if message is None:
                return

    def after(self, seconds: float, fn: Callable[[], None]) -> None:
        self.timers.append((time.monotonic() + seconds, next(self.timer_ids), fn))
        self.timers.sort()

    def serve(self) -> int:
        threading.Thread(target=self._read_client, daemon=True).start()
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
                    self.on_client(payload)
                    continue
                debuggee = self.debuggee
                if debuggee is None or generation != debuggee.generation:
                    continue  # from a debuggee we already replaced (restart) or killed
                getattr(self, f"on_{kind}")(debuggee, payload)
        finally:
            if self.debuggee is not None:
                self.debuggee.kill()
        return 0

    def on_client(self, message: dict[str, Any]) -> None:
        if message.get("type") != "request":
            return
        command = message.get("command", "")
        handler = getattr(self, f"{command.replace('/', '_')}_request", None)
        try:
            if (
                command in _INSPECTION
                and (self.closing or not self.suspended)
                and not (
                    command == "variables"
                    and (message.get("arguments") or {}).get("variablesReference") == REPLAY_REF
                )
            ):
                self._answer_quietly(message)
            elif handler is not None:
                handler(message)
            elif command in _ENGINE_COMMANDS:
                self.engine_request(message)
            elif command in _DIVERGING:
                self.diverging_request(message)
            else:
                self.forward(message)
        except Exception as e:  # a bug here must not kill the session silently
            self.respond(
                message, message=f"prodture adapter error in {command}: {type(e).__name__}: {e}"
            )

    def _answer_quietly(self, request: dict[str, Any]) -> None:
        """A request for a stop that is gone: empty success, or an error the client does not show."""
        empty = _QUIET_EMPTY.get(request["command"])
        if empty is not None:
            self.respond(request, dict(empty))
            return
        self.send(
            {
                "type": "response",
                "request_seq": request["seq"],
                "command": request["command"],
                "success": False,
                "message": "the replay is running: no stop to inspect",
                "body": {
                    "error": {
                        "id": 2,
                        "format": "the replay is running: no stop to inspect",
                        "showUser": False,
                    }
                },
            }
        )

    def forward(
        self,
        request: dict[str, Any],
        arguments: Any = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        debuggee = self.debuggee
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
        self.after(REQUEST_TIMEOUT, on_timeout)

    # -- requests -----------------------------------------------------------------------------

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
        problem = self._check_launch(args)
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

        self._start_debuggee(done)

    def _check_launch(self, args: dict[str, Any]) -> str | None:
        trace = args.get("trace")
        if not trace or not isinstance(trace, str):
            return (
                'the launch configuration has no "trace": set it to the path of a .prodtrace file'
            )
        cwd = args.get("cwd") or os.getcwd()
        if not os.path.isdir(cwd):
            return f'cwd {cwd} is not a directory; fix the "cwd" launch attribute'
        path = trace if os.path.isabs(trace) else os.path.join(cwd, trace)
        if not os.path.exists(path):
            return f'{trace}: no such trace file; check the "trace" launch attribute'
        args["trace"] = os.path.abspath(path)
        args["cwd"] = os.path.abspath(cwd)
        mode = args.get("replayMode") or "strict"
        if mode not in ("strict", "speculative"):
            return f"replayMode {mode!r} is not strict or speculative; fix the launch attribute"
        handler = args.get("handler")
        if handler and (not isinstance(handler, str) or ":" not in handler):
            return f'handler {handler!r} is not of the form module:function; fix the "handler" launch attribute'
        stubs = args.get("stubs")
        if stubs and (not isinstance(stubs, str) or ":" not in stubs):
            return f'stubs {stubs!r} is not of the form module:function; fix the "stubs" launch attribute'
        if stubs and mode != "speculative":
            return '"stubs" answer new effects only in a speculative replay; add "replayMode": "speculative" or remove "stubs"'
        return None

    def _fail_launch(self, request: dict[str, Any], message: str) -> None:
        message = (
            message.strip().splitlines()[0] if message.strip() else "the debuggee failed to start"
        )
        self.respond(request, message=message)
        self.event("output", {"category": "important", "output": f"prodture: {message}\n"})
        self._terminate_session()

    def _start_debuggee(self, done: Callable[[str | None], None]) -> None:
        self.generation += 1
        debuggee = Debuggee(self, self.generation, self.launch_args)
        self.debuggee = debuggee
        self.configured = False
        self.suspended = False
        self.engine_stop = self.pydevd_stop = self.last_stop = None
        finished = [False]

        def finish(error: str | None) -> None:
            if finished[0]:
                return
            finished[0] = True
            self.launch_done = None
            if error:
                debuggee.kill()
            done(error)

        self.launch_done = finish
        try:
            debuggee.spawn()
        except LaunchError as e:
            finish(str(e))
            return
        self.after(
            LAUNCH_TIMEOUT,
            lambda: finish(f"the debuggee did not start within {LAUNCH_TIMEOUT:.0f} s"),
        )

    def _handshake(self, debuggee: Debuggee, hello: dict[str, Any]) -> None:
        """The debuggee listens: attach to its in-process debugpy."""
        debuggee.runtime_dir = hello.get("runtimeDir", "")
        debuggee.effect_count = int(hello.get("effectCount", 0))
        try:
            debuggee.connect(hello.get("host") or "127.0.0.1", int(hello["port"]))
        except OSError as e:
            if self.launch_done:
                self.launch_done(f"cannot connect to the debuggee's debugpy: {e}")
            return
        init = {
            "clientID": "prodture",
            "adapterID": "prodture",
            "pathFormat": "path",
            "linesStartAt1": self.client_init.get("linesStartAt1", True),
            "columnsStartAt1": self.client_init.get("columnsStartAt1", True),
            "supportsVariableType": True,
            "supportsVariablePaging": True,
            "supportsRunInTerminalRequest": False,
        }
        args = self.launch_args
        attach = {
            "justMyCode": args.get("justMyCode", True) is not False,
            "redirectOutput": False,
            "subProcess": False,
            "showReturnValue": False,
            "name": "prodture",
        }
        debuggee.request(
            "initialize", init, lambda r: debuggee.request("attach", attach, lambda r2: None)
        )

    def configurationDone_request(self, request: dict[str, Any]) -> None:
        debuggee = self.debuggee

        def on_done(body: Any) -> Any:
            if debuggee is not None:
                # the filters' defaults apply even when the client never sent setExceptionBreakpoints
                debuggee.command({"cmd": "filters", "filters": self.filters})
                debuggee.command({"cmd": "start"})
            self.configured = True
            return body

        self.forward(request, transform=on_done)

    def setBreakpoints_request(self, request: dict[str, Any]) -> None:
        args = request.get("arguments") or {}
        path = (args.get("source") or {}).get("path")
        if path:
            self.breakpoints[path] = args
            self._send_breakpoints(path, args)
        self.forward(request)

    def _send_breakpoints(self, path: str, args: dict[str, Any]) -> None:
        if self.debuggee is None:
            return
        bps = [
            {
                "line": b.get("line"),
                "condition": b.get("condition"),
                "hitCondition": b.get("hitCondition"),
                "logMessage": b.get("logMessage"),
            }
            for b in args.get("breakpoints") or []
        ]
        self.debuggee.command({"cmd": "breakpoints", "path": path, "breakpoints": bps})

    def setExceptionBreakpoints_request(self, request: dict[str, Any]) -> None:
        args = request.get("arguments") or {}
        known = {f["filter"] for f in EXCEPTION_FILTERS}
        filters = [f for f in args.get("filters") or [] if f in known]
        filters += [
            o.get("filterId") for o in args.get("filterOptions") or [] if o.get("filterId") in known
        ]
        self.filters = filters
        if self.debuggee is not None:
            self.debuggee.command({"cmd": "filters", "filters": filters})
        self.respond(request, {"breakpoints": [{"verified": True} for _ in filters]})

    def engine_request(self, request: dict[str, Any]) -> None:
        command = request["command"]
        debuggee = self.debuggee
        if debuggee is None or debuggee.dead:
            self.respond(request, message=f"{command}: no debuggee is running")
            return
        arg = None
        if command == "prodture/jumpToEffect":
            try:
                arg = int((request.get("arguments") or {}).get("effect"))
            except (TypeError, ValueError):
                self.respond(request, message='prodture/jumpToEffect needs {"effect": N}')
                return
            if not 1 <= arg <= debuggee.effect_count:
                self.respond(
                    request,
                    message=f"effect {arg} is not in the trace: it has effects 1 to {debuggee.effect_count}",
                )
                return
        self.suspended = False  # from now on the old stop's references are stale

        def on_reply(reply: dict[str, Any]) -> None:
            if not reply.get("ok"):
                self.respond(request, message=reply.get("message") or f"{command} failed")
            elif command in ("continue", "reverseContinue"):
                self.respond(request, {"allThreadsContinued": True})
            else:
                self.respond(request, {})

        debuggee.command({"cmd": _ENGINE_COMMANDS[command], "arg": arg}, on_reply)

    def pause_request(self, request: dict[str, Any]) -> None:
        if self.debuggee is not None:
            self.debuggee.command({"cmd": "pause"})
        self.respond(request)

    def diverging_request(self, request: dict[str, Any]) -> None:
        if (self.launch_args.get("replayMode") or "strict") == "strict":
            self.respond(
                request,
                message=(
                    f"{request['command']} is refused in a strict replay: it would move execution away from "
                    'the recording; launch with "replayMode": "speculative" to explore'
                ),
            )
            return
        self.forward(request)

    def prodture_effects_request(self, request: dict[str, Any]) -> None:
        if self.debuggee is None:
            self.respond(request, message="prodture/effects: no debuggee is running")
            return
        self.debuggee.command(
            {"cmd": "effects"},
            lambda reply: (
                self.respond(request, reply.get("body"))
                if reply.get("ok")
                else self.respond(request, message=reply.get("message"))
            ),
        )

    def stackTrace_request(self, request: dict[str, Any]) -> None:
        args = dict(request.get("arguments") or {})
        start = int(args.pop("startFrame", 0) or 0)
        levels = int(args.pop("levels", 0) or 0)
        runtime_dir = self.debuggee.runtime_dir if self.debuggee else ""

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
        def add_replay(body: dict[str, Any]) -> dict[str, Any]:
            scopes = list(body.get("scopes", []))
            if self.last_stop is not None:
                scopes.append(
                    {
                        "name": "Replay",
                        "variablesReference": REPLAY_REF,
                        "expensive": False,
                        "presentationHint": "registers",
                    }
                )
            return {"scopes": scopes}

        self.forward(request, transform=add_replay)

    def variables_request(self, request: dict[str, Any]) -> None:
        if (request.get("arguments") or {}).get("variablesReference") != REPLAY_REF:
            self.forward(request)
            return
        view = (self.last_stop or {}).get("replay") or {}
        variables = [
            {
                "name": k,
                "value": str(v),
                "type": "str" if isinstance(v, str) else type(v).__name__,
                "variablesReference": 0,
            }
            for k, v in view.items()
        ]
        self.respond(request, {"variables": variables})

    def exceptionInfo_request(self, request: dict[str, Any]) -> None:
        stop = self.last_stop or {}
        if stop.get("reason") != "exception":
            self.forward(request)
            return
        text = stop.get("text") or ""
        self.respond(
            request,
            {
                "exceptionId": text.split(":", 1)[0] or "exception",
                "description": text,
                "breakMode": "always",
                "details": {"message": text, "typeName": text.split(":", 1)[0]},
            },
        )

    def restart_request(self, request: dict[str, Any]) -> None:
        if not self.launch_args:
            self.respond(request, message="restart: nothing was launched")
            return
        new_args = (request.get("arguments") or {}).get("arguments")
        if isinstance(new_args, dict) and new_args.get("trace"):
            args = dict(new_args)
            problem = self._check_launch(args)
            if problem:
                self.respond(request, message=problem)
                return
            self.launch_args = args
        old = self.debuggee
        if old is not None:
            old.kill()

        def done(error: str | None) -> None:
            if error:
                self.respond(request, message=error)
                self.event("output", {"category": "important", "output": f"prodture: {error}\n"})
                self._terminate_session()
                return
            self._reconfigure(lambda: self.respond(request))

        self._start_debuggee(done)

    def _reconfigure(self, then: Callable[[], None]) -> None:
        """After a restart: re-send the breakpoints and filters, then start the engine."""
        debuggee = self.debuggee
        assert debuggee is not None
        debuggee.command({"cmd": "filters", "filters": self.filters})
        for path, args in self.breakpoints.items():
            self._send_breakpoints(path, args)
            debuggee.request("setBreakpoints", args, lambda r: None)

        def on_done(response: dict[str, Any]) -> None:
            debuggee.command({"cmd": "start"})
            self.configured = True
            then()

        debuggee.request("configurationDone", None, on_done)

    def disconnect_request(self, request: dict[str, Any]) -> None:
        self.closing = True
        if self.debuggee is not None:
            self.debuggee.command({"cmd": "terminate"})
            self.debuggee.kill()
        self.respond(request)
        if not self.terminated_sent:
            self.terminated_sent = True
        self.running = False

    def terminate_request(self, request: dict[str, Any]) -> None:
        self.closing = True
        if self.debuggee is not None:
            self.debuggee.kill()
        self.respond(request)
        self._terminate_session()

    def _terminate_session(self, exit_code: int | None = None) -> None:
        if self.terminated_sent:
            return
        self.terminated_sent = True
        if exit_code is not None:
            self.event("exited", {"exitCode": exit_code})
        self.event("terminated")

    # -- debuggee side ------------------------------------------------------------------------

    def on_control(self, debuggee: Debuggee, message: dict[str, Any]) -> None:
        kind = message.get("event")
        if kind == "reply":
            callback = debuggee.control_pending.pop(message.get("id"), None)
            if callback is not None:
                callback(message)
        elif kind == "hello":
            self._handshake(debuggee, message)
        elif kind == "error":
            text = message.get("message") or "the debuggee failed"
            if self.launch_done is not None:
                self.launch_done(text)
            else:
                self.event("output", {"category": "important", "output": f"prodture: {text}\n"})
        elif kind == "stop":
            self.engine_stop = message
            self._pair_stop()
        elif kind == "output":
            self.event(
                "output",
                {
                    "category": message.get("category", "console"),
                    "output": message.get("output", ""),
                },
            )
        elif kind == "exited":
            summary = message.get("summary")
            if summary:
                self.event("output", {"category": "console", "output": f"prodture: {summary}\n"})
            debuggee.kill()
            self._terminate_session(int(message.get("exitCode", 0)))

    def on_dap(self, debuggee: Debuggee, message: dict[str, Any]) -> None:
        if message.get("type") == "response":
            callback = debuggee.pending.pop(message.get("request_seq"), None)
            if callback is not None:
                callback(message)
            return
        if message.get("type") != "event":
            return
        name = message.get("event")
        body = message.get("body") or {}
        if name == "initialized":
            if self.launch_done is not None:
                self.launch_done(None)
        elif name == "stopped":
            self.thread_id = body.get("threadId", self.thread_id)
            self.pydevd_stop = body
            self._pair_stop()
            if self.engine_stop is None:
                self.after(STOP_PAIR_TIMEOUT, self._unpaired_stop)
        elif name in ("continued", "exited", "terminated", "process", "debugpyWaitingForServer"):
            return  # the engine decides when execution runs and ends
        else:
            self.event(name, message.get("body"))

    def _unpaired_stop(self) -> None:
        if self.pydevd_stop is not None and self.engine_stop is None:
            body, self.pydevd_stop = self.pydevd_stop, None
            self.suspended = True
            self.event("stopped", body)

    def _pair_stop(self) -> None:
        """A stop is shown once both the engine (why, where in the replay) and pydevd (the thread
        is suspended: stack and variables can be asked) have reported it."""
        if self.engine_stop is None or self.pydevd_stop is None:
            return
        engine, pydevd = self.engine_stop, self.pydevd_stop
        self.engine_stop = self.pydevd_stop = None
        self.last_stop = engine
        self.suspended = True
        reason = engine.get("reason") or "step"
        body: dict[str, Any] = {
            "reason": reason,
            "threadId": pydevd.get("threadId", self.thread_id),
            "allThreadsStopped": True,
            "preserveFocusHint": False,
        }
        if engine.get("description"):
            body["description"] = engine["description"]
        if engine.get("text"):
            body["text"] = engine["text"]
            body.setdefault("description", engine["text"])
        self.event("stopped", body)
        self.event("prodture/position", engine.get("position") or {})

    def on_output(self, debuggee: Debuggee, payload: dict[str, Any]) -> None:
        self.event("output", payload)

    def on_exit(self, debuggee: Debuggee, code: int) -> None:
        debuggee.dead = True
        if self.launch_done is not None:
            self.launch_done(_explain_exit(debuggee, code))
            return
        if not self.terminated_sent:
            if code not in (0, None):
                tail = "".join(debuggee.stderr_tail[-3:]).strip()
                self.event(
                    "output",
                    {
                        "category": "important",
                        "output": f"prodture: the debuggee exited with code {code}"
                        + (f": {tail}" if tail else "")
                        + "\n",
                    },
                )
            self._terminate_session(code if code is not None else 1)


def _explain_exit(debuggee: Debuggee, code: int) -> str:
    python = debuggee.args.get("python") or sys.executable
    tail = "".join(debuggee.stderr_tail)
    for line in reversed(debuggee.stderr_tail):
        if line.startswith("prodture: "):
            return line[len("prodture: ") :].strip()
    if "No module named prodture" in tail or "No module named 'prodture" in tail:
        return (
            f"prodture is not installed in {python}; run: {python} -m pip install 'prodture[debug]'"
        )
    last = tail.strip().splitlines()[-1] if tail.strip() else ""
    return f"the debuggee ({python}) exited with code {code} before the session started" + (
        f": {last}" if last else ""
    )


def main() -> int:
    stdin = sys.stdin.buffer
    stdout = sys.stdout.buffer
    # nothing else may write to the DAP stream
    sys.stdout = sys.stderr
    code = Adapter(stdin, stdout).serve()
    try:
        stdout.flush()
    finally:
        # reader threads are blocked on stdin and sockets: leave without joining them
        os._exit(code)
