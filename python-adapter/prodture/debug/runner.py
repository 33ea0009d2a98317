"""The debuggee: hosts the step engine under debugpy (in-process adapter) for one trace.

    python -m prodture.debug.runner --control-fd FD --trace PATH [--handler module:function]
        [--cwd DIR] [--mode strict|speculative] [--just-my-code 1|0] [--stop-on-entry 0|1]
        [--stubs module:function]

Started by ``python -m prodture.adapter``, never by hand. Two channels go back to the adapter:
pydevd's DAP socket (debugpy, in-process: the client's stack / scopes / variables / evaluate) and
the inherited control socket (the messages of :mod:`prodture.debug.control`: commands in, stops,
output and errors out). This module translates between those messages and the step engine.
pydevd only *presents* stops: the engine owns the replay thread's tracing, and the replay
thread is marked so pydevd never traces it (``pydev_do_not_trace`` under ``sys.settrace``,
the per-thread ``stop_monitoring()`` switch under ``sys.monitoring`` on 3.12+).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any

from ..replay import SPECULATIVE, STRICT, describe_outcome
from . import control as ctl
from .contract import Command, Move, Stop, StopKind, StopPolicy

DEBUGPY_VERSION = "1.8.22"
#: seconds after a pause request without a stop before the user is told why the pause waits
PAUSE_PENDING_AFTER = 0.5


class Control:
    """The control socket to the adapter (:mod:`prodture.debug.control` messages, one a line)."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self._lock = threading.Lock()
        self._file = self.sock.makefile("rb")

    def send(self, message: ctl.Message) -> None:
        data = ctl.encode(message)
        with self._lock:
            self.sock.sendall(data)

    def receive(self) -> ctl.Message | None:
        """The next command; None when the adapter is gone. Lines that are not commands of this
        protocol are skipped (a ProtocolError from ``decode``)."""
        while True:
            line = self._file.readline()
            if not line:
                return None
            try:
                return ctl.decode(line)
            except ctl.ProtocolError as e:
                print(f"prodture: ignored a control line: {e}", file=sys.stderr, flush=True)


def _can_take_over() -> bool:
    """The pydevd internals a restored checkpoint starts again (debugpy is pinned; without them
    going back re-runs in-process)."""
    try:
        import pydevd
        from _pydevd_bundle import pydevd_comm, pydevd_constants
        from _pydevd_bundle.pydevd_process_net_command import process_net_command  # noqa: F401
        from _pydevd_bundle.pydevd_process_net_command_json import (  # noqa: F401
            PyDevJsonCommandProcessor,
        )
    except ImportError:
        return False
    return (
        hasattr(pydevd_comm, "ReaderThread")
        and hasattr(pydevd_comm.WriterThread, "add_command")
        and hasattr(pydevd_constants, "after_fork")
        and hasattr(pydevd, "PyDBCommandThread")
        and all(
            hasattr(pydevd.PyDB, name) or name in pydevd.PyDB.__init__.__code__.co_names
            for name in (
                "_main_lock",
                "_cmd_queue",
                "_thread_events",
                "_py_db_command_thread_event",
            )
        )
    )


def fail(control: Control, message: str, code: int = 2) -> None:
    """End the debuggee with one line the adapter shows the user."""
    try:
        control.send(ctl.Failed(message))
    finally:
        print(f"prodture: {message}", file=sys.stderr, flush=True)
        os._exit(code)


def self_test() -> str | None:
    """The pydevd internals we rely on; a pinned debugpy keeps them. None when all is there."""
    try:
        import debugpy
    except ImportError:
        return (
            f"debugpy is not installed in {sys.executable}; "
            f"run: {sys.executable} -m pip install 'prodture[debug]'"
        )
    if debugpy.__version__ != DEBUGPY_VERSION:
        return (
            f"debugpy {debugpy.__version__} is installed in {sys.executable}, prodture needs "
            f"{DEBUGPY_VERSION}; run: {sys.executable} -m pip install debugpy=={DEBUGPY_VERSION}"
        )
    try:
        import debugpy.server  # noqa: F401  (puts the vendored pydevd on sys.path)
        import pydevd
        from _pydevd_bundle import pydevd_constants, pydevd_thread_lifecycle
        from _pydevd_bundle.pydevd_comm_constants import CMD_SET_BREAK  # noqa: F401

        missing = [
            name
            for name in (
                "do_wait_suspend",
                "set_suspend",
                "post_method_as_internal_command",
                "get_internal_queue_and_event",
            )
            if not hasattr(pydevd.PyDB, name)
        ]
        if not hasattr(pydevd_thread_lifecycle, "internal_run_thread"):
            missing.append("internal_run_thread")
        if not hasattr(pydevd_constants, "get_current_thread_id"):
            missing.append("get_current_thread_id")
        if getattr(pydevd_constants, "PYDEVD_USE_SYS_MONITORING", False):
            from _pydevd_sys_monitoring import pydevd_sys_monitoring

            if not hasattr(pydevd_sys_monitoring, "stop_monitoring"):
                missing.append("stop_monitoring")
    except Exception as e:  # pragma: no cover - only with a broken debugpy
        return f"debugpy's pydevd in {sys.executable} is not usable ({type(e).__name__}: {e}); reinstall debugpy=={DEBUGPY_VERSION}"
    if missing:
        return f"debugpy's pydevd lacks {', '.join(missing)}; reinstall debugpy=={DEBUGPY_VERSION}"
    return None


class QueueAwareEvent(threading.Event):
    """The wake-up event of the replay thread's pydevd command queue, which never sleeps while a
    command waits in that queue.

    pydevd's suspended loop takes one command from the queue, runs it, then waits on this event
    (``TIMEOUT_SLOW``, 0.2 s) and clears it. A second command posted while the first is being
    taken sets the event just before that ``clear()``: with a plain event the loop then sleeps
    0.2 s with the command queued (two ``variables`` requests sent together answered 200 ms
    apart). Looking at the queue before sleeping closes that window."""

    def __init__(self, commands: Any) -> None:
        super().__init__()
        self._commands = commands

    def wait(self, timeout: float | None = None) -> bool:
        if not self._commands.empty():
            return True
        return super().wait(timeout)


class Runner:
    def __init__(self, args: argparse.Namespace, control: Control) -> None:
        self.args = args
        self.control = control
        self.started = threading.Event()
        self._lock = threading.Lock()
        self.stopped = False
        self.stop_count = 0  # stops presented so far (a pending pause watches it)
        self.pending: Any = None  # the engine Move to answer the current stop with
        self.engine: Any = None
        self.thread: threading.Thread | None = None
        #: fork checkpoints (checkpoints.py); PRODTURE_CHECKPOINTS=0 turns them off
        self.checkpointing = os.environ.get("PRODTURE_CHECKPOINTS", "1") != "0"

    # -- setup --------------------------------------------------------------------------------

    def setup(self) -> None:
        from ..replay import ReplayError, load_trace
        from .engine import StepEngine

        args = self.args
        try:
            trace, fn = load_trace(args.trace, cwd=args.cwd, handler=args.handler or None)
        except ReplayError as e:
            fail(self.control, str(e))
        stubs = load_stubs(args.stubs) if args.stubs else None
        if isinstance(stubs, str):
            fail(self.control, stubs)
        self.engine = StepEngine(
            trace,
            fn,
            self.present,
            mode=args.mode,
            just_my_code=args.just_my_code == "1",
            stop_on_entry=args.stop_on_entry == "1",
            stubs=stubs,
            output=lambda text: self.control.send(ctl.Output(ctl.OutputCategory.CONSOLE, text)),
            warn=lambda text: self.control.send(
                ctl.Output(ctl.OutputCategory.IMPORTANT, f"prodture: {text}\n")
            ),
        )
        import debugpy

        host, port = debugpy.listen(("127.0.0.1", 0), in_process_debug_adapter=True)
        import pydevd_tracing

        self.engine._settrace = (
            pydevd_tracing.TracingFunctionHolder._original_tracing or sys.settrace
        )
        from socket import IPPROTO_TCP, TCP_NODELAY

        import pydevd

        self.py_db = pydevd.get_global_debugger()
        # pydevd writes header and body in two sendall calls: without TCP_NODELAY each message
        # waits ~40 ms for a delayed ACK. Accepted sockets inherit the option from the listener.
        waiter = getattr(self.py_db, "_waiting_for_connection_thread", None)
        server = getattr(waiter, "_server_socket", None)
        if server is not None:
            server.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        from ..runtime import PACKAGE_DIR

        self.control.send(
            ctl.Hello(
                protocol=ctl.PROTOCOL_VERSION,
                host=host,
                port=port,
                pid=os.getpid(),
                runtime_dir=os.path.realpath(PACKAGE_DIR),
                python=sys.version.split()[0],
                effect_count=len(trace.effects),
            )
        )

    # -- the control thread -------------------------------------------------------------------

    def serve_control(self) -> None:
        threading.current_thread().is_pydev_daemon_thread = True  # type: ignore[attr-defined]
        while True:
            try:
                message = self.control.receive()
            except OSError:
                message = None
            if message is None:
                os._exit(0)  # the adapter is gone: never outlive it
            if not isinstance(message, ctl.Command):
                continue
            try:
                reply = self.handle(message)
            except Exception as e:
                reply = ctl.Reply(0, ok=False, message=f"{type(e).__name__}: {e}")
            if reply is None:  # answered already
                continue
            if message.id is not None:
                self.control.send(dataclasses.replace(reply, id=message.id))

    def handle(self, message: ctl.Command) -> ctl.Reply | None:
        """Carry out one command of the adapter (the reply's id is filled in by the caller; None:
        answered already)."""
        from .engine import Breakpoint

        engine = self.engine
        ok = ctl.Reply(0)
        if isinstance(message, ctl.SetBreakpoints):
            bps = [
                Breakpoint(b.line, b.condition, b.hit_condition, b.log_message)
                for b in message.breakpoints
            ]
            engine.set_breakpoints(message.path, bps)
            return ok
        if isinstance(message, ctl.SetExceptionStops):
            engine.set_policy(
                StopPolicy(
                    effect_failed=message.effect_failed,
                    every_effect=message.every_effect,
                    raised=message.raised,
                    uncaught=message.uncaught,
                )
            )
            return ok
        if isinstance(message, ctl.Start):
            self.started.set()
            return ok
        if isinstance(message, ctl.ListEffects):
            return ctl.Reply(0, body=effects_body(engine))
        if isinstance(message, ctl.Pause):
            with self._lock:
                if not self.stopped:
                    engine.request_pause()
                    self._watch_pause(self.stop_count)
            return ok
        if isinstance(message, ctl.Terminate):
            if not self.stopped:
                os._exit(0)
            command, name = Move(Command.TERMINATE), "terminate"
        elif isinstance(message, ctl.Move):
            command = Move(_MOTIONS[message.motion], message.effect)
            name = message.motion.value
        else:
            return ctl.Reply(0, ok=False, message=f"unknown command {message.KIND}")
        with self._lock:
            if not self.stopped:
                return ctl.Reply(
                    0,
                    ok=False,
                    message=f"cannot {name} while the replay is running; pause first",
                )
            self.stopped = False
            self.pending = command
        if message.id is not None:  # before resuming: a checkpoint restore ends this process
            self.control.send(dataclasses.replace(ok, id=message.id))
        self._resume()
        return None

    def _watch_pause(self, stops: int) -> None:
        """A pause stops at the handler's next line event; while the handler is inside a call
        that runs none of its lines (``time.sleep``, a blocking read, a long library call) that
        is not soon. If no stop came within :data:`PAUSE_PENDING_AFTER`, tell the user why."""

        def check() -> None:
            with self._lock:
                if self.stopped or self.stop_count != stops:
                    return
            where = self._blocked_in()
            if where:
                self.control.send(
                    ctl.Output(
                        ctl.OutputCategory.IMPORTANT,
                        f"prodture: pause requested while {where}; the replay pauses at the "
                        "handler's next line once that call returns\n",
                    )
                )

        timer = threading.Timer(PAUSE_PENDING_AFTER, check)
        timer.daemon = True
        timer.start()

    def _blocked_in(self) -> str | None:
        """Where the replay thread is, as the user should read it; None outside the handler."""
        ident = self.thread.ident if self.thread else None  # None: not started yet
        frame = sys._current_frames().get(ident) if ident is not None else None
        is_user_code = self.engine.is_user_code
        inner = frame
        while frame is not None and not is_user_code(frame.f_code.co_filename):
            frame = frame.f_back
        if frame is None:
            return None
        at = f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno} in {frame.f_code.co_name}"
        if inner is frame:
            return f"the handler is in a call that runs no Python line (at {at})"
        assert inner is not None
        return (
            f"the handler is in {inner.f_code.co_name} "
            f"({os.path.basename(inner.f_code.co_filename)}:{inner.f_lineno}), outside its own "
            f"code (called at {at})"
        )

    def _resume(self) -> None:
        from _pydevd_bundle.pydevd_additional_thread_info import set_additional_thread_info
        from _pydevd_bundle.pydevd_constants import get_current_thread_id
        from _pydevd_bundle.pydevd_thread_lifecycle import internal_run_thread

        thread = self.thread
        thread_id = get_current_thread_id(thread)

        def resume(py_db: Any) -> None:
            internal_run_thread(thread, set_additional_thread_info)
            # pydevd's wait loop sleeps up to 0.2 s after running a command before it looks at
            # the thread state again: wake it so it sees the state change at once
            py_db.get_internal_queue_and_event(thread_id)[1].set()

        # Runs on the suspended thread itself, inside pydevd's wait loop, which it then leaves.
        self.py_db.post_method_as_internal_command(thread_id, resume)

    # -- the replay thread --------------------------------------------------------------------

    def present(self, stop: Stop) -> Move:
        from _pydevd_bundle.pydevd_comm_constants import CMD_SET_BREAK

        engine = self.engine
        thread = self.thread
        with self._lock:
            self.stopped = True
            self.stop_count += 1
            self.pending = None
        position = engine.position(stop)
        exception_id, exception_message = _exception_of(stop)
        self.control.send(
            ctl.Stopped(
                reason=_REASONS[stop.kind],
                position=ctl.Position(
                    step=position.step,
                    effect=position.effect,
                    effect_count=position.effect_count,
                    path=position.path,
                    line=position.line,
                    next_effect=position.next_effect,
                ),
                description=_describe_stop(stop, engine.trace, engine.mode),
                exception_id=exception_id,
                exception_message=exception_message,
                end=stop.end,
                replay=replay_rows(engine.replay_view(stop)),
            )
        )
        if engine.checkpoints is not None:
            engine.checkpoints.prepare_for(engine.step)
        self.py_db.set_suspend(thread, CMD_SET_BREAK)
        self.py_db.do_wait_suspend(thread, stop.frame, "line", None)
        self._untrace_pydevd()
        pending = self.pending
        if pending is None:  # pydevd resumed on its own (client sent a plain continue to debugpy)
            pending = Move(Command.CONTINUE)
        return pending

    # -- fork checkpoints (checkpoints.py) ----------------------------------------------------

    def _prepare_take_over(self) -> Callable[[bool], None]:
        """In a parked checkpoint: start pydevd's and the runner's threads again (a fork has
        only the replay thread) on the sockets inherited from the old debuggee, each held at a
        gate before it runs. Returns what opens the gate: ``True`` once the old debuggee has
        parked (the threads take over the session), ``False`` to end them unused."""
        from _pydevd_bundle import pydevd_constants
        from _pydevd_bundle.pydevd_comm import ReaderThread, WriterThread
        from _pydevd_bundle.pydevd_process_net_command import process_net_command
        from _pydevd_bundle.pydevd_process_net_command_json import PyDevJsonCommandProcessor
        from pydevd import PyDBCommandThread

        pydevd_constants.after_fork()  # pydevd's fork-safe locks
        py_db = self.py_db
        # pydevd's plain locks and queues were copied as the fork found them: a thread that held
        # one then (the command thread takes them every 0.2 s) is gone and would never free it
        import _thread

        py_db._main_lock = _thread.allocate_lock()
        py_db._lock_running_thread_ids = _thread.allocate_lock()
        py_db._lock_create_fs_notify = _thread.allocate_lock()
        py_db._cmd_queue.clear()
        py_db._thread_events.clear()
        py_db._py_db_command_thread_event = threading.Event()
        from _pydevd_bundle.pydevd_custom_frames import CustomFramesContainer

        CustomFramesContainer._py_db_command_thread_event = py_db._py_db_command_thread_event
        self._wake_on_queued_commands()
        sock = py_db.writer.sock
        old_reader = py_db.reader
        py_db.writer = WriterThread(sock, py_db, terminate_on_socket_close=True)
        py_db.reader = ReaderThread(
            sock,
            py_db,
            PyDevJsonCommandProcessor=PyDevJsonCommandProcessor,
            process_net_command=process_net_command,
            terminate_on_socket_close=True,
        )
        # the DAP request processor keeps the session's state (launch / attach received, ...):
        # the new reader goes on with the old one's
        py_db.reader.process_net_command_json = old_reader.process_net_command_json
        # not the check-alive thread: nothing it watches here
        if py_db.py_db_command_thread is not None:
            py_db.py_db_command_thread.do_kill_pydev_thread()
        py_db.py_db_command_thread = PyDBCommandThread(py_db)
        self._lock = threading.Lock()
        self.control._lock = threading.Lock()
        self.control._file = self.control.sock.makefile("rb")
        control = threading.Thread(target=self.serve_control, name="prodture-control", daemon=True)
        # marked before it starts: pydevd must never trace nor suspend it (a suspend-all stop
        # would park it in pydevd's wait loop with the client's next command unread)
        control.is_pydev_daemon_thread = True  # type: ignore[attr-defined]
        control.pydev_do_not_trace = True  # type: ignore[attr-defined]

        gate = threading.Event()
        take_over = False

        def gated(run: Callable[[], None]) -> Callable[[], None]:
            def run_after_gate() -> None:
                gate.wait()
                if take_over:
                    run()

            return run_after_gate

        for thread in (py_db.writer, py_db.reader, py_db.py_db_command_thread, control):
            thread.run = gated(thread.run)  # type: ignore[method-assign]
            thread.start()

        def release(session: bool) -> None:
            nonlocal take_over
            take_over = session
            gate.set()

        return release

    def _handover(self, pid: int) -> None:
        """This process is about to park: checkpoint ``pid`` is the debuggee from now on."""
        self._flush_pydevd()
        self.control.send(ctl.Handover(pid=pid))

    def _flush_pydevd(self) -> None:
        """Let pydevd's writer send what it has queued, then drop whatever comes later: a
        message cut short on the DAP socket would desynchronize it for the checkpoint."""
        writer = self.py_db.writer
        sent = threading.Event()

        class Marker:
            as_dict = None
            id = -1

            def send(self, sock: Any) -> None:
                sent.set()

        writer.add_command = lambda cmd: None
        writer._cmd_queue.put(Marker())
        sent.wait(2)

    def _wake_on_queued_commands(self) -> None:
        """Give the replay thread's command queue a :class:`QueueAwareEvent` (before its first
        stop, so pydevd's suspended loop only ever waits on that one)."""
        from _pydevd_bundle.pydevd_constants import get_current_thread_id

        thread_id = get_current_thread_id(self.thread)
        commands, _ = self.py_db.get_internal_queue_and_event(thread_id)
        events = getattr(self.py_db, "_thread_events", None)
        if isinstance(events, dict):  # pydevd's per-thread events (debugpy is pinned)
            events[thread_id] = QueueAwareEvent(commands)

    def _untrace_pydevd(self) -> None:
        """Keep pydevd's tracing off the replay thread (it may re-enable it after a suspend)."""
        from _pydevd_bundle import pydevd_constants

        if getattr(pydevd_constants, "PYDEVD_USE_SYS_MONITORING", False):
            from _pydevd_sys_monitoring import pydevd_sys_monitoring

            pydevd_sys_monitoring.stop_monitoring(all_threads=False)

    def run(self) -> int:
        self.thread = threading.current_thread()
        self.thread.pydev_do_not_trace = True  # type: ignore[attr-defined]
        if not self.started.wait(60):
            fail(self.control, "the debug adapter never finished configuring the session (timeout)")
        sock = getattr(getattr(self.py_db, "writer", None), "sock", None)
        if sock is not None:
            try:
                from socket import IPPROTO_TCP, TCP_NODELAY

                sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
            except OSError:
                pass
        self._wake_on_queued_commands()
        self._untrace_pydevd()
        self.engine._settrace(None)
        from . import checkpoints

        if self.checkpointing and checkpoints.supported() and _can_take_over():
            every = os.environ.get("PRODTURE_CHECKPOINT_EVERY", "")
            saved = os.environ.get("PRODTURE_CHECKPOINT_MIN_SAVED", "")
            self.engine.checkpoints = checkpoints.ForkCheckpoints(
                self.engine,
                self._handover,
                self._prepare_take_over,
                every=int(every) if every.isdigit() else checkpoints.EVERY_STEPS,
                min_saved=int(saved) if saved.isdigit() else checkpoints.MIN_SAVED_STEPS,
            )
        outcome = self.engine.run()
        engine = self.engine
        divergence = engine.divergence
        if divergence is not None:
            now = ""
            if outcome is not None and engine.mode == SPECULATIVE:
                now = f"; the code now ends with {describe_outcome(outcome)}"
            message = ctl.Exited(1, f"replay diverged: {divergence.message}{now}")
        elif outcome is None:
            message = ctl.Exited(0, "replay terminated")
        else:
            from ..trace.format import describe_error

            message = ctl.Exited(
                0,
                "replay reproduced the recording: "
                + (
                    f"Success: {outcome.value!r}"[:200]
                    if outcome.ok
                    else f"Failure: {describe_error(outcome.error)}"
                ),
            )
        self.control.send(message)
        return message.exit_code


# -- the engine's vocabulary in DAP's words ---------------------------------------------------

_MOTIONS = {
    ctl.Motion.NEXT: Command.NEXT,
    ctl.Motion.STEP_IN: Command.STEP_IN,
    ctl.Motion.STEP_OUT: Command.STEP_OUT,
    ctl.Motion.CONTINUE: Command.CONTINUE,
    ctl.Motion.STEP_BACK: Command.STEP_BACK,
    ctl.Motion.REVERSE_CONTINUE: Command.REVERSE_CONTINUE,
    ctl.Motion.JUMP_TO_EFFECT: Command.JUMP_TO_EFFECT,
}

_REASONS = {
    StopKind.ENTRY: ctl.StopReason.ENTRY,
    StopKind.STEP: ctl.StopReason.STEP,
    StopKind.BREAKPOINT: ctl.StopReason.BREAKPOINT,
    StopKind.PAUSE: ctl.StopReason.PAUSE,
    StopKind.GOTO: ctl.StopReason.GOTO,
    StopKind.EFFECT_PERFORMED: ctl.StopReason.EXCEPTION,
    StopKind.EFFECT_FAILED: ctl.StopReason.EXCEPTION,
    StopKind.RAISED: ctl.StopReason.EXCEPTION,
    StopKind.DIVERGENCE: ctl.StopReason.EXCEPTION,
    StopKind.UNCAUGHT: ctl.StopReason.EXCEPTION,
    StopKind.END: ctl.StopReason.STEP,
}


def _recorded(trace: Any) -> str:
    return (
        trace.outcome.describe(200) if trace.outcome is not None else "none (incomplete recording)"
    )


def _describe_stop(stop: Stop, trace: Any, mode: str = STRICT) -> str | None:
    """The sentence the user reads for ``stop`` (None for plain steps)."""
    kind = stop.kind
    error = stop.exception
    end = kind in (StopKind.END, StopKind.UNCAUGHT)
    if mode == SPECULATIVE and end and stop.outcome is not None:
        # what the changed code now does, beside what production did: the point of the mode
        return (
            f"End of replay (speculative): the code now ends with {describe_outcome(stop.outcome)} "
            f"(recorded {_recorded(trace)})"
        )
    if kind is StopKind.EFFECT_FAILED and error is not None:
        name = stop.record.short_type if stop.record is not None else stop.effect_type
        return (
            f"effect #{stop.effect_seq} {name} failed (recorded error): "
            f"{error.type_name}: {error.message}"
        )
    if kind is StopKind.EFFECT_PERFORMED:
        record = stop.record
        if record is None:
            return f"effect #{stop.effect_seq} {stop.effect_type}"
        return (
            f"effect #{stop.effect_seq} {record.describe_request(200)} → "
            f"{record.describe_result(200)}"
        )
    if kind is StopKind.DIVERGENCE and stop.divergence is not None:
        return f"divergence: {stop.divergence.message}"
    if kind in (StopKind.RAISED, StopKind.UNCAUGHT) and error is not None:
        return f"{error.type_name}: {error.message}" if error.message else error.type_name
    if kind is StopKind.UNCAUGHT:
        return f"Uncaught exception (end of replay; recorded {_recorded(trace)})"
    if kind is StopKind.END:
        return f"End of replay (recorded {_recorded(trace)})"
    if kind is StopKind.BREAKPOINT and stop.condition_error is not None:
        condition = stop.condition_error
        return f"breakpoint condition error: {condition.type_name}: {condition.message}"
    return None


def _exception_of(stop: Stop) -> tuple[str | None, str | None]:
    """(exception id, message) of an exception stop: the exception's type name and message."""
    kind = stop.kind
    if kind is StopKind.DIVERGENCE and stop.divergence is not None:
        return "Divergence", stop.divergence.message
    if kind is StopKind.EFFECT_PERFORMED:
        return "EffectPerformed", _describe_stop(stop, None)
    if kind in (StopKind.EFFECT_FAILED, StopKind.RAISED, StopKind.UNCAUGHT):
        error = stop.exception
        if error is not None:
            return error.type_name, error.message
    return None, None


def replay_rows(view: Any) -> tuple[tuple[str, str], ...]:
    """The Replay scope's rows (name, value) for the engine's ReplayView."""
    rows = [("step", str(view.step)), ("effect", f"{view.effect} of {view.effect_count}")]
    rows.append(("mode", view.mode))
    last = view.last
    if last is not None:
        rows.append(("lastEffect", f"#{last.seq} {last.describe_request(200)}"))
        rows.append(("lastResult" if last.ok else "lastError", last.describe_result(200)))
    elif view.speculative_last:
        rows.append(("lastEffect", f"#{view.effect} (speculative: answered by a stub)"))
    else:
        rows.append(("lastEffect", "none yet"))
    nxt = view.next
    rows.append(
        (
            "nextEffect",
            f"#{nxt.seq} {nxt.describe_request(200)}"
            if nxt is not None
            else "none (all recorded effects performed)",
        )
    )
    rows.append(
        (
            "outcome",
            view.outcome.describe(200)
            if view.outcome is not None
            else "none (incomplete recording)",
        )
    )
    if view.divergence is not None:
        rows.append(("divergence", view.divergence.message))
    return tuple(rows)


def load_stubs(name: str) -> Any:
    """The stubs mapping returned by ``module:function`` (the launch attribute ``stubs``), or a
    one-line error. The module is imported because the user named it in their launch
    configuration, as ``handler`` is; a trace never names it."""
    import importlib
    from collections.abc import Mapping

    module, _, function = name.partition(":")
    if not module or not function:
        return (
            f'stubs {name!r} is not of the form module:function; fix the "stubs" launch attribute'
        )
    try:
        fn: Any = importlib.import_module(module)
        for part in function.split("."):
            fn = getattr(fn, part)
    except SyntaxError as e:
        return f"stubs module {module!r} does not import: SyntaxError at {e.filename}:{e.lineno}: {e.msg}; fix the code"
    except AttributeError:
        return (
            f'stubs {name}: module {module!r} has no {function!r}; fix the "stubs" launch attribute'
        )
    except Exception as e:
        return f'stubs module {module!r} does not import: {type(e).__name__}: {e}; fix the "stubs" launch attribute'
    try:
        stubs = fn()
    except Exception as e:
        return f"stubs {name}() raised {type(e).__name__}: {e}; fix the stubs function"
    if not isinstance(stubs, Mapping) or not all(callable(v) for v in stubs.values()):
        return (
            f"stubs {name}() must return a mapping {{EffectType or effect name: callable(effect) -> result}}, "
            f"got {type(stubs).__name__}; fix the stubs function"
        )
    return dict(stubs)


def effects_body(engine: Any) -> dict[str, Any]:
    from ..trace.render import effect_view

    trace = engine.trace
    effects = [effect_view(e, 200) for e in trace.effects]
    outcome = None
    if trace.outcome is not None:
        outcome = {"ok": trace.outcome.ok, "summary": trace.outcome.describe(200)}
    return {"effects": effects, "outcome": outcome, "complete": trace.complete}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m prodture.debug.runner")
    parser.add_argument("--control-fd", type=int, required=True)
    parser.add_argument("--trace", required=True)
    parser.add_argument("--handler", default="")
    parser.add_argument("--cwd", default=None)
    parser.add_argument("--mode", default="strict")
    parser.add_argument("--just-my-code", default="1")
    parser.add_argument("--stop-on-entry", default="0")
    parser.add_argument("--stubs", default="")
    args = parser.parse_args(argv)
    control = Control(args.control_fd)
    problem = self_test()
    if problem:
        fail(control, problem, 3)
    runner = Runner(args, control)
    runner.setup()
    threading.Thread(target=runner.serve_control, name="prodture-control", daemon=True).start()
    code = runner.run()
    # the adapter ends the session (exited/terminated) and then closes the control socket
    threading.Event().wait(10)
    return code


if __name__ == "__main__":
    sys.exit(main())
