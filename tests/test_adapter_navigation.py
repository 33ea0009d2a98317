"""Moving through a replay with the debug adapter: the position event, stepping into user code and
back, retracing steps, a jump that cannot be made, and the pause at the end of the replay.

End to end: a real DAP client (tests/dap_client.py) drives ``python -m prodture.adapter`` on the
failing checkout trace, recorded for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapter_support import (
    CART_SUBTOTAL_LINE,
    CHARGE_LINE,
    LOAD_LINE,
    PROMO_LINE,
    SERVICE,
    SUBTOTAL_LINE,
    TRY_LINE,
    start_session,
)
from dap_client import DapError

# Each test starts the debug adapter and a debuggee: not part of `make test-fast`.
pytestmark = pytest.mark.slow


@pytest.fixture
def session(checkout_dir: Path, checkout_traces: dict):
    """Start a session on the failing trace: session(breakpoint lines, exception filters)."""
    clients = []

    def start(*lines: int, filters: list[str] | None = None):
        client = start_session(
            checkout_traces["failing"],
            checkout_dir,
            breakpoints={str(checkout_dir / SERVICE): list(lines)} if lines else None,
            filters=filters,
        )
        clients.append(client)
        return client, client.stopped()

    yield start
    for client in clients:
        client.close()


def test_position_follows_the_stops_with_the_effects_done_and_the_next(session, checkout_dir):
    """prodture/position after each stop: effects performed so far, the next one, the line."""
    client, first = session(LOAD_LINE, CHARGE_LINE)
    path = str(checkout_dir / SERVICE)
    assert first["position"] == {
        "step": first["position"]["step"],
        "effect": 0,
        "effectCount": 4,
        "path": path,
        "line": LOAD_LINE,
        "nextEffect": 1,
        "end": False,  # a stop, not the end-of-replay pause
    }
    second = client.stopped("continue")
    assert {k: second["position"][k] for k in ("effect", "nextEffect", "line", "path")} == {
        "effect": 2,
        "nextEffect": 3,
        "line": CHARGE_LINE,
        "path": path,
    }
    assert second["position"]["step"] > first["position"]["step"]


def test_step_into_user_code_and_step_back_out(session, checkout_dir):
    """stepIn from `cart.subtotal()` enters Cart.subtotal in model.py (the stack holds only user
    frames); stepBack returns to the call line at the same step."""
    client, first = session(SUBTOTAL_LINE)
    into = client.stopped("stepIn")
    assert into["reason"] == "step"
    assert [(f["name"], Path(f["source"]["path"]).name, f["line"]) for f in client.frames()] == [
        ("subtotal", "model.py", CART_SUBTOTAL_LINE),
        ("place_order", "service.py", SUBTOTAL_LINE),
    ]
    back = client.stopped("stepBack")
    assert client.frames()[0]["line"] == SUBTOTAL_LINE
    assert back["position"]["step"] == first["position"]["step"]


def test_step_back_retraces_what_next_walked_with_the_same_state(session):
    """From LoadCart, next walks to the charge line; stepBack then visits the same lines in
    reverse, each with the locals and position it had going forward."""
    client, stop = session(LOAD_LINE)
    forward = [(client.frames()[0]["line"], client.locals(), stop["position"])]
    while forward[-1][0] != CHARGE_LINE:
        stop = client.stopped("next")
        forward.append((client.frames()[0]["line"], client.locals(), stop["position"]))
    assert [line for line, _, _ in forward] == [
        LOAD_LINE,
        SUBTOTAL_LINE,
        PROMO_LINE,
        TRY_LINE,
        CHARGE_LINE,
    ]
    for line, locals_, position in reversed(forward[:-1]):
        back = client.stopped("stepBack")
        assert back["reason"] == "step"
        assert (client.frames()[0]["line"], client.locals(), back["position"]) == (
            line,
            locals_,
            position,
        )


def test_step_back_from_the_charge_goes_through_try_to_the_promo_line(session):
    """Stepping back from the charge line: the `try:` line, then the promo line, where total is
    not yet bound."""
    client, _ = session(CHARGE_LINE)
    lines = []
    for _ in range(2):
        client.stopped("stepBack")
        lines.append(client.frames()[0]["line"])
    assert lines == [TRY_LINE, PROMO_LINE]
    assert "total" not in client.locals() and client.locals()["subtotal"] == "Decimal('15.00')"


def test_jump_to_an_effect_the_trace_does_not_have_is_refused_in_place(session):
    """prodture/jumpToEffect 99 on a 4-effect trace fails with a message naming it; the
    session stays where it was."""
    client, _ = session(PROMO_LINE)
    with pytest.raises(DapError) as refused:
        client.request("prodture/jumpToEffect", {"effect": 99})
    assert refused.value.response["message"] == (
        "effect 99 is not in the trace: it has effects 1 to 4"
    )
    assert client.frames()[0]["line"] == PROMO_LINE


def test_without_breakpoints_the_replay_pauses_at_its_end(session, checkout_dir):
    """No breakpoint, no filter: a pause at the end of the replay (all effects done), in the
    handler; step back works there; continue returns to the end; continue again ends."""
    client, end = session(filters=[])
    assert end["reason"] != "exception" and "end of replay" in end["description"].lower()
    assert (end["position"]["effect"], end["position"]["nextEffect"]) == (4, None)
    assert client.frames()[0]["source"]["path"] == str(checkout_dir / SERVICE)
    back = client.stopped("stepBack")
    assert back["position"]["step"] == end["position"]["step"] - 1
    again = client.stopped("continue")
    assert again["position"] == end["position"]
    client.request("continue", {"threadId": client.thread_id()})
    client.wait_event("terminated")
