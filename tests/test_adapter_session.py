"""A debug session's process and streams: the handler's print() output reaches the debug console
without corrupting the DAP stream, and killing the adapter (as VS Code does on stop) ends its
debuggee too.

End to end: a real DAP client (tests/dap_client.py) drives ``python -m prodture.adapter`` on the
failing checkout trace, recorded for real."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import pytest

from adapter_support import CHARGE_LINE, SERVICE, SUBTOTAL_LINE, copy_checkout, start_session

# Each test starts the debug adapter and a debuggee: not part of `make test-fast`.
pytestmark = pytest.mark.slow

#: How long a process may take to go away before the test calls it a leak (not a speed check).
HANG_S = 60


def test_print_output_reaches_the_debug_console_by_stream(tmp_path, checkout_dir, checkout_traces):
    """print() and print(file=sys.stderr) in the handler arrive as output events (stdout and
    stderr categories) while the session keeps working: the breakpoint after them still stops."""
    project = copy_checkout(checkout_dir, tmp_path / "printing")
    service = project / SERVICE
    lines = service.read_text().splitlines(keepends=True)
    lines[SUBTOTAL_LINE - 1] = lines[SUBTOTAL_LINE - 1].rstrip("\n") + (
        '; print("subtotal is", subtotal); import sys; print("to stderr", file=sys.stderr)\n'
    )
    service.write_text("".join(lines))
    client = start_session(
        checkout_traces["failing"], project, breakpoints={str(service): [CHARGE_LINE]}
    )
    try:
        stop = client.stopped()
        assert (stop["reason"], client.frames()[0]["line"]) == ("breakpoint", CHARGE_LINE)
        said: dict[str, str] = {"stdout": "", "stderr": ""}
        while "subtotal is 15.00\n" not in said["stdout"] or "to stderr\n" not in said["stderr"]:
            body = client.wait_event("output")["body"]  # raises if it never comes
            if body.get("category") in said:
                said[body["category"]] += body["output"]
        assert "subtotal is 15.00\n" in said["stdout"] and "to stderr\n" not in said["stdout"]
    finally:
        client.close()


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _gone(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_killing_the_adapter_ends_its_debuggee(checkout_dir: Path, checkout_traces: dict):
    """SIGKILL to the adapter (VS Code kills it on stop) leaves no debuggee behind."""
    client = start_session(
        checkout_traces["failing"],
        checkout_dir,
        breakpoints={str(checkout_dir / SERVICE): [CHARGE_LINE]},
    )
    try:
        client.stopped()
        debuggees = _children(client.proc.pid)
        assert debuggees, "the adapter runs a debuggee"
        os.kill(client.proc.pid, signal.SIGKILL)
        client.proc.wait(HANG_S)
        deadline = time.monotonic() + HANG_S
        while not all(_gone(pid) for pid in debuggees) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert all(_gone(pid) for pid in debuggees), "a debuggee outlived the killed adapter"
    finally:
        client.close()
