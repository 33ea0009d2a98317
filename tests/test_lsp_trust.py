"""Workspace trust in the language server: an untrusted folder's code never runs.

A real LSP client drives ``python -m prodture.lsp`` over stdio on a copy of the checkout example.
Two tripwires prove what ran: the handler's package imports a module that writes a marker file
when it is imported (any replay imports the handler), and a ``sitecustomize`` on the server's
``PYTHONPATH`` writes one line per Python process started (the server's own, and any replay
subprocess it spawns). Each refusal is checked against its trusted twin, where both tripwires fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient
from pytest_lsp.client import make_test_lsp_client

pytestmark = pytest.mark.asyncio

#: Generous: the server answers in milliseconds; only a hang would take this long.
WAIT = 60

MARKER_MODULE = """\
import os, pathlib
pathlib.Path(os.environ["PRODTURE_TEST_IMPORT_MARKER"]).write_text("imported")
"""

PROCESS_LOG = """\
import os
path = os.environ.get("PRODTURE_TEST_PROCESS_LOG")
if path:
    with open(path, "a") as f:
        f.write(f"{os.getpid()}\\n")
"""


class Tripwires:
    def __init__(self, root: Path) -> None:
        self.marker = root / "imported.marker"
        self.process_log = root / "processes.log"
        self.site_dir = root / "site"

    def processes(self) -> int:
        """Python processes started since the server (the server included)."""
        return len(self.process_log.read_text().split()) if self.process_log.exists() else 0


@pytest.fixture
def project(checkout_dir: Path, checkout_traces: dict[str, Any], tmp_path: Path) -> Path:
    """A copy of the checkout example whose handler module imports a marker-writing module."""
    target = tmp_path / "checkout"
    shutil.copytree(checkout_dir, target, ignore=shutil.ignore_patterns("var", "__pycache__"))
    (target / "checkout" / "import_marker.py").write_text(MARKER_MODULE)
    service = target / "checkout" / "service.py"
    # At the end, so that every recorded line stays where it was.
    service.write_text(service.read_text() + "\nfrom . import import_marker  # noqa: E402,F401\n")
    return target


@pytest.fixture
def tripwires(tmp_path: Path) -> Tripwires:
    t = Tripwires(tmp_path)
    t.site_dir.mkdir()
    (t.site_dir / "sitecustomize.py").write_text(PROCESS_LOG)
    return t


def failing_trace(project: Path, checkout_traces: dict[str, Any]) -> str:
    return str(project / "traces" / checkout_traces["failing"].name)


@contextlib.asynccontextmanager
async def server(root: Path, wires: Tripwires, **options: Any) -> AsyncIterator[LanguageClient]:
    client = make_test_lsp_client()
    client.lens_refreshes = 0  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def lens_refresh(params: None) -> None:
        client.lens_refreshes += 1  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def inlay_refresh(params: None) -> None:
        pass

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(wires.site_dir), env.get("PYTHONPATH")) if p
    )
    env["PRODTURE_TEST_IMPORT_MARKER"] = str(wires.marker)
    env["PRODTURE_TEST_PROCESS_LOG"] = str(wires.process_log)
    await client.start_io(sys.executable, "-m", "prodture.lsp", env=env)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(
                workspace=types.WorkspaceClientCapabilities(
                    inlay_hint=types.InlayHintWorkspaceClientCapabilities(refresh_support=True),
                    code_lens=types.CodeLensWorkspaceClientCapabilities(refresh_support=True),
                )
            ),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=options,
        )
    )
    try:
        yield client
    finally:
        await client.shutdown_session()
        await client.stop()


def open_handler(client: LanguageClient, project: Path) -> tuple[str, Path]:
    path = project / "checkout" / "service.py"
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(
                uri=path.as_uri(), language_id="python", version=1, text=path.read_text()
            )
        )
    )
    return path.as_uri(), path


def edit_and_save(client: LanguageClient, uri: str, path: Path, text: str, version: int) -> None:
    path.write_text(text)
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )
    client.text_document_did_save(
        types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )


def diverging(text: str) -> str:
    """The handler with the promo's subtotal changed: effect #2's request differs."""
    changed = text.replace("subtotal=subtotal)", "subtotal=subtotal + 1)")
    assert changed != text
    return changed


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines()) if needle in line)


async def wait_for_diagnostics(client: LanguageClient, uri: str, predicate) -> list[Any]:
    async def loop() -> list[Any]:
        while not predicate(list(client.diagnostics.get(uri, []))):
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        return list(client.diagnostics[uri])

    return await asyncio.wait_for(loop(), WAIT)


def has(code: str):
    return lambda ds: any(d.code == code for d in ds)


async def lenses(client: LanguageClient, uri: str) -> list[tuple[str, str, list[Any]]]:
    result = await client.text_document_code_lens_async(
        types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    )
    return [
        (lens.command.title, lens.command.command, list(lens.command.arguments or []))
        for lens in result or []
        if lens.command is not None
    ]


# ---------------------------------------------------------------------------------------------


async def test_untrusted_save_starts_no_process_and_imports_nothing(
    project: Path, checkout_traces: dict[str, Any], tripwires: Tripwires
) -> None:
    """In an untrusted folder a save replays nothing and says why on the handler, in one line."""
    trace = failing_trace(project, checkout_traces)
    async with server(project, tripwires, traces=[trace], workspaceTrusted=False) as client:
        uri, path = open_handler(client, project)
        text = path.read_text()
        edit_and_save(client, uri, path, diverging(text), 2)
        diagnostics = await wait_for_diagnostics(client, uri, has("replay-untrusted"))
        started = tripwires.processes()
        # reading the trace still works: the recorded failure is still marked
        assert any(d.code == "recorded-failure" for d in diagnostics)
    [note] = [d for d in diagnostics if d.code == "replay-untrusted"]
    assert note.severity == types.DiagnosticSeverity.Information
    assert note.range.start.line == line_of(text, "def place_order")
    assert "not trusted" in note.message and "Manage Workspace Trust" in note.message
    assert "\n" not in note.message
    assert not any(d.code in ("divergence", "replay-error") for d in diagnostics)
    assert started == 1, f"only the server itself ran ({started} Python processes)"
    assert not tripwires.marker.exists(), "the folder's code was imported"


async def test_trusted_save_replays_and_warns_of_the_divergence(
    project: Path, checkout_traces: dict[str, Any], tripwires: Tripwires
) -> None:
    """The twin of the test above, trusted: the same save replays and both tripwires fire."""
    trace = failing_trace(project, checkout_traces)
    async with server(project, tripwires, traces=[trace], workspaceTrusted=True) as client:
        uri, path = open_handler(client, project)
        changed = diverging(path.read_text())
        edit_and_save(client, uri, path, changed, 2)
        diagnostics = await wait_for_diagnostics(client, uri, has("divergence"))
    [warning] = [d for d in diagnostics if d.code == "divergence"]
    assert warning.severity == types.DiagnosticSeverity.Warning
    assert warning.range.start.line == line_of(changed, "yield ApplyPromo")
    assert "subtotal: recorded Decimal('15.00'), now Decimal('16.00')" in warning.message
    assert not any(d.code == "replay-untrusted" for d in diagnostics)
    assert tripwires.processes() >= 2, "the replay ran in a subprocess"
    assert tripwires.marker.read_text() == "imported"


async def test_granting_trust_enables_the_replay_without_a_restart(
    project: Path, checkout_traces: dict[str, Any], tripwires: Tripwires
) -> None:
    """prodture/setWorkspaceTrust {trusted: true}: the refusal goes, lenses switch, saves replay."""
    trace = failing_trace(project, checkout_traces)
    async with server(project, tripwires, traces=[trace], workspaceTrusted=False) as client:
        uri, path = open_handler(client, project)
        text = path.read_text()
        untrusted_lenses = await lenses(client, uri)
        edit_and_save(client, uri, path, text, 2)
        await wait_for_diagnostics(client, uri, has("replay-untrusted"))
        assert not tripwires.marker.exists()

        refreshes = client.lens_refreshes  # type: ignore[attr-defined]
        client.protocol.notify("prodture/setWorkspaceTrust", {"trusted": True})
        await wait_for_diagnostics(client, uri, lambda ds: not has("replay-untrusted")(ds))

        async def lens_refreshed() -> None:
            while client.lens_refreshes == refreshes:  # type: ignore[attr-defined]
                await asyncio.sleep(0.05)

        await asyncio.wait_for(lens_refreshed(), WAIT)
        trusted_lenses = await lenses(client, uri)
        changed = diverging(text)
        edit_and_save(client, uri, path, changed, 3)
        await wait_for_diagnostics(client, uri, has("divergence"))
    assert [(title, cmd) for title, cmd, _ in untrusted_lenses] == [
        ("Show latest trace (1 trace)", "prodture.showTrace"),
        ("Replay and Debug are off: folder not trusted", "prodture.replayTrace"),
    ]
    assert untrusted_lenses[0][2] == [trace]
    assert [(title, cmd) for title, cmd, _ in trusted_lenses] == [
        ("Replay (1 trace)", "prodture.replayTrace"),
        ("Debug latest trace", "prodture.debugTrace"),
    ]
    assert tripwires.marker.read_text() == "imported"


@pytest.mark.parametrize(
    ("options", "replays"),
    [({}, False), ({"quickReplay": True}, True), ({"quickReplay": False}, False)],
    ids=["says-nothing", "configured-on", "configured-off"],
)
async def test_a_client_that_does_not_say_replays_only_when_configured_to(
    project: Path,
    checkout_traces: dict[str, Any],
    tripwires: Tripwires,
    options: dict[str, Any],
    replays: bool,
) -> None:
    """Another editor (no workspaceTrusted) gets no replay unless its configuration asks."""
    trace = failing_trace(project, checkout_traces)
    async with server(project, tripwires, traces=[trace], **options) as client:
        uri, path = open_handler(client, project)
        text = path.read_text()
        edit_and_save(client, uri, path, diverging(text), 2)
        if replays:
            diagnostics = await wait_for_diagnostics(client, uri, has("divergence"))
        elif options.get("quickReplay") is False:
            # turned off: no word about it — wait for a request to be answered, then look
            await client.text_document_hover_async(
                types.HoverParams(
                    text_document=types.TextDocumentIdentifier(uri=uri),
                    position=types.Position(line=line_of(text, "yield ChargeCard"), character=8),
                )
            )
            diagnostics = list(client.diagnostics.get(uri, []))
        else:
            diagnostics = await wait_for_diagnostics(client, uri, has("replay-untrusted"))
    codes = {d.code for d in diagnostics}
    if replays:
        assert tripwires.marker.exists() and "replay-untrusted" not in codes
        return
    assert not tripwires.marker.exists() and tripwires.processes() == 1
    assert "divergence" not in codes
    if not options:
        [note] = [d for d in diagnostics if d.code == "replay-untrusted"]
        assert "did not say this folder is trusted" in note.message
        assert "workspaceTrusted" in note.message


async def test_reading_traces_works_in_an_untrusted_folder(
    project: Path, checkout_traces: dict[str, Any], tripwires: Tripwires
) -> None:
    """Hovers, inlay hints and the trace summary read the trace without running anything."""
    trace = failing_trace(project, checkout_traces)
    async with server(project, tripwires, traces=[trace], workspaceTrusted=False) as client:
        uri, path = open_handler(client, project)
        text = path.read_text()
        charge = line_of(text, "yield ChargeCard")
        hover = await client.text_document_hover_async(
            types.HoverParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=charge, character=8),
            )
        )
        hints = await client.text_document_inlay_hint_async(
            types.InlayHintParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(
                    start=types.Position(line=0, character=0),
                    end=types.Position(line=10_000, character=0),
                ),
            )
        )
        summary = await client.protocol.send_request_async(
            "prodture/traceSummary", {"path": trace, "offset": 0, "limit": 50}
        )
    assert hover is not None and "PaymentDeclined" in hover.contents.value
    assert any("PaymentDeclined" in str(h.label) for h in hints or [])
    assert summary.total >= 4 and summary.failedEffect is not None
    assert tripwires.processes() == 1 and not tripwires.marker.exists()
