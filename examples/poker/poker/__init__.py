"""The poker service: Player and Table aggregates, the seating saga, the hand-flow process manager."""

from . import flow, player, table  # noqa: F401 -- importing the package registers every type and handler
