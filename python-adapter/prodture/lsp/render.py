"""Short human renderings of recorded values, shared by hover, inlay hints and the summary."""

from __future__ import annotations

import datetime as _dt

# The one clipping rule, re-exported for the LSP feature modules.
from ..text import clip as clip

#: Longest inlay hint label (characters); hovers and the summary get more room.
HINT_LIMIT = 60


def duration(ns: int) -> str:
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.0f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.2f} s"


def when(started: _dt.datetime | None) -> str:
    if started is None:
        return "unknown time"
    if started.tzinfo is not None:
        started = started.astimezone(_dt.timezone.utc)
        return started.strftime("%Y-%m-%d %H:%M:%S UTC")
    return started.strftime("%Y-%m-%d %H:%M:%S")


def short_id(trace_id: str) -> str:
    return trace_id[:8] if trace_id else "?"
