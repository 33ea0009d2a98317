"""End-to-end tests of the language server: a real LSP client drives ``python -m prodture.lsp``
over stdio, with the checkout example's traces recorded for real."""

from __future__ import annotations

import asyncio
import contextlib
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


@pytest.fixture
def project(checkout_dir: Path, checkout_traces: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the checkout example (with its recorded traces) a test may edit."""
    target = tmp_path / "checkout"
    shutil.copytree(checkout_dir, target, ignore=shutil.ignore_patterns("var", "__pycache__"))
    return target


def failing_trace(project: Path, checkout_traces: dict[str, Any]) -> Path:
    return project / "traces" / checkout_traces["failing"].name


def ok_trace(project: Path, checkout_traces: dict[str, Any]) -> Path:
    return project / "traces" / checkout_traces["ok"].name


@contextlib.asynccontextmanager
async def server(root: Path, **options: Any) -> AsyncIterator[LanguageClient]:
    client = make_test_lsp_client()
    client.refreshes = []  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_INLAY_HINT_REFRESH)
    def inlay_refresh(params: None) -> None:
        client.refreshes.append("inlayHint")  # type: ignore[attr-defined]

    @client.feature(types.WORKSPACE_CODE_LENS_REFRESH)
    def lens_refresh(params: None) -> None:
        client.refreshes.append("codeLens")  # type: ignore[attr-defined]

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
            initialization_options={k: v for k, v in options.items()},
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
    return None if result is None else result.contents.value  # type: ignore[union-attr]


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
    return {h.position.line: h.label for h in result or []}  # type: ignore[misc]


async def wait_for_diagnostics(
    client: LanguageClient, uri: str, predicate
) -> list[types.Diagnostic]:
    async def loop() -> list[types.Diagnostic]:
        while not predicate(list(client.diagnostics.get(uri, []))):
            await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        return list(client.diagnostics[uri])

    return await asyncio.wait_for(loop(), WAIT)


# ---------------------------------------------------------------------------------------------


async def test_hover_on_the_charge_line_shows_the_recorded_decline(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """Hovering the ChargeCard line shows what production sent and got back, from which trace."""
    trace = failing_trace(project, checkout_traces)
    async with server(project, traces=[str(trace)]) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        value = await hover(client, uri, line_of(text, "yield ChargeCard"))
    assert value is not None
    assert "ChargeCard" in value
    assert "amount=Decimal('0.00')" in value
    assert "PaymentDeclined: amount must be greater than zero" in value
    assert "effect #3" in value
    assert trace.name in value


async def test_hover_lists_calls_from_every_active_trace_most_recent_first(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """With several traces active, the hover lists each trace's call, the latest recording first."""
    paths = sorted((project / "traces").glob("*.prodtrace"))
    async with server(project, traces=[str(p) for p in paths]) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        value = await hover(client, uri, line_of(text, "yield ApplyPromo"))
    assert value is not None and "4 recorded calls" in value
    # Trace files are named by start time, so the latest is the last path.
    positions = [value.index(p.name) for p in paths]
    assert positions == sorted(positions, reverse=True)


async def test_inlay_hints_show_the_recorded_results_of_the_active_trace(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """After each effect line the active trace's recorded result appears, shortened."""
    async with server(project, traces=[str(failing_trace(project, checkout_traces))]) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        found = await hints(client, uri)
    assert (
        found[line_of(text, "yield ChargeCard")]
        == "→ PaymentDeclined: amount must be greater than zero"
    )
    assert found[line_of(text, "yield ApplyPromo")] == "→ Decimal('0.00')"
    assert found[line_of(text, 'status="declined"')] == "→ 'order-3'"
    assert (
        found[line_of(text, "yield LoadCart")].endswith("…")
        and len(found[line_of(text, "yield LoadCart")]) <= 62
    )
    # The failing order never reached the "paid" SaveOrder: no hint there.
    assert line_of(text, 'status="paid"') not in found


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
    assert sorted(replay.command.arguments) == sorted(str(p) for p in traces)
    assert (
        debug.command.title == "Debug latest trace"
        and debug.command.command == "prodture.debugTrace"
    )
    assert list(debug.command.arguments) == [str(traces[-1])]  # names sort by start time


async def test_the_failing_effect_is_marked_at_its_line(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """The effect whose error ended the recorded run is an error diagnostic on its current line."""
    async with server(project, traces=[str(failing_trace(project, checkout_traces))]) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        diagnostics = await wait_for_diagnostics(client, uri, bool)
    assert len(diagnostics) == 1
    d = diagnostics[0]
    assert d.range.start.line == line_of(text, "yield ChargeCard")
    assert (
        d.severity == types.DiagnosticSeverity.Error
        and d.code == "recorded-failure"
        and d.source == "prodture"
    )
    assert "PaymentDeclined: amount must be greater than zero" in d.message


async def test_hints_follow_code_that_moved_and_vanish_when_the_effect_is_gone(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """Inserting lines moves the hints with their calls; removing a call removes its stale hint."""
    async with server(project, traces=[str(failing_trace(project, checkout_traces))]) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        moved = text.replace(
            '    """Load the cart', '    # a comment\n    # and another\n\n    """Load the cart'
        )
        change_doc(client, uri, moved, 2)
        found = await hints(client, uri)
        assert (
            found[line_of(moved, "yield ChargeCard")]
            == "→ PaymentDeclined: amount must be greater than zero"
        )
        assert found[line_of(moved, 'status="declined"')] == "→ 'order-3'"
        value = await hover(client, uri, line_of(moved, "yield ChargeCard"))
        assert value is not None and "PaymentDeclined" in value
        diagnostics = await wait_for_diagnostics(
            client,
            uri,
            lambda ds: any(d.range.start.line == line_of(moved, "yield ChargeCard") for d in ds),
        )
        assert len(diagnostics) == 1

        gone = moved.replace("yield ChargeCard(", "yield AuthorizeCard(")
        change_doc(client, uri, gone, 3)
        found = await hints(client, uri)
        assert not any("PaymentDeclined" in label for label in found.values())
        assert found[line_of(gone, "yield ApplyPromo")] == "→ Decimal('0.00')"
        await wait_for_diagnostics(client, uri, lambda ds: ds == [])


async def test_hints_keep_to_the_right_call_when_an_effect_type_repeats(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """Of two SaveOrder calls, the hint stays on the one the trace went through after code moves."""
    async with server(project, traces=[str(ok_trace(project, checkout_traces))]) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        moved = text.replace(
            "    subtotal = cart.subtotal()\n",
            "    subtotal = cart.subtotal()\n    # note\n    # note\n",
        )
        change_doc(client, uri, moved, 2)
        found = await hints(client, uri)
    assert found[line_of(moved, 'status="paid"')].startswith("→ 'order-")
    assert line_of(moved, 'status="declined"') not in found


async def test_saving_code_that_diverges_warns_at_the_line_that_differs(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """After a save, a quick replay finds where the edited handler departs from the recording."""
    trace = failing_trace(project, checkout_traces)
    path = service(project)
    async with server(project, traces=[str(trace)]) as client:
        text = path.read_text()
        uri = open_doc(client, path)
        await wait_for_diagnostics(client, uri, bool)
        fixed = text.replace(
            "    try:\n        charge = yield ChargeCard",
            '    if total == 0:\n        order_id = yield SaveOrder(cart.cart_id, total, status="free")\n'
            '        return {"order_id": order_id, "total": str(total), "charge_id": None}\n'
            "    try:\n        charge = yield ChargeCard",
        )
        assert fixed != text
        path.write_text(fixed)
        change_doc(client, uri, fixed, 2)
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        diagnostics = await wait_for_diagnostics(
            client, uri, lambda ds: any(d.code == "divergence" for d in ds)
        )
        found = await hints(client, uri)
    [warning] = [d for d in diagnostics if d.code == "divergence"]
    assert warning.severity == types.DiagnosticSeverity.Warning
    assert warning.range.start.line == line_of(fixed, 'status="free"')
    assert (
        "effect #3" in warning.message
        and "ChargeCard" in warning.message
        and "SaveOrder" in warning.message
    )
    # The recording no longer describes the code from effect #3 on: its failure and hints go.
    assert not any(d.code == "recorded-failure" for d in diagnostics)
    assert not any("PaymentDeclined" in label for label in found.values())
    assert found[line_of(fixed, "yield ApplyPromo")] == "→ Decimal('0.00')"


async def test_saving_a_request_change_shows_recorded_versus_now(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """A changed request field is reported with the recorded and the new value."""
    trace = failing_trace(project, checkout_traces)
    path = service(project)
    async with server(project, traces=[str(trace)]) as client:
        text = path.read_text()
        uri = open_doc(client, path)
        changed = text.replace("subtotal=subtotal)", "subtotal=subtotal + 1)")
        path.write_text(changed)
        change_doc(client, uri, changed, 2)
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        diagnostics = await wait_for_diagnostics(
            client, uri, lambda ds: any(d.code == "divergence" for d in ds)
        )
    [warning] = [d for d in diagnostics if d.code == "divergence"]
    assert warning.range.start.line == line_of(changed, "yield ApplyPromo")
    assert "subtotal: recorded Decimal('15.00'), now Decimal('16.00')" in warning.message


async def test_saving_unchanged_code_reproduces_and_keeps_the_hints(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """Saving code that still does what production did leaves no divergence behind."""
    path = service(project)
    async with server(project, traces=[str(failing_trace(project, checkout_traces))]) as client:
        uri = open_doc(client, path)
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        await asyncio.wait_for(_log_containing(client, "reproduced"), WAIT)
        diagnostics = list(client.diagnostics[uri])
        found = await hints(client, uri)
    assert [d.code for d in diagnostics] == ["recorded-failure"]
    assert any("PaymentDeclined" in label for label in found.values())


async def _log_containing(client: LanguageClient, text: str) -> None:
    while not any(text in m.message for m in client.log_messages):
        await client.wait_for_notification(types.WINDOW_LOG_MESSAGE)


async def test_a_corrupt_trace_is_reported_and_the_server_keeps_working(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """A corrupt or missing trace gets a one-line showMessage error; the good ones still work."""
    bad = project / "traces" / "broken.prodtrace"
    bad.write_bytes(b"\x93\x00\x01garbage that is not a trace")
    missing = project / "traces" / "nowhere.prodtrace"
    good = failing_trace(project, checkout_traces)
    async with server(project, traces=[str(bad), str(missing), str(good)]) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        value = await hover(client, uri, line_of(text, "yield ChargeCard"))
        messages = list(client.messages)
    errors = [m for m in messages if m.type == types.MessageType.Error]
    assert len(errors) == 2
    assert all("\n" not in m.message for m in errors)
    assert any(str(bad) in m.message and "corrupt" in m.message for m in errors)
    assert any(str(missing) in m.message and "no such trace file" in m.message for m in errors)
    assert value is not None and "PaymentDeclined" in value


async def test_set_active_traces_replaces_the_set(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """The prodture/setActiveTraces notification switches which trace the hints come from."""
    async with server(project) as client:
        text = service(project).read_text()
        uri = open_doc(client, service(project))
        assert await hints(client, uri) == {}
        client.protocol.notify(
            "prodture/setActiveTraces", {"traces": [str(failing_trace(project, checkout_traces))]}
        )
        found = await hints(client, uri)
        assert "PaymentDeclined" in found[line_of(text, "yield ChargeCard")]
        assert "inlayHint" in client.refreshes  # type: ignore[attr-defined]
        client.protocol.notify(
            "prodture/setActiveTraces", {"traces": [str(ok_trace(project, checkout_traces))]}
        )
        found = await hints(client, uri)
        assert found[line_of(text, "yield ChargeCard")].startswith("→ Charge(")
        client.protocol.notify("prodture/setActiveTraces", {"traces": []})
        assert await hints(client, uri) == {}
        await wait_for_diagnostics(client, uri, lambda ds: ds == [])


async def test_trace_summary_returns_a_decoded_page_of_the_trace(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """prodture/traceSummary decodes header, input, a page of effects and the outcome."""
    trace = failing_trace(project, checkout_traces)
    async with server(project) as client:
        first = await client.protocol.send_request_async(
            "prodture/traceSummary", {"path": str(trace), "limit": 3}
        )
        rest = await client.protocol.send_request_async(
            "prodture/traceSummary", {"path": str(trace), "offset": 3}
        )
    assert first.header.handler == "checkout.service:place_order"
    assert "FREE100" in first.input
    assert first.total == 4 and first.offset == 0 and [e.seq for e in first.effects] == [1, 2, 3]
    charge = first.effects[2]
    assert charge.type == "checkout.ChargeCard" and charge.ok is False
    assert charge.error == "PaymentDeclined: amount must be greater than zero"
    assert charge.path == str(service(project))  # the workspace's file, not the recording machine's
    assert charge.line == 18 and charge.function == "place_order"
    assert [e.seq for e in rest.effects] == [4]
    assert first.outcome.ok is False and "PaymentDeclined" in first.outcome.error
    assert first.failedEffect == 3 and first.complete is True


async def test_trace_summary_of_a_corrupt_file_is_an_error_response(project: Path) -> None:
    """Asking for a corrupt trace's summary answers with the reader's one-line error."""
    bad = project / "traces" / "broken.prodtrace"
    bad.write_bytes(b"\xc1\xc1\xc1")
    async with server(project) as client:
        with pytest.raises(Exception) as info:
            await client.protocol.send_request_async("prodture/traceSummary", {"path": str(bad)})
        # The server is still there.
        ok = await client.protocol.send_request_async(
            "prodture/traceSummary",
            {
                "path": str(
                    project
                    / "traces"
                    / sorted(p.name for p in (project / "traces").glob("2*.prodtrace"))[0]
                )
            },
        )
    assert str(bad) in str(info.value)
    assert ok.total == 4


LOOP_HANDLER = """\
import dataclasses
import prodture


@dataclasses.dataclass(frozen=True)
class LookupItem(prodture.Effect, name="lspbatch.LookupItem"):
    key: str


@prodture.handler
def crunch(n):
    total = 0
    for i in range(n):
        item = yield LookupItem(key=f"item-{i}")
        total += item
    return total
"""


@pytest.fixture
def loop_project(tmp_path: Path) -> tuple[Path, Path]:
    """A handler that yields the same effect 30 times in a loop, recorded for real."""
    import importlib

    import prodture

    root = tmp_path / "batch"
    (root / "lspbatch").mkdir(parents=True)
    (root / "lspbatch" / "__init__.py").write_text("")
    source = root / "lspbatch" / "jobs.py"
    source.write_text(LOOP_HANDLER)
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module("lspbatch.jobs")
        recorder = prodture.Recorder(prodture.DirectorySink(root / "traces"))
        prodture.Interpreter(
            {module.LookupItem: lambda e: int(e.key.split("-")[1])}, recorder=recorder
        ).run(module.crunch, 30)
        recorder.close()  # the trace is written by the recorder's writer thread
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("lspbatch")]:
            del sys.modules[name]
    [trace] = (root / "traces").glob("*.prodtrace")
    return source, trace


async def test_a_site_in_a_loop_shows_its_last_result_and_a_count(
    loop_project: tuple[Path, Path],
) -> None:
    """A line run many times gets the last result with a count; its hover lists recent calls and counts the rest."""
    source, trace = loop_project
    async with server(source.parent.parent, traces=[str(trace)]) as client:
        uri = open_doc(client, source)
        text = source.read_text()
        found = await hints(client, uri)
        value = await hover(client, uri, line_of(text, "yield LookupItem"))
    assert found == {line_of(text, "yield LookupItem"): "→ 29 (×30, last)"}
    assert value is not None and "30 recorded calls" in value
    assert value.index("effect #30") < value.index("effect #29")  # most recent first
    assert "and 18 earlier calls" in value


async def test_saving_a_module_the_handler_calls_replays_the_handler(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """Saving the pricing code (not the handler) replays the open handler's trace and warns there."""
    trace = failing_trace(project, checkout_traces)
    handler_path, model_path = service(project), project / "checkout" / "model.py"
    async with server(project, traces=[str(trace)]) as client:
        text = handler_path.read_text()
        uri = open_doc(client, handler_path)
        model_uri = open_doc(client, model_path)
        changed = model_path.read_text().replace('Decimal("0.00"))', 'Decimal("1.00"))')
        model_path.write_text(changed)
        change_doc(client, model_uri, changed, 2)
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(
                text_document=types.TextDocumentIdentifier(uri=model_uri)
            )
        )
        diagnostics = await wait_for_diagnostics(
            client, uri, lambda ds: any(d.code == "divergence" for d in ds)
        )
    [warning] = [d for d in diagnostics if d.code == "divergence"]
    assert warning.range.start.line == line_of(text, "yield ApplyPromo")
    assert "subtotal: recorded Decimal('15.00'), now Decimal('16.00')" in warning.message


async def test_a_replay_that_cannot_run_says_why_on_the_handler(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """Saving a handler that no longer imports gives a one-line note on the handler, not a crash."""
    path = service(project)
    async with server(project, traces=[str(failing_trace(project, checkout_traces))]) as client:
        text = path.read_text()
        uri = open_doc(client, path)
        broken = text.replace(
            "    subtotal = cart.subtotal()\n", "    subtotal = = cart.subtotal()\n"
        )
        path.write_text(broken)
        change_doc(client, uri, broken, 2)
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        diagnostics = await wait_for_diagnostics(
            client, uri, lambda ds: any(d.code == "replay-error" for d in ds)
        )
        assert (
            await hover(client, uri, line_of(text, "yield ChargeCard")) is not None
        )  # still serving
    [note] = [d for d in diagnostics if d.code == "replay-error"]
    assert note.severity == types.DiagnosticSeverity.Information
    assert note.range.start.line == line_of(text, "def place_order")
    assert "SyntaxError" in note.message and "\n" not in note.message


async def test_a_replay_that_hangs_is_stopped(
    project: Path, checkout_traces: dict[str, Any]
) -> None:
    """A quick replay of code that never finishes is stopped at the time limit and reported."""
    path = service(project)
    async with server(
        project, traces=[str(failing_trace(project, checkout_traces))], replayTimeout=2
    ) as client:
        text = path.read_text()
        uri = open_doc(client, path)
        hanging = text.replace(
            "    subtotal = cart.subtotal()\n",
            "    while True:\n        pass\n    subtotal = cart.subtotal()\n",
        )
        path.write_text(hanging)
        change_doc(client, uri, hanging, 2)
        client.text_document_did_save(
            types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )
        diagnostics = await wait_for_diagnostics(
            client, uri, lambda ds: any(d.code == "replay-error" for d in ds)
        )
    [note] = [d for d in diagnostics if d.code == "replay-error"]
    assert "longer than 2 s" in note.message
