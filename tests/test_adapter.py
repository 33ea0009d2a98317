"""DAP-level tests of ``python -m prodture.adapter`` on the checkout example, through a real client."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from adapter_support import (
    CHARGE_LINE,
    DECLINED_SAVE_LINE,
    EXCEPT_LINE,
    LOAD_LINE,
    PROMO_LINE,
    RAISE_LINE,
    SERVICE,
    TRY_LINE,
    copy_checkout,
    line_of,
    start_session,
)
from dap_client import DapClient, DapError
from prodture import read_trace

# Each test starts the debug adapter and a debuggee: not part of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture
def charge_stop(checkout_dir: Path, checkout_traces: dict):
    """A session stopped at the breakpoint on the ChargeCard line of the failing ($0) order."""
    client = start_session(
        checkout_traces["failing"],
        checkout_dir,
        breakpoints={str(checkout_dir / SERVICE): [CHARGE_LINE]},
    )
    stop = client.stopped()
    yield client, stop
    client.close()


def test_initialize_advertises_step_back_and_effect_filters():
    """The adapter tells any DAP client it can step back and stop on effects."""
    with DapClient.start() as client:
        caps = client.initialize()
    assert caps["supportsStepBack"] and caps["supportsRestartRequest"]
    assert (
        caps["supportsConditionalBreakpoints"]
        and caps["supportsHitConditionalBreakpoints"]
        and caps["supportsLogPoints"]
    )
    assert {f["filter"] for f in caps["exceptionBreakpointFilters"]} == {
        "effectFailed",
        "everyEffect",
        "raised",
        "uncaught",
    }


def test_breakpoint_on_charge_line_shows_zero_total(charge_stop, checkout_dir):
    """A breakpoint on the charge line stops there with the recorded promo result: total is $0.00."""
    client, stop = charge_stop
    assert stop["reason"] == "breakpoint"
    frames = client.frames()
    assert frames[0]["line"] == CHARGE_LINE and frames[0]["source"]["path"] == str(
        checkout_dir / SERVICE
    )
    assert client.locals()["total"] == "Decimal('0.00')"
    assert client.evaluate("str(total)") == "'0.00'"
    assert stop["position"] == {
        "step": stop["position"]["step"],
        "effect": 2,
        "effectCount": 4,
        "path": str(checkout_dir / SERVICE),
        "line": CHARGE_LINE,
        "nextEffect": 3,
        "end": False,
    }


def test_runtime_frames_never_appear_in_the_stack(charge_stop):
    """The call stack shows only the handler's frames, never prodture's runtime or runner."""
    client, _ = charge_stop
    frames = client.frames()
    assert [f["name"] for f in frames] == ["place_order"]
    assert all("prodture" not in (f.get("source") or {}).get("path", "") for f in frames)


def test_step_over_yield_lands_on_next_handler_line(checkout_dir, checkout_traces):
    """Stepping over `x = yield Effect(...)` lands on the next handler line with x bound to the recorded result."""
    client = start_session(
        checkout_traces["failing"],
        checkout_dir,
        breakpoints={str(checkout_dir / SERVICE): [PROMO_LINE]},
    )
    try:
        stop = client.stopped()
        assert client.frames()[0]["line"] == PROMO_LINE and "total" not in client.locals()
        stop = client.stopped("next")
        assert stop["reason"] == "step"
        assert client.frames()[0]["line"] == TRY_LINE
        assert client.locals()["total"] == "Decimal('0.00')"
        assert stop["position"]["effect"] == 2
    finally:
        client.close()


def test_step_back_restores_the_state_of_the_previous_step(charge_stop):
    """next then stepBack returns to the charge line with exactly the state it had; next again reaches the same state."""
    client, first = charge_stop
    before = client.locals()
    after_next = client.stopped("next")
    assert client.frames()[0]["line"] == EXCEPT_LINE
    assert after_next["position"]["effect"] == 3
    back = client.stopped("stepBack")
    assert back["reason"] == "step"
    assert client.frames()[0]["line"] == CHARGE_LINE
    assert client.locals() == before
    assert back["position"] == first["position"]
    again = client.stopped("next")
    assert again["position"] == after_next["position"]


def test_reverse_continue_runs_back_to_the_previous_breakpoint(checkout_dir, checkout_traces):
    """reverseContinue goes back to the last breakpoint hit before now, or to the start without one."""
    service = str(checkout_dir / SERVICE)
    client = start_session(
        checkout_traces["failing"],
        checkout_dir,
        breakpoints={service: [PROMO_LINE, DECLINED_SAVE_LINE]},
    )
    try:
        assert client.stopped()["position"]["line"] == PROMO_LINE
        assert client.stopped("continue")["position"]["line"] == DECLINED_SAVE_LINE
        stop = client.stopped("reverseContinue")
        assert stop["reason"] == "breakpoint" and stop["position"]["line"] == PROMO_LINE
        client.set_breakpoints(service, [])
        stop = client.stopped("reverseContinue")
        assert stop["position"]["step"] == 1 and stop["position"]["line"] == LOAD_LINE
    finally:
        client.close()


def test_reverse_continue_respects_breakpoint_conditions(checkout_dir, checkout_traces):
    """A conditional breakpoint whose condition is false where it was passed is skipped going backwards too."""
    service = str(checkout_dir / SERVICE)
    client = start_session(
        checkout_traces["failing"], checkout_dir, breakpoints={service: [DECLINED_SAVE_LINE]}
    )
    try:
        client.stopped()
        client.request(
            "setBreakpoints",
            {
                "source": {"path": service},
                "breakpoints": [
                    {"line": PROMO_LINE, "condition": "subtotal > 100"},
                    {"line": LOAD_LINE},
                ],
            },
        )
        stop = client.stopped("reverseContinue")
        assert stop["position"]["line"] == LOAD_LINE
    finally:
        client.close()


def test_jump_to_effect_moves_forward_and_backward(charge_stop):
    """prodture/jumpToEffect pauses on the line that yields effect N, before it is performed, either way."""
    client, _ = charge_stop
    client.request("prodture/jumpToEffect", {"effect": 4})
    stop = client.stopped()
    assert stop["reason"] == "goto"
    assert stop["position"]["line"] == DECLINED_SAVE_LINE and stop["position"]["effect"] == 3
    client.request("prodture/jumpToEffect", {"effect": 1})
    stop = client.stopped()
    assert stop["position"]["line"] == LOAD_LINE and stop["position"]["effect"] == 0
    assert stop["position"]["nextEffect"] == 1
    with pytest.raises(DapError, match="effect 9 is not in the trace"):
        client.request("prodture/jumpToEffect", {"effect": 9})


def test_replay_scope_shows_step_effects_and_outcome(charge_stop):
    """The Replay scope shows the step, the last effect with its recorded result, the next effect and the outcome."""
    client, stop = charge_stop
    replay = next(s for s in client.scopes() if s["name"] == "Replay")
    view = client.variables(replay["variablesReference"])
    assert view["step"] == str(stop["position"]["step"])
    assert (
        view["lastEffect"].startswith("#2 ApplyPromo(") and view["lastResult"] == "Decimal('0.00')"
    )
    assert view["nextEffect"].startswith("#3 ChargeCard(")
    assert view["outcome"] == "Failure: PaymentDeclined: amount must be greater than zero"


def test_effects_request_lists_the_recording(charge_stop):
    """prodture/effects returns every recorded effect and the outcome as short renderings."""
    client, _ = charge_stop
    body = client.request("prodture/effects")["body"]
    assert [e["type"] for e in body["effects"]] == [
        "checkout.LoadCart",
        "checkout.ApplyPromo",
        "checkout.ChargeCard",
        "checkout.SaveOrder",
    ]
    assert (
        body["effects"][2]["ok"] is False
        and "amount must be greater than zero" in body["effects"][2]["error"]
    )
    assert body["outcome"]["ok"] is False and body["complete"] is True


def test_effect_failed_filter_stops_where_the_recorded_error_arrives(checkout_dir, checkout_traces):
    """With the "effect failed" filter the replay stops on the charge line when the recorded decline
    is thrown in; the exception id is the error's type, the description the whole sentence."""
    client = start_session(checkout_traces["failing"], checkout_dir, filters=["effectFailed"])
    try:
        stop = client.stopped()
        sentence = "effect #3 ChargeCard failed (recorded error): PaymentDeclined: amount must be greater than zero"
        assert stop["reason"] == "exception"
        assert stop["text"] == "PaymentDeclined" and stop["description"] == sentence
        assert stop["position"]["line"] == CHARGE_LINE and stop["position"]["effect"] == 3
        info = client.request("exceptionInfo", {"threadId": client.thread_id()})["body"]
        assert info["exceptionId"] == "PaymentDeclined" and info["description"] == sentence
        assert info["details"]["typeName"] == "PaymentDeclined"
        assert info["details"]["message"] == "amount must be greater than zero"
    finally:
        client.close()


def test_every_effect_filter_stops_after_each_effect(checkout_dir, checkout_traces):
    """With the "every effect" filter the replay stops once per effect, in order."""
    client = start_session(checkout_traces["ok"], checkout_dir, filters=["everyEffect"])
    try:
        effects = [client.stopped()["position"]["effect"]]
        while len(effects) < 4:
            effects.append(client.stopped("continue")["position"]["effect"])
        assert effects == [1, 2, 3, 4]
    finally:
        client.close()


def test_uncaught_handler_exception_stops_where_it_leaves_the_handler(
    checkout_dir, checkout_traces
):
    """The handler's own exception stops (reason exception) at the line it is raised from, then the session ends."""
    client = start_session(checkout_traces["failing"], checkout_dir, filters=["uncaught"])
    try:
        stop = client.stopped()
        assert (
            stop["reason"] == "exception"
            and stop["text"] == "PaymentDeclined"
            and stop["description"] == "PaymentDeclined: amount must be greater than zero"
        )
        assert stop["position"]["line"] == RAISE_LINE and stop["position"]["end"]
        client.request("continue", {"threadId": client.thread_id()})
        assert client.wait_event("exited")["body"]["exitCode"] == 0
        client.wait_event("terminated")
    finally:
        client.close()


def test_stop_on_entry_pauses_on_the_first_handler_line(checkout_dir, checkout_traces):
    """stopOnEntry pauses on the handler's first line before any effect."""
    client = start_session(checkout_traces["ok"], checkout_dir, stopOnEntry=True)
    try:
        stop = client.stopped()
        assert stop["reason"] == "entry"
        assert stop["position"] == {
            "step": 1,
            "effect": 0,
            "effectCount": 4,
            "path": stop["position"]["path"],
            "line": LOAD_LINE,
            "nextEffect": 1,
            "end": False,
        }
    finally:
        client.close()


def test_strict_mode_refuses_requests_that_leave_the_recording(charge_stop):
    """setVariable, setExpression and goto are refused in strict mode with a message naming the fix."""
    client, _ = charge_stop
    scope = next(s for s in client.scopes() if s["name"].lower().startswith("locals"))
    for command, args in [
        (
            "setVariable",
            {"variablesReference": scope["variablesReference"], "name": "total", "value": "1"},
        ),
        ("setExpression", {"expression": "total", "value": "1"}),
        ("goto", {"threadId": client.thread_id(), "targetId": 1}),
    ]:
        with pytest.raises(DapError, match="refused in a strict replay.*speculative"):
            client.request(command, args)
    assert client.locals()["total"] == "Decimal('0.00')"


def test_divergence_after_editing_the_handler_stops_with_the_precise_message(
    tmp_path, checkout_dir, checkout_traces
):
    """After an edit that charges a different amount, the replay stops at the charge with recorded-vs-now."""
    project = copy_checkout(checkout_dir, tmp_path / "edited")
    service = project / SERVICE
    source = service.read_text()
    service.write_text(source.replace("amount=total)", "amount=total + 1)"))
    client = start_session(checkout_traces["failing"], project)
    try:
        stop = client.stopped()
        assert stop["reason"] == "exception"
        assert stop["text"] == "Divergence"
        assert stop["description"] == (
            "divergence: effect #3 ChargeCard: request differs — amount: recorded "
            "Decimal('0.00'), now Decimal('1.00')"
        )
        assert stop["position"]["line"] == CHARGE_LINE and stop["position"]["effect"] == 2
        assert client.locals()["total"] == "Decimal('0.00')"
        back = client.stopped("stepBack")
        assert back["position"]["line"] == TRY_LINE
    finally:
        client.close()


def test_restart_reruns_edited_code_and_keeps_breakpoints(tmp_path, checkout_dir, checkout_traces):
    """restart re-runs from the start with the edited code, and the breakpoints still stop."""
    project = copy_checkout(checkout_dir, tmp_path / "restart")
    service = project / SERVICE
    client = start_session(
        checkout_traces["failing"], project, breakpoints={str(service): [CHARGE_LINE]}
    )
    try:
        assert client.stopped()["position"]["line"] == CHARGE_LINE
        service.write_text(service.read_text().replace("amount=total)", "amount=total + 1)"))
        client.request("restart", {})
        stop = client.stopped()
        assert stop["reason"] == "breakpoint" and stop["position"]["line"] == CHARGE_LINE
        stop = client.stopped("continue")
        assert stop["description"].startswith("divergence: effect #3 ChargeCard: request differs")
    finally:
        client.close()


# -- bad input ---------------------------------------------------------------------------------


def _launch_error(cwd, **launch) -> tuple[str, DapClient]:
    client = DapClient.start()
    client.initialize()
    response = client.launch(check=False, cwd=str(cwd), **launch)
    assert response["success"] is False
    client.wait_event("terminated")
    return response["message"], client


def test_missing_trace_attribute_fails_the_launch_with_one_line(tmp_path):
    """A launch without "trace" ends the session with one line naming the attribute."""
    message, client = _launch_error(tmp_path)
    client.close()
    assert (
        message
        == 'the launch configuration has no "trace": set it to the path of a .prodtrace file'
    )


def test_missing_trace_file_fails_the_launch(tmp_path):
    """A trace path that does not exist ends the session with the path in the message."""
    message, client = _launch_error(tmp_path, trace="nope.prodtrace")
    client.close()
    assert message.startswith("nope.prodtrace: no such trace file")


def test_corrupt_trace_fails_the_launch_with_the_decoder_message(tmp_path, checkout_dir):
    """A trace that fails to decode ends the session with the reader's one-line error and no process left."""
    bad = tmp_path / "bad.prodtrace"
    bad.write_bytes(b"\xc1 this is not msgpack")
    message, client = _launch_error(checkout_dir, trace=str(bad))
    client.close()
    assert "bad.prodtrace" in message and "\n" not in message
    assert message == (f"{bad}: not valid msgpack at byte 0 (FormatError); the file is corrupt")


def test_handler_that_no_longer_imports_fails_the_launch(tmp_path, checkout_dir, checkout_traces):
    """A handler module with a syntax error ends the session naming the file and line."""
    project = copy_checkout(checkout_dir, tmp_path / "broken")
    (project / SERVICE).write_text(
        (project / SERVICE).read_text().replace("def place_order(", "def place_order((")
    )
    message, client = _launch_error(project, trace=str(checkout_traces["failing"]))
    client.close()
    # Python's own words for the error (they vary by version), as the oracle
    with pytest.raises(SyntaxError) as error:
        compile((project / SERVICE).read_text(), str(project / SERVICE), "exec")
    # the example's pyproject.toml allows "checkout", whose __init__ imports nothing: the
    # import that fails is the handler's own module
    assert message == (
        f"handler module 'checkout.service' no longer imports: SyntaxError at "
        f"{project / SERVICE}:{error.value.lineno}: {error.value.msg}; fix the code"
    )
    assert error.value.lineno == line_of(project / SERVICE, "def place_order((")


def test_missing_python_interpreter_fails_the_launch(tmp_path, checkout_traces, checkout_dir):
    """A "python" attribute naming no interpreter ends the session saying which attribute to fix."""
    message, client = _launch_error(
        checkout_dir, trace=str(checkout_traces["ok"]), python=str(tmp_path / "nopython")
    )
    client.close()
    assert (
        message.startswith("Python interpreter not found")
        and '"python" launch attribute' in message
    )


def test_interpreter_without_prodture_fails_the_launch(tmp_path, checkout_traces, checkout_dir):
    """An interpreter where prodture is not installed ends the session with the pip command to fix it."""
    bare = tmp_path / "bare"
    import venv

    venv.EnvBuilder(with_pip=False).create(bare)
    python = str(bare / "bin" / "python")
    message, client = _launch_error(checkout_dir, trace=str(checkout_traces["ok"]), python=python)
    client.close()
    assert (
        message
        == f"prodture is not installed in {python}; run: {python} -m pip install 'prodture[debug]'"
    )


def test_interpreter_without_debugpy_fails_the_launch(tmp_path, checkout_traces, checkout_dir):
    """When debugpy cannot be imported the session ends with the pip command to install it."""
    shadow = tmp_path / "shadow" / "debugpy"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('no debugpy here')\n")
    message, client = _launch_error(
        checkout_dir, trace=str(checkout_traces["ok"]), env={"PYTHONPATH": str(shadow.parent)}
    )
    client.close()
    assert (
        message
        == f"debugpy is not installed in {sys.executable}; run: {sys.executable} -m pip install 'prodture[debug]'"
    )


def _runner_pids(adapter_pid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read()
            cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == adapter_pid and b"prodture.debug.runner" in cmdline:
            pids.append(int(entry))
    return pids


def test_debuggee_crash_ends_the_session(charge_stop):
    """If the debuggee dies the client gets exited and terminated instead of waiting forever."""
    client, _ = charge_stop
    pids = _runner_pids(client.proc.pid)
    assert len(pids) == 1
    os.kill(pids[0], 9)
    assert client.wait_event("exited")["body"]["exitCode"] != 0
    client.wait_event("terminated")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_disconnect_leaves_no_debuggee_process(checkout_dir, checkout_traces):
    """After disconnect the adapter exits and its debuggee process is gone."""
    client = start_session(
        checkout_traces["failing"],
        checkout_dir,
        breakpoints={str(checkout_dir / SERVICE): [CHARGE_LINE]},
    )
    client.stopped()
    pids = _runner_pids(client.proc.pid)
    assert pids
    assert client.close() == 0
    for pid in pids:
        assert (
            not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]
        )


# -- divergences known only at the end; speculative stubs ------------------------------------


def test_missing_effects_stop_on_the_early_return_and_allow_stepping_back(
    tmp_path, checkout_dir, checkout_traces
):
    """A handler that now returns before the recorded effects end stops on its return line (reason exception) with the replayer's message; one can step back from there."""
    project = copy_checkout(checkout_dir, tmp_path / "early")
    service = project / SERVICE
    service.write_text(
        service.read_text().replace(
            "    order_id = yield SaveOrder(",
            "    return None  # early\n    order_id = yield SaveOrder(",
        )
    )
    client = start_session(checkout_traces["ok"], project)
    try:
        stop = client.stopped()
        assert stop["reason"] == "exception"
        assert stop["description"].startswith("divergence: effect #4: recorded SaveOrder(")
        assert "the code now finishes after 3 effects (Success: None)" in stop["description"]
        early_return = line_of(service, "return None  # early")
        assert stop["position"]["line"] == early_return and stop["position"]["effect"] == 3
        replay = next(s for s in client.scopes() if s["name"] == "Replay")
        assert (
            client.variables(replay["variablesReference"])["divergence"]
            == stop["description"][len("divergence: ") :]
        )
        back = client.stopped("stepBack")
        assert (
            back["position"]["line"] < early_return
            and back["position"]["step"] == stop["position"]["step"] - 1
        )
        assert client.stopped("continue")["description"] == stop["description"]
        client.request("continue", {"threadId": client.thread_id()})
        assert client.wait_event("exited")["body"]["exitCode"] == 1
    finally:
        client.close()


def test_different_outcome_stops_on_the_return_line(tmp_path, checkout_dir, checkout_traces):
    """A handler that now returns another value stops on its return line with recorded-vs-now outcome."""
    project = copy_checkout(checkout_dir, tmp_path / "outcome")
    service = project / SERVICE
    service.write_text(
        service.read_text().replace('"total": str(total),', '"total": str(total) + "!",')
    )
    client = start_session(checkout_traces["ok"], project)
    try:
        stop = client.stopped()
        assert stop["reason"] == "exception"
        assert stop["position"]["line"] == line_of(service, 'return {"order_id"')
        assert (
            stop["description"].startswith("divergence: outcome: recorded Success: {")
            and "!'" in stop["description"]
        )
        assert client.locals()["order_id"]
    finally:
        client.close()


STUBS = """
from checkout.effects import ChargeCard
from checkout.model import Charge


def stubs():
    return {ChargeCard: lambda e: Charge("ch_stub", e.amount), "checkout.SaveOrder": lambda e: "ord_stub"}
"""


def test_speculative_replay_continues_past_the_divergence_with_stubs(
    tmp_path, checkout_dir, checkout_traces
):
    """With replayMode speculative and "stubs", the divergence stops once, then new effects are answered by the stubs to the end."""
    project = copy_checkout(checkout_dir, tmp_path / "speculative")
    service = project / SERVICE
    service.write_text(service.read_text().replace("amount=total)", "amount=total + 1)"))
    (project / "stubs_for_replay.py").write_text(STUBS)
    client = start_session(
        checkout_traces["failing"],
        project,
        replayMode="speculative",
        stubs="stubs_for_replay:stubs",
    )
    try:
        stop = client.stopped()
        assert stop["reason"] == "exception" and stop["position"]["line"] == CHARGE_LINE
        assert stop["description"].startswith("divergence: effect #3 ChargeCard: request differs")
        after = client.stopped("next")
        assert after["reason"] == "step" and client.locals()["charge"].startswith(
            "Charge(charge_id='ch_stub'"
        )
        end = client.stopped("continue")
        # the end stop says what the changed code now does, beside what production did
        assert end["reason"] == "step" and end["description"] == (
            "End of replay (speculative): the code now ends with Success: {'order_id': 'ord_stub', "
            "'total': '0.00', 'charge_id': 'ch_stub'} "
            f"(recorded {read_trace(checkout_traces['failing']).outcome.describe(200)})"
        )
        assert client.locals()["order_id"] == "'ord_stub'"
        back = client.stopped("stepBack")
        assert back["position"]["step"] == end["position"]["step"] - 1
        assert client.stopped("continue")["description"] == end["description"]
        client.request("continue", {"threadId": client.thread_id()})
        assert client.wait_event("exited")["body"]["exitCode"] == 1
        # the debug console's last line says it too
        assert client.output[-1].endswith(
            "the code now ends with Success: {'order_id': 'ord_stub', 'total': '0.00', "
            "'charge_id': 'ch_stub'}\n"
        )
    finally:
        client.close()


RAISING_STUBS = """
from checkout.effects import ChargeCard


def refuse(effect):
    raise TimeoutError(f"gateway timed out charging {effect.amount}")


def stubs():
    return {ChargeCard: refuse}
"""


def test_speculative_end_stop_on_a_new_uncaught_error_says_it_and_the_recorded_outcome(
    tmp_path, checkout_dir, checkout_traces
):
    """In a speculative replay that now fails otherwise, the uncaught end stop names the new error and the recorded outcome; exceptionInfo carries the new error."""
    project = copy_checkout(checkout_dir, tmp_path / "speculative-raise")
    service = project / SERVICE
    service.write_text(service.read_text().replace("amount=total)", "amount=total + 1)"))
    (project / "stubs_for_replay.py").write_text(RAISING_STUBS)
    client = start_session(
        checkout_traces["failing"],
        project,
        replayMode="speculative",
        stubs="stubs_for_replay:stubs",
        filters=["uncaught"],
    )
    try:
        assert client.stopped()["description"].startswith("divergence: effect #3 ChargeCard")
        end = client.stopped("continue")
        assert end["reason"] == "exception" and end["text"] == "TimeoutError"
        assert end["description"] == (
            "End of replay (speculative): the code now ends with Failure: TimeoutError: gateway "
            "timed out charging 1.00 "
            f"(recorded {read_trace(checkout_traces['failing']).outcome.describe(200)})"
        )
        assert end["position"]["end"]
        info = client.request("exceptionInfo", {"threadId": client.thread_id()})["body"]
        assert info["exceptionId"] == "TimeoutError"
        assert info["details"]["message"] == "gateway timed out charging 1.00"
        assert info["description"] == end["description"]
        client.request("continue", {"threadId": client.thread_id()})
        assert client.wait_event("exited")["body"]["exitCode"] == 1
    finally:
        client.close()


def test_stubs_that_do_not_import_fail_the_launch(tmp_path, checkout_dir, checkout_traces):
    """A "stubs" module:function that cannot be loaded ends the launch with one line naming the attribute."""
    message, client = _launch_error(
        checkout_dir,
        trace=str(checkout_traces["failing"]),
        replayMode="speculative",
        stubs="no_such_stubs_module:stubs",
    )
    client.close()
    assert (
        message.startswith("stubs module 'no_such_stubs_module' does not import")
        and '"stubs"' in message
    )
    message, client = _launch_error(
        checkout_dir, trace=str(checkout_traces["failing"]), stubs="m:f"
    )
    client.close()
    assert message.startswith('"stubs" answer new effects only in a speculative replay')


def test_effect_failed_filter_is_on_by_default(checkout_dir, checkout_traces):
    """Without any setExceptionBreakpoints the first stop of the failing trace is the recorded decline on the charge line."""
    client = DapClient.start()
    try:
        client.initialize()
        client.launch(trace=str(checkout_traces["failing"]), cwd=str(checkout_dir))
        client.configuration_done()
        stop = client.stopped()
        assert (
            stop["reason"] == "exception"
            and "ChargeCard failed (recorded error)" in stop["description"]
        )
        assert stop["position"]["line"] == CHARGE_LINE
    finally:
        client.close()


def test_variables_of_a_previous_stop_never_produce_a_user_visible_error(charge_stop):
    """A variables request for the previous stop, in flight while jumpToEffect runs, gets a quiet answer; the new stop's variables are right."""
    client, _ = charge_stop
    scope = next(s for s in client.scopes() if s["name"].lower().startswith("locals"))
    jump = client.send("prodture/jumpToEffect", {"effect": 1})
    stale = client.send("variables", {"variablesReference": scope["variablesReference"]})
    for seq in (jump, stale):
        response = client.response(seq, check=False)
        assert response["success"] or not response["body"]["error"]["showUser"], response
    stop = client.stopped()
    assert stop["position"]["line"] == LOAD_LINE
    assert "total" not in client.locals() and "request" in client.locals()


def test_inspection_requests_sent_together_all_get_their_own_answers(charge_stop):
    """Locals, Globals, a watch and the stack asked at once while paused (as nvim-dap and VS Code do) each get the right answer."""
    client, _ = charge_stop
    frame_id = client.frames()[0]["id"]
    scopes = {s["name"]: s["variablesReference"] for s in client.scopes(frame_id)}
    for _ in range(3):
        seqs = {
            "locals": client.send("variables", {"variablesReference": scopes["Locals"]}),
            "globals": client.send("variables", {"variablesReference": scopes["Globals"]}),
            "watch": client.send(
                "evaluate", {"expression": "str(total)", "frameId": frame_id, "context": "watch"}
            ),
            "stack": client.send("stackTrace", {"threadId": client.thread_id()}),
        }
        answers = {name: client.response(seq)["body"] for name, seq in seqs.items()}
        local_names = {v["name"]: v["value"] for v in answers["locals"]["variables"]}
        global_names = {v["name"] for v in answers["globals"]["variables"]}
        assert local_names["total"] == "Decimal('0.00')" and "subtotal" in local_names
        assert {"annotations", "class variables", "function variables"} <= global_names
        assert "total" not in global_names
        assert answers["watch"]["result"] == "'0.00'"
        assert [f["line"] for f in answers["stack"]["stackFrames"]] == [CHARGE_LINE]


DAP_COMMANDS = """
import json, os, sys, debugpy
sys.path.insert(0, os.path.join(os.path.dirname(debugpy.__file__), "_vendored", "pydevd"))
from _pydevd_bundle._debug_adapter import pydevd_base_schema, pydevd_schema  # noqa: F401
print(json.dumps(sorted(pydevd_base_schema._requests_to_types)))
"""


def test_only_real_dap_requests_have_handlers():
    """Every request the adapter handles itself is a DAP request (debugpy's copy of the DAP schema) or prodture's own."""
    import json
    import subprocess

    from prodture.adapter.client import Client

    dap = set(json.loads(subprocess.check_output([sys.executable, "-c", DAP_COMMANDS], text=True)))
    assert {"launch", "stepBack", "exceptionInfo"} <= dap
    ours = {c for c in Client.REQUESTS if c.startswith("prodture/")}
    assert ours == {"prodture/effects", "prodture/jumpToEffect"}
    assert set(Client.REQUESTS) - ours <= dap, set(Client.REQUESTS) - ours - dap


@pytest.mark.parametrize(
    "command",
    ["engine", "diverging", "forward", "dispatch", "request", "prodture_effects", "_move"],
)
def test_adapter_internals_cannot_be_called_as_dap_commands(charge_stop, command):
    """A request named after one of the adapter's helpers reaches no helper: debugpy answers it as an unknown command, and the session goes on."""
    client, stop = charge_stop
    response = client.request(command, {"threadId": client.thread_id()}, check=False)
    assert not response["success"]
    assert "prodture adapter error" not in response.get("message", "")
    assert "refused in a strict replay" not in response.get("message", "")
    assert client.stopped("next")["position"]["step"] == stop["position"]["step"] + 1


BLOCKING_SOURCE = """
import dataclasses
import os

import prodture


@dataclasses.dataclass(frozen=True)
class Fetch(prodture.Effect, name="blocking.Fetch"):
    n: int


@prodture.handler
def blocking(request):
    got = yield Fetch(1)
    fifo = os.environ.get("BLOCKING_FIFO")
    data = open(fifo).read() if fifo else ""  # BLOCKS: no line event until the writer closes
    after = got + len(data)  # NEXT
    return after
"""

RECORD_BLOCKING = """
import sys
sys.path.insert(0, ".")
import prodture
from blockdemo import Fetch, blocking
recorder = prodture.Recorder(prodture.DirectorySink("traces"))
print(prodture.Interpreter({Fetch: lambda e: 41}, recorder=recorder).run(blocking, {}))
"""


def test_pause_inside_a_blocking_call_says_why_it_waits_then_stops(tmp_path):
    """pause while the handler is blocked in a call that runs no Python line: an output event says
    where it waits; once the call returns, the replay stops at the next line (reason pause)."""
    import subprocess
    import time

    (tmp_path / "blockdemo.py").write_text(BLOCKING_SOURCE)
    (tmp_path / "pyproject.toml").write_text('[tool.prodture]\nmodules = ["blockdemo"]\n')
    (tmp_path / "record.py").write_text(RECORD_BLOCKING)
    subprocess.run([sys.executable, "record.py"], cwd=tmp_path, check=True, timeout=60)
    trace = next((tmp_path / "traces").glob("*.prodtrace"))
    lines = BLOCKING_SOURCE.splitlines()
    block_line = next(n for n, text in enumerate(lines, 1) if "# BLOCKS" in text)
    next_line = next(n for n, text in enumerate(lines, 1) if "# NEXT" in text)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    client = start_session(trace, tmp_path, env={"BLOCKING_FIFO": str(fifo)})
    writer = None
    try:
        deadline = time.monotonic() + 30
        while writer is None:  # the handler has opened the FIFO: it now blocks in read()
            try:
                writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                assert time.monotonic() < deadline, "the handler never opened the FIFO"
                time.sleep(0.01)
        client.request("pause", {"threadId": client.thread_id()})
        notice = client.wait_event("output")["body"]
        while "pause requested" not in notice["output"]:
            notice = client.wait_event("output")["body"]
        assert notice["category"] == "important"
        assert f"blockdemo.py:{block_line} in blocking" in notice["output"]
        assert not any(e["event"] == "stopped" for e in client.events)
        os.write(writer, b"abc")
        os.close(writer)
        writer = None
        stop = client.stopped()
        assert stop["reason"] == "pause" and stop["position"]["line"] == next_line
        assert client.locals()["data"] == "'abc'"
    finally:
        if writer is not None:
            os.close(writer)
        client.close()


FAKE_RUNNER = """
import json, socket, sys, time
fd = int(sys.argv[sys.argv.index("--control-fd") + 1])
sock = socket.socket(fileno=fd)
sock.sendall((json.dumps(json.loads(sys.argv[1])) + "\\n").encode())
time.sleep(30)
"""


@pytest.mark.parametrize(
    ("hello", "expected"),
    [
        (
            {
                "kind": "hello",
                "protocol": 999,
                "host": "127.0.0.1",
                "port": 1,
                "pid": 1,
                "runtime_dir": "/",
                "python": "3",
                "effect_count": 0,
            },
            "speaks control protocol 999, this adapter 1; install the same prodture version in both",
        ),
        (
            {"event": "hello", "port": 1},  # a runner from before the control protocol
            "sent a control message this adapter cannot read (unknown message kind None)",
        ),
    ],
)
def test_debuggee_of_another_prodture_version_fails_the_launch(
    tmp_path, checkout_dir, checkout_traces, hello, expected
):
    """A debuggee interpreter whose prodture speaks another control protocol ends the launch with
    one line saying to install the same prodture version, instead of a 30 s timeout."""
    import json

    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    python = tmp_path / "python"
    python.write_text(f"#!/bin/sh\nexec {sys.executable} {script} '{json.dumps(hello)}' \"$@\"\n")
    python.chmod(0o755)
    message, client = _launch_error(
        checkout_dir, trace=str(checkout_traces["ok"]), python=str(python)
    )
    client.close()
    assert expected in message, message


def test_control_messages_survive_the_wire_and_bad_lines_are_refused():
    """Every control message kind reads back equal to what was sent; a line that is not one
    is refused with the reason."""
    from prodture.debug import control as ctl

    samples = [
        ctl.SetBreakpoints(
            path="/p/s.py",
            breakpoints=(ctl.BreakpointSpec(3, "x > 1", "2", None), ctl.BreakpointSpec(4)),
            id=7,
        ),
        ctl.SetExceptionStops(effect_failed=False, every_effect=True, raised=True, uncaught=False),
        ctl.Start(),
        ctl.Move(motion=ctl.Motion.JUMP_TO_EFFECT, effect=3, id=2),
        ctl.Move(motion=ctl.Motion.STEP_BACK),
        ctl.Pause(),
        ctl.ListEffects(id=5),
        ctl.Terminate(),
        ctl.Hello(ctl.PROTOCOL_VERSION, "127.0.0.1", 5678, 42, "/rt", "3.12.1", 4),
        ctl.Failed("the trace is corrupt; record it again"),
        ctl.Stopped(
            reason=ctl.StopReason.EXCEPTION,
            position=ctl.Position(12, 3, 4, "/p/s.py", 18, 4),
            description="effect #3 ChargeCard failed (recorded error): PaymentDeclined: no",
            exception_id="PaymentDeclined",
            exception_message="no",
            end=False,
            replay=(("step", "12"), ("effect", "3 of 4")),
        ),
        ctl.Output(ctl.OutputCategory.IMPORTANT, "prodture: note\n"),
        ctl.Handover(pid=4242),
        ctl.Exited(1, "replay diverged: …"),
        ctl.Reply(7, ok=False, message="cannot next while the replay is running", body=None),
        ctl.Reply(5, body={"effects": [], "outcome": None, "complete": True}),
    ]
    kinds = {type(m) for m in samples}
    assert kinds == {
        c for c in vars(ctl).values() if isinstance(c, type) and c.__dict__.get("KIND")
    }
    for message in samples:
        line = ctl.encode(message)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert ctl.decode(line) == message
    for bad, reason in [
        (b"not json\n", "not JSON"),
        (b"[1]\n", "not a JSON object"),
        (b'{"kind": "launchMissiles"}\n', "unknown message kind 'launchMissiles'"),
        (b'{"kind": "move", "motion": "sideways"}\n', "unknown motion 'sideways'"),
        (b'{"kind": "hello", "port": 1}\n', "bad hello message"),
    ]:
        with pytest.raises(ctl.ProtocolError, match=re.escape(reason)):
            ctl.decode(bad)


def test_the_adapter_imports_no_engine_code_and_the_protocol_only_the_standard_library():
    """The adapter runs without the engine (the debuggee may be another Python); the control
    protocol module, which both import, needs nothing but the standard library."""
    import ast
    import subprocess

    import prodture.debug.control as control_module

    probe = (
        "import sys, prodture.adapter.server; "
        "print(sorted(m for m in sys.modules if m.startswith('prodture.debug')))"
    )
    loaded = subprocess.check_output([sys.executable, "-c", probe], text=True).strip()
    assert loaded == "['prodture.debug', 'prodture.debug.control']"
    tree = ast.parse(Path(control_module.__file__).read_text())
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {
        node.module.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and not node.level
    }
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}, imported
    assert not any(isinstance(n, ast.ImportFrom) and n.level for n in ast.walk(tree))


class _FakeSession:
    def __init__(self) -> None:
        self.timers: list[Any] = []

    def after(self, seconds: float, fn: Any) -> None:
        self.timers.append(fn)

    def fire(self) -> None:
        timers, self.timers = self.timers, []
        for fn in timers:
            fn()


class _FakeClient:
    def __init__(self) -> None:
        self.session = _FakeSession()
        self.events: list[tuple[str, Any]] = []

    def event(self, name: str, body: Any = None) -> None:
        self.events.append((name, body))


def _engine_stop(step: int) -> Any:
    from prodture.debug import control as ctl

    return ctl.Stopped(ctl.StopReason.STEP, ctl.Position(step, 0, 1, "/h.py", step, 1))


def test_stop_pairing_survives_an_engine_half_that_arrives_late():
    """Under heavy load the engine's half of a stop may reach the adapter after the pairing
    timeout: the client still gets exactly one stopped and then its prodture/position; a timer of
    an earlier stop never shows a later pydevd stop alone."""
    from prodture.adapter.stops import StopPairing

    client = _FakeClient()
    pairing = StopPairing(client)  # type: ignore[arg-type]
    # stop 1 pairs normally; its timer (armed while the engine half was pending) fires during stop 2
    pairing.pydevd_stopped({"threadId": 1, "reason": "breakpoint"})
    pairing.engine_stopped(_engine_stop(1))
    pairing.resumed()
    pairing.pydevd_stopped({"threadId": 1, "reason": "breakpoint"})
    stale = client.session.timers.pop(0)
    stale()  # stop 1's timer: must not show stop 2 alone
    assert [name for name, _ in client.events] == ["stopped", "prodture/position"]
    pairing.engine_stopped(_engine_stop(2))
    assert [name for name, _ in client.events][-2:] == ["stopped", "prodture/position"]
    assert client.events[-1][1]["step"] == 2
    pairing.resumed()
    # stop 3: the engine half is late past the timeout and its confirmation
    client.events.clear()
    client.session.timers.clear()
    pairing.pydevd_stopped({"threadId": 1, "reason": "breakpoint"})
    client.session.fire()  # the timeout: re-checks once after a short sleep
    assert client.events == []
    client.session.fire()
    assert [name for name, _ in client.events] == ["stopped"]
    pairing.engine_stopped(_engine_stop(3))
    assert [name for name, _ in client.events] == ["stopped", "prodture/position"]
    assert client.events[-1][1]["step"] == 3 and pairing.last.position.step == 3
