"""``prodture/traceSummary``: a decoded, paginated summary of a trace file for the extension's
trace viewer, so the trace format has one decoder, in Python (``protocol/lsp.md``).

Params ``{path, offset?: 0, limit?: 200}``; result ``{header, input, effects[offset:offset+limit],
total, offset, outcome, complete, truncated, failedEffect}``. Values are short human renderings.
An unreadable trace is an error response whose message is the reader's one-line error.
Decoded traces are cached (by path, size and modification time) so paging is cheap.
"""

from __future__ import annotations

import collections
import os
from typing import Any

from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams

from ..text import short_repr
from ..trace import Trace, TraceFormatError, read_trace
from ..trace.render import effect_view
from .active_traces import _field
from .index import file_stamp
from .recorded_paths import local_file

TRACE_SUMMARY = "prodture/traceSummary"
DEFAULT_LIMIT = 200
MAX_LIMIT = 5_000
#: Renderings in the summary are cut at this many characters.
TEXT_LIMIT = 300
_CACHE_SIZE = 2


class TraceReadError(JsonRpcException):
    """The trace could not be read; the message says why and what to do."""

    CODE = -32001
    MESSAGE = "trace unreadable"


class _Cache:
    def __init__(self) -> None:
        self._items: collections.OrderedDict[str, tuple[tuple[int, int], Trace]] = (
            collections.OrderedDict()
        )

    def get(self, path: str) -> Trace:
        stamp = file_stamp(path)
        hit = self._items.get(path)
        if hit is not None and hit[0] == stamp:
            self._items.move_to_end(path)
            return hit[1]
        trace = read_trace(path)
        self._items[path] = (stamp, trace)
        while len(self._items) > _CACHE_SIZE:
            self._items.popitem(last=False)
        return trace


def _local_file(recorded: str, roots: list[str], memo: dict[str, str | None]) -> str | None:
    """:func:`recorded_paths.local_file`, once per recorded path of a summary."""
    if recorded not in memo:
        memo[recorded] = local_file(recorded, roots)
    return memo[recorded]


def summary(trace: Trace, offset: int, limit: int, roots: list[str]) -> dict[str, Any]:
    h = trace.header
    memo: dict[str, str | None] = {}
    effects = []
    for e in trace.effects[offset : offset + limit]:
        view = effect_view(e, TEXT_LIMIT)
        view["recordedPath"] = recorded = view["path"]
        if recorded is not None:
            view["path"] = _local_file(recorded, roots, memo) or recorded
        effects.append(view)
    outcome = None
    if trace.outcome is not None:
        o = trace.outcome
        outcome = {
            "ok": o.ok,
            "value": short_repr(o.value, TEXT_LIMIT) if o.ok else None,
            "error": o.describe(TEXT_LIMIT).removeprefix("Failure: ") if not o.ok else None,
            "traceback": o.traceback if not o.ok else None,
        }
    failed = trace.failed_effect if trace.outcome is not None and not trace.outcome.ok else None
    return {
        "header": {
            "handler": h.handler,
            "traceId": h.trace_id,
            "startedAt": h.started_at.isoformat() if h.started_at else None,
            "python": h.python,
            "formatVersion": h.version,
            "fingerprint": h.fingerprint,
        },
        "input": short_repr(trace.input, TEXT_LIMIT),
        "effects": effects,
        "total": len(trace.effects),
        "offset": offset,
        "outcome": outcome,
        "complete": trace.complete,
        "truncated": trace.truncated,
        "failedEffect": failed.seq if failed is not None else None,
    }


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def register(server: Any) -> None:
    cache = _Cache()

    @server.feature(TRACE_SUMMARY)
    def trace_summary(ls: Any, params: Any) -> dict[str, Any]:
        path = _field(params, "path")
        if not isinstance(path, str) or not path:
            raise JsonRpcInvalidParams(message="prodture/traceSummary needs {path: string}")
        if not os.path.isabs(path) and ls.workspace.root_path:
            path = os.path.join(ls.workspace.root_path, path)
        offset = max(_int(_field(params, "offset"), 0), 0)
        limit = min(max(_int(_field(params, "limit"), DEFAULT_LIMIT), 0), MAX_LIMIT)
        try:
            trace = cache.get(os.path.abspath(path))
        except FileNotFoundError:
            raise TraceReadError(message=f"{path}: no such trace file; check the path") from None
        except TraceFormatError as e:
            raise TraceReadError(message=str(e).splitlines()[0]) from None
        except OSError as e:
            raise TraceReadError(message=f"{path}: cannot read the trace ({e.strerror})") from None
        return summary(trace, offset, limit, ls.roots())
