"""Where a recorded path is here.

A trace carries the recording machine's absolute paths (``/srv/app/checkout/service.py``); the
workspace has the same files under another root. Both the site map (which document a recorded
site belongs to) and the trace summary (which file to open for an effect) answer it here, by the
trailing path components the two paths share.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

__all__ = ["is_same_file", "local_file", "shared_suffix"]


def _parts(path: str) -> list[str]:
    return [p for p in path.replace("\\", "/").split("/") if p]


def shared_suffix(recorded: str, local: str) -> int:
    """How many trailing path components ``recorded`` and ``local`` have in common."""
    a, b = _parts(recorded), _parts(local)
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def is_same_file(recorded: str, local: str, *, min_shared: int = 2) -> bool:
    """``recorded`` names the file ``local`` (an absolute path here): the same path, or at least
    ``min_shared`` trailing components in common (``checkout/service.py``)."""
    return os.path.abspath(recorded) == local or shared_suffix(recorded, local) >= min_shared


def local_file(recorded: str, roots: Sequence[str]) -> str | None:
    """The workspace file a recorded path most likely is: the path itself if it is inside a
    workspace root, else the file under a root sharing the longest path suffix with it, else the
    path itself if it exists here; ``None`` when nothing matches."""
    absolute = [os.path.abspath(r) for r in roots]
    if any(recorded.startswith(r + os.sep) for r in absolute) and os.path.isfile(recorded):
        return recorded
    parts = _parts(recorded)
    for k in range(len(parts), 0, -1):
        for root in absolute:
            candidate = os.path.join(root, *parts[-k:])
            if os.path.isfile(candidate):
                return candidate
    return recorded if os.path.isfile(recorded) else None
