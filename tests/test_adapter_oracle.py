"""Exactness of the debug adapter, end to end: the step oracle's ground truth checked through DAP.

The DAP subset of tests/test_step_oracle.py. A handler shape of tests/oracle_shapes.py (copied into
a project directory) is recorded for real and replayed headless under ``sys.settrace`` in a
subprocess — the ground truth of tests/step_oracle.py. Then ``python -m prodture.adapter`` is driven
through tests/dap_client.py with the oracle's command sequences (walk through every step, seeded
random walks with breakpoint changes), and every stop a client sees — the ``stopped`` reason, the
``prodture/position`` step and effects, the top frame's file, line and function from
``stackTrace``, the call depth (user frames in the stack) and the Locals scope — is compared with
the oracle's reference model. The number of states compared is printed at the end.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import step_oracle as oracle
from adapter_support import start_session
from dap_client import DapClient
from test_step_oracle import condition_menu, conditions, menu

TESTS = Path(__file__).resolve().parent
SHAPES = ["gen_yield_from", "async_helpers", "command_pipeline"]
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
TOTALS = oracle.Report()

GROUND_TRUTH = """
import asyncio, json, sys
from pathlib import Path
project, tests, shape, conditions = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
sys.path[:0] = [project, tests]
import oracle_shapes as shapes
import step_oracle as oracle
import prodture
from prodture.trace import read_trace

fn, request = shapes.SHAPES[shape]
directory = Path(project) / "traces" / shape
recorder = prodture.Recorder(prodture.DirectorySink(directory))
interpreter = prodture.Interpreter(shapes.PERFORMERS, recorder=recorder)
if asyncio.iscoroutinefunction(fn):
    asyncio.run(interpreter.run_async(fn, request))
else:
    interpreter.run(fn, request)
recorder.close()  # the trace is written by the recorder's writer thread
path = next(directory.glob("*.prodtrace"))
truth = oracle.ground_truth(read_trace(path), fn, shapes.__file__, [tuple(c) for c in conditions])
state = lambda s: [s.line, s.function, s.depth, s.locals, s.effects]
print(json.dumps({
    "trace": str(path),
    "user_file": shapes.__file__,
    "states": [state(s) for s in truth.states],
    "failed": [[k, state(s)] for k, s in truth.failed.items()],
    "effect_steps": truth.effect_steps,
    "end": state(truth.end),
    "error": truth.error,
    "condition_true": [[line, c, sorted(steps)] for (line, c), steps in truth.condition_true.items()],
}))
"""


def _state(data: list[Any]) -> oracle.State:
    line, function, depth, local_vars, effects = data
    return oracle.State(line, function, depth, tuple(tuple(p) for p in local_vars), effects)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with a copy of the oracle's shapes module as its only user code."""
    directory = tmp_path_factory.mktemp("adapter-oracle")
    shutil.copy(TESTS / "oracle_shapes.py", directory / "oracle_shapes.py")
    (directory / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["oracle_shapes"]\n')
    return directory


_truths: dict[str, tuple[str, str, oracle.GroundTruth]] = {}


def prepared(project: Path, shape: str) -> tuple[str, str, oracle.GroundTruth]:
    """(trace path, user file, ground truth) of one shape, recorded once per module."""
    if shape not in _truths:
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                GROUND_TRUTH,
                str(project),
                str(TESTS),
                shape,
                json.dumps(conditions(shape)),
            ],
            cwd=project,
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        data = json.loads(out.strip().splitlines()[-1])
        truth = oracle.GroundTruth(
            states=[_state(s) for s in data["states"]],
            failed={k: _state(s) for k, s in data["failed"]},
            effect_steps=data["effect_steps"],
            end=_state(data["end"]),
            error=tuple(data["error"]) if data["error"] else None,
            condition_true={(line, c): set(steps) for line, c, steps in data["condition_true"]},
        )
        _truths[shape] = (data["trace"], os.path.realpath(data["user_file"]), truth)
    return _truths[shape]


class DapSession:
    """One adapter session checked stop by stop against the oracle's model (the DAP twin of
    ``step_oracle.Session``; the same choosers drive it)."""

    def __init__(
        self,
        name: str,
        project: Path,
        prepared_shape: tuple[str, str, oracle.GroundTruth],
        chooser: oracle.Chooser,
        *,
        effect_failed: bool = True,
        max_stops: int = 200,
    ) -> None:
        trace, self.user_file, self.truth = prepared_shape
        self.name = name
        self.project = project
        self.trace = trace
        self.model = oracle.Model(self.truth)
        self.model.effect_failed_stops = effect_failed
        self.effect_failed = effect_failed
        self.chooser = chooser
        self.max_stops = max_stops
        self.report = oracle.Report()
        self.stops = 0

    def _mismatch(self, text: str) -> None:
        self.report.mismatches.append(f"{self.name} stop {self.stops}: {text}")

    def seen(self, client: DapClient, stop: dict[str, Any]) -> tuple[str, int, oracle.State]:
        """What a DAP client sees at this stop, in the oracle's words."""
        position = stop["position"]
        if position["end"]:
            kind = "end"
        elif stop["reason"] == "exception":
            kind = "effect_failed"
        else:
            kind = stop["reason"]
        frames = client.frames()
        top = frames[0]
        user = [f for f in frames if os.path.realpath(f["source"]["path"]) == self.user_file]
        if os.path.realpath(top["source"]["path"]) != self.user_file:
            self._mismatch(f"the top frame is not in the handler's file: {top}")
        scopes = client.scopes(top["id"])
        local_scope = next(s for s in scopes if s["name"] == "Locals")
        shown = client.request(
            "variables", {"variablesReference": local_scope["variablesReference"]}
        )
        local_vars = {
            v["name"]: _ADDRESS.sub("", v["value"])
            for v in shown["body"]["variables"]
            if not v["name"].endswith(" variables")
        }
        state = oracle.State(
            top["line"],
            top["name"],
            len(user),
            tuple(sorted(_comparable(local_vars.items()))),
            position["effect"],
        )
        return kind, position["step"], state

    def run(self) -> oracle.Report:
        filters = ["effectFailed", "uncaught"] if self.effect_failed else ["uncaught"]
        client = start_session(self.trace, self.project, filters=filters, stopOnEntry=True)
        try:
            expected = self.model.expect("entry", 1)
            while True:
                event = client.wait_any(("stopped", "terminated"), timeout=120)
                if event["event"] == "terminated":
                    self._mismatch(f"the adapter ended the session where {expected} was expected")
                    break
                stop = event["body"]
                stop["position"] = client.wait_event("prodture/position")["body"]
                client._thread_id = stop.get("threadId")
                self.stops += 1
                actual = self.seen(client, stop)
                self.report.compared += 1
                wanted = (expected.kind, expected.step, _comparable_state(expected.state))
                if actual != wanted:
                    self._mismatch(
                        f"expected {wanted[0]} at step {wanted[1]} ({wanted[2].describe()}), "
                        f"adapter {actual[0]} at step {actual[1]} ({actual[2].describe()})"
                    )
                    seen_event = {"end": oracle.END, "effect_failed": oracle.EFFECT_FAILED}.get(
                        actual[0], oracle.LINE
                    )
                    if seen_event == oracle.EFFECT_FAILED and actual[1] not in self.truth.failed:
                        seen_event = oracle.LINE
                    if not 1 <= actual[1] <= self.truth.last:
                        break
                    expected = oracle.Expected(
                        actual[0], actual[1], seen_event, self.model.state(actual[1], seen_event)
                    )
                if expected.event == oracle.END and self.truth.error is not None:
                    self.report.compared += 1
                    info = client.request("exceptionInfo", {"threadId": client.thread_id()})
                    error = (stop.get("text"), info["body"]["details"]["message"])
                    if error != self.truth.error:
                        self._mismatch(
                            f"end exception: expected {self.truth.error}, adapter {error}"
                        )
                if self.stops >= self.max_stops:
                    break
                while True:
                    name, arg = self.chooser(self, expected)  # type: ignore[arg-type]
                    if name != "breakpoints":
                        break
                    self.model.breakpoints = set(arg)
                    client.request(
                        "setBreakpoints",
                        {
                            "source": {"path": self.user_file},
                            "breakpoints": [
                                {"line": line, **({"condition": c} if c else {})}
                                for line, c in sorted(arg, key=lambda b: (b[0], b[1] or ""))
                            ],
                        },
                    )
                if name == "terminate":
                    break
                if name in ("next", "stepIn", "stepOut", "continue"):
                    if expected.event == oracle.END:
                        break  # forward from the end: the replay is over
                    expected = self.model.forward(name, expected)
                elif name == "stepBack":
                    expected = self.model.step_back(expected)
                elif name == "reverseContinue":
                    expected = self.model.reverse_continue(expected)
                elif name == "jumpToEffect":
                    expected = self.model.jump(arg)
                if name == "jumpToEffect":
                    client.request("prodture/jumpToEffect", {"effect": arg})
                else:
                    client.request(name, {"threadId": client.thread_id()})
        finally:
            client.close()
        return self.report


def _comparable(items: Any) -> list[tuple[str, str]]:
    """Locals a DAP client sees as plain rows: pydevd folds dunders, functions and classes into
    groups, so values that are not plain data (``<function …>``) are left out on both sides."""
    return [(k, v) for k, v in items if not k.startswith("__") and not v.startswith("<")]


def _comparable_state(state: oracle.State) -> oracle.State:
    return oracle.State(
        state.line,
        state.function,
        state.depth,
        tuple(sorted(_comparable(state.locals))),
        state.effects,
    )


@pytest.fixture(scope="module", autouse=True)
def summary(request: pytest.FixtureRequest):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"adapter oracle (Python {sys.version.split()[0]}): {TOTALS.compared} states compared "
            f"through DAP, {len(TOTALS.mismatches)} mismatches"
        )
    target = os.environ.get("PRODTURE_ORACLE_REPORT")
    if target:
        with open(target, "a", encoding="utf-8") as f:
            f.write(
                json.dumps(
                    {
                        "oracle": "adapter",
                        "python": sys.version.split()[0],
                        "compared": TOTALS.compared,
                        "mismatches": len(TOTALS.mismatches),
                    }
                )
                + "\n"
            )


def check(session: DapSession) -> None:
    report = session.run()
    TOTALS.add(report)
    assert report.compared > 0
    assert not report.mismatches, (
        f"{len(report.mismatches)} of {report.compared} compared states differ:\n"
        + "\n".join(report.mismatches[:15])
    )


#: fork checkpoints (python-adapter/prodture/debug/checkpoints.py): one at every effect, each
#: restore taken however few steps it saves, so step backs go through restored checkpoints; or
#: none, so they re-run in-process
CHECKPOINTS = {
    "checkpoints": {"PRODTURE_CHECKPOINT_EVERY": "1", "PRODTURE_CHECKPOINT_MIN_SAVED": "0"},
    "re-run": {"PRODTURE_CHECKPOINTS": "0"},
}


@pytest.fixture(params=sorted(CHECKPOINTS))
def going_back(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """How the debuggee goes back (the adapter and its runner inherit this environment)."""
    for name, value in CHECKPOINTS[request.param].items():
        monkeypatch.setenv(name, value)
    return request.param


@pytest.mark.parametrize("shape", SHAPES)
def test_every_step_through_the_adapter(project, shape, going_back):
    """stepIn over every step to the end, then back, out and over: each stop a DAP client sees is
    the ground truth's (file, line, function, depth, locals, effects)."""
    shaped = prepared(project, shape)
    then = ["stepBack"] * 6 + ["stepOut", "next", "stepIn", "stepBack", "reverseContinue"]
    chooser = oracle.walk_through(then)
    check(
        DapSession(
            f"{shape}/walk/{going_back}", project, shaped, chooser, max_stops=shaped[2].last + 40
        )
    )


@pytest.mark.parametrize("shape", ["gen_yield_from", "command_pipeline"])
def test_reverse_continue_over_several_conditions_through_the_adapter(project, shape):
    """Conditional breakpoints in several functions set at the end of the replay: each
    reverseContinue a client sends lands on the latest earlier step where one is true."""
    shaped = prepared(project, shape)
    pair = condition_menu(shape)
    truth = shaped[2]
    backward = ["reverseContinue"] * (sum(len(truth.condition_true[c]) for c in pair) + 1)
    commands: list[Any] = ["continue", ("breakpoints", set(pair)), *backward, "continue"]
    scripted = oracle.scripted(commands)
    # no effect-failed stops: the first continue runs to the end of the replay
    check(DapSession(f"{shape}/conditions", project, shaped, scripted, effect_failed=False))


@pytest.mark.slow
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("seed", [0, 2])
def test_random_walks_through_the_adapter(project, shape, seed, going_back):
    """Seeded random walks (the oracle's) of every command and breakpoint changes, through DAP;
    seed 2 runs without effect-failed stops."""
    shaped = prepared(project, shape)
    walk = oracle.random_walk(seed, menu(shape))
    check(
        DapSession(
            f"{shape}/seed{seed}/{going_back}",
            project,
            shaped,
            walk,
            effect_failed=seed % 3 != 2,
            max_stops=60,
        )
    )


def test_pipeline_effect_failure_stops_through_the_adapter(project):
    """A pipeline step's recorded error stops where it arrives (the step's on_error), as in a
    generator handler: reason exception, the error's type as text and exceptionId, the whole
    sentence as description; the Locals show the error. Without the filter there is no stop."""
    trace, user_file, truth = prepared(project, "command_pipeline")
    (step, arrived), *_ = truth.failed.items()
    client = start_session(trace, project, filters=["effectFailed", "uncaught"])
    try:
        stop = client.stopped()
        sentence = "effect #2 Charge failed (recorded error): Declined: amount 17 refused"
        assert stop["reason"] == "exception"
        assert stop["text"] == "Declined" and stop["description"] == sentence
        assert (stop["position"]["step"], stop["position"]["line"]) == (step, arrived.line)
        assert stop["position"]["effect"] == 2 and not stop["position"]["end"]
        info = client.request("exceptionInfo", {"threadId": client.thread_id()})["body"]
        assert info["exceptionId"] == "Declined" and info["description"] == sentence
        assert info["details"]["message"] == "amount 17 refused"
        top = client.frames()[0]
        assert (top["name"], top["line"]) == ("on_declined", arrived.line)
        after = client.stopped("continue")
        assert after["position"]["end"]
    finally:
        client.close()
    client = start_session(trace, project, filters=["uncaught"])
    try:
        assert client.stopped()["position"]["end"]
    finally:
        client.close()
