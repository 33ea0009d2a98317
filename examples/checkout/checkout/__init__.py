"""The checkout example: a small order service whose handlers yield effects (see README.md)."""
