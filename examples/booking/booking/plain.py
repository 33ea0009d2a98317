"""The booking service as written without prodture (kept to measure the port: see README)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import uuid

import httpx
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field

from . import db

DB_PATH = os.environ.get("BOOKING_DB", "booking.sqlite")
PAYMENTS = os.environ.get("BOOKING_PAYMENTS", "http://127.0.0.1:8001")
API_KEY = "sk_test_booking"


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    db.init(DB_PATH)
    yield


app = FastAPI(lifespan=lifespan)
http = httpx.AsyncClient()


class BookingIn(BaseModel):
    guest: str
    starts: dt.datetime
    nights: int = Field(ge=1, le=30)


@app.get("/rooms/{room}")
async def room_status(room: str):
    with db.connect(DB_PATH) as conn:
        rows = conn.execute(
            "SELECT starts, nights FROM bookings WHERE room = ? ORDER BY starts", (room,)
        ).fetchall()
    now = dt.datetime.now(dt.timezone.utc)
    upcoming = [r for r in rows if dt.datetime.fromisoformat(r[0]) >= now]
    return {"room": room, "upcoming": len(upcoming)}


@app.post("/rooms/{room}/bookings", status_code=201)
async def book(room: str, body: BookingIn, promo: str | None = None):
    conn = db.connect(DB_PATH)
    try:
        rows = conn.execute("SELECT price_cents FROM rooms WHERE id = ?", (room,)).fetchall()
        if not rows:
            raise HTTPException(404, f"no room {room}")
        amount = rows[0][0] * body.nights
        if promo == "HALF":
            amount //= 2
        risk, charge = await asyncio.gather(
            http.get(f"{PAYMENTS}/risk/{body.guest}"),
            http.post(
                f"{PAYMENTS}/charges",
                json={"amount_cents": amount, "guest": body.guest},
                headers={"Authorization": f"Bearer {API_KEY}"},
            ),
        )
        charge.raise_for_status()
        if risk.json()["score"] > 0.5:
            raise HTTPException(403, "refused")
        booking_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO bookings VALUES (?, ?, ?, ?, ?, ?)",
            (
                booking_id,
                room,
                body.guest,
                body.starts.isoformat(),
                body.nights,
                charge.json()["charge_id"],
            ),
        )
        conn.commit()
    finally:
        conn.close()
    return {"id": booking_id, "amount_cents": amount, "charge_id": charge.json()["charge_id"]}
