"""The payment service the booking service depends on (run on 127.0.0.1 by uvicorn).

``POST /charges`` {"amount_cents", "guest"} with ``Authorization: Bearer <key>`` → {"charge_id"};
a charge of 0 or less is refused with 402.
"""

from __future__ import annotations

import itertools

from fastapi import FastAPI, Header, HTTPException

app = FastAPI()
_ids = itertools.count(1)


@app.post("/charges", status_code=201)
async def charge(payload: dict, authorization: str = Header()) -> dict:
    if authorization != "Bearer sk_test_booking":
        raise HTTPException(401, "bad key")
    if payload.get("amount_cents", 0) <= 0:
        raise HTTPException(402, "amount must be positive")
    return {"charge_id": f"ch_{next(_ids):04d}", "amount_cents": payload["amount_cents"]}


@app.get("/risk/{guest}")
async def risk(guest: str) -> dict:
    return {"guest": guest, "score": 0.9 if guest.endswith("@fraud.test") else 0.1}
