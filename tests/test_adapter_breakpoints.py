"""Breakpoint kinds VS Code users set (condition, hit count, logpoint), forward and in reverse,
and module-level state put back on every revisit, on a small loop handler recorded for real.

End to end: a real DAP client (tests/dap_client.py) drives ``python -m prodture.adapter``."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adapter_support import line_in
from dap_client import DapClient

# Each test starts the debug adapter and a debuggee: not part of `make test-fast`.
pytestmark = pytest.mark.slow

MODULE = '''\
"""A loop handler for the DAP tests."""
import dataclasses

import prodture

SEEN = []


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="looptest.Fetch"):
    i: int


@prodture.handler
def collect(request):
    total = 0
    for i in range(request["n"]):
        v = yield Fetch(i)
        total += v  # LOOP
        SEEN.append(v)  # SEEN
    return {"total": total, "seen": len(SEEN)}
'''

RECORD = """\
import sys
sys.path.insert(0, ".")
import prodture, looptest
interpreter = prodture.Interpreter({looptest.Fetch: lambda e: e.i * 10},
                                   recorder=prodture.Recorder(prodture.DirectorySink("traces")))
outcome = interpreter.run(looptest.collect, {"n": 5})
assert outcome.ok, outcome
"""


@pytest.fixture(scope="module")
def loop_trace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(project folder, looptest.py, its trace): five turns of the loop, Fetch(i) → i * 10."""
    project = tmp_path_factory.mktemp("loop")
    module = project / "looptest.py"
    module.write_text(MODULE)
    (project / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["looptest"]\n')
    subprocess.run(
        [sys.executable, "-c", textwrap.dedent(RECORD)], cwd=project, check=True, timeout=60
    )
    [trace] = (project / "traces").glob("*.prodtrace")
    return project, module, trace


@pytest.fixture
def session(loop_trace):
    """Start a session on the loop trace, its breakpoints given as DAP sends them (condition,
    hitCondition, logMessage), and return it with its first stop."""
    project, module, trace = loop_trace
    clients: list[DapClient] = []

    def start(*breakpoints: dict):
        client = DapClient.start()
        clients.append(client)
        client.initialize()
        client.launch(trace=str(trace), cwd=str(project))
        set_breakpoints(client, module, *breakpoints)
        client.request("setExceptionBreakpoints", {"filters": []})
        client.configuration_done()
        return client, client.stopped()

    yield start
    for client in clients:
        client.close()


LOOP = line_in(MODULE, "# LOOP")
SEEN_LINE = line_in(MODULE, "# SEEN")


def set_breakpoints(client, module: Path, *breakpoints: dict) -> None:
    client.request(
        "setBreakpoints", {"source": {"path": str(module)}, "breakpoints": list(breakpoints)}
    )


def i_at(client) -> int:
    return int(client.locals()["i"])


def test_a_condition_holds_forward_and_is_evaluated_as_it_was_going_back(session, loop_trace):
    """`i == 3` stops only at i == 3; with `i % 2 == 0`, reverse continue stops at the latest
    earlier step where it held (i == 2), and continue then at i == 4."""
    _, module, _ = loop_trace
    client, stop = session({"line": LOOP, "condition": "i == 3"})
    assert (stop["reason"], client.frames()[0]["line"], i_at(client)) == ("breakpoint", LOOP, 3)
    set_breakpoints(client, module, {"line": LOOP, "condition": "i % 2 == 0"})
    back = client.stopped("reverseContinue")
    assert (back["reason"], client.frames()[0]["line"], i_at(client)) == ("breakpoint", LOOP, 2)
    client.stopped("continue")
    assert i_at(client) == 4


def test_a_hit_count_stops_on_that_hit_only_forward_and_in_reverse(session):
    """hitCondition 3 stops on the 3rd hit only (i == 2), not the 4th or 5th; reverse continue
    finds the 3rd hit again, then (no earlier one) goes back to the start."""
    client, third = session({"line": LOOP, "hitCondition": "3"})
    assert (third["reason"], i_at(client)) == ("breakpoint", 2)
    end = client.stopped("continue")
    assert end["position"]["nextEffect"] is None and client.frames()[0]["line"] != LOOP
    back = client.stopped("reverseContinue")
    assert (back["reason"], i_at(client), back["position"]["step"]) == (
        "breakpoint",
        2,
        third["position"]["step"],
    )
    assert client.stopped("reverseContinue")["reason"] == "entry"


def test_a_logpoint_logs_every_hit_and_never_stops(session):
    """A logpoint's message, with its {expressions}, reaches the debug console on every hit."""
    client, end = session({"line": LOOP, "logMessage": "got {v} at i={i}"})
    assert end["position"]["nextEffect"] is None  # ran to the end without stopping
    logged = [line for line in "".join(client.output).splitlines() if line.startswith("got ")]
    assert logged == [f"got {i * 10} at i={i}" for i in range(5)]


def test_revisiting_a_step_shows_the_module_state_it_had_the_first_time(session, loop_trace):
    """Module-level state the handler mutates (SEEN) is put back on every re-run: stepping back
    and reverse continuing show SEEN as it was, and the replay still reproduces at the end."""
    _, module, _ = loop_trace
    client, _ = session({"line": SEEN_LINE})
    client.stopped("continue")
    client.stopped("continue")
    assert client.evaluate("list(SEEN)") == "[0, 10]"
    client.stopped("stepBack")
    assert client.evaluate("list(SEEN)") == "[0, 10]"  # before the 3rd append
    client.stopped("reverseContinue")
    assert client.evaluate("list(SEEN)") == "[0]"
    set_breakpoints(client, module)
    end = client.stopped("continue")
    assert end["reason"] != "exception", end.get("text")
    client.request("continue", {"threadId": client.thread_id()})
    client.wait_event("terminated")
    assert "reproduced" in "".join(client.output)
