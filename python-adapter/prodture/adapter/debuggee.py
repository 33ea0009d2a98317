"""The debuggee peer: the runner process and its three channels.

- the **control socket** (inherited fd): :mod:`prodture.debug.control` messages — commands to the
  step engine, stops / output / errors / the end back;
- the **DAP socket** to the runner's in-process debugpy: requests the adapter forwards (stack,
  variables, evaluate…) and pydevd's events;
- the process's **stdout / stderr** pipes, shown as ``output`` events.

Reader threads only decode and post ``(kind, generation, payload)`` to the session's queue; the
``on_*`` handlers below run on the session's one thread. A debuggee of an earlier generation
(replaced by ``restart``) is ignored by the session.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..debug import control as ctl
from .launch import LaunchError, explain_exit, runner_command
from .streams import DapStream

if TYPE_CHECKING:
    from .server import Session

#: seconds a restored checkpoint may take to speak (its first stop) before the session ends with
#: an error; a restore re-executes at most checkpoints.MAX_SHIPPED_STEPS steps
HANDOVER_TIMEOUT = 60.0

#: pydevd's events that the adapter does not pass on: the engine decides when execution runs and ends
_SWALLOWED_EVENTS = {"continued", "exited", "terminated", "process", "debugpyWaitingForServer"}


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


class Debuggee:
    """One debuggee process: the runner, its DAP socket (debugpy), control socket and pipes."""

    def __init__(self, session: Session, generation: int, args: dict[str, Any]) -> None:
        self.session = session
        self.generation = generation
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None
        self.dap: DapStream | None = None
        self.dap_sock: socket.socket | None = None
        self.seq = itertools.count(1)
        self.pending: dict[int, Callable[[dict[str, Any]], None]] = {}
        self.control_ids = itertools.count(1)
        self.control_pending: dict[int, Callable[[ctl.Reply], None]] = {}
        self.runtime_dir = ""
        self.effect_count = 0
        self.stderr_tail: list[str] = []
        self.dead = False
        #: the pid of the process that is the debuggee now (a checkpoint after a handover)
        self.pid: int | None = None
        #: a checkpoint that took the session over and has not said anything yet
        self.handing_over: int | None = None
        #: called once with None (debugpy is attached and initialized) or the launch error
        self.on_started: Callable[[str | None], None] | None = None

    @property
    def python(self) -> str:
        return self.args.get("python") or sys.executable

    # -- transport ----------------------------------------------------------------------------

    def _post(self, kind: str, payload: Any) -> None:
        self.session.post(kind, self.generation, payload)

    def spawn(self) -> None:
        args = self.args
        cwd = args.get("cwd") or os.getcwd()
        parent, child = socket.socketpair()
        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (args.get("env") or {}).items()})
        env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        env["PYTHONUNBUFFERED"] = "1"
        try:
            self.proc = subprocess.Popen(
                runner_command(args, child.fileno()),
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
                f'Python interpreter not found: {self.python}; fix the "python" launch attribute'
            ) from None
        except NotADirectoryError:
            raise LaunchError(
                f'cwd is not a directory: {cwd}; fix the "cwd" launch attribute'
            ) from None
        except PermissionError:
            raise LaunchError(
                f'cannot run {self.python}: permission denied; fix the "python" launch attribute'
            ) from None
        finally:
            child.close()
        self.control = parent
        self.pid = self.proc.pid
        for target, args_ in (
            (self._read_control, ()),
            (self._read_pipe, (self.proc.stdout, "stdout")),
            (self._read_pipe, (self.proc.stderr, "stderr")),
            (self._wait, ()),
        ):
            threading.Thread(target=target, args=args_, daemon=True).start()

    def _read_control(self) -> None:
        assert self.control is not None
        for line in self.control.makefile("rb"):
            try:
                self._post("control", ctl.decode(line))
            except ctl.ProtocolError as e:
                problem = (
                    f"the debuggee ({self.python}) sent a control message this adapter cannot "
                    f"read ({e}); install the adapter's prodture version in {self.python}"
                )
                self._post("control", ctl.Failed(problem))

    def _read_pipe(self, pipe: Any, category: str) -> None:
        for line in iter(pipe.readline, b""):
            text = line.decode("utf-8", "replace")
            if category == "stderr":
                self.stderr_tail = (self.stderr_tail + [text])[-20:]
            self._post("output", {"category": category, "output": text})

    def _wait(self) -> None:
        assert self.proc is not None
        code = self.proc.wait()
        # let the pipe readers drain first so the last stderr line is known
        time.sleep(0.05)
        self._post("exit", (self.proc.pid, code))

    def _watch(self, pid: int) -> None:
        """Wait for a debuggee that is not our child (a restored checkpoint) to end."""
        import select

        try:
            fd = os.pidfd_open(pid)
        except (OSError, AttributeError):  # gone already, or no pidfd (Linux < 5.3)
            fd = None
        if fd is not None:
            try:
                select.select([fd], [], [])
            finally:
                os.close(fd)
        else:
            while _alive(pid) and not self.dead:
                time.sleep(0.2)
        time.sleep(0.05)  # the pipe readers drain first, as in _wait
        self._post("exit", (pid, None))

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
            self._post("dap", message)

    def request(
        self, command: str, arguments: Any, on_response: Callable[[dict[str, Any]], None]
    ) -> None:
        """Send a DAP request to debugpy; ``on_response`` gets its response."""
        seq = next(self.seq)
        self.pending[seq] = on_response
        assert self.dap is not None
        message: dict[str, Any] = {"seq": seq, "type": "request", "command": command}
        if arguments is not None:
            message["arguments"] = arguments
        self.dap.write(message)

    def command(
        self, message: ctl.Command, on_reply: Callable[[ctl.Reply], None] | None = None
    ) -> None:
        """Send a control command to the runner; ``on_reply`` gets its :class:`Reply`."""
        if on_reply is not None:
            message = dataclasses.replace(message, id=next(self.control_ids))
            assert message.id is not None
            self.control_pending[message.id] = on_reply
        try:
            assert self.control is not None
            self.control.sendall(ctl.encode(message))
        except OSError:
            if on_reply is not None and message.id is not None:
                self.control_pending.pop(message.id, None)
                on_reply(ctl.Reply(message.id, ok=False, message="the debuggee is gone"))

    def kill(self) -> None:
        self.dead = True
        if self.proc is not None:
            try:
                # the whole group: the runner and its checkpoints (forks of it)
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

    # -- what the debuggee sends (on the session's thread) ------------------------------------

    def _handover_late(self, pid: int) -> None:
        """The checkpoint ``pid`` took the session over but has said nothing since: end the
        session with a clear error rather than wait for ever."""
        if self.handing_over != pid or self.dead:
            return
        client = self.session.client
        client.notice(
            f"going back through checkpoint process {pid} did not finish within "
            f"{HANDOVER_TIMEOUT:g} s; to go back by re-running in-process instead, launch with "
            '"env": {"PRODTURE_CHECKPOINTS": "0"}'
        )
        self.kill()
        client.end_session(1)

    def on_control(self, message: ctl.Message) -> None:
        self.handing_over = None  # the debuggee speaks (a Handover sets it again)
        client = self.session.client
        if isinstance(message, ctl.Reply):
            callback = self.control_pending.pop(message.id, None)
            if callback is not None:
                callback(message)
        elif isinstance(message, ctl.Hello):
            self._handshake(message)
        elif isinstance(message, ctl.Failed):
            if self.on_started is not None:
                self.on_started(message.message)
            else:
                client.notice(message.message)
        elif isinstance(message, ctl.Stopped):
            self.session.stops.engine_stopped(message)
        elif isinstance(message, ctl.Handover):
            self.pid = message.pid
            self.handing_over = message.pid
            threading.Thread(target=self._watch, args=(message.pid,), daemon=True).start()
            self.session.after(HANDOVER_TIMEOUT, lambda: self._handover_late(message.pid))
        elif isinstance(message, ctl.Output):
            client.event("output", {"category": message.category.value, "output": message.output})
        elif isinstance(message, ctl.Exited):
            if message.summary:
                client.event(
                    "output", {"category": "console", "output": f"prodture: {message.summary}\n"}
                )
            self.kill()
            client.end_session(message.exit_code)

    def on_dap(self, message: dict[str, Any]) -> None:
        if message.get("type") == "response":
            callback = self.pending.pop(message.get("request_seq"), None)  # type: ignore[arg-type]
            if callback is not None:
                callback(message)
            return
        if message.get("type") != "event":
            return
        name = message.get("event")
        if name == "initialized":
            if self.on_started is not None:
                self.on_started(None)
        elif name == "stopped":
            self.session.stops.pydevd_stopped(message.get("body") or {})
        elif name not in _SWALLOWED_EVENTS:
            self.session.client.event(name, message.get("body"))  # type: ignore[arg-type]

    def on_output(self, payload: dict[str, Any]) -> None:
        self.session.client.event("output", payload)

    def on_exit(self, payload: tuple[int, int | None]) -> None:
        pid, code = payload
        if pid != self.pid:
            return  # a debuggee that handed the session over to its checkpoint
        self.dead = True
        if self.on_started is not None:
            self.on_started(explain_exit(self.python, self.stderr_tail, code))
            return
        client = self.session.client
        if code is None and self.proc is not None and pid != self.proc.pid:
            tail = "".join(self.stderr_tail[-3:]).strip()
            client.notice(
                f"the debuggee (pid {pid}, restored from a checkpoint) ended without a word"
                + (f": {tail}" if tail else ""),
                only_if_running=True,
            )
        if code not in (0, None):
            tail = "".join(self.stderr_tail[-3:]).strip()
            client.notice(
                f"the debuggee exited with code {code}" + (f": {tail}" if tail else ""),
                only_if_running=True,
            )
        client.end_session(code if code is not None else 1)

    def _handshake(self, hello: ctl.Hello) -> None:
        """The debuggee listens: attach to its in-process debugpy."""
        if hello.protocol != ctl.PROTOCOL_VERSION:
            if self.on_started is not None:
                self.on_started(
                    f"the prodture in {self.python} speaks control protocol {hello.protocol}, this "
                    f"adapter {ctl.PROTOCOL_VERSION}; install the same prodture version in both"
                )
            return
        self.runtime_dir = hello.runtime_dir
        self.effect_count = hello.effect_count
        try:
            self.connect(hello.host or "127.0.0.1", hello.port)
        except OSError as e:
            if self.on_started is not None:
                self.on_started(f"cannot connect to the debuggee's debugpy: {e}")
            return
        client_init = self.session.client.client_init
        init = {
            "clientID": "prodture",
            "adapterID": "prodture",
            "pathFormat": "path",
            "linesStartAt1": client_init.get("linesStartAt1", True),
            "columnsStartAt1": client_init.get("columnsStartAt1", True),
            "supportsVariableType": True,
            "supportsVariablePaging": True,
            "supportsRunInTerminalRequest": False,
        }
        attach = {
            "justMyCode": self.args.get("justMyCode", True) is not False,
            "redirectOutput": False,
            "subProcess": False,
            "showReturnValue": False,
            "name": "prodture",
        }
        self.request("initialize", init, lambda r: self.request("attach", attach, lambda r2: None))
