"""The order service's handler. It performs no I/O: every side effect is an effect value."""

from __future__ import annotations

import prodture

from .effects import ApplyPromo, ChargeCard, LoadCart, SaveOrder
from .model import PaymentDeclined


@prodture.handler
def place_order(request: dict):
    """Load the cart, price it with the promo, charge the card, save the order."""
    cart = yield LoadCart(request["cart_id"])
    subtotal = cart.subtotal()
    total = yield ApplyPromo(code=request.get("promo"), subtotal=subtotal)
    try:
        charge = yield ChargeCard(card_token=request["card_token"], amount=total)
    except PaymentDeclined:
        yield SaveOrder(cart.cart_id, total, status="declined")
        raise
    order_id = yield SaveOrder(cart.cart_id, total, status="paid", charge_id=charge.charge_id)
    return {"order_id": order_id, "total": str(total), "charge_id": charge.charge_id}
