"""Story 2: an event-sourced aggregate replayed from its trace, fixed, and checked again."""

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
