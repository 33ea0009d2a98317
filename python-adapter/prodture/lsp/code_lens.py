"""``textDocument/codeLens``: above a handler with recorded traces, "Replay (N traces)" and
"Debug latest trace".

N counts the handler's traces known to the server: the listed active traces and those found in
trace folders. The lenses invoke extension commands (``protocol/CONTRACT-NAMES.md``):
``prodture.replayTrace`` with arguments ``[latestPath, ...otherPaths]`` (latest first; a client
that replays one trace takes the first) and ``prodture.debugTrace`` with ``[latestPath]``.

When the client says the folder is not trusted (:mod:`.trust`), Replay and Debug would run the
folder's code: the lenses become "Show latest trace (N traces)" (``prodture.showTrace``, which only
reads the trace) and "Replay and Debug are off: folder not trusted" (``prodture.replayTrace``,
which the client answers with the reason and the way to trust the folder).
"""

from __future__ import annotations

from typing import Any

from lsprotocol import types

from .source_map import handler_function

REPLAY_COMMAND = "prodture.replayTrace"
DEBUG_COMMAND = "prodture.debugTrace"
SHOW_COMMAND = "prodture.showTrace"


def lenses(ls: Any, uri: str) -> list[types.CodeLens]:
    analysis = ls.analysis(uri)
    if analysis is None:
        return []
    handlers: set[str] = {t.handler for t in ls.traces.active()}
    handlers.update(ls.traces.folder_handlers())
    out: list[types.CodeLens] = []
    done: set[int] = set()
    for name in sorted(handlers):
        module, _, qualname = name.partition(":")
        fn = analysis.by_qualname.get(qualname)
        if fn is None or fn.line in done:
            continue
        probe = _Probe(name)
        if handler_function(probe, analysis) is None:  # type: ignore[arg-type]  # reads .handler only
            continue
        traces = ls.traces.for_handler(name)
        if not traces:
            continue
        done.add(fn.line)
        where = types.Range(
            start=types.Position(line=fn.line - 1, character=0),
            end=types.Position(line=fn.line - 1, character=0),
        )
        paths = [t.path for t in traces]
        n = len(paths)
        if ls.replay_trust.trusted is False:
            out += _untrusted_lenses(where, paths)
            continue
        out.append(
            types.CodeLens(
                range=where,
                command=types.Command(
                    title=f"Replay ({n} trace{'s' if n != 1 else ''})",
                    command=REPLAY_COMMAND,
                    arguments=paths,
                ),
            )
        )
        out.append(
            types.CodeLens(
                range=where,
                command=types.Command(
                    title="Debug latest trace", command=DEBUG_COMMAND, arguments=[paths[0]]
                ),
            )
        )
    return out


def _untrusted_lenses(where: types.Range, paths: list[str]) -> list[types.CodeLens]:
    n = len(paths)
    return [
        types.CodeLens(
            range=where,
            command=types.Command(
                title=f"Show latest trace ({n} trace{'s' if n != 1 else ''})",
                command=SHOW_COMMAND,
                arguments=[paths[0]],
            ),
        ),
        types.CodeLens(
            range=where,
            command=types.Command(
                title="Replay and Debug are off: folder not trusted",
                command=REPLAY_COMMAND,
                arguments=paths,
            ),
        ),
    ]


class _Probe:
    """Just enough of a TraceIndex for :func:`handler_function` (the handler's name)."""

    def __init__(self, handler: str) -> None:
        self.handler = handler


def register(server: Any) -> None:
    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    def code_lens(ls: Any, params: types.CodeLensParams) -> list[types.CodeLens]:
        return lenses(ls, params.text_document.uri)
