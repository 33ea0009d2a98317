"""The Table aggregate: who sits where, and the hands played."""

from __future__ import annotations

import dataclasses

import prodture
from prodture.eventsourcing import Aggregate, AppendStream, LoadStream, applies, handles

DOMAIN = "table"
MAX_BUY_IN = 500


@prodture.register(name="poker.SeatPlayer")
@dataclasses.dataclass(frozen=True)
class SeatPlayer:
    table_id: str
    player_id: str
    buy_in: int


@prodture.register(name="poker.StartHand")
@dataclasses.dataclass(frozen=True)
class StartHand:
    table_id: str
    hand_id: str


@prodture.register(name="poker.DealCards")
@dataclasses.dataclass(frozen=True)
class DealCards:
    table_id: str
    hand_id: str


@prodture.register(name="poker.PlayerSeated")
@dataclasses.dataclass(frozen=True)
class PlayerSeated:
    player_id: str
    stack: int


@prodture.register(name="poker.HandStarted")
@dataclasses.dataclass(frozen=True)
class HandStarted:
    hand_id: str
    players: tuple[str, ...]


@prodture.register(name="poker.CardsDealt")
@dataclasses.dataclass(frozen=True)
class CardsDealt:
    hand_id: str


@prodture.register(name="poker.TableRefused")
class TableRefused(Exception):
    pass


class Table(Aggregate):
    def __init__(self) -> None:
        super().__init__()
        self.stacks: dict[str, int] = {}
        self.hands: list[str] = []

    @handles(SeatPlayer)
    def seat(self, command: SeatPlayer) -> list:
        if command.buy_in > MAX_BUY_IN:
            raise TableRefused(f"buy-in {command.buy_in} is over the table's {MAX_BUY_IN}")
        if command.player_id in self.stacks:
            raise TableRefused(f"{command.player_id} is already seated")
        return [PlayerSeated(command.player_id, command.buy_in)]

    @handles(StartHand)
    def start(self, command: StartHand) -> list:
        if len(self.stacks) < 2:
            raise TableRefused("a hand needs two players")
        return [HandStarted(command.hand_id, tuple(sorted(self.stacks)))]

    @handles(DealCards)
    def deal(self, command: DealCards) -> list:
        return [CardsDealt(command.hand_id)]

    @applies(PlayerSeated)
    def _seated(self, event: PlayerSeated) -> None:
        self.stacks[event.player_id] = event.stack

    @applies(HandStarted)
    def _started(self, event: HandStarted) -> None:
        self.hands.append(event.hand_id)

    @applies(CardsDealt)
    def _dealt(self, event: CardsDealt) -> None:
        pass


@prodture.handler
def handle_table_command(command):
    book = yield LoadStream(DOMAIN, command.table_id)
    table = Table.rehydrate(book)
    events = table.execute(command)
    yield AppendStream(DOMAIN, command.table_id, book.head, tuple(events))
    return {"players": sorted(table.stacks), "version": table.version}
