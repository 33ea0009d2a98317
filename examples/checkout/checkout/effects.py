"""The effects of the checkout service: what it asks the outside world to do."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import prodture


@dataclasses.dataclass(frozen=True)
class LoadCart(prodture.Effect, name="checkout.LoadCart"):
    cart_id: str


@dataclasses.dataclass(frozen=True)
class ApplyPromo(prodture.Effect, name="checkout.ApplyPromo"):
    """Price ``subtotal`` with promo ``code``; the result is the total to charge."""

    code: str | None
    subtotal: Decimal


@dataclasses.dataclass(frozen=True)
class ChargeCard(prodture.Effect, name="checkout.ChargeCard"):
    card_token: str
    amount: Decimal


@dataclasses.dataclass(frozen=True)
class SaveOrder(prodture.Effect, name="checkout.SaveOrder"):
    """Store the order; the result is its id."""

    cart_id: str
    total: Decimal
    status: str
    charge_id: str | None = None
