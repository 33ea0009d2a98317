"""Production performers backed by SQLite: carts, promos and orders."""

from __future__ import annotations

import sqlite3
import threading
from decimal import Decimal

from .effects import ApplyPromo, LoadCart, SaveOrder
from .model import Cart, CartLine, UnknownPromo

SCHEMA = """
CREATE TABLE IF NOT EXISTS carts (cart_id TEXT PRIMARY KEY, customer TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cart_lines (
    cart_id TEXT NOT NULL REFERENCES carts(cart_id), sku TEXT NOT NULL,
    unit_price TEXT NOT NULL, quantity INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS promos (code TEXT PRIMARY KEY, percent_off INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id INTEGER PRIMARY KEY AUTOINCREMENT, cart_id TEXT NOT NULL, total TEXT NOT NULL,
    status TEXT NOT NULL, charge_id TEXT);
"""

SEED_CARTS = {
    "cart-1001": ("ada@example.com", [("BOOK-42", "24.50", 2), ("MUG-7", "9.99", 1)]),
    "cart-1002": ("grace@example.com", [("KEYBOARD-3", "79.00", 1)]),
    "cart-1003": ("linus@example.com", [("SOCKS-1", "5.00", 3)]),
}
SEED_PROMOS = {"WELCOME10": 10, "HALF": 50, "FREE100": 100}


class Store:
    """One SQLite database; a connection per thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._local = threading.local()
        with self._db() as db:
            db.executescript(SCHEMA)

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = sqlite3.connect(self.path)
        return db

    def seed(self) -> None:
        with self._db() as db:
            for cart_id, (customer, lines) in SEED_CARTS.items():
                db.execute("INSERT OR REPLACE INTO carts VALUES (?, ?)", (cart_id, customer))
                db.execute("DELETE FROM cart_lines WHERE cart_id = ?", (cart_id,))
                db.executemany(
                    "INSERT INTO cart_lines VALUES (?, ?, ?, ?)",
                    [(cart_id, sku, price, qty) for sku, price, qty in lines],
                )
            db.executemany("INSERT OR REPLACE INTO promos VALUES (?, ?)", SEED_PROMOS.items())

    def load_cart(self, effect: LoadCart) -> Cart:
        db = self._db()
        row = db.execute(
            "SELECT customer FROM carts WHERE cart_id = ?", (effect.cart_id,)
        ).fetchone()
        if row is None:
            raise KeyError(f"no cart {effect.cart_id}")
        lines = db.execute(
            "SELECT sku, unit_price, quantity FROM cart_lines WHERE cart_id = ? ORDER BY rowid",
            (effect.cart_id,),
        ).fetchall()
        return Cart(effect.cart_id, row[0], tuple(CartLine(s, Decimal(p), q) for s, p, q in lines))

    def apply_promo(self, effect: ApplyPromo) -> Decimal:
        percent = 0
        if effect.code:
            row = (
                self._db()
                .execute("SELECT percent_off FROM promos WHERE code = ?", (effect.code,))
                .fetchone()
            )
            if row is None:
                raise UnknownPromo(f"unknown promo code {effect.code!r}")
            percent = row[0]
        total = effect.subtotal * (100 - percent) / 100
        return total.quantize(Decimal("0.01"))

    def save_order(self, effect: SaveOrder) -> str:
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO orders (cart_id, total, status, charge_id) VALUES (?, ?, ?, ?)",
                (effect.cart_id, str(effect.total), effect.status, effect.charge_id),
            )
        return f"order-{cursor.lastrowid}"

    def performers(self) -> dict:
        return {LoadCart: self.load_cart, ApplyPromo: self.apply_promo, SaveOrder: self.save_order}
