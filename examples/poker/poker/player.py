"""The Player aggregate: a player's chips. It has the bug of the report (see the README):
"the bet was accepted but the chips didn't decrease"."""

from __future__ import annotations

import dataclasses

import prodture
from prodture.eventsourcing import Aggregate, AppendStream, LoadStream, applies, handles

DOMAIN = "player"


@prodture.register(name="poker.DepositChips")
@dataclasses.dataclass(frozen=True)
class DepositChips:
    player_id: str
    amount: int


@prodture.register(name="poker.ReserveFunds")
@dataclasses.dataclass(frozen=True)
class ReserveFunds:
    """Set ``amount`` chips aside to sit at ``table_id`` (the saga seats the player)."""

    player_id: str
    table_id: str
    amount: int


@prodture.register(name="poker.PlaceBet")
@dataclasses.dataclass(frozen=True)
class PlaceBet:
    player_id: str
    hand_id: str
    amount: int


@prodture.register(name="poker.ReleaseFunds")
@dataclasses.dataclass(frozen=True)
class ReleaseFunds:
    """Give chips reserved for ``table_id`` back to the bank (the table did not seat the player)."""

    player_id: str
    table_id: str
    amount: int


@prodture.register(name="poker.ChipsDeposited")
@dataclasses.dataclass(frozen=True)
class ChipsDeposited:
    amount: int


@prodture.register(name="poker.FundsReserved")
@dataclasses.dataclass(frozen=True)
class FundsReserved:
    table_id: str
    amount: int


@prodture.register(name="poker.FundsReleased")
@dataclasses.dataclass(frozen=True)
class FundsReleased:
    table_id: str
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
        self.chips = 0  # at the table (reserved), available for bets
        self.bank = 0  # deposited, not reserved
        self.bets: list[str] = []

    @handles(DepositChips)
    def deposit(self, command: DepositChips) -> list:
        return [ChipsDeposited(command.amount)]

    @handles(ReserveFunds)
    def reserve(self, command: ReserveFunds) -> list:
        if command.amount > self.bank:
            raise InsufficientChips(f"reserve {command.amount} with {self.bank} in the bank")
        return [FundsReserved(command.table_id, command.amount)]

    @handles(ReleaseFunds)
    def release(self, command: ReleaseFunds) -> list:
        amount = min(command.amount, self.chips)
        return [FundsReleased(command.table_id, amount)] if amount else []

    @handles(PlaceBet)
    def place_bet(self, command: PlaceBet) -> list:
        if command.amount > self.chips:
            raise InsufficientChips(f"bet of {command.amount} with {self.chips} chips")
        return [BetPlaced(command.hand_id, command.amount)]

    @applies(ChipsDeposited)
    def _deposited(self, event: ChipsDeposited) -> None:
        self.bank += event.amount

    @applies(FundsReserved)
    def _reserved(self, event: FundsReserved) -> None:
        self.bank -= event.amount
        self.chips += event.amount

    @applies(FundsReleased)
    def _released(self, event: FundsReleased) -> None:
        self.chips -= event.amount
        self.bank += event.amount

    @applies(BetPlaced)
    def _bet_placed(self, event: BetPlaced) -> None:
        self.bets.append(event.hand_id)
        self.chips - event.amount  # the bug: the bet is accepted but the chips do not move


@prodture.handler
def handle_player_command(command):
    """Load the player's events, handle the command, append the new events."""
    book = yield LoadStream(DOMAIN, command.player_id)
    player = Player.rehydrate(book)
    events = player.execute(command)
    yield AppendStream(DOMAIN, command.player_id, book.head, tuple(events))
    return {"chips": player.chips, "version": player.version}
