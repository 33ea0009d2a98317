"""``textDocument/hover``: on a line that yields an effect, every recorded call there.

Calls from all active traces, most recent first (latest trace, then latest effect): request,
result or error, duration, and the trace it came from. Per site and trace only the most recent
calls are kept rendered (:data:`~prodture.lsp.index.RECENT_PER_SITE`); the rest are counted.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from lsprotocol import types

from .index import Call, SiteCalls, TraceIndex
from .render import clip, duration, short_id, when

#: Calls listed in one hover; the others are summarised in a line.
MAX_LISTED = 12


def _escape(text: str) -> str:
    return text.replace("`", "'")


def _line(call: Call, trace: TraceIndex) -> str:
    mark = "✓" if call.ok else "✗"
    result = (
        f"`{_escape(clip(call.result, 160))}`"
        if call.ok
        else f"**{_escape(clip(call.result, 160))}**"
    )
    return (
        f"- {mark} {result}  \n"
        f"  `{_escape(clip(call.request, 160))}` · {duration(call.duration_ns)} · effect #{call.seq} · "
        f"trace `{short_id(trace.trace_id)}` ({when(trace.started_at)}, {trace.name})"
    )


def render(found: list[tuple[TraceIndex, SiteCalls]]) -> str:
    oldest = _dt.datetime.min.replace(tzinfo=_dt.timezone.utc)

    def started(t: TraceIndex) -> _dt.datetime:
        s = t.started_at or oldest
        return s if s.tzinfo else s.replace(tzinfo=_dt.timezone.utc)

    found = sorted(found, key=lambda ts: (started(ts[0]), ts[1].last_seq), reverse=True)
    types_here = sorted({s.short_type for _, s in found})
    total = sum(s.count for _, s in found)
    failures = sum(s.failures for _, s in found)
    traces = len({id(t) for t, _ in found})
    head = (
        f"**prodture** · `{'`, `'.join(types_here)}` · {total} recorded call{'s' if total != 1 else ''}"
        f"{f', {failures} failed' if failures else ''} in {traces} trace{'s' if traces != 1 else ''}"
        " (most recent first)"
    )
    lines = [head, ""]
    listed = 0
    for trace, site in found:
        for call in site.recent:
            if listed >= MAX_LISTED:
                break
            lines.append(_line(call, trace))
            listed += 1
    if total > listed:
        spent = sum(s.total_ns for _, s in found)
        lines.append(
            f"- … and {total - listed} earlier call{'s' if total - listed != 1 else ''} "
            f"(all {total}: {duration(spent)} in total)"
        )
    return "\n".join(lines)


def hover_at(ls: Any, uri: str, line0: int) -> types.Hover | None:
    line = line0 + 1
    found: list[tuple[TraceIndex, SiteCalls]] = []
    start = end = None
    for view in ls.views(uri):
        for site, call in view.at_line(line):
            found.append((view.trace, site))
            start = call.start_line if start is None else min(start, call.start_line)
            end = call.end_line if end is None else max(end, call.end_line)
    if not found or start is None or end is None:
        return None
    doc = ls.workspace.get_text_document(uri)
    lines = doc.lines
    last = lines[end - 1] if end - 1 < len(lines) else ""
    first = lines[start - 1] if start - 1 < len(lines) else ""
    indent = len(first) - len(first.lstrip())
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=render(found)),
        range=types.Range(
            start=types.Position(line=start - 1, character=indent),
            end=types.Position(line=end - 1, character=_utf16_len(last.rstrip("\r\n"))),
        ),
    )


def _utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def register(server: Any) -> None:
    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: Any, params: types.HoverParams) -> types.Hover | None:
        return hover_at(ls, params.text_document.uri, params.position.line)
