"""Recorded call sites follow the code they belong to: the language server's line mapping."""

from __future__ import annotations

import textwrap
from pathlib import Path

from prodture.lsp.index import SiteCalls, TraceIndex
from prodture.lsp.source_map import analyze, map_trace, module_name

RECORDED = textwrap.dedent("""\
    import prodture

    @prodture.handler
    def place_order(request):
        cart = yield LoadCart(request["cart_id"])
        total = yield ApplyPromo(code=request.get("promo"), subtotal=cart.subtotal())
        try:
            charge = yield ChargeCard(card_token=request["card_token"], amount=total)
        except PaymentDeclined:
            yield SaveOrder(cart.cart_id, total, status="declined")
            raise
        order_id = yield SaveOrder(cart.cart_id, total, status="paid")
        return order_id
""")


def trace_of(sites: list[tuple[int, str]], handler: str = "shop.service:place_order") -> TraceIndex:
    """A trace that recorded these (line, effect type) sites, in a file on another machine."""
    calls = [
        SiteCalls(
            "/srv/app/shop/service.py", line, "place_order", f"shop.{t}", count=1, last_seq=i + 1
        )
        for i, (line, t) in enumerate(sites)
    ]
    return TraceIndex(
        path="/t.prodtrace",
        stamp=(0, 0),
        handler=handler,
        trace_id="t",
        started_at=None,
        fingerprint="recorded-elsewhere",
        effect_count=len(calls),
        complete=True,
        truncated=False,
        outcome_ok=True,
        outcome="Success",
        failed=None,
        failed_site=None,
        sites=calls,
        site_of_seq=None,  # type: ignore[arg-type]  # unused by the mapping under test
    )


def placed_lines(trace: TraceIndex, text: str, tmp_path: Path) -> dict[str, int]:
    package = tmp_path / "shop"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    doc = analyze(str(package / "service.py"), text)
    view = map_trace(trace, doc)
    return {f"{s.short_type}@{s.line}": c.line for s, c in view.placed}


def line(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


PAID = [(5, "LoadCart"), (6, "ApplyPromo"), (8, "ChargeCard"), (12, "SaveOrder")]
DECLINED = [(5, "LoadCart"), (6, "ApplyPromo"), (8, "ChargeCard"), (10, "SaveOrder")]


def test_unchanged_code_keeps_the_recorded_lines(tmp_path: Path) -> None:
    """With the code as recorded, every site is on its recorded line."""
    assert placed_lines(trace_of(PAID), RECORDED, tmp_path) == {f"{t}@{n}": n for n, t in PAID}


def test_sites_follow_lines_inserted_above_them(tmp_path: Path) -> None:
    """Lines added inside the handler move each hint with its call, the right SaveOrder included."""
    text = RECORDED.replace("    try:\n", "    log = 1\n    log += 1\n    try:\n")
    assert placed_lines(trace_of(PAID), text, tmp_path)["SaveOrder@12"] == line(
        text, 'status="paid"'
    )
    assert placed_lines(trace_of(DECLINED), text, tmp_path)["SaveOrder@10"] == line(
        text, 'status="declined"'
    )
    assert placed_lines(trace_of(DECLINED), text, tmp_path)["ChargeCard@8"] == line(
        text, "yield ChargeCard"
    )


def test_sites_follow_reordered_effects(tmp_path: Path) -> None:
    """Swapping two effects keeps each recorded result with its own effect type."""
    text = RECORDED.replace(
        '    cart = yield LoadCart(request["cart_id"])\n    total = yield ApplyPromo(code=request.get("promo"), subtotal=cart.subtotal())\n',
        '    total = yield ApplyPromo(code=request.get("promo"), subtotal=cart.subtotal())\n    cart = yield LoadCart(request["cart_id"])\n',
    )
    placed = placed_lines(trace_of(PAID), text, tmp_path)
    assert placed["LoadCart@5"] == line(text, "yield LoadCart")
    assert placed["ApplyPromo@6"] == line(text, "yield ApplyPromo")


def test_a_site_whose_effect_is_gone_is_stale(tmp_path: Path) -> None:
    """When the code no longer yields an effect type, its recorded site maps nowhere."""
    text = RECORDED.replace("yield ChargeCard(", "yield AuthorizeCard(")
    placed = placed_lines(trace_of(PAID), text, tmp_path)
    assert "ChargeCard@8" not in placed and "LoadCart@5" in placed


def test_await_and_attribute_calls_are_call_sites(tmp_path: Path) -> None:
    """``await fx.ChargeCard(...)`` in an async handler is a site like ``yield ChargeCard(...)``."""
    text = RECORDED.replace("def place_order", "async def place_order").replace(
        "yield ", "await fx."
    )
    text = text.replace(
        'await fx.SaveOrder(cart.cart_id, total, status="declined")',
        'await fx.SaveOrder(\n                cart.cart_id, total, status="declined")',
    )
    placed = placed_lines(trace_of(DECLINED), text, tmp_path)
    assert placed["ChargeCard@8"] == line(text, "ChargeCard")
    assert placed["SaveOrder@10"] == line(text, "await fx.SaveOrder(")


def test_the_handler_is_found_by_module_and_qualname(tmp_path: Path) -> None:
    """The document's module comes from its package, so the trace's handler is recognised."""
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    (tmp_path / "shop" / "orders").mkdir()
    (tmp_path / "shop" / "orders" / "__init__.py").write_text("")
    assert module_name(str(tmp_path / "shop" / "orders" / "service.py")) == "shop.orders.service"
    doc = analyze(str(tmp_path / "shop" / "orders" / "service.py"), RECORDED)
    assert map_trace(trace_of(PAID, "shop.orders.service:place_order"), doc).handler is not None
    assert map_trace(trace_of(PAID, "app.shop.orders.service:place_order"), doc).handler is not None
    assert map_trace(trace_of(PAID, "billing.service:place_order"), doc).handler is None
