"""Values the checkout handlers exchange with their performers."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import prodture


@prodture.register(name="checkout.CartLine")
@dataclasses.dataclass(frozen=True)
class CartLine:
    sku: str
    unit_price: Decimal
    quantity: int


@prodture.register(name="checkout.Cart")
@dataclasses.dataclass(frozen=True)
class Cart:
    cart_id: str
    customer: str
    lines: tuple[CartLine, ...]

    def subtotal(self) -> Decimal:
        return sum((line.unit_price * line.quantity for line in self.lines), Decimal("0.00"))


@prodture.register(name="checkout.Charge")
@dataclasses.dataclass(frozen=True)
class Charge:
    charge_id: str
    amount: Decimal


@prodture.register(name="checkout.PaymentDeclined")
class PaymentDeclined(Exception):
    """The payment gateway refused the charge."""

    def __init__(self, message: str, code: str = "declined") -> None:
        super().__init__(message)
        self.code = code


@prodture.register(name="checkout.UnknownPromo")
class UnknownPromo(Exception):
    """The promo code does not exist."""
