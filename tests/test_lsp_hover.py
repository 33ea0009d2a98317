"""The language server's hover.py: what production sent and got back at a line, from every active trace.

End to end: a real LSP client drives ``python -m prodture.lsp`` over stdio, with the checkout
example's traces recorded for real (fixtures in conftest.py, helpers in lsp_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lsp_support import (
    failing_trace,
    hover,
    line_of,
    open_doc,
    server,
    service,
)

# Each test starts a language server process: not part of `make test-fast`.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


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
