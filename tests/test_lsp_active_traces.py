"""The language server's active_traces.py: which traces are active, and a bad one reported without stopping the server.

End to end: a real LSP client drives ``python -m prodture.lsp`` over stdio, with the checkout
example's traces recorded for real (fixtures in conftest.py, helpers in lsp_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from lsp_support import (
    failing_trace,
    hints,
    hover,
    line_of,
    ok_trace,
    open_doc,
    server,
    service,
    wait_for_diagnostics,
)

# Each test starts a language server process: not part of `make test-fast`.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


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
        assert "inlayHint" in client.refreshes  # type: ignore[attr-defined]  # lsp_support adds it
        client.protocol.notify(
            "prodture/setActiveTraces", {"traces": [str(ok_trace(project, checkout_traces))]}
        )
        found = await hints(client, uri)
        assert found[line_of(text, "yield ChargeCard")].startswith("→ Charge(")
        client.protocol.notify("prodture/setActiveTraces", {"traces": []})
        assert await hints(client, uri) == {}
        await wait_for_diagnostics(client, uri, lambda ds: ds == [])
