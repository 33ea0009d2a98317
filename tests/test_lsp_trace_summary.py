"""The language server's trace_summary.py: the prodture/traceSummary request (the viewer's page of a trace).

End to end: a real LSP client drives ``python -m prodture.lsp`` over stdio, with the checkout
example's traces recorded for real (fixtures in conftest.py, helpers in lsp_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lsp_support import (
    failing_trace,
    server,
    service,
)

# Each test starts a language server process: not part of `make test-fast`.
pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


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
