"""Fork checkpoints of the debuggee (python-adapter/prodture/debug/checkpoints.py), end to end.

A real DAP client (tests/dap_client.py) drives ``python -m prodture.adapter`` on the walk demo
(tests/adapter_support.py) with a checkpoint at every effect (``PRODTURE_CHECKPOINT_EVERY=1``) and
the restore notes on (``PRODTURE_CHECKPOINT_DEBUG=1``: "restored at effect N" on stderr, which the
adapter passes on as output): a step back is served by a checkpoint process that takes over the
session, shows the same state as the first visit and steps on; and no process of the debuggee's
group (the runner and every checkpoint) outlives a disconnect, a terminate or a killed adapter.
Exactness across many restores is the adapter oracle's (tests/test_adapter_oracle.py runs with a
checkpoint at every effect too).
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from adapter_support import WALK_SOURCE, line_in, make_walk_demo, start_session

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="fork checkpoints: Linux"),
]

#: How long a process may take to go away before the test calls it a leak (not a speed check).
HANG_S = 60
APPEND_LINE = line_in(WALK_SOURCE, "items.append(got)")


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.setenv("PRODTURE_CHECKPOINT_EVERY", "1")
    monkeypatch.setenv("PRODTURE_CHECKPOINT_MIN_SAVED", "0")
    monkeypatch.setenv("PRODTURE_CHECKPOINT_DEBUG", "1")
    return make_walk_demo(tmp_path / "walk", n=8)


@pytest.fixture
def client(demo: tuple[Path, Path]):
    """A session on the walk demo with a breakpoint on its append line, stopped at entry."""
    directory, trace = demo
    session = start_session(
        trace, directory, breakpoints={str(directory / "walkdemo.py"): [APPEND_LINE]}
    )
    try:
        session.stopped()
        yield session
    finally:
        session.close()


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid``."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and int(stat[2]) == pgid and stat[0] not in ("Z", "X"):
                found.append(int(entry))
    return found


def _debuggee_group(client) -> int:
    """The process group of the adapter's debuggee (its runner leads a session of its own)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None and int(stat[1]) == client.proc.pid and int(stat[2]) == int(entry):
                return int(entry)
    raise AssertionError("the adapter runs no debuggee")


def _restores(client, at_least: int) -> int:
    """The restores the debuggee noted (its stderr reaches the client as output events, on a
    channel of their own: waits up to HANG_S for ``at_least`` of them)."""
    deadline = time.monotonic() + HANG_S
    while True:
        count = sum("restored at effect" in text for text in client.output)
        if count >= at_least or time.monotonic() > deadline:
            return count
        try:
            client.wait_event("output", 1)
        except TimeoutError:
            pass


def _stop(client, command: str) -> dict:
    client.drain("stopped")
    client.drain("prodture/position")
    client.request(command, {"threadId": client.thread_id()})
    client.wait_event("stopped")
    return client.wait_event("prodture/position")["body"]


def _walk_to_restore(client) -> tuple[dict, dict[str, str]]:
    """At the 6th append (after effect 6; the first stop is the 1st): next, then step back (a
    restore). Returns the position and locals of the first visit."""
    for _ in range(5):
        first = _stop(client, "continue")
    seen = client.locals()
    _stop(client, "next")
    back = _stop(client, "stepBack")
    assert (back["step"], back["line"]) == (first["step"], first["line"]), (back, first)
    return first, seen


def _wait_gone(pgid: int) -> list[int]:
    deadline = time.monotonic() + HANG_S
    while _group(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return _group(pgid)


def test_step_back_through_a_checkpoint_shows_the_first_visit(demo, client):
    """Stepping back is served by a checkpoint (the restore note is printed), the state is the
    first visit's, and the restored debuggee steps on and ends the replay normally."""
    directory, _ = demo
    first, seen = _walk_to_restore(client)
    assert _restores(client, 1) >= 1, client.output
    assert client.locals() == seen
    # twice more: each restore leaves a copy of its checkpoint in its place
    for _ in range(2):
        _stop(client, "next")
        back = _stop(client, "stepBack")
        assert back["step"] == first["step"] and client.locals() == seen
    assert _restores(client, 3) >= 3, client.output
    forward = _stop(client, "next")
    assert forward["step"] == first["step"] + 1
    client.set_breakpoints(str(directory / "walkdemo.py"), [])
    client.drain("stopped")
    client.request("continue", {"threadId": client.thread_id()})
    end = client.wait_event("prodture/position")["body"]
    assert end["nextEffect"] is None, end  # the end-of-replay pause
    client.request("continue", {"threadId": client.thread_id()})
    exited = client.wait_event("exited")["body"]
    assert exited["exitCode"] == 0, exited


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return 0


def test_one_checkpoint_at_a_time_is_prepared(client):
    """Each stop has the checkpoint a step back from there would use start its threads while
    parked (a restore then only lets them go): the step back goes through that prepared
    checkpoint, and only one parked checkpoint keeps threads at a time, however many stops
    prepared one (each checkpoint holds a handful of threads; a long session must not pile
    them up)."""
    pgid = _debuggee_group(client)
    _walk_to_restore(client)  # five stops after five effects: five checkpoints prepared
    assert _restores(client, 1) >= 1, client.output
    notes = [text for text in client.output if "restored at effect" in text]
    assert "(prepared)" in notes[0], notes
    _stop(client, "continue")
    _stop(client, "continue")
    deadline = time.monotonic() + HANG_S
    while True:
        group = _group(pgid)
        threaded = [pid for pid in group if _threads(pid) > 1]
        if len(threaded) <= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(group) > 2, "checkpoints are parked"
    # the debuggee and the one prepared checkpoint
    assert len(threaded) <= 2, {pid: _threads(pid) for pid in group}


@pytest.mark.parametrize("how", ["disconnect", "terminate", "kill-adapter"])
def test_no_checkpoint_outlives_the_session(client, how):
    """After a restore (the debuggee is a former checkpoint, not the adapter's child), ending the
    session any way leaves no process of the debuggee's group behind."""
    pgid = _debuggee_group(client)
    _walk_to_restore(client)
    assert _restores(client, 1) >= 1, client.output
    assert len(_group(pgid)) > 1, "checkpoints are parked"
    if how == "terminate":
        client.request("terminate", {})
        client.wait_event("terminated")
    elif how == "kill-adapter":
        os.kill(client.proc.pid, signal.SIGKILL)
        client.proc.wait(HANG_S)
    else:
        client.close()
    assert _wait_gone(pgid) == [], f"processes of the debuggee outlived the session ({how})"
