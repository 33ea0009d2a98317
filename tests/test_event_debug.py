"""A fetched event-sourced trace in the debugger (DAP, ``python -m prodture.adapter``): breakpoints
in an ``@applies`` reducer, a ``@handles`` method, a saga and a process manager hit, step back works."""

from __future__ import annotations

import glob
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adapter_support import start_session

POKER = Path(__file__).resolve().parent.parent / "examples" / "poker"


def _line(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def fetched_hand(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The poker example run on its SQLite store, then the hand's flow fetched read-only."""
    copy = tmp_path_factory.mktemp("debug") / "poker"
    shutil.copytree(
        POKER, copy, ignore=shutil.ignore_patterns("traces", "var", "fetched", "__pycache__")
    )
    run = subprocess.run(
        [sys.executable, "run_table.py"], cwd=copy, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    fetch = subprocess.run(
        [
            sys.executable,
            "-m",
            "prodture.cli",
            "events",
            "fetch",
            "--store",
            "var/events.db",
            "--correlation-id",
            "hand-6",
            "--out",
            "fetched/hand",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fetch.returncode == 0, fetch.stderr
    return copy, sorted(Path(p) for p in glob.glob(str(copy / "fetched" / "hand" / "*.prodtrace")))


def test_a_breakpoint_in_an_applies_reducer_of_a_fetched_trace_hits_and_steps_back(
    fetched_hand,
) -> None:
    copy, traces = fetched_hand
    player = copy / "poker" / "player.py"
    reducer = _line(player, "self.bets.append(event.hand_id)")
    handles = _line(player, "if command.amount > self.chips:")
    blind = traces[2]  # 03-handle_player_command: p-7's blind
    folded = _line(player, "self.bank -= event.amount")  # the FundsReserved reducer
    client = start_session(blind, copy, breakpoints={str(player): [folded, handles, reducer]})
    try:
        # The fold of the fetched events: an @applies reducer of history, before the command.
        stop = client.stopped()
        assert stop["reason"] == "breakpoint"
        assert client.frames()[0]["line"] == folded and client.frames()[0]["name"] == "_reserved"
        assert client.evaluate("event") == "FundsReserved(table_id='t-1', amount=400)"
        assert client.evaluate("self.bank") == "1000"
        client.stopped("next")
        assert client.evaluate("self.bank") == "600"
        client.stopped("stepBack")
        assert client.frames()[0]["line"] == folded
        assert client.evaluate("self.bank") == "1000"
        client.request("continue", {"threadId": client.thread_id()})
        stop = client.stopped()
        assert stop["reason"] == "breakpoint"
        assert client.frames()[0]["line"] == handles
        assert client.frames()[0]["name"] == "place_bet"
        assert client.evaluate("self.chips") == "400"
        client.request("continue", {"threadId": client.thread_id()})
        stop = client.stopped()
        assert client.frames()[0]["line"] == reducer and client.frames()[0]["name"] == "_bet_placed"
        assert client.evaluate("event") == "BetPlaced(hand_id='h-1', amount=10)"
        assert client.evaluate("self.bets") == "[]"
        client.stopped("next")
        assert client.frames()[0]["line"] == reducer + 1  # the buggy line
        assert client.evaluate("self.bets") == "['h-1']"
        back = client.stopped("stepBack")
        assert back["reason"] == "step"
        assert client.frames()[0]["line"] == reducer
        # The state it had (step back re-runs the recording: the same values, a new object).
        assert client.evaluate("self.bets") == "[]" and client.evaluate("self.chips") == "400"
        assert client.evaluate("event") == "BetPlaced(hand_id='h-1', amount=10)"
        client.stopped("next")
        client.stopped("next")  # out of the reducer, back in the handler (prodture's frames hidden)
        assert client.frames()[0]["name"] == "handle_player_command"
        assert (
            client.evaluate("player.chips") == "400"
        )  # the bug, seen: the bet did not move the chips
    finally:
        client.close()


def test_breakpoints_in_the_process_manager_and_its_reducers_hit(fetched_hand) -> None:
    copy, traces = fetched_hand
    flow = copy / "poker" / "flow.py"
    react = _line(flow, "self.record(HandOpened(")
    reducer = _line(flow, "self.table_id, self.hand_id = event.table_id, event.hand_id")
    client = start_session(
        traces[1], copy, breakpoints={str(flow): [react, reducer]}
    )  # 02-HandFlow.handle
    try:
        client.stopped()
        assert client.frames()[0]["line"] == react and client.frames()[0]["name"] == "open"
        assert "HandStarted" in client.evaluate("delivery.event")
        client.request("continue", {"threadId": client.thread_id()})
        client.stopped()
        assert client.frames()[0]["line"] == reducer and client.frames()[0]["name"] == "_opened"
        back = client.stopped("stepBack")
        assert back["reason"] == "step"
    finally:
        client.close()


def test_a_breakpoint_in_the_saga_of_the_cross_domain_bug_hits(fetched_hand) -> None:
    copy, _ = fetched_hand
    fetch = subprocess.run(
        [
            sys.executable,
            "-m",
            "prodture.cli",
            "events",
            "fetch",
            "--store",
            "var/events.db",
            "--correlation-id",
            "sit-7",
            "--out",
            "fetched/sit",
        ],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert fetch.returncode == 0, fetch.stderr
    traces = sorted(Path(p) for p in glob.glob(str(copy / "fetched" / "sit" / "*.prodtrace")))
    assert [t.name[3:] for t in traces] == [
        "handle_player_command.prodtrace",
        "SeatingSaga.handle.prodtrace",
        "handle_table_command.prodtrace",
    ]
    flow = copy / "poker" / "flow.py"
    line = _line(flow, "return [table.SeatPlayer(event.table_id, delivery.root, event.amount)]")
    client = start_session(traces[1], copy, breakpoints={str(flow): [line]})
    try:
        client.stopped()
        assert client.frames()[0]["name"] == "seat"
        assert client.evaluate("event.amount") == "800"  # over the table's maximum buy-in
    finally:
        client.close()
