"""What the language-server tests share: a real LSP client (pytest-lsp) driving
``python -m prodture.lsp`` over stdio, and small helpers to open, edit and query documents."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

#: Generous: the server answers in milliseconds; only a hang would take this long.
WAIT = 60


def failing_trace(project: Path, checkout_traces: dict[str, Any]) -> Path:
    return project / "traces" / checkout_traces["failing"].name


def ok_trace(project: Path, checkout_traces: dict[str, Any]) -> Path:
    return project / "traces" / checkout_traces["ok"].name


@contextlib.asynccontextmanager
async def server(root: Path, **options: Any) -> AsyncIterator[LanguageClient]:
    client = make_test_lsp_client()
    client.refreshes = []  # type: ignore[attr-defined]  # the tests' own record on the client

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def inlay_refresh(params: None) -> None:
        client.refreshes.append("inlayHint")  # type: ignore[attr-defined]  # as above

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def lens_refresh(params: None) -> None:
        client.refreshes.append("codeLens")  # type: ignore[attr-defined]  # as above

    await client.start_io(sys.executable, "-m", "prodture.lsp")
    capabilities = types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            inlay_hint=types.InlayHintWorkspaceClientCapabilities(refresh_support=True),
            code_lens=types.CodeLensWorkspaceClientCapabilities(refresh_support=True),
        ),
    )
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            # a trusted folder: these tests replay on save (tests/test_lsp_trust.py: untrusted)
            initialization_options={"workspaceTrusted": True, **options},
        )
    )
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


def service(project: Path) -> Path:
    return project / "checkout" / "service.py"


def open_doc(client: LanguageClient, path: Path, text: str | None = None, version: int = 1) -> str:
    uri = path.as_uri()
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=uri,
                language_id="python",
                version=version,
                text=path.read_text() if text is None else text,
            )
        )
    )
    return uri


def change_doc(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def line_of(text: str, needle: str) -> int:
    """0-based line of the first line containing ``needle``."""
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


async def hover(client: LanguageClient, uri: str, line: int) -> str | None:
    result = await client.text_document_hover_async(
        types.HoverParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=8),
        )
    )
    return None if result is None else result.contents.value


async def hints(client: LanguageClient, uri: str) -> dict[int, str]:
    result = await client.text_document_inlay_hint_async(
        types.InlayHintParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=types.Range(
                start=types.Position(line=0, character=0),
                end=types.Position(line=10_000, character=0),
            ),
        )
    )
    return {h.position.line: h.label for h in result or []}  # type: ignore[misc]  # label: str here


async def wait_for_diagnostics(
    client: LanguageClient, uri: str, predicate
) -> list[types.Diagnostic]:
    async def loop() -> list[types.Diagnostic]:
        while not predicate(list(client.diagnostics.get(uri, []))):
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        return list(client.diagnostics[uri])

    return await asyncio.wait_for(loop(), WAIT)


async def log_containing(client: LanguageClient, text: str) -> None:
    while not any(text in m.message for m in client.log_messages):
        await client.wait_for_notification(types.WINDOW_LOG_MESSAGE)
