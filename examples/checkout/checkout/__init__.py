"""The checkout example: a small order service whose handlers yield effects (DESIGN.md, story 1)."""
