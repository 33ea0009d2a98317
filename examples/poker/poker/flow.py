"""What crosses domains: the seating saga and the hand-flow process manager, and the wiring."""

from __future__ import annotations

import dataclasses

import prodture
from prodture.eventsourcing import Coordinator, Delivery, ProcessManager, Saga, applies, reacts

from . import player, table

BLINDS = (10, 20)


class SeatingSaga(Saga):
    """Player domain → table domain: reserved funds seat the player at the table.

    The cross-domain bug: the saga forwards whatever was reserved as the buy-in, but the table
    refuses buy-ins over its maximum — and nothing gives the reserved chips back."""

    source = player.DOMAIN

    @reacts(player.FundsReserved)
    def seat(self, delivery: Delivery) -> list:
        event = delivery.event
        return [table.SeatPlayer(event.table_id, delivery.root, event.amount)]


@prodture.register(name="poker.HandOpened")
@dataclasses.dataclass(frozen=True)
class HandOpened:
    table_id: str
    hand_id: str
    players: tuple[str, ...]


@prodture.register(name="poker.BlindPosted")
@dataclasses.dataclass(frozen=True)
class BlindPosted:
    player_id: str


class HandFlow(ProcessManager):
    """One hand, keyed by the flow's correlation id: post the blinds, then deal once all are in."""

    domain = "pm-hand-flow"

    def __init__(self) -> None:
        super().__init__()
        self.table_id = self.hand_id = ""
        self.waiting: set[str] = set()

    @reacts(table.HandStarted)
    def open(self, delivery: Delivery) -> list:
        event = delivery.event
        self.record(HandOpened(delivery.root, event.hand_id, event.players))
        return [
            player.PlaceBet(p, event.hand_id, blind)
            for p, blind in zip(event.players, BLINDS, strict=False)
        ]

    @reacts(player.BetPlaced)
    def blind_in(self, delivery: Delivery) -> list:
        if delivery.root not in self.waiting:
            return []
        self.record(BlindPosted(delivery.root))
        return [] if self.waiting else [table.DealCards(self.table_id, self.hand_id)]

    @applies(HandOpened)
    def _opened(self, event: HandOpened) -> None:
        self.table_id, self.hand_id = event.table_id, event.hand_id
        self.waiting = set(event.players[: len(BLINDS)])

    @applies(BlindPosted)
    def _posted(self, event: BlindPosted) -> None:
        self.waiting.discard(event.player_id)


def coordinator(store, **kw) -> Coordinator:
    """The poker service's wiring: routes, the saga, the process manager."""
    c = Coordinator(store, **kw)
    for command in (player.DepositChips, player.ReserveFunds, player.ReleaseFunds, player.PlaceBet):
        c.route(command, player.handle_player_command, domain=player.DOMAIN, root=_player)
    for command in (table.SeatPlayer, table.StartHand, table.DealCards):
        c.route(command, table.handle_table_command, domain=table.DOMAIN, root=_table)
    c.subscribe(SeatingSaga)
    c.subscribe(HandFlow, source=table.DOMAIN, events=[table.HandStarted])
    c.subscribe(HandFlow, source=player.DOMAIN, events=[player.BetPlaced])
    return c


def _player(command) -> str:
    return command.player_id


def _table(command) -> str:
    return command.table_id
