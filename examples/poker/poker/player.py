"""The Player aggregate: commands are handled, events are applied. It has a bug (see README)."""

from __future__ import annotations

import dataclasses

import prodture
from prodture.eventsourcing import Aggregate, AppendEvents, LoadEvents, applies, handles


@prodture.register(name="poker.DepositChips")
@dataclasses.dataclass(frozen=True)
class DepositChips:
    player_id: str
    amount: int


@prodture.register(name="poker.PlaceBet")
@dataclasses.dataclass(frozen=True)
class PlaceBet:
    player_id: str
    hand_id: str
    amount: int


@prodture.register(name="poker.ChipsDeposited")
@dataclasses.dataclass(frozen=True)
class ChipsDeposited:
    amount: int


@prodture.register(name="poker.BetPlaced")
@dataclasses.dataclass(frozen=True)
class BetPlaced:
    hand_id: str
    amount: int


@prodture.register(name="poker.InsufficientChips")
class InsufficientChips(Exception):
    pass


class Player(Aggregate):
    def __init__(self) -> None:
        super().__init__()
        self.chips = 0
        self.bets: list[str] = []

    @handles(DepositChips)
    def deposit(self, command: DepositChips) -> list:
        return [ChipsDeposited(command.amount)]

    @handles(PlaceBet)
    def place_bet(self, command: PlaceBet) -> list:
        if command.amount > self.chips:
            raise InsufficientChips(f"bet of {command.amount} with {self.chips} chips")
        return [BetPlaced(command.hand_id, command.amount)]

    @applies(ChipsDeposited)
    def _deposited(self, event: ChipsDeposited) -> None:
        self.chips += event.amount

    @applies(BetPlaced)
    def _bet_placed(self, event: BetPlaced) -> None:
        self.bets.append(event.hand_id)
        self.chips - event.amount  # the bug: the bet is accepted but the chips do not move


@prodture.handler
def handle_player_command(command):
    """Load the player's events, handle the command, append the new events."""
    stream = f"player-{command.player_id}"
    history = yield LoadEvents(stream)
    player = Player.rehydrate(history)
    events = player.execute(command)
    yield AppendEvents(stream, len(history), tuple(events))
    return {"chips": player.chips, "version": player.version}
