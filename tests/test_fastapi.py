"""The FastAPI integration: a route's body is a prodture handler."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import pydantic
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.testclient import TestClient

import prodture
from prodture import ALWAYS, ON_FAILURE, Effect, MemorySink, Recorder, Replayer, read_trace
from prodture.fastapi import TRACE_ID_HEADER, Prodture, Rejected
from prodture.integrations.pydantic import register_model
from prodture.scope import resources
from prodture.trace.format import code_fingerprint


@register_model(name="test_fastapi.BookingIn")
class BookingIn(pydantic.BaseModel):
    guest: str
    nights: int


@dataclasses.dataclass(frozen=True)
class RoomPrice(Effect, name="test_fastapi.RoomPrice"):
    room: str


@dataclasses.dataclass(frozen=True)
class Save(Effect, name="test_fastapi.Save"):
    room: str
    total: int


class SoldOut(Exception):
    pass


prodture.register(SoldOut, name="test_fastapi.SoldOut")

PRICES = {"r1": 100, "r2": 0}


def save(effect: Save) -> int:
    db = resources()["db"]
    db.append((effect.room, effect.total))
    if effect.total > 1000:
        raise RuntimeError("too expensive to store")
    return len(db)


def make_app(mode=ALWAYS):
    sink = MemorySink()
    committed: list = []

    @contextlib.asynccontextmanager
    async def transaction(request: Request):
        pending: list = []
        yield {"db": pending}
        committed.extend(pending)  # not reached when the handler failed: rolled back

    pt = Prodture(
        {RoomPrice: lambda e: PRICES[e.room], Save: save},
        recorder=Recorder(sink, mode=mode),
        expected=(SoldOut,),
        resources=transaction,
    )
    app = FastAPI()

    @app.exception_handler(SoldOut)
    async def sold_out(request, exc):
        from fastapi.responses import JSONResponse

        return JSONResponse({"detail": "sold out"}, status_code=409)

    @app.post("/rooms/{room}/bookings")
    @pt.route(name="test_fastapi:book")
    async def book(room: str, body: BookingIn, discount: int = 0):
        if room == "gone":
            raise HTTPException(404, "no such room")
        if room == "full":
            await Save(room, 1)  # written, then the answer is "sold out": rolled back
            raise SoldOut(room)
        price = await RoomPrice(room)
        per_night = 100 // price  # ZeroDivisionError for a free room: the bug
        total = per_night * body.nights * price - discount
        booking_id = await Save(room, total)
        return {"id": booking_id, "guest": body.guest, "total": total}

    return app, sink, committed, book


@pytest.fixture
def app():
    return make_app()


def test_success_records_params_and_pydantic_body_and_replays(app):
    fastapi_app, sink, committed, book = app
    with TestClient(fastapi_app) as client:
        r = client.post("/rooms/r1/bookings?discount=5", json={"guest": "ann", "nights": 2})
    assert r.status_code == 200 and r.json() == {"id": 1, "guest": "ann", "total": 195}
    assert committed == [("r1", 195)]
    trace = read_trace(sink.traces[0])
    assert r.headers[TRACE_ID_HEADER] == trace.header.trace_id
    assert trace.handler == "test_fastapi:book"
    assert trace.header.fingerprint == code_fingerprint(__file__)  # the route's file, not ours
    assert trace.input == {"room": "r1", "body": BookingIn(guest="ann", nights=2), "discount": 5}
    replayed = Replayer(trace, prodture.runtime.handlers["test_fastapi:book"]).run()
    assert replayed.reproduced and replayed.outcome.value["total"] == 195


def test_unexpected_failure_is_a_500_with_the_trace_id_logged_and_rolled_back(app, caplog):
    fastapi_app, sink, committed, _ = app
    with TestClient(fastapi_app, raise_server_exceptions=False) as client:
        with caplog.at_level(logging.ERROR, logger="prodture.fastapi"):
            r = client.post("/rooms/r2/bookings", json={"guest": "bob", "nights": 1})
    assert r.status_code == 500
    trace = read_trace(sink.traces[0])
    assert r.headers[TRACE_ID_HEADER] == trace.header.trace_id == r.json()["trace_id"]
    assert not trace.outcome.ok and isinstance(trace.outcome.error, ZeroDivisionError)
    assert committed == []
    [record] = [r for r in caplog.records if r.name == "prodture.fastapi"]
    assert record.trace_id == trace.header.trace_id and trace.header.trace_id in record.getMessage()
    # the logged traceback is the handler's own: no runtime frames
    text = caplog.text
    assert "per_night = 100 // price" in text and "runtime.py" not in text
    replayed = Replayer(trace, prodture.runtime.handlers["test_fastapi:book"]).run()
    assert replayed.reproduced and isinstance(replayed.outcome.error, ZeroDivisionError)


def test_performer_failure_rolls_back_the_request_transaction(app):
    fastapi_app, sink, committed, _ = app
    with TestClient(fastapi_app, raise_server_exceptions=False) as client:
        r = client.post("/rooms/r1/bookings", json={"guest": "cy", "nights": 11})
    assert r.status_code == 500 and committed == []
    assert read_trace(sink.traces[0]).outcome.failed_effect == 2


def test_expected_errors_pass_through_and_are_not_failures():
    """HTTPException(404) and a configured expected error reach FastAPI as usual; in ON_FAILURE
    mode they leave no trace (they are answers, not failures); their writes roll back."""
    fastapi_app, sink, committed, _ = make_app(mode=ON_FAILURE)
    with TestClient(fastapi_app) as client:
        gone = client.post("/rooms/gone/bookings", json={"guest": "d", "nights": 1})
        full = client.post("/rooms/full/bookings", json={"guest": "d", "nights": 1})
    assert gone.status_code == 404 and gone.json() == {"detail": "no such room"}
    assert full.status_code == 409 and full.json() == {"detail": "sold out"}
    assert sink.traces == [] and committed == []


def test_expected_error_is_recorded_as_a_rejection_and_replays(app):
    fastapi_app, sink, _, _ = app
    with TestClient(fastapi_app) as client:
        gone = client.post("/rooms/gone/bookings", json={"guest": "d", "nights": 1})
    trace = read_trace(sink.traces[0])
    assert gone.headers[TRACE_ID_HEADER] == trace.header.trace_id
    assert trace.outcome.ok and trace.outcome.value == Rejected(
        "HTTPException", 404, "no such room"
    )
    replayed = Replayer(trace, prodture.runtime.handlers["test_fastapi:book"]).run()
    assert replayed.reproduced


def test_validation_stays_outside_the_handler(app):
    """A body FastAPI rejects (422) never reaches the handler: nothing is recorded."""
    fastapi_app, sink, _, _ = app
    with TestClient(fastapi_app) as client:
        r = client.post("/rooms/r1/bookings", json={"guest": "e"})
    assert r.status_code == 422 and sink.traces == []


def test_generator_and_plain_routes_and_request_parameters():
    """A generator route yields effects; a plain def route is a handler with no effects; a
    Request parameter reaches the route live but is not recorded (replay passes None)."""
    sink = MemorySink()
    pt = Prodture({RoomPrice: lambda e: PRICES[e.room]}, recorder=Recorder(sink))
    app = FastAPI()

    @app.get("/gen/{room}")
    @pt.route(name="test_fastapi:gen")
    def gen(room: str, request: Request):
        price = yield RoomPrice(room)
        return {"price": price, "agent": request.headers["user-agent"] if request else None}

    @app.get("/plain")
    @pt.route(name="test_fastapi:plain")
    def plain(n: int = 1):
        return {"double": 2 * n}

    with TestClient(app) as client:
        assert client.get("/gen/r1").json() == {"price": 100, "agent": "testclient"}
        assert client.get("/plain?n=4").json() == {"double": 8}
    gen_trace, plain_trace = (read_trace(t) for t in sink.traces)
    assert gen_trace.input == {"room": "r1"} and plain_trace.input == {"n": 4}
    replayed = Replayer(gen_trace, prodture.runtime.handlers["test_fastapi:gen"]).run()
    assert not replayed.reproduced  # the agent came from the live request: replay sees None
    assert replayed.outcome.value == {"price": 100, "agent": None}
    assert Replayer(plain_trace, prodture.runtime.handlers["test_fastapi:plain"]).run().reproduced


def test_a_rejection_recorded_under_its_older_name_still_reads_and_replays(app, monkeypatch):
    """Rejected was named prodture.fastapi.Rejected before Flask shared it (prodture.web)."""
    from prodture.effects import registry

    fastapi_app, sink, _, _ = app
    monkeypatch.setitem(registry._by_type, Rejected, "prodture.fastapi.Rejected")
    with TestClient(fastapi_app) as client:
        client.post("/rooms/gone/bookings", json={"guest": "d", "nights": 1})
    monkeypatch.undo()
    assert b"prodture.fastapi.Rejected" in sink.traces[0]
    trace = read_trace(sink.traces[0])
    assert trace.outcome.value == Rejected("HTTPException", 404, "no such room")
    assert Replayer(trace, prodture.runtime.handlers["test_fastapi:book"]).run().reproduced
