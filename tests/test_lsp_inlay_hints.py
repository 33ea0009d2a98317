"""The language server's inlay_hints.py: the recorded result at the end of each effect line.

End to end: a real LSP client drives ``python -m prodture.lsp`` over stdio, with the checkout
example's traces recorded for real (fixtures in conftest.py, helpers in lsp_support.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lsp_support import (
    change_doc,
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
