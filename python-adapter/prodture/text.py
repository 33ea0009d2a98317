"""Short, safe, one-line renderings of values: the one place the rules for "repr, then clip" live.

Every reader of a trace (the CLI, the replayer's messages, the debugger, the language server) and
the recorder (for values it cannot encode) shows values through these two functions, so a value
reads the same everywhere. This module imports nothing from prodture: anything may use it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["clip", "safe_repr", "short_repr"]


def safe_repr(value: Any) -> str:
    """``repr(value)`` that never raises: a broken ``__repr__`` must not break recording or display.

    Whatever a ``__repr__`` raises gives the marked placeholder, every ``BaseException`` too (a
    ``sys.exit()``, a ``GeneratorExit`` or ``CancelledError`` raised by the repr itself: from the
    recorder it would reach the handler, which never called repr). Except ``KeyboardInterrupt``:
    the user's Ctrl-C, raised wherever the signal found the thread (here only by chance; the
    program would have raised it at its next instruction anyway), must still stop the program."""
    try:
        return repr(value)
    except KeyboardInterrupt:
        raise
    except BaseException as e:
        return f"<{type(value).__name__} (repr failed: {type(e).__name__})>"


def clip(text: str, limit: int) -> str:
    """One line of at most ``limit`` characters: whitespace runs collapsed, ``…`` where cut."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: max(limit - 1, 1)] + "…"


def short_repr(value: Any, limit: int) -> str:
    """:func:`safe_repr`, then :func:`clip` to ``limit`` characters."""
    return clip(safe_repr(value), limit)
