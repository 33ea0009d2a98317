"""The poker example: an event-sourced aggregate replayed from its trace, fixed, and checked again."""

from __future__ import annotations

import glob
import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from prodture import read_trace
from prodture.eventsourcing import AppendEvents, ConcurrencyConflict, InMemoryEventStore, speculate
from prodture.replay import Replayer

POKER = Path(__file__).resolve().parent.parent / "examples" / "poker"


@pytest.fixture
def poker_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the poker example with its traces recorded, importable as `poker`."""
    copy = tmp_path / "poker"
    shutil.copytree(POKER, copy, ignore=shutil.ignore_patterns("traces", "__pycache__"))
    subprocess.run(
        [sys.executable, "run_table.py"], cwd=copy, check=True, capture_output=True, timeout=60
    )
    for name in [m for m in sys.modules if m == "poker" or m.startswith("poker.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(copy))
    return copy


def _bet_trace(copy: Path) -> Path:
    """The trace of p-7's blind: the bet that was accepted without moving the chips."""
    for path in sorted(Path(p) for p in glob.glob(str(copy / "traces" / "*.prodtrace"))):
        command = read_trace(path).input  # inert: poker is not imported here
        if repr(command).startswith("PlaceBet(player_id='p-7'"):
            return path
    raise AssertionError("run_table.py recorded no bet of p-7")


def _fix_reducer(copy: Path) -> None:
    player = copy / "poker" / "player.py"
    source = player.read_text()
    fixed = source.replace("self.chips - event.amount", "self.chips -= event.amount")
    assert fixed != source
    player.write_text(fixed)


def test_the_bug_reproduces_from_the_trace_alone(poker_copy: Path) -> None:
    """The recorded bet replays exactly — chips still 1000 — with no event store present."""
    trace = read_trace(_bet_trace(poker_copy))
    assert [e.type for e in trace.effects] == ["prodture.LoadStream", "prodture.AppendStream"]
    result = Replayer.from_file(_bet_trace(poker_copy), cwd=str(poker_copy)).run()
    assert result.reproduced
    assert result.outcome.value == {"chips": 400, "version": 3}


def test_the_fix_check_names_the_changed_outcome(poker_copy: Path) -> None:
    """After fixing the reducer, replaying the same trace reports the outcome that now differs."""
    _fix_reducer(poker_copy)
    result = Replayer.from_file(_bet_trace(poker_copy), cwd=str(poker_copy)).run()
    assert not result.reproduced
    assert result.divergence.kind == "outcome"
    assert result.divergence.message == (
        "outcome: recorded Success: {'chips': 400, 'version': 3}, now Success: {'chips': 390, 'version': 3}"
    )


def test_speculation_runs_a_command_against_fetched_events_without_persisting(
    poker_copy: Path,
) -> None:
    """speculate() answers LoadEvents from the given history and collects what would be appended."""
    _fix_reducer(poker_copy)
    player = importlib.import_module("poker.player")
    history = [player.ChipsDeposited(1000), player.FundsReserved("t-1", 1000)]
    result = speculate(player.handle_player_command, player.PlaceBet("p-7", "hand-2", 250), history)
    assert result.outcome.value == {"chips": 750, "version": 3}
    assert result.would_append == (player.BetPlaced("hand-2", 250),)
    refused = speculate(
        player.handle_player_command, player.PlaceBet("p-7", "hand-3", 5000), history
    )
    assert not refused.outcome.ok and type(refused.outcome.error).__name__ == "InsufficientChips"
    assert refused.would_append == ()


def test_event_store_refuses_an_append_on_a_moved_stream() -> None:
    """Appending with a stale expected version raises ConcurrencyConflict (optimistic locking)."""
    store = InMemoryEventStore()
    assert store.append(AppendEvents("s", 0, ("a", "b"))) == 2
    with pytest.raises(ConcurrencyConflict, match="s has 2 events, expected 1"):
        store.append(AppendEvents("s", 1, ("c",)))


def _prodture(copy: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "prodture.cli", *args],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_readme_walk_fetch_replay_fix_recheck_keep(poker_copy: Path) -> None:
    """examples/poker/README.md, step by step: fetch → replay → fix → re-run → keep as a test."""
    store = ["--store", "var/events.db"]
    fetched = _prodture(
        poker_copy, "events", "fetch", *store, "--correlation-id", "hand-6", "--out", "fetched/hand"
    )
    assert fetched.returncode == 0, fetched.stderr
    assert "fetched/hand/04-handle_player_command.prodtrace" in fetched.stdout
    blind = "fetched/hand/04-handle_player_command.prodtrace"
    replay = _prodture(poker_copy, "replay", blind)
    assert replay.returncode == 0
    assert replay.stdout.startswith(
        "reproduced: poker.player:handle_player_command, 2 effects, Success: {'chips': 400, 'version': 3}"
    )
    _fix_reducer(poker_copy)
    recheck = _prodture(poker_copy, "replay", blind)
    assert recheck.returncode == 1
    assert recheck.stdout.splitlines()[0] == (
        "DIVERGED: outcome: recorded Success: {'chips': 400, 'version': 3}, "
        "now Success: {'chips': 380, 'version': 3}"
    )
    keep = _prodture(
        poker_copy,
        "events",
        "fetch",
        *store,
        "--correlation-id",
        "hand-6",
        "--out",
        "regressions/hand-6",
    )
    assert keep.returncode == 0, keep.stderr
    pytest_run = [
        sys.executable,
        "-m",
        "pytest",
        "--prodture-replay",
        "regressions",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:pytest-lsp",  # a test dependency here that breaks on non-function test items
    ]
    passing = subprocess.run(
        pytest_run, cwd=poker_copy, capture_output=True, text=True, timeout=300
    )
    assert passing.returncode == 0, passing.stdout
    assert "7 passed" in passing.stdout
    player = poker_copy / "poker" / "player.py"
    player.write_text(
        player.read_text().replace("self.chips -= event.amount", "self.chips - event.amount")
    )
    failing = subprocess.run(
        pytest_run, cwd=poker_copy, capture_output=True, text=True, timeout=300
    )
    assert failing.returncode == 1 and "2 failed, 5 passed" in failing.stdout


def test_the_readme_cross_domain_fix_checked_by_speculating_the_flow(poker_copy: Path) -> None:
    flow = poker_copy / "poker" / "flow.py"
    source = flow.read_text()
    fixed = source.replace(
        "        return [table.SeatPlayer(event.table_id, delivery.root, event.amount)]",
        "        if event.amount > table.MAX_BUY_IN:\n"
        "            return [player.ReleaseFunds(delivery.root, event.table_id, event.amount)]\n"
        "        return [table.SeatPlayer(event.table_id, delivery.root, event.amount)]",
    )
    assert fixed != source
    command = '{"type": "poker.ReserveFunds", "player_id": "p-8", "table_id": "t-1", "amount": 600}'
    args = [
        "events",
        "speculate",
        "--store",
        "var/events.db",
        "--flow",
        "poker.flow:coordinator",
        "--command",
        command,
    ]
    before = _prodture(poker_copy, *args)
    assert "REJECTED TableRefused: buy-in 600 is over the table's 500" in before.stdout
    flow.write_text(fixed)
    after = _prodture(poker_copy, *args)
    assert after.returncode == 0, after.stderr
    assert after.stdout.splitlines() == [
        "aggregate       handle_player_command  ok",
        "    would append player/p-8 #4 FundsReserved(table_id='t-1', amount=600)",
        "saga            SeatingSaga.handle  ok",
        "    would send ReleaseFunds(player_id='p-8', table_id='t-1', amount=600)",
        "aggregate       handle_player_command  ok",
        "    would append player/p-8 #5 FundsReleased(table_id='t-1', amount=600)",
        "nothing was persisted",
    ]
    streams = _prodture(poker_copy, "events", "streams", "--store", "var/events.db")
    assert "player/p-8  3 events" in streams.stdout
