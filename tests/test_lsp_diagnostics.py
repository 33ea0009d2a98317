"""The language server's diagnostics.py: the recorded failure at its line, and the quick replay on save.

End to end: a real LSP client drives ``python -m prodture.lsp`` over stdio, with the checkout
example's traces recorded for real (fixtures in conftest.py, helpers in lsp_support.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_support import (
    WAIT,
    change_doc,
    failing_trace,
    hints,
    hover,
    line_of,
    log_containing,
    open_doc,
    server,
    service,
    wait_for_diagnostics,
)

# Each test starts a language server process: not part of `make test-fast`.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


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
        await asyncio.wait_for(log_containing(client, "reproduced"), WAIT)
        diagnostics = list(client.diagnostics[uri])
        found = await hints(client, uri)
    assert [d.code for d in diagnostics] == ["recorded-failure"]
    assert any("PaymentDeclined" in label for label in found.values())


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
