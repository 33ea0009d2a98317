"""The language server's code_lens.py: Replay / Debug above a handler that has traces.

End to end: a real LSP client drives ``python -m prodture.lsp`` over stdio, with the checkout
example's traces recorded for real (fixtures in conftest.py, helpers in lsp_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_support import (
    failing_trace,
    line_of,
    open_doc,
    server,
    service,
)

# Each test starts a language server process: not part of `make test-fast`.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def test_code_lenses_offer_replay_and_debug_above_the_handler(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """Above place_order: "Replay (N traces)" and "Debug latest trace", wired to the extension's commands."""
    traces = sorted((project / "traces").glob("*.prodtrace"))
    async with server(
        project,
        traces=[str(failing_trace(project, checkout_traces))],
        traceFolders=[str(project / "traces")],
    ) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        lenses = await client.text_document_code_lens_async(
            types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
    assert lenses is not None and len(lenses) == 2
    replay, debug = lenses
    assert replay.range.start.line == debug.range.start.line == line_of(text, "def place_order")
    assert (
        replay.command.title == "Replay (4 traces)"
        and replay.command.command == "prodture.replayTrace"
    )
    assert sorted(replay.command.arguments or []) == sorted(str(p) for p in traces)
    assert (
        debug.command.title == "Debug latest trace"
        and debug.command.command == "prodture.debugTrace"
    )
    assert list(debug.command.arguments or []) == [str(traces[-1])]  # names sort by start time
