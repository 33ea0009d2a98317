"""A small DAP client over stdio for tests and benchmarks of ``python -m prodture.adapter``.

    client = DapClient.start()                    # spawns the adapter
    client.initialize()
    client.launch(trace=str(path), cwd=str(dir))  # waits for the `initialized` event
    client.set_breakpoints(file, [18])
    client.configuration_done()
    stop = client.wait_event("stopped")
    frames = client.request("stackTrace", {"threadId": stop["body"]["threadId"]})["body"]["stackFrames"]
    client.close()

``request`` returns the response message (raising :class:`DapError` when ``success`` is false,
unless ``check=False``); ``wait_event`` returns the next event of that name not yet consumed.
Every wait has a timeout, so a broken adapter fails a test instead of hanging it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

#: How long to wait for a response or an event before calling it a hang. Generous: on a busy
#: 2-core machine a step has taken longer than 30 s; no test measures speed with it.
DEFAULT_TIMEOUT = 120.0


class DapError(Exception):
    def __init__(self, response: dict[str, Any]) -> None:
        super().__init__(response.get("message") or json.dumps(response))
        self.response = response


class DapClient:
    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.seq = 0
        self._lock = threading.Lock()
        self._responses: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self.events: list[dict[str, Any]] = []  # every event received, in order
        self._unconsumed: list[dict[str, Any]] = []
        self.output: list[str] = []
        self.stderr: list[str] = []
        self._closed = False
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()

    @classmethod
    def start(
        cls, python: str | None = None, env: dict[str, str] | None = None, cwd: str | None = None
    ) -> DapClient:
        """Spawn ``python -m prodture.adapter`` (the current interpreter by default)."""
        proc = subprocess.Popen(
            [python or sys.executable, "-m", "prodture.adapter"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
            cwd=cwd,
        )
        return cls(proc)

    # -- wire ---------------------------------------------------------------------------------

    def _read(self) -> None:
        stream = self.proc.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self._eof()
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = stream.read(length or 0)
            message = json.loads(body)
            with self._cond:
                if message.get("type") == "response":
                    self._responses[message["request_seq"]] = message
                elif message.get("type") == "event":
                    self.events.append(message)
                    self._unconsumed.append(message)
                    if message["event"] == "output":
                        self.output.append(message.get("body", {}).get("output", ""))
                self._cond.notify_all()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.decode("utf-8", "replace"))

    def _eof(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def send(self, command: str, arguments: Any = None) -> int:
        with self._lock:
            self.seq += 1
            seq = self.seq
            message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
            if arguments is not None:
                message["arguments"] = arguments
            body = json.dumps(message).encode()
            assert self.proc.stdin is not None
            self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.proc.stdin.flush()
        return seq

    def response(
        self, seq: int, timeout: float = DEFAULT_TIMEOUT, check: bool = True
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while seq not in self._responses:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise TimeoutError(
                        f"no response to request {seq} (adapter {'closed' if self._closed else 'silent'})"
                    )
                self._cond.wait(remaining)
            response = self._responses.pop(seq)
        if check and not response.get("success"):
            raise DapError(response)
        return response

    def request(
        self,
        command: str,
        arguments: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
        check: bool = True,
    ) -> dict[str, Any]:
        return self.response(self.send(command, arguments), timeout, check)

    def wait_event(self, name: str, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The oldest not-yet-consumed event called ``name`` (waiting for it)."""
        return self.wait_any((name,), timeout)

    def wait_any(self, names: tuple[str, ...], timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The oldest not-yet-consumed event called any of ``names`` (waiting for one)."""
        name = " or ".join(repr(n) for n in names)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for i, event in enumerate(self._unconsumed):
                    if event["event"] in names:
                        del self._unconsumed[i]
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    raise TimeoutError(
                        f"no {name} event (adapter {'closed' if self._closed else 'silent'}); "
                        f"events so far: {[e['event'] for e in self.events]}"
                    )
                self._cond.wait(remaining)

    def drain(self, name: str) -> None:
        """Forget unconsumed events called ``name``."""
        with self._cond:
            self._unconsumed = [e for e in self._unconsumed if e["event"] != name]

    # -- helpers ------------------------------------------------------------------------------

    def initialize(self) -> dict[str, Any]:
        return self.request(
            "initialize",
            {
                "clientID": "pytest",
                "adapterID": "prodture",
                "linesStartAt1": True,
                "columnsStartAt1": True,
                "pathFormat": "path",
                "supportsVariableType": True,
            },
        )["body"]

    def launch(
        self, check: bool = True, wait_initialized: bool = True, **arguments: Any
    ) -> dict[str, Any]:
        response = self.request(
            "launch",
            {"type": "prodture", "request": "launch", "name": "test", **arguments},
            check=check,
        )
        if response.get("success") and wait_initialized:
            self.wait_event("initialized")
        return response

    def set_breakpoints(self, path: str, lines: list[int], **extra: Any) -> dict[str, Any]:
        bps = [{"line": line, **extra} for line in lines]
        return self.request("setBreakpoints", {"source": {"path": str(path)}, "breakpoints": bps})[
            "body"
        ]

    def configuration_done(self) -> dict[str, Any]:
        return self.request("configurationDone")

    def stopped(
        self, command: str | None = None, arguments: Any = None, timeout: float = DEFAULT_TIMEOUT
    ) -> dict[str, Any]:
        """Send ``command`` (if given) and return the next ``stopped`` event's body, with the
        ``prodture/position`` event that follows it under ``position``."""
        if command is not None:
            self.request(
                command, arguments if arguments is not None else {"threadId": self.thread_id()}
            )
        stop = self.wait_event("stopped", timeout)["body"]
        stop["position"] = self.wait_event("prodture/position", timeout)["body"]
        self._thread_id = stop.get("threadId")
        return stop

    def thread_id(self) -> int:
        tid = getattr(self, "_thread_id", None)
        if tid is None:
            tid = self.request("threads")["body"]["threads"][0]["id"]
        return tid

    def frames(self) -> list[dict[str, Any]]:
        return self.request("stackTrace", {"threadId": self.thread_id()})["body"]["stackFrames"]

    def scopes(self, frame_id: int | None = None) -> list[dict[str, Any]]:
        if frame_id is None:
            frame_id = self.frames()[0]["id"]
        return self.request("scopes", {"frameId": frame_id})["body"]["scopes"]

    def variables(self, reference: int) -> dict[str, str]:
        variables = self.request("variables", {"variablesReference": reference})["body"][
            "variables"
        ]
        return {v["name"]: v["value"] for v in variables}

    def locals(self) -> dict[str, str]:
        scope = next(s for s in self.scopes() if s["name"].lower().startswith("locals"))
        return self.variables(scope["variablesReference"])

    def evaluate(self, expression: str, frame_id: int | None = None) -> str:
        if frame_id is None:
            frame_id = self.frames()[0]["id"]
        return self.request(
            "evaluate", {"expression": expression, "frameId": frame_id, "context": "watch"}
        )["body"]["result"]

    def close(self, timeout: float = 10.0) -> int | None:
        """Disconnect (if still running) and wait for the adapter to exit; kills it otherwise."""
        if self.proc.poll() is None:
            try:
                self.request("disconnect", {"terminateDebuggee": True}, timeout=5, check=False)
            except (TimeoutError, OSError, ValueError):
                pass
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> DapClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
