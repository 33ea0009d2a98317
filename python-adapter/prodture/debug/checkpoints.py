"""Fork checkpoints: step back at a cost that does not grow with depth.

Going back to step *k* re-runs the handler from the start (see :mod:`.engine`): the untraced
prefix costs as much as the handler's run up to *k* (~60 ms per million line steps). As rr and
pyttd do, the debuggee instead forks itself now and then while it runs forward: each fork (a
*checkpoint*) is parked on a pipe, at an effect the handler yields. Going back to step *k* then
hands the session to the latest checkpoint at or before the effect from which a re-run would
watch for *k*: the old debuggee sends the checkpoint the history between its effect and *k* and
parks itself (SIGSTOP); the checkpoint takes over the control and DAP sockets (it inherited them),
lets pydevd's threads run again (a fork has only the forking thread), kills the old debuggee and
runs on as a re-run would from that effect — untraced to the last effect before *k*, then only
the target code watched — and stops at *k*. Only the part after the checkpoint is re-executed.

A checkpoint serves a target only when what it knows still holds: the session-level state of the
engine (a completed run, divergences, the code objects seen) is the same as when it was forked.
Otherwise, and wherever ``os.fork`` is missing, the engine re-runs in-process as before.

Starting those threads is most of a restore's cost (a few milliseconds: each thread start waits
for the new thread to run, and each first write to a page the fork shares copies it). At each
stop the debuggee therefore asks the checkpoint a step back from there would use to *prepare*:
that checkpoint starts its threads while it is still parked, each blocked at a gate before it
touches a socket, and a restore only opens the gate. One checkpoint of the session is prepared
at a time (the debuggee tells the previous one to let its threads go).

Checkpoints die with the session: the adapter kills the debuggee's process group (they stay in
it), and a checkpoint whose pipe has no writer left (every process that could restore it is gone)
exits at once.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from array import array
from collections.abc import Callable
from typing import Any

__all__ = ["ForkCheckpoints", "supported", "EVERY_STEPS", "MAX_CHECKPOINTS"]

#: a checkpoint at the first effect at least this many steps after the previous one
EVERY_STEPS = 20_000
#: at most this many parked checkpoints: past it every second one goes and the spacing doubles
MAX_CHECKPOINTS = 128
#: a restore pays off when it saves the re-run at least this many steps (a restore costs a few
#: milliseconds; the untraced re-run ~60 ns a step)
MIN_SAVED_STEPS = 150_000
#: a restore ships the history between the checkpoint and the target; beyond this many steps the
#: in-process re-run is used
MAX_SHIPPED_STEPS = 1_000_000
#: seconds a restored checkpoint waits for the old debuggee to park
PARK_TIMEOUT = 5.0


_DEBUG = bool(os.environ.get("PRODTURE_CHECKPOINT_DEBUG"))


def supported() -> bool:
    """Fork checkpoints need ``fork`` and ``/proc`` (to see the old debuggee park): Linux."""
    return hasattr(os, "fork") and os.path.exists(f"/proc/{os.getpid()}/stat")


class ForkCheckpoints:
    """The checkpoints of one debuggee process (and of the checkpoints it becomes).

    ``handover(pid)`` runs in the old debuggee just before a restore: it quiets pydevd's writer and
    tells the adapter that ``pid`` is the debuggee from now on. ``prepare()`` runs in a parked
    checkpoint: it starts pydevd's and the runner's threads again, blocked before they touch the
    inherited sockets, and returns the function that lets them go (``True``: take over the
    session, after the old debuggee parked; ``False``: end them, the checkpoint stays parked).
    """

    def __init__(
        self,
        engine: Any,
        handover: Callable[[int], None],
        prepare: Callable[[], Callable[[bool], None]],
        every: int = EVERY_STEPS,
        limit: int = MAX_CHECKPOINTS,
        min_saved: int = MIN_SAVED_STEPS,
    ) -> None:
        self.engine = engine
        self.handover = handover
        self.prepare = prepare
        self.every = every
        self.limit = limit
        self.min_saved = min_saved
        #: (effect seq, step, engine key, pid, pipe write end), in order of effect seq
        self.parked: list[tuple[int, int, Any, int, int]] = []
        self._killed: list[int] = []  # dropped checkpoints of this process, to reap
        #: the parked checkpoint told to prepare its take-over (one at a time), or None
        self._prepared_pid: int | None = None
        #: in a prepared checkpoint: lets its threads go (see ``prepare``)
        self._release: Callable[[bool], None] | None = None

    _pipe_r = -1  # in a parked process: the read end of its pipe

    # -- forward: taking checkpoints ------------------------------------------------------------

    def at_effect(self, seq: int) -> dict[str, Any] | None:
        """The handler yields effect ``seq`` (in a run that records history). Fork a checkpoint
        if the last one is far enough back. None in the debuggee; in a checkpoint being restored,
        the restore message (the checkpoint has taken over the session)."""
        parked = self.parked
        if parked and (seq <= parked[-1][0] or self.engine.step - parked[-1][1] < self.every):
            return None
        return self._fork(seq)

    def _fork(self, seq: int) -> dict[str, Any] | None:
        """Fork a checkpoint parked here. Returns in this process at once (None); in the
        checkpoint once it is restored and has taken over the session (the restore message)."""
        engine = self.engine
        try:
            entry = _fork_parked()
        except OSError:  # out of processes or memory: no checkpoint here
            return None
        if entry is not None:
            self.parked.append((seq, engine.step, engine.checkpoint_key(), *entry))
            self._reap()
            if len(self.parked) > self.limit:
                self._thin()
            return None
        message, spare = self._park()
        started = time.monotonic()
        prepared = self._release is not None
        release = self._release or self._prepare()
        self._release = None
        old = message["from"]
        _wait_parked(old)
        parked_at = time.monotonic()
        release(True)
        try:
            os.kill(old, signal.SIGKILL)  # parked (stopped): its sockets are ours now
        except OSError:
            pass
        if _DEBUG:
            t0, t1 = message["t"]
            print(
                f"prodture: restored at effect {seq}: the old debuggee handed over in "
                f"{1000 * (t1 - t0):.2f} ms, the message took {1000 * (started - t1):.2f} ms, "
                f"the old debuggee parked after {1000 * (parked_at - started):.2f} ms, "
                f"the take-over took {1000 * (time.monotonic() - parked_at):.2f} ms "
                f"({'prepared' if prepared else 'not prepared'})",
                file=sys.stderr,
                flush=True,
            )
        # the checkpoints forked after this one belonged to the old debuggee's future; the
        # spare copy of this one takes its place, so going back here again is a restore too
        self.parked = [entry for entry in self.parked if entry[0] < seq]
        self._killed = []  # the old debuggee's children: not this process's to reap
        self._prepared_pid = None  # the old debuggee let its prepared checkpoint go
        if spare is not None:
            self.parked.append((seq, engine.step, engine.checkpoint_key(), *spare))
            try:
                _write_all(spare[1], _PROMOTE)  # it forks a spare of its own, in its own process
            except OSError:
                self.parked.pop()

        return message

    def _park(self) -> tuple[dict[str, Any], tuple[int, int] | None]:
        """In a new checkpoint: fork a spare copy of it (the checkpoint in its place once it is
        restored), then wait. Returns (restore message, spare) when restored; a spare waits for
        its promotion (then it forks its own spare) or its restore."""
        r = self._pipe_r
        promote = True
        spare = None
        while True:
            if promote:
                promote = False
                try:
                    entry, forked = _fork_parked(), True
                except OSError:  # no spare then: a restore here forks none either
                    entry, forked = None, False
                if forked and entry is None:  # this is the spare: wait on its own pipe
                    self._release = None  # the threads of a prepared parent are not in a fork
                    os.close(r)
                    _unread.pop(r, None)
                    r, spare = self._pipe_r, None
                    continue
                spare = entry
            message = _read_message(r)
            if message is None:
                os._exit(0)  # no process left that could restore this checkpoint
            op = message.get("op")
            if op == "promote":
                # (a promotion comes first, before any prepare: the fork below never copies
                # prepared threads)
                promote = True
                continue
            if op == "prepare":
                if self._release is None:
                    self._release = self._prepare()
                continue
            if op == "unprepare":
                if self._release is not None:
                    self._release(False)
                    self._release = None
                continue
            os.close(r)
            _unread.pop(r, None)
            return message, spare

    def _prepare(self) -> Callable[[bool], None]:
        # the run this checkpoint was forked from traced every call: preparing makes many calls
        # into pydevd and threading, none of them a step (a restore's fast-forward sets its own
        # tracing)
        self.engine._settrace(None)
        return self.prepare()

    def prepare_for(self, step: int) -> None:
        """At a stop at ``step``: have the checkpoint that a step back from here would restore
        start its threads now (a restore then only lets them go); the one prepared before lets
        its threads go."""
        if step < 2:
            return
        entry = self._serving(step - 1)
        pid = entry[3] if entry is not None else None
        if pid == self._prepared_pid:
            return
        self._unprepare()
        if entry is None:
            return
        try:
            _write_all(entry[4], _PREPARE)
        except OSError:
            return
        self._prepared_pid = pid

    def _unprepare(self, keep: int | None = None) -> None:
        """Tell the prepared checkpoint (unless it is ``keep``) to let its threads go."""
        pid, self._prepared_pid = self._prepared_pid, None
        if pid is None or pid == keep:
            return
        for entry in self.parked:
            if entry[3] == pid:
                try:
                    _write_all(entry[4], _UNPREPARE)
                except OSError:
                    pass
                return

    def _serving(self, k: int) -> tuple[int, int, Any, int, int] | None:
        """The checkpoint a restore to step ``k`` would use, if any (see ``restore``)."""
        engine = self.engine
        if k > len(engine.hist_loc):
            return None
        last = engine.watch_start_effect(k)  # a re-run watches for step k from this effect on
        key = engine.checkpoint_key()
        for candidate in reversed(self.parked):
            if candidate[0] <= last and candidate[2][0] == key[0]:
                if candidate[1] < self.min_saved:
                    return None  # the re-run from the start is about as quick as a restore
                return candidate
        return None

    def _thin(self) -> None:
        """Keep every second checkpoint (the newest always) and double the spacing."""
        parked = self.parked
        drop = parked[-2::-2]
        self.parked = parked[-1::-2][::-1]
        for entry in drop:
            _drop(entry)
            self._killed.append(entry[3])
            if entry[3] == self._prepared_pid:
                self._prepared_pid = None
        self.every *= 2

    def _reap(self) -> None:
        """Collect the dropped checkpoints that have exited (only ours: the handler's own child
        processes are left to it)."""
        alive = []
        for pid in self._killed:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == 0:
                    alive.append(pid)
            except ChildProcessError:
                pass
        self._killed = alive

    # -- backward: restoring -------------------------------------------------------------------

    def restore(self, k: int, kind: str, extra: dict[str, Any]) -> None:
        """Go to step ``k`` through the latest usable checkpoint: this process hands the session
        over and parks (it never returns then). Returns when no checkpoint serves ``k``."""
        engine = self.engine
        entry = self._serving(k)
        if entry is None:
            return
        seq, step, (_, codes), pid, w = entry
        t_start = time.monotonic()
        if k - step > MAX_SHIPPED_STEPS or engine.code_index_max(step, k) >= codes:
            return  # too much history to ship, or code objects the checkpoint never saw
        loc = engine.hist_loc[step:k].tobytes()
        depth = engine.hist_depth[step:k].tobytes()
        message = dict(extra)
        message.update(
            {
                "op": "restore",
                "from": os.getpid(),
                "step": k,
                "kind": kind,
                "loc_bytes": len(loc),
                "depth_bytes": len(depth),
                "effect_steps": list(engine.effect_steps[seq - 1 :]),
            }
        )
        self._unprepare(keep=pid)  # at most one prepared checkpoint in the session
        self.handover(pid)
        message["t"] = [t_start, time.monotonic()]
        data = json.dumps(message).encode() + b"\n" + loc + depth
        _widen(w, len(data))
        try:
            _write_all(w, data)
        except OSError:
            os._exit(5)  # the checkpoint vanished after the handover: the adapter reports the exit
        # from now on the checkpoint owns the sockets; it kills this process once it has them
        os.kill(os.getpid(), signal.SIGSTOP)
        os._exit(0)

    def close(self) -> None:
        for entry in self.parked:
            _drop(entry)
        self.parked = []


def history(message: dict[str, Any]) -> tuple[array, array]:
    """The (locations, depths) history slice a restore message carries."""
    loc = array("q")
    loc.frombytes(message["loc"])
    depth = array("i")
    depth.frombytes(message["depth"])
    return loc, depth


def _drop(entry: tuple[int, int, Any, int, int]) -> None:
    pid, w = entry[3], entry[4]
    try:
        os.close(w)  # its pipe ends: it exits (unless a later checkpoint still holds the pipe)
    except OSError:
        pass
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


_PROMOTE = b'{"op": "promote"}\n'
_PREPARE = b'{"op": "prepare"}\n'
_UNPREPARE = b'{"op": "unprepare"}\n'


def _fork_parked() -> tuple[int, int] | None:
    """Fork a process that waits on a new pipe: (pid, pipe write end) in this process; None in
    the new one, whose read end is then ``ForkCheckpoints._pipe_r``."""
    import gc
    import posix  # os.fork may be pydevd's wrapper, which resets the debugger in the child

    r, w = os.pipe()
    # the objects that exist now are left out of the garbage collector's passes in the fork:
    # a pass would write to every page of the heap, copying each (copy-on-write) when the fork
    # wakes up as the debuggee
    gc.freeze()
    try:
        pid = posix.fork()
    except OSError:
        gc.unfreeze()
        os.close(r)
        os.close(w)
        raise
    if pid:
        gc.unfreeze()
        os.close(r)
        return pid, w
    os.close(w)
    ForkCheckpoints._pipe_r = r
    return None


_unread: dict[int, bytes] = {}  # bytes read past the last message, by pipe


def _read_message(fd: int) -> dict[str, Any] | None:
    """The next message on a checkpoint's pipe: a JSON line, then the history bytes it
    announces. None at EOF. Bytes of the next message read with this one are kept for it (a
    promotion and a restore may arrive in one read)."""
    data = _unread.pop(fd, b"")
    while b"\n" not in data:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        data += chunk
    line, _, data = data.partition(b"\n")
    message = json.loads(line)
    loc_size = message.get("loc_bytes", 0)
    size = loc_size + message.get("depth_bytes", 0)
    while len(data) < size:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        data += chunk
    if len(data) > size:
        _unread[fd] = data[size:]
    message["loc"] = data[:loc_size]
    message["depth"] = data[loc_size:size]
    return message


def _widen(fd: int, size: int) -> None:
    """Let the pipe hold the whole message (up to the system's limit): one write, one read,
    instead of 64 KiB at a time with a process switch for each."""
    try:
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, min(max(size, 1 << 16), 1 << 20))
    except (ImportError, AttributeError, OSError):
        pass


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _wait_parked(pid: int) -> None:
    """Until process ``pid`` (the old debuggee) is stopped or gone; exits after PARK_TIMEOUT."""
    deadline = time.monotonic() + PARK_TIMEOUT
    while True:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                state = f.read().rsplit(b")", 1)[1].split()[0]
            if state in (b"T", b"t", b"Z", b"X"):
                return
        except (OSError, IndexError):
            return  # gone
        if time.monotonic() > deadline:
            print(
                f"prodture: a checkpoint restore timed out: the old debuggee (pid {pid}) did not "
                f"stop within {PARK_TIMEOUT:g} s",
                file=sys.stderr,
                flush=True,
            )
            os._exit(4)
        time.sleep(0.0002)
