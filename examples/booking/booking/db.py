"""The SQLite schema and seed data (shared by both versions of the service)."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS rooms (id TEXT PRIMARY KEY, price_cents INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bookings (
    id TEXT PRIMARY KEY, room TEXT NOT NULL, guest TEXT NOT NULL,
    starts TEXT NOT NULL, nights INTEGER NOT NULL, charge_id TEXT
);
"""


def init(path: str) -> None:
    """Create the tables and seed two rooms; room 'r2' has a booking imported from the legacy
    system, whose start time was stored without a timezone (the bug the example records)."""
    with sqlite3.connect(path) as conn:
        conn.executescript(SCHEMA)
        conn.execute("INSERT OR IGNORE INTO rooms VALUES ('r1', 12000), ('r2', 9500)")
        conn.execute(
            "INSERT OR IGNORE INTO bookings VALUES "
            "('legacy-1', 'r2', 'old@example.com', '2031-06-01T14:00:00', 2, NULL)"
        )
    conn.close()


def connect(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path, check_same_thread=False)
