"""One pause of Python's cyclic garbage collector, shared by every reader of many objects.

Decoding a large trace or loading a long event stream builds 100,000s of objects, none in a
reference cycle: meanwhile the cyclic collector would only walk them, and everything already
alive, again and again (about half the time of such a read). Reference counting still frees
everything; only the search for cycles waits.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

_lock = threading.Lock()
_paused = False


@contextlib.contextmanager
def cyclic_gc_paused(young_pass_after: bool = False) -> Iterator[None]:
    """Pause the cyclic collector for the block. Only a pause that finds the collector on (and
    no other pause running) turns it off, and it turns it back on when it ends: no pause
    outlasts the read that took it, even with several threads reading at once, and a collector
    the application turned off stays off.

    ``young_pass_after``: the pause that turned the collector off runs one pass over the young
    generations at its end, moving what was read out of them here rather than in whatever
    allocates next (a replay's first steps)."""
    global _paused
    with _lock:
        owner = not _paused and gc.isenabled()
        if owner:
            gc.disable()
            _paused = True
    try:
        yield
    finally:
        if owner:
            with _lock:
                _paused = False
                gc.enable()
            if young_pass_after:
                gc.collect(1)
