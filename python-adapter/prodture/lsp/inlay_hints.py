"""``textDocument/inlayHint``: after each line that yields an effect, the primary trace's result.

``→ PaymentDeclined: amount must be greater than zero`` — the last call at that site in the
handler's primary trace (the first listed), shortened to :data:`~prodture.lsp.render.HINT_LIMIT`
characters, with ``×N`` for a site called more than once. Sites whose effect type no longer
appears in the function have no hint (see :mod:`.source_map`), nor do sites at or after the
effect where the last quick replay diverged: the trace no longer describes that code.
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from .hover import _utf16_len
from .index import SiteCalls, TraceIndex
from .render import HINT_LIMIT, clip, duration, short_id


def label(site: SiteCalls) -> str:
    last = site.recent[0] if site.recent else None
    if last is None:
        return ""
    text = clip(last.result, HINT_LIMIT)
    if site.count > 1:
        text += f" (×{site.count}, last)"
    return f"→ {text}"


def tooltip(site: SiteCalls, trace: TraceIndex) -> str:
    last = site.recent[0]
    return (
        f"{last.request}\n→ {last.result}\n{duration(last.duration_ns)} · effect #{last.seq} of "
        f"{trace.effect_count} · trace {short_id(trace.trace_id)} ({trace.name})"
    )


def hints(ls: Any, uri: str, range_: types.Range | None = None) -> list[types.InlayHint]:
    views = ls.primary_views(uri)
    if not views:
        return []
    lines = ls.workspace.get_text_document(uri).lines
    out: list[types.InlayHint] = []
    seen: set[int] = set()
    for view in views:
        finding = ls.divergences.get(view.trace.path)
        cutoff = finding.effect_seq if finding is not None and finding.effect_seq else None
        for site, call in sorted(view.placed, key=lambda sc: sc[1].end_line):
            if not site.recent or call.end_line in seen:
                continue
            if cutoff is not None and site.last_seq >= cutoff:
                continue  # stale: the code no longer does what this trace recorded here
            line0 = call.end_line - 1
            if range_ is not None and not (range_.start.line <= line0 <= range_.end.line):
                continue
            if line0 >= len(lines):
                continue
            seen.add(call.end_line)
            out.append(
                types.InlayHint(
                    position=types.Position(
                        line=line0, character=_utf16_len(lines[line0].rstrip("\r\n"))
                    ),
                    label=label(site),
                    padding_left=True,
                    tooltip=tooltip(site, view.trace),
                )
            )
    return out


def register(server: Any) -> None:
    @server.feature(types.TEXT_DOCUMENT_INLAY_HINT, types.InlayHintOptions(resolve_provider=False))
    def inlay_hint(ls: Any, params: types.InlayHintParams) -> list[types.InlayHint]:
        return hints(ls, params.text_document.uri, params.range)
