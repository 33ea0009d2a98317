"""The booking service ported to prodture: each route's body is a recorded handler."""

from __future__ import annotations

import contextlib
import datetime as dt
import os

import httpx
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

import prodture
from prodture import http, sql
from prodture.fastapi import Prodture
from prodture.integrations.pydantic import register_model

from . import db

DB_PATH = os.environ.get("BOOKING_DB", "booking.sqlite")
API_KEY = "sk_test_booking"
TRACES = os.environ.get("BOOKING_TRACES", "traces")
RECORD = os.environ.get("BOOKING_RECORD", prodture.ALWAYS)  # always, on-failure or off


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    db.init(DB_PATH)  # at start-up, not import: replay imports this module
    yield


app = FastAPI(lifespan=lifespan)


@contextlib.asynccontextmanager
async def transaction(request: Request):
    conn = db.connect(DB_PATH)
    try:
        with conn:  # commits when the handler succeeded, rolls back when it failed
            yield {"db": conn}
    finally:
        conn.close()


pt = Prodture(
    {**sql.performers(), **http.async_performers(httpx.AsyncClient())},
    recorder=None
    if RECORD == "off"
    else prodture.Recorder(prodture.DirectorySink(TRACES), mode=RECORD),
    resources=transaction,
)


@register_model(name="booking.BookingIn")
class BookingIn(BaseModel):
    guest: str
    starts: dt.datetime
    nights: int = Field(ge=1, le=30)


@app.get("/rooms/{room}")
@pt.route
async def room_status(room: str):
    rows = await sql.query(
        "SELECT starts, nights FROM bookings WHERE room = ? ORDER BY starts", (room,)
    )
    now = await prodture.Now()
    upcoming = [r for r in rows if dt.datetime.fromisoformat(r["starts"]) >= now]
    return {"room": room, "upcoming": len(upcoming)}


@app.post("/rooms/{room}/bookings", status_code=201)
@pt.route
async def book(room: str, body: BookingIn, promo: str | None = None):
    rows = await sql.query("SELECT price_cents FROM rooms WHERE id = ?", (room,))
    if not rows:
        raise HTTPException(404, f"no room {room}")
    amount = rows[0]["price_cents"] * body.nights
    if promo == "HALF":
        amount //= 2
    # configuration read through an effect: replay sees the recorded value
    payments = await prodture.GetEnv("BOOKING_PAYMENTS", "http://127.0.0.1:8001")
    risk, charge = await prodture.gather(
        http.get(f"{payments}/risk/{body.guest}"),
        http.post(
            f"{payments}/charges",
            json={"amount_cents": amount, "guest": body.guest},
            headers={"Authorization": f"Bearer {API_KEY}"},
        ),
    )
    if risk.json()["score"] > 0.5:
        raise HTTPException(403, "refused")
    booking_id = str(await prodture.NewUUID())
    await sql.execute(
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
    return {"id": booking_id, "amount_cents": amount, "charge_id": charge.json()["charge_id"]}
