"""Event sourcing with prodture: aggregates, sagas, process managers and projectors as effect
handlers, over a real event store (SQLite or PostgreSQL), with read-only fetch, speculation and
editions.

An aggregate's history *is* its state, so a trace of a command handler — the ``LoadStream``
result plus the command — holds everything needed to replay it: no database, no seed data.
Appending is an effect too, so replay and :func:`speculate` never persist anything.

    class Player(Aggregate):
        chips = 0

        @handles(PlaceBet)
        def place_bet(self, command):
            if command.amount > self.chips:
                raise InsufficientChips(...)
            return [BetPlaced(command.amount)]

        @applies(BetPlaced)
        def _bet_placed(self, event):
            self.chips -= event.amount

    @prodture.handler
    def handle_player_command(command):
        book = yield LoadStream("player", command.player_id)
        player = Player.rehydrate(book)
        events = player.execute(command)
        yield AppendStream("player", command.player_id, book.head, tuple(events))
        return player.chips
"""

from __future__ import annotations

from .aggregate import (
    Aggregate,
    AppendEvents,
    InMemoryEventStore,
    LoadEvents,
    Speculation,
    applies,
    as_book,
    handles,
    speculate,
    speculative_performer,
)
from .components import (
    CommandRejected,
    Coordinator,
    FlowResult,
    ProcessManager,
    Projector,
    Saga,
    SpeculativeStore,
    reacts,
    speculate_flow,
    speculate_process_manager,
    speculate_saga,
)
from .model import (
    MAIN,
    AppendStream,
    ConcurrencyConflict,
    Delivery,
    EventBook,
    EventPage,
    EventStoreError,
    LoadStream,
    StoreUnavailable,
    StreamNotFound,
    UnregisteredEventType,
)
from .store import EventStore, PostgresEventStore, SQLiteEventStore, open_store

__all__ = [
    "Aggregate",
    "handles",
    "applies",
    "reacts",
    "LoadEvents",
    "AppendEvents",
    "LoadStream",
    "AppendStream",
    "EventPage",
    "EventBook",
    "Delivery",
    "MAIN",
    "ConcurrencyConflict",
    "EventStoreError",
    "UnregisteredEventType",
    "StreamNotFound",
    "StoreUnavailable",
    "InMemoryEventStore",
    "EventStore",
    "SQLiteEventStore",
    "PostgresEventStore",
    "open_store",
    "Speculation",
    "speculate",
    "speculative_performer",
    "as_book",
    "Saga",
    "Projector",
    "CommandRejected",
    "SpeculativeStore",
    "ProcessManager",
    "Coordinator",
    "FlowResult",
    "speculate_saga",
    "speculate_process_manager",
    "speculate_flow",
]
