"""The poker example: an event-sourced Player aggregate whose bet does not move the chips."""
